"""Benchmark: speed-up of the nightly flow's per-series work (DICOM ingest chunks and volumetry)
on a local Dask cluster of two worker processes over one (issue 8).

The same generated trial is run into two fresh lakes, with
``nightly.with_options(task_runner=build_task_runner("dask", n_workers=k))`` for k = 1, 2, in one
child process with private Prefect state (see ``bench.flow_runs``). The speed-up is measured on the
wall time of the per-series tasks (what Dask distributes), read back from Prefect's task runs; the
whole run's time (cluster start, serial stages, marts) is reported beside it.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass

from bench.flow_runs import (
    TrialSize,
    compute_union_seconds,
    read_task_intervals,
    run_in_child,
    time_empty_flow,
    time_flow,
    trial_workspace,
)

PER_SERIES_TASK = re.compile(r"ingest_dicom_chunk|measure_series")
WORKERS = (1, 2)


@dataclass(frozen=True)
class WorkerRun:
    """One run: wall seconds of the per-series tasks, their mean task-run seconds, the whole run."""

    per_series_s: float
    task_mean_s: float
    run_s: float


@dataclass(frozen=True)
class DaskTimings:
    """The runs with 1 and with 2 workers. If the mean task time grows with 2 workers, the workers
    compete (for the cores or for the API server); if it stays and the wall time does not fall, the
    tasks were not run side by side."""

    n_series: int
    one: WorkerRun
    two: WorkerRun


def available() -> bool:
    """True when the flow package has the task-runner factory this benchmark uses."""
    if importlib.util.find_spec("flows.runners") is None:
        return False
    from flows import runners

    return hasattr(runners, "build_task_runner")


def _worker_run(tasks: dict[str, list[tuple[float, float]]], run_s: float) -> WorkerRun:
    spans = [span for name, spans in tasks.items() if PER_SERIES_TASK.search(name) for span in spans]
    if not spans:
        raise RuntimeError(f"dask benchmark: no per-series task ({PER_SERIES_TASK.pattern}) among {sorted(tasks)}")
    mean = sum(end - start for start, end in spans) / len(spans)
    return WorkerRun(per_series_s=compute_union_seconds(spans), task_mean_s=mean, run_s=run_s)


def _time_runs(landing: str, lake_root: str) -> list[WorkerRun]:
    """In the child: one run per worker count, each into a new lake."""
    from flows.nightly import nightly
    from flows.runners import build_task_runner

    time_empty_flow()  # the ephemeral server is up before timing
    runs = []
    for k in WORKERS:
        flow = nightly.with_options(task_runner=build_task_runner("dask", n_workers=k))
        run_s, run_id = time_flow(flow, landing=landing, lake=f"{lake_root}/lake-{k}")
        runs.append(_worker_run(read_task_intervals(run_id), run_s))
    return runs


def run(size: TrialSize, *, workdir: str | None = None) -> DaskTimings:
    """Generate the trial (untimed), then run it with 1 and with 2 Dask workers."""
    with trial_workspace(size, workdir) as (tmp, trial):
        one, two = run_in_child(_time_runs, str(trial.landing), str(tmp), prefect_home=tmp / "prefect")
    return DaskTimings(n_series=trial.n_series, one=one, two=two)
