"""Benchmark: speed-up of the nightly flow's per-series work (DICOM ingest chunks and volumetry)
on a local Dask cluster of two worker processes over one (issue 8).

The same generated trial is run into two fresh lakes, with
``nightly.with_options(task_runner=build_task_runner("dask", n_workers=k))`` for k = 1, 2, in one
child process with private Prefect state (see ``bench.flow_runs``). The speed-up is measured on the
wall time of the per-series phases (what Dask distributes): for each phase, from the start of its
first task run to the end of its last, read back from Prefect's task runs. Per-task orchestration
(the task engine's start-up in the worker, state changes, moving results) thus counts for one
worker as for two; the union of the task runs' own spans would leave it out for one worker, where
nothing else runs between two tasks, but not for two. Each worker count runs three times,
alternating, and its fastest run counts. The whole run's time (cluster start, serial stages,
marts) is reported beside it.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass

from bench.flow_runs import (
    TrialSize,
    read_task_intervals,
    run_in_child,
    time_empty_flow,
    time_flow,
    trial_workspace,
)

PER_SERIES_PHASES = {"ingest": re.compile(r"ingest_dicom_chunk"), "volumetry": re.compile(r"measure_series")}
WORKERS = (1, 2)
REPEATS = 3


@dataclass(frozen=True)
class WorkerRun:
    """One run: wall seconds of each per-series phase, the mean task-run seconds, the whole run."""

    phases_s: dict[str, float]
    task_mean_s: float
    run_s: float

    @property
    def per_series_s(self) -> float:
        """Wall seconds of the per-series phases together."""
        return sum(self.phases_s.values())


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
    if importlib.util.find_spec("trialake_flows.runners") is None:
        return False
    from trialake_flows import runners

    return hasattr(runners, "build_task_runner")


def compute_phase_seconds(spans: list[tuple[float, float]]) -> float:
    """Wall seconds from the first start to the last end of a phase's task runs."""
    return max(end for _, end in spans) - min(start for start, _ in spans)


def _worker_run(tasks: dict[str, list[tuple[float, float]]], run_s: float) -> WorkerRun:
    phases = {phase: [span for name, spans in tasks.items() if pattern.search(name) for span in spans]
              for phase, pattern in PER_SERIES_PHASES.items()}
    missing = [phase for phase, spans in phases.items() if not spans]
    if missing:
        raise RuntimeError(f"dask benchmark: no task run of phase(s) {missing} among {sorted(tasks)}")
    all_spans = [span for spans in phases.values() for span in spans]
    mean = sum(end - start for start, end in all_spans) / len(all_spans)
    return WorkerRun({phase: compute_phase_seconds(spans) for phase, spans in phases.items()}, mean, run_s)


def _time_runs(landing: str, lake_root: str) -> list[WorkerRun]:
    """In the child: ``REPEATS`` rounds of one run per worker count, each into a new lake; the
    fastest run of each worker count (a shared 2-core machine is noisy)."""
    from trialake_flows.nightly import nightly
    from trialake_flows.runners import build_task_runner

    time_empty_flow()  # the ephemeral server is up before timing
    runs: dict[int, list[WorkerRun]] = {k: [] for k in WORKERS}
    for round_ in range(REPEATS):
        for k in WORKERS:
            flow = nightly.with_options(task_runner=build_task_runner("dask", n_workers=k))
            run_s, run_id = time_flow(flow, landing=landing, lake=f"{lake_root}/lake-{k}-{round_}")
            runs[k].append(_worker_run(read_task_intervals(run_id), run_s))
    return [min(runs[k], key=lambda r: r.per_series_s) for k in WORKERS]


def run(size: TrialSize, *, workdir: str | None = None) -> DaskTimings:
    """Generate the trial (untimed), then run it with 1 and with 2 Dask workers."""
    with trial_workspace(size, workdir) as (tmp, trial):
        one, two = run_in_child(_time_runs, str(trial.landing), str(tmp), prefect_home=tmp / "prefect")
    return DaskTimings(n_series=trial.n_series, one=one, two=two)
