"""The Great Expectations boundary: the only place in Trialake that imports ``great_expectations``.

GX is imported lazily, once per process (about 3-4 s), into one ephemeral context with analytics
and progress bars off; it never touches the network or the file system. A Polars frame is
prepared (context joins, derived columns, only the columns the suite reads), converted to an
Arrow-backed pandas frame once, and all expectations of the suite run on one batch.
"""

from __future__ import annotations

import datetime
import functools
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import polars as pl

from trialake.lineage import REJECTION_SCHEMA
from trialake.quality.spec import (
    SCHEMA_EXPECTATION_TYPE,
    Derivation,
    ExpectationSpec,
    LookupDerivation,
    ScaledDerivation,
    StudyDayDerivation,
    SuiteSpec,
    SuiteSpecError,
)
from trialake.visits import study_day

ROW_INDEX = "_dq_row"

#: GX severity for each suite severity.
_GX_SEVERITY = {"error": "critical", "warn": "warning"}
#: Result keys that carry row values; stripped before results leave this module (PHI-free docs).
_VALUE_KEYS = (
    "partial_unexpected_list",
    "partial_unexpected_index_list",
    "partial_unexpected_counts",
    "unexpected_list",
    "unexpected_index_list",
    "unexpected_index_query",
)
#: Expectation types whose observed value is metadata (type or column names), safe to report.
_METADATA_OBSERVED = (SCHEMA_EXPECTATION_TYPE, "expect_column_values_to_be_of_type", "expect_table_columns_to_match_set")

DQ_RESULTS_SCHEMA = {
    "run_id": pl.String,
    "table": pl.String,
    "expectation": pl.String,
    "expectation_type": pl.String,
    "severity": pl.String,
    "success": pl.Boolean,
    "unexpected_count": pl.Int64,
    "sample_keys": pl.String,
    "details": pl.String,
}
"""Columns of ``silver/dq_results``: one row per expectation evaluated on a table in a run."""


@dataclass(frozen=True)
class QualityParams:
    """Knobs of validation.

    max_sample_keys: distinct offending keys listed per failed expectation in ``sample_keys``.
    rejection_stage: the ``stage`` value of the rejection rows of quarantined rows.
    """

    max_sample_keys: int = 5
    rejection_stage: str = "dq"


@dataclass(frozen=True)
class ValidationOutcome:
    """Everything one table's validation produced.

    results: rows for ``silver/dq_results`` (DQ_RESULTS_SCHEMA), one per expectation; an
        expectation that could not be run has ``success`` null and ``details`` "not checked: why".
    rejections: rows for ``silver/rejections`` (REJECTION_SCHEMA), one per quarantined row.
    should_publish: False when a table-scope error expectation failed (or a row-scope one whose
        failing rows GX could not name).
    quarantined: positions (0-based, in the validated frame) of the rows that failed a row-scope
        error expectation: they are published to silver/rejections instead of the table.
    failed_errors / failed_warnings: names of failed expectations by severity.
    held_back_by: the failed error expectations that held the table back (table scope).
    not_checked: (expectation, why) of expectations that could not run: a context table not
        published or without values, a variable the source did not send.
    gx_result: the GX suite validation result with row values stripped (for Data Docs), or None.
    source_sha256: the one source file the validated frame holds, for tables validated file by
        file (each export of ``bronze/lb``); None when the whole table was validated.
    """

    table: str
    run_id: str
    results: pl.DataFrame
    rejections: pl.DataFrame
    should_publish: bool
    failed_errors: tuple[str, ...]
    failed_warnings: tuple[str, ...]
    quarantined: tuple[int, ...] = ()
    not_checked: tuple[tuple[str, str], ...] = ()
    held_back_by: tuple[str, ...] = ()
    gx_result: Any = field(default=None, repr=False, compare=False)
    source_sha256: str | None = None

    @property
    def name(self) -> str:
        """What was validated, distinct per source file: ``silver/labs``, ``bronze/lb export 1a2b3c4d5e6f``."""
        return self.table if self.source_sha256 is None else f"{self.table} export {self.source_sha256[:12]}"

    @property
    def message(self) -> str:
        """One line for logs and the run summary: what failed, what was quarantined or not checked."""
        counts = dict(zip(self.results["expectation"], self.results["unexpected_count"], strict=True))

        def fmt(names: tuple[str, ...]) -> str:
            return ", ".join(f"{n} ({counts[n]} rows)" if counts.get(n) is not None else n for n in names)
        parts = []
        if not self.should_publish:
            parts.append(f"not published, failed table rule(s): {fmt(self.held_back_by or self.failed_errors)}")
        row_rules = tuple(n for n in self.failed_errors if n not in self.held_back_by)
        if self.quarantined and row_rules:
            parts.append(f"{len(self.quarantined)} row(s) quarantined by {fmt(row_rules)}")
        if self.failed_warnings:
            parts.append(f"warning(s): {fmt(self.failed_warnings)}")
        if self.not_checked:
            parts.append("not checked: " + ", ".join(f"{n} ({why})" for n, why in self.not_checked))
        if not parts:
            return f"{self.table}: all {self.results.height} expectations passed"
        return f"{self.table}: " + "; ".join(parts)


@dataclass(frozen=True)
class _Runtime:
    gx: Any
    batch_definition: Any
    lock: threading.Lock
    custom_expectations: Mapping[str, Any]


_RUNTIME_LOCK = threading.Lock()


def _runtime() -> _Runtime:
    """The process's GX runtime, created on first use (thread-safe: tasks may run in threads)."""
    with _RUNTIME_LOCK:
        return _create_runtime()


@functools.cache
def _create_runtime() -> _Runtime:
    """Import GX and build the one ephemeral context, pandas data source and batch definition."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("trialake")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )
    # GX does not document its context as thread-safe; Prefect may run tasks in threads.
    return _Runtime(
        gx=gx,
        batch_definition=batch_definition,
        lock=threading.Lock(),
        custom_expectations={SCHEMA_EXPECTATION_TYPE: _schema_expectation_class()},
    )


def _schema_expectation_class() -> type:
    """``expect_table_schema_to_match``: named columns exist with the given pandas dtypes.

    One table-level expectation instead of one ``expect_column_values_to_be_of_type`` per column:
    it reads GX's ``table.column_types`` metric once, and reports missing columns and wrong types
    together (observed value: {column: observed dtype or "missing"}).
    """
    from great_expectations.expectations.expectation import BatchExpectation

    class ExpectTableSchemaToMatch(BatchExpectation):
        """Expect each column of ``column_types`` to exist with that dtype (extra columns allowed)."""

        column_types: dict
        metric_dependencies = ("table.column_types",)
        success_keys = ("column_types",)
        args_keys = ("column_types",)

        def _validate(self, metrics: dict, runtime_configuration: Any = None, execution_engine: Any = None) -> dict:
            observed = {c["name"]: str(c["type"]) for c in metrics["table.column_types"]}
            mismatched = {
                col: observed.get(col, "missing")
                for col, dtype in self.column_types.items()
                if observed.get(col) != dtype
            }
            return {
                "success": not mismatched,
                "result": {"observed_value": mismatched or "as expected", "details": {"mismatched": mismatched}},
            }

    return ExpectTableSchemaToMatch


def check_expectation_spec(exp: ExpectationSpec, *, where: str) -> None:
    """Instantiate ``exp`` as a GX expectation; SuiteSpecError naming ``where`` if GX rejects it or
    if a row-scope expectation does not test rows one by one."""
    _make_expectation(_runtime(), exp, value_set=[] if exp.value_set_from else None, where=where)
    if exp.scope == "row" and not _is_row_level(exp.type):
        raise SuiteSpecError(f"{where}.scope: {exp.type} tests the whole table, so it cannot quarantine rows; use scope: table")


def _expectation_class(runtime: _Runtime, exp_type: str) -> type | None:
    class_name = "".join(part.capitalize() for part in exp_type.split("_"))
    return runtime.custom_expectations.get(exp_type) or getattr(runtime.gx.expectations, class_name, None)


def _is_row_level(exp_type: str) -> bool:
    """Whether the expectation tests rows (has an unexpected count) rather than the table."""
    return getattr(_expectation_class(_runtime(), exp_type), "map_metric", None) is not None


def _make_expectation(runtime: _Runtime, exp: ExpectationSpec, *, value_set: list[Any] | None, where: str) -> Any:
    cls = _expectation_class(runtime, exp.type)
    if cls is None:
        raise SuiteSpecError(f"{where}.type: unknown GX expectation type {exp.type!r}")
    kwargs = dict(exp.kwargs)
    if value_set is not None:
        kwargs["value_set"] = value_set
    if exp.when:
        kwargs["row_condition"] = _row_condition(exp.when)
    try:
        return cls(
            **kwargs,
            severity=_GX_SEVERITY[exp.severity],
            meta={"name": exp.name, "severity": exp.severity},
            # Data Docs show the description instead of GX's generated sentence ($ is a template char)
            description=f"{exp.name} ({exp.severity}): {exp.rationale}".replace("$", "$$"),
        )
    except Exception as exc:  # pydantic's ValidationError; message lists the bad kwargs
        raise SuiteSpecError(f"{where}.kwargs: {exc}".replace("\n", " ")) from exc


def _row_condition(when: Mapping[str, str | tuple[str, ...]]) -> Any:
    """GX Condition: every column equals its value, or is in its list."""
    from great_expectations.expectations.row_conditions import Column

    conditions = [
        Column(col).is_in(value) if isinstance(value, tuple) else Column(col) == value
        for col, value in when.items()
    ]
    return functools.reduce(lambda a, b: a & b, conditions)


def build_suite(suite: SuiteSpec, context_tables: Mapping[str, pl.DataFrame], *, only: frozenset[str]) -> Any:
    """The GX ExpectationSuite of the expectations of ``suite`` named in ``only``, with
    ``value_set_from`` sets taken from the context tables."""
    runtime = _runtime()
    gx_suite = runtime.gx.ExpectationSuite(name=suite.table)
    for exp in suite.expectations:
        if exp.name not in only:
            continue
        value_set = None
        if exp.value_set_from is not None:
            source = context_tables[exp.value_set_from.table]
            value_set = source.get_column(exp.value_set_from.column).drop_nulls().unique().sort().to_list()
        where = f"{suite.source.name}: expectations[{exp.name}]"
        gx_suite.add_expectation(_make_expectation(runtime, exp, value_set=value_set, where=where))
    return gx_suite


def derive_validation_frame(
    df: pl.DataFrame, suite: SuiteSpec, context_tables: Mapping[str, pl.DataFrame]
) -> pl.DataFrame:
    """The frame GX sees: a row index, joined context columns, derived columns, read columns only.

    Joins of absent context tables, and joins and derivations whose input columns are missing or
    of another dtype, are skipped, so the expectations reading their outputs fail (GX reports the
    missing column) and the schema expectation names the culprit, instead of this function raising.
    """
    frame = df.with_row_index(ROW_INDEX)
    for join in suite.context:
        context = context_tables.get(join.table)
        if context is None or any(c not in frame.columns or frame.schema[c] != context.schema.get(c) for c in join.by):
            continue
        clash = set(join.columns.values()) & set(frame.columns)
        if clash:
            raise ValueError(f"{suite.source.name}: context alias(es) {sorted(clash)} clash with columns of {suite.table}")
        right = context.select(
            *join.by, *(pl.col(src).alias(alias) for src, alias in join.columns.items())
        )
        try:
            frame = frame.join(right, on=list(join.by), how="left", validate="m:1")
        except pl.exceptions.ComputeError as exc:
            raise ValueError(f"context table {join.table} is not unique on {list(join.by)}") from exc
    for derivation in suite.derive:
        if _derivation_applies(derivation, frame.schema):
            frame = frame.with_columns(_derivation_expr(derivation).alias(derivation.name))
    wanted = {ROW_INDEX, *suite.schema, *(c for e in suite.expectations for c in e.columns())}
    return frame.select([c for c in frame.columns if c in wanted])


def _derivation_applies(derivation: Derivation, schema: pl.Schema) -> bool:
    """Whether the derivation's inputs exist with usable dtypes (else its output stays missing)."""
    if isinstance(derivation, StudyDayDerivation):
        return all(schema.get(c) in (pl.Date, pl.Datetime) for c in (derivation.date, derivation.reference))
    if isinstance(derivation, ScaledDerivation):
        return derivation.column in schema and schema[derivation.column].is_numeric()
    return schema.get(derivation.key) == pl.String


def _derivation_expr(derivation: Derivation) -> pl.Expr:
    if isinstance(derivation, ScaledDerivation):
        return pl.col(derivation.column).cast(pl.Float64) * derivation.factor
    if isinstance(derivation, LookupDerivation):
        numeric = all(isinstance(v, float) for v in derivation.values.values())
        return pl.col(derivation.key).replace_strict(
            derivation.values, default=None, return_dtype=pl.Float64 if numeric else pl.String
        )
    # The check recomputes the study day from the stored dates with the rule silver uses.
    return study_day(pl.col(derivation.date).cast(pl.Date), pl.col(derivation.reference).cast(pl.Date))


def validate_table(
    table: str,
    df: pl.DataFrame,
    suite: SuiteSpec,
    *,
    context_tables: Mapping[str, pl.DataFrame] = MappingProxyType({}),
    run_id: str,
    params: QualityParams = QualityParams(),
    unavailable: Mapping[str, str] = MappingProxyType({}),
    source_sha256: str | None = None,
) -> ValidationOutcome:
    """Run the expectations of ``suite`` on ``df`` in one GX batch; see ValidationOutcome.

    ``context_tables`` holds the tables named in ``suite.context_tables`` (``silver/subjects``,
    ``gold/adsl``, ``config/arms`` ... see ``build_config_context``): pass the versions readers will
    see after this run (the new one if it was published, else the previous one). An expectation
    that needs a context table that is absent or empty, or a context column without any value, is
    not run and is reported as not checked, as is one that needs a column of ``df`` listed in
    ``unavailable`` (column -> why, e.g. the source did not send the variable). ``source_sha256``:
    the one source file ``df`` holds, when the table is validated file by file.
    """
    if table != suite.table:
        raise ValueError(f"table {table!r} does not match suite {suite.table!r} ({suite.source.name})")
    skipped = {
        exp.name: why for exp in suite.expectations
        if (why := _why_not_checked(suite, exp, context_tables, unavailable)) is not None
    }
    run = frozenset(e.name for e in suite.expectations if e.name not in skipped)
    frame = derive_validation_frame(df, suite, context_tables)
    runtime = _runtime()
    pdf = frame.to_pandas(use_pyarrow_extension_array=True)
    with runtime.lock:
        batch = runtime.batch_definition.get_batch(batch_parameters={"dataframe": pdf})
        # Pass/fail of everything first (cheap), then counts and failing rows of the failures only.
        result = batch.validate(build_suite(suite, context_tables, only=run), result_format="BOOLEAN_ONLY")
        failed = frozenset(r.expectation_config.meta["name"] for r in result.results if not r.success)
        if failed:
            detail = batch.validate(
                build_suite(suite, context_tables, only=failed),
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_INDEX]},
            )
            _replace_results(result, detail)
    # Data Docs show the run and what was validated (GX prints "__none__" without them)
    result.meta["run_id"] = {"run_name": run_id, "run_time": datetime.datetime.now(datetime.UTC).isoformat()}
    result.meta["batch_markers"] = {"table": table, "source_sha256": source_sha256 or "whole table", "rows": df.height}
    return replace(_outcome(table, suite, df, result, skipped, run_id=run_id, params=params), source_sha256=source_sha256)


def _why_not_checked(
    suite: SuiteSpec, exp: ExpectationSpec, context_tables: Mapping[str, pl.DataFrame], unavailable: Mapping[str, str]
) -> str | None:
    """Why ``exp`` cannot be run on this data, or None when it can."""
    for table, column in sorted(suite.needs(exp)):
        if table == suite.table:
            if column in unavailable and exp.type != SCHEMA_EXPECTATION_TYPE:  # the column is there, only empty
                return unavailable[column]
            continue
        context = context_tables.get(table)
        if context is None or context.width == 0:
            return f"{table} not published"
        if context.height == 0:
            return f"{table} has no rows"
        if column not in context.columns:
            return f"{table} has no column {column}"
        if context.get_column(column).null_count() == context.height:
            return f"{table}.{column} has no values"
    return None


def _replace_results(result: Any, detail: Any) -> None:
    """Put the detailed results of the failed expectations into the pass/fail suite result."""
    by_name = {r.expectation_config.meta["name"]: r for r in detail.results}
    result.results = [by_name.get(r.expectation_config.meta["name"], r) for r in result.results]


def _outcome(
    table: str,
    suite: SuiteSpec,
    df: pl.DataFrame,
    result: Any,
    skipped: Mapping[str, str],
    *,
    run_id: str,
    params: QualityParams,
) -> ValidationOutcome:
    by_name = {r.expectation_config.meta["name"]: r for r in result.results}
    keyed = df.with_row_index(ROW_INDEX)
    keys = [k for k in suite.keys if k in keyed.columns]
    rows, held_back_by, reasons = [], [], {}
    for exp in suite.expectations:
        if exp.name in skipped:
            rows.append({"run_id": run_id, "table": table, "expectation": exp.name, "expectation_type": exp.type,
                         "severity": exp.severity, "success": None, "unexpected_count": None, "sample_keys": None,
                         "details": f"not checked: {skipped[exp.name]}"})
            continue
        res = by_name[exp.name]
        failed_rows = _failed_row_indices(res)
        rows.append(
            {
                "run_id": run_id,
                "table": table,
                "expectation": exp.name,
                "expectation_type": exp.type,
                "severity": exp.severity,
                "success": bool(res.success),
                "unexpected_count": res.result.get("unexpected_count", 0 if _is_row_level(exp.type) else None),
                "sample_keys": _sample_keys(keyed, keys, failed_rows, params.max_sample_keys),
                "details": _details(exp, res),
            }
        )
        if not res.success and exp.severity == "error":
            if exp.quarantines_rows and failed_rows and "source_sha256" in df.columns:
                for row in failed_rows:
                    reasons.setdefault(row, []).append(exp.reason())
            else:
                held_back_by.append(exp.name)
        _strip_values(res)
    results = pl.DataFrame(rows, schema=DQ_RESULTS_SCHEMA)
    failed = results.filter(pl.col("success").not_())
    quarantined = tuple(sorted(reasons))
    return ValidationOutcome(
        table=table,
        run_id=run_id,
        results=results,
        rejections=_rejection_rows(keyed, reasons, run_id, params.rejection_stage),
        should_publish=not held_back_by,
        failed_errors=tuple(failed.filter(pl.col("severity") == "error")["expectation"]),
        failed_warnings=tuple(failed.filter(pl.col("severity") == "warn")["expectation"]),
        quarantined=quarantined,
        not_checked=tuple(skipped.items()),
        held_back_by=tuple(held_back_by),
        gx_result=result,
    )


def _failed_row_indices(res: Any) -> list[int]:
    if res.success:
        return []
    return sorted({int(item[ROW_INDEX]) for item in res.result.get("unexpected_index_list") or []})


def _sample_keys(keyed: pl.DataFrame, keys: Sequence[str], rows: list[int], limit: int) -> str | None:
    """JSON list of the first ``limit`` distinct key tuples of failing rows (key columns only)."""
    if not rows or not keys:
        return None
    sample = (
        keyed.filter(pl.col(ROW_INDEX).is_in(rows))
        .select(keys)
        .unique(maintain_order=True)
        .head(limit)
    )
    return json.dumps(sample.to_dicts(), default=str)


def _details(exp: ExpectationSpec, res: Any) -> str | None:
    """Exception message or metadata observation (types, column names); never row values."""
    info = res.exception_info or {}
    infos = info.values() if "raised_exception" not in info else [info]
    messages = [i.get("exception_message") for i in infos if isinstance(i, dict) and i.get("raised_exception")]
    if messages:  # first line only: GX appends result dumps (row values) to some messages
        return "error: " + "; ".join(str(m).splitlines()[0][:200] for m in messages)
    if not res.success and exp.type in _METADATA_OBSERVED:
        observed = res.result.get("details", {}).get("mismatched") or res.result.get("observed_value")
        return f"observed: {observed}"
    return None


def _rejection_rows(keyed: pl.DataFrame, reasons: Mapping[int, list[str]], run_id: str, stage: str) -> pl.DataFrame:
    """One silver/rejections row per quarantined row: the rules it failed and what to do, no values."""
    if not reasons:
        return pl.DataFrame(schema=REJECTION_SCHEMA)
    why = pl.DataFrame({ROW_INDEX: list(reasons), "reason": ["; ".join(r) for r in reasons.values()]},
                       schema={ROW_INDEX: keyed.schema[ROW_INDEX], "reason": pl.String})
    source_row = pl.col("source_row") if "source_row" in keyed.columns else pl.lit(None)
    return keyed.join(why, on=ROW_INDEX, how="inner").sort(ROW_INDEX).select(
        pl.col("source_sha256").cast(pl.String),
        source_row.cast(pl.Int64).alias("source_row"),
        pl.lit(stage).alias("stage"),
        "reason",
        pl.lit(run_id).alias("run_id"),
    )


def _strip_values(res: Any) -> None:
    """Drop row values from a GX result so Data Docs show counts, not data."""
    for key in _VALUE_KEYS:
        res.result.pop(key, None)
