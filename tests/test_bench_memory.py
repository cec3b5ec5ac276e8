"""The benchmark's peak-memory reading is the measured process's own, not inherited from its parent."""
import multiprocessing

import numpy as np

from bench.volumetry_accuracy import own_peak_rss_mb

PARENT_PEAK_MB = 800


def _report_peak(queue) -> None:
    queue.put(own_peak_rss_mb())


def test_spawned_child_does_not_report_the_parents_peak() -> None:
    # The parent touches 800 MB before spawning; getrusage's ru_maxrss would carry that mark over
    # fork and exec into the child, while the child itself (a bare interpreter) needs far less.
    touched = np.ones(PARENT_PEAK_MB * 2**20 // 8)
    assert touched.sum() == touched.size
    del touched
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_report_peak, args=(queue,))
    child.start()
    child_peak = queue.get(timeout=60)
    child.join()
    assert 1 < child_peak < PARENT_PEAK_MB / 2
