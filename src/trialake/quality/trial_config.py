"""Trial configuration in data quality: visit-window checks and context tables of configured values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import polars as pl

from trialake.clinical.common import REJECTION_SCHEMA
from trialake.quality.gx import DQ_RESULTS_SCHEMA, ValidationOutcome

#: A visit window as configured: (AVISIT name, first study day or None, last study day or None),
#: bounds inclusive, None = open ended (e.g. Baseline = (None, 1)).
VisitWindow = tuple[str, int | None, int | None]

WINDOWS_TABLE = "config/visit_windows"


def compute_window_problems(windows: Sequence[VisitWindow]) -> tuple[list[str], list[str]]:
    """(inverted windows, overlapping pairs) as readable messages; both empty when valid."""
    inverted = [
        f"{name}: first day {lo} after last day {hi}"
        for name, lo, hi in windows
        if lo is not None and hi is not None and lo > hi
    ]
    overlaps = []
    for (n1, lo1, hi1), (n2, lo2, hi2) in combinations(windows, 2):
        start = max(lo1 if lo1 is not None else -(10**9), lo2 if lo2 is not None else -(10**9))
        end = min(hi1 if hi1 is not None else 10**9, hi2 if hi2 is not None else 10**9)
        if start <= end:
            overlaps.append(f"{n1} and {n2} share days {start}..{end}")
    return inverted, overlaps


def check_visit_windows(windows: Sequence[VisitWindow], *, run_id: str) -> ValidationOutcome:
    """Validate configured visit windows as two error-severity checks (dq_results rows)."""
    inverted, overlaps = compute_window_problems(windows)
    checks = [("visit_window_bounds_ordered", inverted), ("visit_windows_do_not_overlap", overlaps)]
    results = pl.DataFrame(
        [
            {
                "run_id": run_id,
                "table": WINDOWS_TABLE,
                "expectation": name,
                "expectation_type": "trialake_visit_windows",
                "severity": "error",
                "success": not problems,
                "unexpected_count": len(problems),
                "sample_keys": None,
                "details": "; ".join(problems) or None,
            }
            for name, problems in checks
        ],
        schema=DQ_RESULTS_SCHEMA,
    )
    failed = tuple(name for name, problems in checks if problems)
    return ValidationOutcome(
        table=WINDOWS_TABLE,
        run_id=run_id,
        results=results,
        rejections=pl.DataFrame(schema=REJECTION_SCHEMA),
        should_publish=not failed,
        failed_errors=failed,
        failed_warnings=(),
    )


def build_config_context(*, arms: Mapping[str, str], visits: Sequence[str]) -> dict[str, pl.DataFrame]:
    """Context tables from the trial configuration for suites that check configured values.

    arms: planned arm code -> arm label (e.g. {"UCMSC": "UC-MSC", "PBO": "Placebo"});
    visits: analysis visit names (AVISIT), e.g. ["Baseline", "Day 10", "Day 28"].
    Returns {"config/arms": ARMCD, ARM; "config/visits": AVISIT}.
    """
    if not arms or not visits:
        raise ValueError("build_config_context: arms and visits must not be empty")
    return {
        "config/arms": pl.DataFrame({"ARMCD": list(arms), "ARM": list(arms.values())}, schema={"ARMCD": pl.String, "ARM": pl.String}),
        "config/visits": pl.DataFrame({"AVISIT": list(visits)}, schema={"AVISIT": pl.String}),
    }
