"""Floors measured in the same run as each benchmark: the cost of just touching the same data."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def best_of(fn: Callable[[], object], *, repeat: int = 3) -> float:
    """Fastest wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def read_floor(files: Sequence[Path]) -> float:
    """Reading the bytes of the files (from page cache after the first pass), like `cat`."""
    return best_of(lambda: [f.read_bytes() for f in files])


def numpy_floor(volume: np.ndarray) -> float:
    """One numpy pass over the voxels (a threshold and a count)."""
    return best_of(lambda: int(np.count_nonzero(volume > -500)))


def dcmdump_floor(files: Sequence[Path]) -> float | None:
    """dcmdump of the headers of the files (None when dcmtk is not installed)."""
    if shutil.which("dcmdump") is None:
        return None
    args = ["dcmdump", "-q", "+P", "0020,0032", *map(str, files)]
    return best_of(lambda: subprocess.run(args, check=True, capture_output=True))


def dcm2niix_floor(series_dir: Path, *, repeat: int = 3) -> float | None:
    """dcm2niix converting the series to NIfTI, best of ``repeat`` (None when dcm2niix is not installed)."""
    if shutil.which("dcm2niix") is None:
        return None

    def convert() -> None:
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(["dcm2niix", "-z", "n", "-o", out, str(series_dir)], check=True, capture_output=True)

    return best_of(convert, repeat=repeat)
