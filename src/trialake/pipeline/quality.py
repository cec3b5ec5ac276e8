"""Validate before publishing: every bronze, silver and gold table passes its suite first.

Rows that fail a row-scope ``error`` expectation are quarantined: the table is published without
them and they go to ``silver/rejections`` (stage ``dq_<zone>_<table>``, reason = the rule and what
the site must do). A failed table-scope ``error`` expectation holds the table back: its previous
version stays published and the stage reports it (`HeldBack`), while the stage's other tables and
the run's other stages go on. ``warn`` failures publish and are recorded. Results go to
``silver/dq_results`` (the latest validation of each table, or of each source file for tables
validated file by file).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import polars as pl

from trialake.blinding import UNBLINDED_ZONE
from trialake.lake import read_table, write_table
from trialake.clinical import derive_standard_lookups
from trialake.pipeline.context import RunContext
from trialake.pipeline.params import measurement_standards
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
    """The quality gate cannot be used (the configured visit windows are invalid)."""


@dataclass(frozen=True)
class HeldBack:
    """A table this run did not publish, and why (one line, no values); readers of the table keep
    using its previous version, if there is one."""

    table: str
    reason: str


@dataclass(frozen=True)
class QualityGate:
    """The suites of this run and the context tables built from the trial configuration."""

    suites: Mapping[str, SuiteSpec]
    config_context: Mapping[str, pl.DataFrame]


def suite_files(gate: QualityGate) -> dict[str, Path]:
    """{table: the file its suite was loaded from}."""
    return {table: suite.source for table, suite in gate.suites.items()}


def load_quality_gate(ctx: RunContext, expectations_dir: Path) -> QualityGate:
    """Load every suite and check the configured visit windows (overlap fails the run)."""
    trial = ctx.settings.trial
    windows = check_visit_windows(trial.visits, run_id=ctx.run_id)
    if not windows.should_publish:
        raise QualityGateError(windows.message)
    arms = {trial.arms.treatment.armcd: trial.arms.treatment.arm, trial.arms.control.armcd: trial.arms.control.arm}
    standards = derive_standard_lookups(measurement_standards(trial.labs))
    return QualityGate(load_suites(expectations_dir, standards=standards), build_config_context(arms=arms, visits=[v.name for v in trial.visits]))


def publish_checked(
    ctx: RunContext, gate: QualityGate, table: str, frame: pl.DataFrame, *, source_sha256: str | None = None,
    unavailable: Mapping[str, str] = MappingProxyType({}), **write_options: Any
) -> ValidationOutcome | None:
    """Validate ``frame`` against the table's suite, record the results, and publish it without its
    quarantined rows unless a table rule held it back (see the module docstring).

    source_sha256: the one source file ``frame`` holds, for tables validated file by file; its
    results and quarantined rows then replace that file's earlier ones only, not the table's.
    unavailable: columns of ``frame`` whose checks cannot run (column -> why, e.g. the variable
    was not sent); those checks are reported as not checked.
    """
    suite = gate.suites.get(table)
    if suite is None:
        write_table(ctx.lake, table, frame, **write_options)
        return None
    context = {name: gate.config_context[name] if name in gate.config_context else read_table(ctx.lake, name) for name in suite.context_tables}
    stage = "dq_" + table.replace("/", "_")
    params = QualityParams(rejection_stage=stage)
    outcome = validate_table(table, frame, suite, context_tables=context, run_id=ctx.run_id, params=params, unavailable=unavailable,
                             source_sha256=source_sha256)
    kept = frame.with_row_index("_dq_position").filter(~pl.col("_dq_position").is_in(list(outcome.quarantined))).drop("_dq_position")
    if outcome.should_publish and outcome.quarantined:  # table rules hold for what is left (rows remain, keys unique)
        recheck = validate_table(table, kept, suite, context_tables=context, run_id=ctx.run_id, params=params, unavailable=unavailable,
                                 source_sha256=source_sha256)
        outcome = _held_back_after_quarantine(outcome, recheck)
    _record_results(ctx, outcome, source_sha256)
    if outcome.should_publish:
        write_table(ctx.lake, table, kept, **write_options)
        reprocessed = None if source_sha256 is None else {source_sha256}
        publish_rejections(ctx, outcome.rejections, stages=[stage], reprocessed=reprocessed)
    return outcome


def _held_back_after_quarantine(outcome: ValidationOutcome, recheck: ValidationOutcome) -> ValidationOutcome:
    """The first validation, held back by the table rules that fail once quarantined rows are gone."""
    if recheck.should_publish:
        return outcome
    failed = pl.col("expectation").is_in(list(recheck.held_back_by))
    results = pl.concat([outcome.results.filter(~failed), recheck.results.filter(failed)]).sort(
        pl.col("expectation").replace_strict({n: i for i, n in enumerate(outcome.results["expectation"])}, return_dtype=pl.Int64))
    return replace(outcome, results=results, should_publish=False, held_back_by=recheck.held_back_by,
                   failed_errors=tuple(dict.fromkeys(outcome.failed_errors + recheck.held_back_by)))


def held_back_of(outcomes: Iterable[ValidationOutcome | None]) -> tuple[HeldBack, ...]:
    """The tables a stage held back, each with the table rules that failed."""
    return tuple(
        HeldBack(o.table, f"failed table rule(s) {', '.join(o.held_back_by or o.failed_errors)}; previous version kept")
        for o in outcomes if o is not None and not o.should_publish
    )


def _record_results(ctx: RunContext, outcome: ValidationOutcome, source: str | None) -> None:
    new = outcome.results.cast(DQ_RESULTS_SCHEMA).with_columns(pl.lit(source, pl.String).alias("source_sha256"))
    # a file's results replace that file's, and any whole-table ones a lake written earlier holds
    same = (pl.col("table") == outcome.table) & (
        pl.col("source_sha256").eq_missing(pl.lit(source, pl.String)) | pl.col("source_sha256").is_null())
    results = dq_results_table(outcome.table)
    kept = _read_dq_results(ctx, results).filter(~same)
    write_table(ctx.lake, results, pl.concat([kept, new]).sort("table", "source_sha256", "expectation", nulls_last=False))


def dq_results_table(table: str) -> str:
    """Where a table's validation results go: beside it in the unblinded zone (they may name arms),
    else ``silver/dq_results``."""
    return f"{UNBLINDED_ZONE}/dq_results" if table.split("/", 1)[0] == UNBLINDED_ZONE else DQ_RESULTS


def _read_dq_results(ctx: RunContext, results: str = DQ_RESULTS) -> pl.DataFrame:
    existing = read_table(ctx.lake, results)
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
