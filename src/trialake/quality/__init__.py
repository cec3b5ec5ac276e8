"""Data quality: Great Expectations suites per lake table, publish gating and DQ reports.

This package is Trialake's only Great Expectations boundary; GX is imported lazily on first use.
"""

from trialake.quality.gx import (
    DQ_RESULTS_SCHEMA,
    QualityParams,
    ValidationOutcome,
    validate_table,
)
from trialake.quality.report import render_data_docs
from trialake.quality.spec import SuiteSpec, SuiteSpecError, load_suites
from trialake.quality.summary import IntakeCounts, NightlySummary, render_dq_summary_markdown, render_nightly_summary
from trialake.quality.trial_config import build_config_context, check_visit_windows

__all__ = [
    "DQ_RESULTS_SCHEMA",
    "IntakeCounts",
    "NightlySummary",
    "QualityParams",
    "SuiteSpec",
    "SuiteSpecError",
    "ValidationOutcome",
    "build_config_context",
    "check_visit_windows",
    "load_suites",
    "render_data_docs",
    "render_dq_summary_markdown",
    "render_nightly_summary",
    "validate_table",
]
