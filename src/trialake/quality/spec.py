"""Suite specifications: the reviewed YAML files in ``expectations/`` parsed into frozen data.

This module does not import Great Expectations; ``load_suites`` hands every parsed expectation to
the GX boundary (``trialake.quality.gx``) once so that a bad type or keyword argument is reported
at load time with the file and expectation name, not in the middle of a nightly run.

File format (one table per file)::

    table: silver/labs
    keys: [USUBJID, LBTESTCD, LBDY]      # PHI-free columns shown as sample keys of failing rows
    schema: {USUBJID: String, LBDT: Date, LBSTRESN: Float64}   # -> expectation "schema"
    context:                             # columns joined from already published tables
      - {table: silver/subjects, by: [USUBJID], columns: {RFICDT: ref_consent_date}}
    derive:                              # helper columns computed before validation
      - {name: expected_lbdy, study_day: {date: LBDT, reference: ref_first_dose_date}}
      - {name: phys_hi, lookup: {key: LBTESTCD, values: {CRP: 1000, HGB: 250}}}
      - {name: std_unit, lookup: {key: LBTESTCD, values: {CRP: mg/L, HGB: g/L}}}
      - {name: unit, lookup: {key: LBTESTCD, standard: LB.unit}}   # from the configured test mapping
      - {name: max_spacing, scaled: {column: slice_thickness_mm, factor: 1.1}}
    expectations:
      - name: labs_subject_known
        type: expect_column_values_to_be_in_set
        kwargs: {column: USUBJID}
        value_set_from: {table: silver/subjects, column: USUBJID}
        when: {LBTESTCD: [CRP, HGB]}     # optional row condition: equals a value / is in a list
        severity: error                  # error acts (see scope), warn records only
        scope: row                       # row: failing rows are quarantined; table: the table is held back
        fix: add the subject's DM record or correct USUBJID    # row scope: what the site must do
        rationale: every lab result belongs to an enrolled subject
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

Severity = Literal["error", "warn"]
#: What an error-severity failure does: ``row`` quarantines the failing rows (the table is published
#: without them), ``table`` holds the whole table back (its previous version stays published).
Scope = Literal["row", "table"]
LINEAGE_COLUMN = "source_sha256"

#: Polars dtype names allowed in a ``schema:`` block, mapped to the dtype of the Arrow-backed
#: pandas column the frame becomes at the GX boundary (what GX's table.column_types observes).
SCHEMA_DTYPES = {
    "String": "large_string[pyarrow]",
    "Int64": "int64[pyarrow]",
    "Float64": "double[pyarrow]",
    "Date": "date32[day][pyarrow]",
    "Boolean": "bool[pyarrow]",
}
SCHEMA_EXPECTATION_TYPE = "expect_table_schema_to_match"

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_TYPE_RE = re.compile(r"^expect_[a-z0-9_]+$")
_SUITE_KEYS = {"table", "description", "keys", "schema", "context", "derive", "expectations"}
_EXPECTATION_KEYS = {"name", "type", "kwargs", "severity", "scope", "fix", "rationale", "value_set_from", "when"}
_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS = ("column_list",)


class SuiteSpecError(ValueError):
    """A suite file is malformed; the message names the file and the offending key."""


@dataclass(frozen=True)
class ContextJoin:
    """Columns taken from another (published) table, joined many-to-one on the ``by`` columns."""

    table: str
    by: tuple[str, ...]
    columns: Mapping[str, str]  # source column -> alias in the validated frame


@dataclass(frozen=True)
class StudyDayDerivation:
    """``name`` = study day of ``date`` relative to ``reference`` (no day 0)."""

    name: str
    date: str
    reference: str


@dataclass(frozen=True)
class LookupDerivation:
    """``name`` = ``values[key column]`` (Float64 or String; null for codes not listed).

    Per-code limits and units: GX 1.24 ignores row conditions on column-pair expectations, so
    per-code rules compare a column with a looked-up column instead. ``standard`` names a table of
    the measurement standards (``LB.unit``, ``LB.plausible_min``...) that ``load_suites`` fills
    ``values`` from, so a suite never repeats the test mapping.
    """

    name: str
    key: str
    values: Mapping[str, float | str]
    standard: str | None = None


@dataclass(frozen=True)
class ScaledDerivation:
    """``name`` = ``column`` x ``factor`` (Float64): a tolerance bound relative to another column."""

    name: str
    column: str
    factor: float


Derivation = StudyDayDerivation | LookupDerivation | ScaledDerivation


@dataclass(frozen=True)
class ValueSetFrom:
    """The allowed values of an ``*_in_set`` expectation: distinct values of a context column."""

    table: str
    column: str


@dataclass(frozen=True)
class ExpectationSpec:
    """One reviewed expectation: a GX expectation type, its kwargs, severity and rationale."""

    name: str
    type: str
    kwargs: Mapping[str, Any]
    severity: Severity
    rationale: str
    value_set_from: ValueSetFrom | None = None
    #: Row condition: only rows where each column equals the value (or is in the list) are checked.
    when: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    scope: Scope = "table"
    #: What the site must do about a failing row (row scope): the quarantine reason, with the name.
    fix: str = ""

    @property
    def quarantines_rows(self) -> bool:
        """Whether a failure removes the failing rows instead of holding the table back."""
        return self.severity == "error" and self.scope == "row"

    def reason(self) -> str:
        """The silver/rejections reason of a quarantined row: rule name and what to do, no values."""
        return f"{self.name}: {self.fix}"

    def columns(self) -> frozenset[str]:
        """Columns the expectation reads, including those of its ``when`` condition."""
        cols = {self.kwargs[k] for k in _COLUMN_KWARGS if k in self.kwargs}
        for key in _COLUMN_LIST_KWARGS:
            cols.update(self.kwargs.get(key, ()))
        cols.update(self.kwargs.get("column_set", ()))
        cols.update(self.kwargs.get("column_types", ()))
        cols.update(self.when)
        return frozenset(cols)


@dataclass(frozen=True)
class SuiteSpec:
    """All expectations for one lake table, as loaded from ``expectations/<zone>__<table>.yaml``."""

    table: str
    source: Path
    keys: tuple[str, ...]
    expectations: tuple[ExpectationSpec, ...]
    context: tuple[ContextJoin, ...] = ()
    derive: tuple[Derivation, ...] = ()
    description: str = ""
    schema: Mapping[str, str] = field(default_factory=dict)

    @property
    def context_tables(self) -> frozenset[str]:
        """Tables that must be passed as ``context_tables`` to validate this suite."""
        tables = {c.table for c in self.context}
        tables.update(e.value_set_from.table for e in self.expectations if e.value_set_from)
        return frozenset(tables)

    def needs(self, exp: ExpectationSpec) -> frozenset[tuple[str, str]]:
        """(table, column) pairs an expectation reads, followed through derived and joined columns;
        its own table's columns are named by ``self.table``, config and context tables by theirs."""
        derived = {d.name: _derivation_inputs(d) for d in self.derive}
        joined = {alias: (j.table, src) for j in self.context for src, alias in j.columns.items()}
        pending, found, seen = list(exp.columns()), set(), set()
        while pending:
            column = pending.pop()
            if column in seen:
                continue
            seen.add(column)
            if column in derived:
                pending.extend(derived[column])
            elif column in joined:
                found.add(joined[column])
            else:
                found.add((self.table, column))
        if exp.value_set_from is not None:
            found.add((exp.value_set_from.table, exp.value_set_from.column))
        return frozenset(found)

    def expectation(self, name: str) -> ExpectationSpec:
        """The expectation called ``name`` (KeyError naming the suite otherwise)."""
        for exp in self.expectations:
            if exp.name == name:
                return exp
        raise KeyError(f"suite {self.table} ({self.source.name}) has no expectation {name!r}")


def _derivation_inputs(derivation: Derivation) -> tuple[str, ...]:
    if isinstance(derivation, StudyDayDerivation):
        return (derivation.date, derivation.reference)
    if isinstance(derivation, ScaledDerivation):
        return (derivation.column,)
    return (derivation.key,)


def load_suites(directory: Path, *, standards: Mapping[str, Mapping[str, float | str]]) -> dict[str, SuiteSpec]:
    """Parse and check every ``*.yaml`` suite in ``directory``; keyed by table (``silver/labs``).

    standards: the measurement standards' look-up tables by name (``LB.unit`` -> {code: unit}),
    which fill the suites' ``lookup: {standard: ...}`` derivations.
    Raises SuiteSpecError naming the file and key for malformed files, for expectation kwargs
    Great Expectations rejects, for a standard not given, and for two files describing the same table.
    """
    from trialake.quality.gx import check_expectation_spec

    directory = Path(directory)
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise SuiteSpecError(f"{directory}: no suite files (*.yaml) found")
    suites: dict[str, SuiteSpec] = {}
    for path in files:
        suite = _with_standards(parse_suite(path.read_text(encoding="utf-8"), source=path), standards)
        if suite.table in suites:
            raise SuiteSpecError(
                f"{path.name}: table {suite.table!r} already defined in {suites[suite.table].source.name}"
            )
        for exp in suite.expectations:
            check_expectation_spec(exp, where=f"{path.name}: expectations[{exp.name}]")
        suites[suite.table] = suite
    return suites


def _with_standards(suite: SuiteSpec, standards: Mapping[str, Mapping[str, float | str]]) -> SuiteSpec:
    """The suite with its ``standard`` look-ups filled from ``standards``."""
    derive = []
    for d in suite.derive:
        if isinstance(d, LookupDerivation) and d.standard is not None:
            if not standards.get(d.standard):
                raise SuiteSpecError(f"{suite.source.name}: derive[{d.name}].lookup.standard: {d.standard!r} is not a "
                                     f"measurement standard (known: {sorted(standards)})")
            d = replace(d, values=dict(standards[d.standard]))
        derive.append(d)
    return replace(suite, derive=tuple(derive))


def parse_suite(text: str, *, source: Path) -> SuiteSpec:
    """Parse one suite file's text (no GX checks); errors name ``source`` and the key."""
    where = source.name
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SuiteSpecError(f"{where}: not valid YAML: {exc}") from exc
    doc = _mapping(doc, where, allowed=_SUITE_KEYS, required={"table", "keys", "expectations"})
    table = _text(doc["table"], f"{where}: table")
    if not re.fullmatch(r"(bronze|silver|gold)/[a-z0-9_]+", table):
        raise SuiteSpecError(f"{where}: table {table!r} is not '<bronze|silver|gold>/<name>'")
    schema = _parse_schema(doc.get("schema", {}), where)
    expectations = _schema_expectations(schema, table) + tuple(
        _parse_expectation(item, f"{where}: expectations[{i}]")
        for i, item in enumerate(_list(doc["expectations"], f"{where}: expectations"))
    )
    _check_unique_names(expectations, where)
    keys = _names(doc["keys"], f"{where}: keys")
    if schema and (unknown := [k for k in keys if k not in schema]):
        raise SuiteSpecError(f"{where}: keys {unknown} are not in the schema block")
    row_rules = [e.name for e in expectations if e.quarantines_rows]
    if row_rules and LINEAGE_COLUMN not in schema:
        raise SuiteSpecError(
            f"{where}: row-scope error expectations {row_rules} quarantine rows by their source file, "
            f"so the schema block must list {LINEAGE_COLUMN}"
        )
    return SuiteSpec(
        table=table,
        source=source,
        keys=tuple(keys),
        expectations=expectations,
        context=tuple(
            _parse_context(item, f"{where}: context[{i}]")
            for i, item in enumerate(_list(doc.get("context", []), f"{where}: context"))
        ),
        derive=tuple(
            _parse_derive(item, f"{where}: derive[{i}]")
            for i, item in enumerate(_list(doc.get("derive", []), f"{where}: derive"))
        ),
        description=str(doc.get("description", "")),
        schema=schema,
    )


def _parse_schema(raw: Any, where: str) -> dict[str, str]:
    schema = _mapping(raw, f"{where}: schema")
    for col, dtype in schema.items():
        if not isinstance(col, str) or not _NAME_RE.match(col):
            raise SuiteSpecError(f"{where}: schema: bad column name {col!r}")
        if dtype not in SCHEMA_DTYPES:
            raise SuiteSpecError(f"{where}: schema.{col}: dtype {dtype!r} not one of {list(SCHEMA_DTYPES)}")
    return dict(schema)


def _schema_expectations(schema: Mapping[str, str], table: str) -> tuple[ExpectationSpec, ...]:
    """A schema block becomes one expectation: every column present with its dtype."""
    if not schema:
        return ()
    return (
        ExpectationSpec(
            name="schema",
            type=SCHEMA_EXPECTATION_TYPE,
            kwargs={"column_types": {col: SCHEMA_DTYPES[dtype] for col, dtype in schema.items()}},
            severity="error",
            rationale=f"downstream code reads these columns of {table} with these types (data dictionary)",
            scope="table",
        ),
    )


def _parse_expectation(raw: Any, where: str) -> ExpectationSpec:
    doc = _mapping(raw, where, allowed=_EXPECTATION_KEYS, required={"name", "type", "kwargs", "severity", "rationale"})
    name = _text(doc["name"], f"{where}.name")
    where = f"{where.rsplit('[', 1)[0]}[{name}]"
    if not _NAME_RE.match(name):
        raise SuiteSpecError(f"{where}.name: {name!r} must be a plain identifier")
    exp_type = _text(doc["type"], f"{where}.type")
    if not _TYPE_RE.match(exp_type):
        raise SuiteSpecError(f"{where}.type: {exp_type!r} is not a GX expectation type (expect_...)")
    severity = doc["severity"]
    if severity not in ("error", "warn"):
        raise SuiteSpecError(f"{where}.severity: {severity!r} must be 'error' or 'warn'")
    kwargs = dict(_mapping(doc["kwargs"], f"{where}.kwargs"))
    for reserved in ("meta", "severity", "result_format", "condition_parser", "row_condition", "notes"):
        if reserved in kwargs:
            raise SuiteSpecError(f"{where}.kwargs.{reserved}: set by the suite loader (use 'when' for conditions)")
    value_set_from = None
    if "value_set_from" in doc:
        vsf = _mapping(doc["value_set_from"], f"{where}.value_set_from", allowed={"table", "column"}, required={"table", "column"})
        if "value_set" in kwargs:
            raise SuiteSpecError(f"{where}: give either kwargs.value_set or value_set_from, not both")
        value_set_from = ValueSetFrom(
            table=_text(vsf["table"], f"{where}.value_set_from.table"),
            column=_text(vsf["column"], f"{where}.value_set_from.column"),
        )
    if "when" in doc and exp_type.startswith("expect_column_pair_"):
        raise SuiteSpecError(
            f"{where}.when: GX 1.24 ignores row conditions on column-pair expectations; use a lookup derivation"
        )
    scope = doc.get("scope")
    if scope not in ("row", "table"):
        raise SuiteSpecError(f"{where}.scope: {scope!r} must be 'row' (quarantine the failing rows) or 'table' (hold the table back)")
    fix = doc.get("fix", "")
    if scope == "row":
        fix = _text(fix, f"{where}.fix (what the site must do about a quarantined row)")
    elif fix:
        raise SuiteSpecError(f"{where}.fix: only row-scope expectations quarantine rows and say what to fix")
    return ExpectationSpec(
        name=name,
        type=exp_type,
        kwargs=kwargs,
        severity=severity,
        rationale=_text(doc["rationale"], f"{where}.rationale"),
        value_set_from=value_set_from,
        when=_parse_when(doc.get("when", {}), f"{where}.when"),
        scope=scope,
        fix=" ".join(fix.split()),
    )


def _parse_when(raw: Any, where: str) -> dict[str, str | tuple[str, ...]]:
    when: dict[str, str | tuple[str, ...]] = {}
    for col, value in _mapping(raw, where).items():
        if not isinstance(col, str) or not _NAME_RE.match(col):
            raise SuiteSpecError(f"{where}: bad column name {col!r}")
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            when[col] = tuple(value)
        elif isinstance(value, str):
            when[col] = value
        else:
            raise SuiteSpecError(f"{where}.{col}: expected a string or a non-empty list of strings")
    return when


def _parse_context(raw: Any, where: str) -> ContextJoin:
    doc = _mapping(raw, where, allowed={"table", "by", "columns"}, required={"table", "by", "columns"})
    by = doc["by"]
    columns = _mapping(doc["columns"], f"{where}.columns")
    for alias in columns.values():
        if not isinstance(alias, str) or not _NAME_RE.match(alias):
            raise SuiteSpecError(f"{where}.columns: bad alias {alias!r}")
    return ContextJoin(
        table=_text(doc["table"], f"{where}.table"),
        by=tuple(_names([by] if isinstance(by, str) else by, f"{where}.by")),
        columns=dict(columns),
    )


def _parse_derive(raw: Any, where: str) -> Derivation:
    kinds = {"study_day", "lookup", "scaled"}
    doc = _mapping(raw, where, allowed={"name", *kinds}, required={"name"})
    name = _text(doc["name"], f"{where}.name")
    if len(kinds & set(doc)) != 1:
        raise SuiteSpecError(f"{where}: give exactly one of {sorted(kinds)}")
    if "scaled" in doc:
        spec = _mapping(doc["scaled"], f"{where}.scaled", allowed={"column", "factor"}, required={"column", "factor"})
        factor = spec["factor"]
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            raise SuiteSpecError(f"{where}.scaled.factor: {factor!r} is not a number")
        return ScaledDerivation(name=name, column=_text(spec["column"], f"{where}.scaled.column"), factor=float(factor))
    if "study_day" in doc:
        spec = _mapping(doc["study_day"], f"{where}.study_day", allowed={"date", "reference"}, required={"date", "reference"})
        return StudyDayDerivation(
            name=name,
            date=_text(spec["date"], f"{where}.study_day.date"),
            reference=_text(spec["reference"], f"{where}.study_day.reference"),
        )
    spec = _mapping(doc["lookup"], f"{where}.lookup", allowed={"key", "values", "standard"}, required={"key"})
    if ("values" in spec) == ("standard" in spec):
        raise SuiteSpecError(f"{where}.lookup: give exactly one of values or standard")
    key = _text(spec["key"], f"{where}.lookup.key")
    if "standard" in spec:
        return LookupDerivation(name=name, key=key, values={}, standard=_text(spec["standard"], f"{where}.lookup.standard"))
    values = _mapping(spec["values"], f"{where}.lookup.values")
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values.values())
    if not values or not (numeric or all(isinstance(v, str) for v in values.values())):
        raise SuiteSpecError(f"{where}.lookup.values: expected a non-empty mapping to all numbers or all strings")
    return LookupDerivation(name=name, key=key, values={str(k): float(v) if numeric else v for k, v in values.items()})


def _check_unique_names(expectations: tuple[ExpectationSpec, ...], where: str) -> None:
    seen: set[str] = set()
    for exp in expectations:
        if exp.name in seen:
            raise SuiteSpecError(f"{where}: expectations: duplicate name {exp.name!r}")
        seen.add(exp.name)


def _mapping(
    raw: Any, where: str, *, allowed: set[str] | None = None, required: set[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SuiteSpecError(f"{where}: expected a mapping, got {type(raw).__name__}")
    if allowed is not None and (unknown := set(raw) - allowed):
        raise SuiteSpecError(f"{where}: unknown key(s) {sorted(unknown)}")
    if missing := required - set(raw):
        raise SuiteSpecError(f"{where}: missing key(s) {sorted(missing)}")
    return raw


def _list(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise SuiteSpecError(f"{where}: expected a list, got {type(raw).__name__}")
    return raw


def _text(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise SuiteSpecError(f"{where}: expected a non-empty string")
    return raw


def _names(raw: Any, where: str) -> list[str]:
    items = _list(raw, where)
    for item in items:
        if not isinstance(item, str) or not _NAME_RE.match(item):
            raise SuiteSpecError(f"{where}: bad column name {item!r}")
    return items
