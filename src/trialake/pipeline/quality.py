"""Validate before publishing: every bronze, silver and gold table passes its suite first.

An ``error`` expectation that fails keeps the previous version of the table published and fails
the stage (after the stage's other tables are handled); ``warn`` failures publish and are
recorded. Results go to ``silver/dq_results`` (the latest validation of each table, or of each
source file for tables validated file by file), row-level failures to ``silver/rejections``
(stage ``dq_<zone>_<table>``).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from trialake.lake import read_table, write_table
from trialake.pipeline.context import RunContext
from trialake.pipeline.rejections import publish_rejections
from trialake.quality import (
    DQ_RESULTS_SCHEMA,
    QualityParams,
    SuiteSpec,
    ValidationOutcome,
    build_config_context,
    check_visit_windows,
    load_suites,
    validate_table,
)

DQ_RESULTS = "silver/dq_results"
#: The lake table's columns: the validation results plus the source file a result is about (null
#: when the whole table was validated).
DQ_RESULTS_TABLE_SCHEMA = {**DQ_RESULTS_SCHEMA, "source_sha256": pl.String}


class QualityGateError(RuntimeError):
    """A table was not published because an error-severity expectation failed."""


@dataclass(frozen=True)
class QualityGate:
    """The suites of this run and the context tables built from the trial configuration."""

    suites: Mapping[str, SuiteSpec]
    config_context: Mapping[str, pl.DataFrame]


def load_quality_gate(ctx: RunContext, expectations_dir: Path) -> QualityGate:
    """Load every suite and check the configured visit windows (overlap fails the run)."""
    trial = ctx.settings.trial
    windows = check_visit_windows([(v.name, v.low_day, v.high_day) for v in trial.visits], run_id=ctx.run_id)
    if not windows.should_publish:
        raise QualityGateError(windows.message)
    arms = {trial.arms.treatment.armcd: trial.arms.treatment.arm, trial.arms.control.armcd: trial.arms.control.arm}
    return QualityGate(load_suites(expectations_dir), build_config_context(arms=arms, visits=[v.name for v in trial.visits]))


def publish_checked(
    ctx: RunContext, gate: QualityGate, table: str, frame: pl.DataFrame, *, source_sha256: str | None = None,
    **write_options: Any
) -> ValidationOutcome | None:
    """Validate ``frame`` against the table's suite, record the results, publish it if allowed.

    source_sha256: the one source file ``frame`` holds, for tables validated file by file; its
    results then replace that file's earlier ones only, not the table's.
    """
    suite = gate.suites.get(table)
    if suite is None:
        write_table(ctx.lake, table, frame, **write_options)
        return None
    context = {name: gate.config_context[name] if name in gate.config_context else read_table(ctx.lake, name) for name in suite.context_tables}
    stage = "dq_" + table.replace("/", "_")
    outcome = validate_table(table, frame, suite, context_tables=context, run_id=ctx.run_id, params=QualityParams(rejection_stage=stage))
    _record(ctx, outcome, frame, stage, source_sha256)
    if outcome.should_publish:
        write_table(ctx.lake, table, frame, **write_options)
    return outcome


def raise_if_blocked(outcomes: Iterable[ValidationOutcome | None]) -> None:
    """Fail the stage when any of its tables was held back; the message names the expectations."""
    blocked = [o.message for o in outcomes if o is not None and not o.should_publish]
    if blocked:
        raise QualityGateError("; ".join(blocked))


def _record(ctx: RunContext, outcome: ValidationOutcome, frame: pl.DataFrame, stage: str, source: str | None) -> None:
    new = outcome.results.cast(DQ_RESULTS_SCHEMA).with_columns(pl.lit(source, pl.String).alias("source_sha256"))
    # a file's results replace that file's, and any whole-table ones a lake written earlier holds
    same = (pl.col("table") == outcome.table) & (
        pl.col("source_sha256").eq_missing(pl.lit(source, pl.String)) | pl.col("source_sha256").is_null())
    kept = _read_dq_results(ctx).filter(~same)
    write_table(ctx.lake, DQ_RESULTS, pl.concat([kept, new]).sort("table", "source_sha256", "expectation", nulls_last=False))
    rejections = outcome.rejections.with_columns(pl.lit(stage).alias("stage"))
    validated = set(frame["source_sha256"].drop_nulls()) if "source_sha256" in frame.columns else None
    publish_rejections(ctx, rejections, stages=[stage], reprocessed=validated)


def _read_dq_results(ctx: RunContext) -> pl.DataFrame:
    existing = read_table(ctx.lake, DQ_RESULTS)
    if existing.is_empty():
        return pl.DataFrame(schema=DQ_RESULTS_TABLE_SCHEMA)
    if "source_sha256" not in existing.columns:  # written before results were kept per source file
        existing = existing.with_columns(pl.lit(None, pl.String).alias("source_sha256"))
    return existing.select(list(DQ_RESULTS_TABLE_SCHEMA)).cast(DQ_RESULTS_TABLE_SCHEMA)


def forget_source_results(ctx: RunContext, sources: set[str]) -> None:
    """Drop the results about source files that are no longer in the lake."""
    existing = _read_dq_results(ctx)
    kept = existing.filter(~pl.col("source_sha256").is_in(list(sources)) | pl.col("source_sha256").is_null())
    if kept.height != existing.height:
        write_table(ctx.lake, DQ_RESULTS, kept)


def outcomes_of(values: Sequence[ValidationOutcome | None]) -> list[ValidationOutcome]:
    """The outcomes of validated tables (tables without a suite give None)."""
    return [v for v in values if v is not None]
