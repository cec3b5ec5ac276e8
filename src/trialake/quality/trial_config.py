"""Trial configuration in data quality: visit-window checks and context tables of configured values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from trialake.lineage import REJECTION_SCHEMA
from trialake.quality.gx import DQ_RESULTS_SCHEMA, ValidationOutcome
from trialake.visits import VisitWindow, compute_window_problems

WINDOWS_TABLE = "config/visit_windows"


def check_visit_windows(windows: Sequence[VisitWindow], *, run_id: str) -> ValidationOutcome:
    """Validate configured visit windows as one error-severity check (dq_results rows)."""
    checks = [("visit_windows_consistent", compute_window_problems(windows))]
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
