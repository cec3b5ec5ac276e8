"""Timing Prefect flow runs for the benchmarks: a generated trial, a child process with private
Prefect state, flow runs timed to completion and their stage times read back from Prefect.

The child has its own ``PREFECT_HOME`` (so the ephemeral server's SQLite holds only the benchmark's
runs and nobody else's state is touched). Stage times are per task: the wall time during which any
of its runs was running (the union of their start-end intervals, so concurrent mapped runs are not
double counted).
"""
from __future__ import annotations

import functools
import importlib
import multiprocessing
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

from trialake.synth import GeneratedTrial, generate_trial


@dataclass(frozen=True)
class TrialSize:
    """Synthetic trial for a flow benchmark (defaults: the demo size, 30 subjects of 64x64x40 CT)."""

    subjects: int = 30
    matrix: int = 64
    slices: int = 40
    seed: int = 0


def make_trial(size: TrialSize, out_dir: Path) -> GeneratedTrial:
    """Generate the trial's landing area (untimed by the callers)."""
    return generate_trial(out_dir, subjects=size.subjects, seed=size.seed, matrix=size.matrix, slices=size.slices,
                          sites=3 if size.subjects >= 3 else 2)


def isolate_prefect(home: Path) -> None:
    """Private, offline, quiet Prefect (and Dask) state for this process; call before they are imported."""
    os.environ["PREFECT_HOME"] = str(home)
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["PREFECT_LOGGING_LEVEL"] = "ERROR"
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"  # a loaded machine starts it slowly
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "error"  # Dask clusters of the flows' task runners: quiet


def time_flow(flow: Any, **parameters: Any) -> tuple[float, Any]:
    """(seconds, flow run id) of one run of ``flow``; an error naming the state if it did not complete."""
    start = time.perf_counter()
    state = flow(**parameters, return_state=True)
    seconds = time.perf_counter() - start
    if not state.is_completed():
        raise RuntimeError(f"flow {flow.name} ended {state.name}: {state.message}")
    return seconds, state.state_details.flow_run_id


def time_empty_flow() -> float:
    """Start the ephemeral server (untimed), then time a flow with one task that does nothing: the
    floor of any flow run."""
    from prefect import flow, task

    @task(name="noop")
    def noop() -> None:
        return None

    @flow(name="bench-empty")
    def empty() -> None:
        noop()

    time_flow(empty)  # starts the ephemeral server
    return time_flow(empty)[0]


def merge_intervals(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of (start, end) intervals as sorted, disjoint intervals."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def subtract_intervals(
    intervals: Sequence[tuple[float, float]], removed: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The parts of ``intervals`` that no interval of ``removed`` covers (sorted, disjoint)."""
    result = []
    cuts = merge_intervals(removed)
    for start, end in merge_intervals(intervals):
        for cut_start, cut_end in cuts:
            if cut_end <= start or cut_start >= end:
                continue
            if cut_start > start:
                result.append((start, cut_start))
            start = max(start, cut_end)
        if start < end:
            result.append((start, end))
    return result


def compute_union_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """Length of the union of (start, end) intervals: wall time during which any of them ran."""
    return sum(end - start for start, end in merge_intervals(intervals))


def read_task_intervals(flow_run_id: Any) -> dict[str, list[tuple[float, float]]]:
    """{task: (start, end) epoch seconds of each of its runs} over a flow run and its subflows."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
        )
        ids = [flow_run_id, *(run.id for run in children)]
        offset = 0
        while batch := client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)),
                                             offset=offset, limit=200):
            for run in batch:
                if run.start_time and run.end_time:
                    span = (run.start_time.timestamp(), run.end_time.timestamp())
                    intervals[run.task_key.rsplit("-", 1)[0]].append(span)
            offset += len(batch)
    return dict(intervals)


def record_call_intervals(module_name: str, function: str) -> list[tuple[float, float]] | None:
    """Wrap ``module_name.function`` (looked up by its callers at call time) so that every call
    appends its (start, end) epoch seconds to the returned list; None when there is no such function.
    A timing probe for this benchmark process: the real function still does the work."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    original = getattr(module, function, None)
    if original is None:
        return None
    calls: list[tuple[float, float]] = []

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            return original(*args, **kwargs)
        finally:
            calls.append((start, time.time()))

    setattr(module, function, timed)
    return calls


def _child_main(target: Callable[..., Any], prefect_home: str, args: tuple, queue: Any) -> None:
    isolate_prefect(Path(prefect_home))
    try:
        queue.put((True, target(*args)))
    except Exception as error:  # the parent raises it with this message
        queue.put((False, f"{type(error).__name__}: {error}"))
        raise


def run_in_child(target: Callable[..., Any], *args: Any, prefect_home: Path) -> Any:
    """``target(*args)`` in a fresh spawned interpreter with private Prefect state: its return value
    (picklable), or a RuntimeError with the child's error (or exit code if it died without one)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_main, args=(target, str(prefect_home), args, queue))
    child.start()
    try:
        while True:
            try:
                ok, value = queue.get(timeout=1.0)
                break
            except Empty:
                if not child.is_alive() and queue.empty():
                    raise RuntimeError(f"{target.__module__}: the child process died (exit code {child.exitcode})") from None
    finally:
        child.join()
    if not ok:
        raise RuntimeError(f"{target.__module__}: {value}")
    return value


@contextmanager
def trial_workspace(size: TrialSize, workdir: str | None):
    """A temporary directory holding the generated trial; yields (directory, trial)."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        yield Path(tmp), make_trial(size, Path(tmp) / "trial")
