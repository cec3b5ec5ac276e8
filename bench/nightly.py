"""Benchmark: the nightly flow on a demo-size trial: a full run, a run with nothing new, and the
time of the full run spent validating.

Everything Prefect runs in one fresh child process with private Prefect state (see
``bench.flow_runs``). Before timing, the child starts the ephemeral server and times a one-task
flow: the floor of any run (Prefect's cost of one flow and one task, nothing done).

Validation happens inside the publishing tasks (``trialake.pipeline.quality.publish_checked``
validates before it writes), so its time is taken by a probe on the function they call,
``trialake.pipeline.quality.validate_table`` (every call's start and end), together with the runs
of the tasks named for quality or validation (loading the suites and Great Expectations, which the
flow runs beside the DICOM ingest). What validation adds to the run is the time of the calls plus
the time those tasks ran while no other task did (the flow waiting for them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from bench.flow_runs import (
    TrialSize,
    compute_union_seconds,
    read_task_intervals,
    record_call_intervals,
    run_in_child,
    subtract_intervals,
    time_empty_flow,
    time_flow,
    trial_workspace,
)

VALIDATION_TASK = re.compile(r"valid|quality|expectation", re.IGNORECASE)
VALIDATION_FUNCTION = ("trialake.pipeline.quality", "validate_table")

Intervals = list[tuple[float, float]]


@dataclass(frozen=True)
class ValidationTimes:
    """Wall seconds of the full run spent validating.

    critical_s: validation calls, plus the time the quality tasks (loading suites and Great
    Expectations) ran while no other task did: what validation adds to the run.
    calls_s: the validation calls alone; tasks_s: the quality tasks, overlapped or not.
    """

    critical_s: float
    calls_s: float
    tasks_s: float


@dataclass(frozen=True)
class NightlyTimings:
    """Seconds of each run; ``stages`` is {task: wall seconds any of its runs was running} in the
    full run; ``validation`` is None when the flow validates nothing."""

    n_series: int
    n_dicom_files: int
    empty_flow_s: float
    full_s: float
    rerun_s: float
    stages: dict[str, float]
    validation: ValidationTimes | None


def compute_validation_times(tasks: dict[str, Intervals], calls: Intervals | None) -> ValidationTimes | None:
    """Validation time of a run from its task intervals and validation-call intervals (None if none)."""
    quality = [span for name, spans in tasks.items() if VALIDATION_TASK.search(name) for span in spans]
    others = [span for name, spans in tasks.items() if not VALIDATION_TASK.search(name) for span in spans]
    calls = calls or []
    if not quality and not calls:
        return None
    alone = subtract_intervals(quality, others)
    return ValidationTimes(critical_s=compute_union_seconds([*calls, *alone]), calls_s=compute_union_seconds(calls),
                           tasks_s=compute_union_seconds(quality))


def _time_runs(landing: str, lake: str) -> tuple[float, float, float, dict[str, Intervals], Intervals | None]:
    """In the child: empty flow, full run, second run; the full run's task and validation intervals."""
    from trialake_flows.nightly import nightly

    calls = record_call_intervals(*VALIDATION_FUNCTION)
    empty_s = time_empty_flow()
    full_s, run_id = time_flow(nightly, landing=landing, lake=lake)
    full_calls = None if calls is None else list(calls)
    rerun_s, _ = time_flow(nightly, landing=landing, lake=lake)
    return empty_s, full_s, rerun_s, read_task_intervals(run_id), full_calls


def run(size: TrialSize = TrialSize(), *, workdir: str | None = None) -> NightlyTimings:
    """Generate the trial (untimed), then time the runs in a fresh child process."""
    with trial_workspace(size, workdir) as (tmp, trial):
        empty_s, full_s, rerun_s, tasks, calls = run_in_child(
            _time_runs, str(trial.landing), str(tmp / "lake"), prefect_home=tmp / "prefect"
        )
    return NightlyTimings(
        n_series=trial.n_series, n_dicom_files=trial.n_dicom_files, empty_flow_s=empty_s, full_s=full_s,
        rerun_s=rerun_s, stages={name: compute_union_seconds(spans) for name, spans in tasks.items()},
        validation=compute_validation_times(tasks, calls),
    )


if __name__ == "__main__":
    print(run())
