"""Standardization of measurements (LB, FT, RE): test name -> code, value and unit -> standard unit."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from trialake.clinical.common import join_reasons
from trialake.clinical.mapping import TestMapping, load_test_mapping
from trialake.clinical.numbers import censor_operator, format_number, with_number
from trialake.clinical.units import (
    UnitCatalog,
    UnitConversionError,
    compute_conversion_factor,
    load_unit_catalog,
    split_basis,
)

__all__ = ["MeasurementStandards", "default_standards", "derive_standard_lookups", "derive_standardized"]


@dataclass(frozen=True)
class MeasurementStandards:
    """What results are standardized to.

    mapping: versioned test mapping of the domain; units: unit spellings catalog;
    basis_factors: (code, from_basis, to_basis) -> factor, the only way a basis such as D-dimer
    DDU is converted to FEU (default: none, so such rows are rejected); significant_digits:
    rounding of the standardized value (default 6, far below the 0.5 % tolerance).
    """

    mapping: TestMapping
    units: UnitCatalog
    basis_factors: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    significant_digits: int = 6

    def __post_init__(self) -> None:
        for spec in self.mapping.tests.values():
            try:
                compute_conversion_factor(spec.unit, spec.unit, catalog=self.units, per_mole=spec.per_mole)
            except UnitConversionError as exc:
                raise ValueError(f"mapping {self.mapping.version}: standard unit of {spec.code}: {exc}") from None
        if self.significant_digits < 1:
            raise ValueError(f"significant_digits: must be at least 1, got {self.significant_digits}")


@functools.cache
def default_standards(domain: str) -> MeasurementStandards:
    """Packaged standards for a domain ("LB", "FT" or "RE"): ``<dom>_mapping.yaml`` + ``units.yaml``."""
    return MeasurementStandards(load_test_mapping(f"{domain.lower()}_mapping.yaml"), load_unit_catalog())


def derive_standard_lookups(standards: Mapping[str, MeasurementStandards]) -> dict[str, dict[str, float | str]]:
    """The quality suites' look-up tables, from the same mappings as the conversions:
    ``<domain>.unit`` (code -> standard unit), ``<domain>.plausible_min`` and ``.plausible_max``
    (code -> limit, for the tests that have limits)."""
    tables: dict[str, dict[str, float | str]] = {}
    for domain, standard in standards.items():
        tests = standard.mapping.tests.values()
        tables[f"{domain}.unit"] = {t.code: t.unit for t in tests}
        tables[f"{domain}.plausible_min"] = {t.code: t.plausible[0] for t in tests if t.plausible}
        tables[f"{domain}.plausible_max"] = {t.code: t.plausible[1] for t in tests if t.plausible}
    return tables


def derive_standardized(
    frame: pl.DataFrame,
    *,
    test_columns: Sequence[str],
    result: str,
    unit: str,
    range_columns: tuple[str, str] | None,
    standards: MeasurementStandards,
    allow_censored: bool,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(standardized rows, rows that did not standardize with a ``_reason`` column).

    Standardized rows gain _code, _name, _loinc, _stunit, _op (censoring operator), _stresn
    (null when censored), _stresc, _stnrlo, _stnrhi and _nrind (LOW/NORMAL/HIGH/null). The
    reason lists every problem found, '; '-joined. The first of ``test_columns`` that maps
    decides the test. Factors are computed once per distinct (test, unit), never per row.
    """
    mark = pl.col("decimal_mark").fill_null(".") if "decimal_mark" in frame.columns else pl.lit(".")
    frame = frame.with_columns(
        _test_code(frame, test_columns, standards.mapping).alias("_code"),
        pl.col(unit).str.strip_chars().fill_null("").alias("_unit_key"),
    )
    frame = frame.join(_factor_table(frame, standards), on=["_code", "_unit_key"], how="left", maintain_order="left")
    frame = with_number(frame, result, decimal_mark=mark, alias="_value", allow_operator=allow_censored)
    ranges = list(zip(range_columns or (), ("_lo", "_hi")))
    for column, alias in ranges:
        frame = with_number(frame, column, decimal_mark=mark, alias=alias)
    bad = pl.any_horizontal(
        pl.col("_factor").is_null(),
        pl.col("_value").is_null(),
        *[pl.col(c).is_not_null() & pl.col(alias).is_null() for c, alias in ranges],
    )
    reason = _reasons(test_columns, result, ranges, frame.columns, standards, allow_censored=allow_censored)
    rejected = frame.filter(bad).with_columns(reason.alias("_reason"))
    digits = standards.significant_digits
    op = pl.col("_value_op") if allow_censored else pl.lit(None, pl.String)
    bounds = [pl.col(alias) for _, alias in ranges] or [pl.lit(None, pl.Float64)] * 2
    standard, low, high = pl.col("_std"), pl.col("_stnrlo"), pl.col("_stnrhi")
    accepted = (
        frame.filter(~bad)
        .with_columns(
            op.alias("_op"),
            (pl.col("_value") * pl.col("_factor")).round_sig_figs(digits).alias("_std"),
            *[(b * pl.col("_factor")).round_sig_figs(digits).alias(n) for b, n in zip(bounds, ("_stnrlo", "_stnrhi"))],
        )
        .with_columns(
            pl.when(pl.col("_op").is_null()).then(standard).alias("_stresn"),
            pl.concat_str(pl.col("_op").fill_null(""), format_number(standard, significant_digits=digits))
            .alias("_stresc"),
            _reference_indicator(pl.col("_op"), standard, low, high).alias("_nrind"),
        )
    )
    helpers = ["_std", "_value", "_value_op", "_factor", "_unit_reason", "_unit_key", *[alias for _, alias in ranges]]
    return accepted.drop(helpers, strict=False), rejected.drop(helpers, strict=False)


def _reasons(
    test_columns: Sequence[str],
    result: str,
    ranges: list[tuple[str, str]],
    columns: Sequence[str],
    standards: MeasurementStandards,
    *,
    allow_censored: bool,
) -> pl.Expr:
    """Every problem of a row that did not standardize, '; '-joined."""
    mapping = standards.mapping
    names = "/".join(c for c in test_columns if c in columns) or "test name"
    return join_reasons(
        pl.when(pl.col("_code").is_null()).then(
            pl.lit(f"unknown test name ({names} not in {mapping.domain} mapping {mapping.version})")
        ),
        pl.col("_unit_reason"),
        pl.when(pl.col(result).str.strip_chars().fill_null("") == "").then(pl.lit(f"{result} is empty"))
        .when(pl.lit(not allow_censored) & censor_operator(pl.col(result)).is_not_null())
        .then(pl.lit(f"{result} is censored; only exact values are accepted here"))
        .when(pl.col("_value").is_null()).then(pl.lit(f"{result} is not a number")),
        *[
            pl.when(pl.col(c).is_not_null() & pl.col(alias).is_null()).then(pl.lit(f"{c} is not a number"))
            for c, alias in ranges
        ],
    )


def _test_code(frame: pl.DataFrame, test_columns: Sequence[str], mapping: TestMapping) -> pl.Expr:
    """Standard code per row: lookups of the distinct site names, first mapped column wins."""
    lookups = []
    for column in test_columns:
        if column not in frame.columns:
            continue
        names = frame.get_column(column).drop_nulls().unique().to_list()
        table = {name: code for name in names if (code := mapping.lookup(name)) is not None}
        lookups.append(pl.col(column).replace_strict(table, default=None, return_dtype=pl.String))
    return pl.coalesce(lookups) if lookups else pl.lit(None, pl.String)


def _factor_table(frame: pl.DataFrame, standards: MeasurementStandards) -> pl.DataFrame:
    """(_code, _unit_key) -> _factor, _unit_reason, _name, _loinc, _stunit for the distinct pairs."""
    rows = []
    for code, unit in frame.select("_code", "_unit_key").unique().drop_nulls("_code").iter_rows():
        spec = standards.mapping.tests[code]
        factor, reason = None, None
        try:
            if not unit:
                raise UnitConversionError(f"unit is empty (standard for {code} is {spec.unit})",
                                          reason=f"unit is empty (standard is {spec.unit})")
            bases = (split_basis(unit, standards.units)[1], split_basis(spec.unit, standards.units)[1])
            factor = compute_conversion_factor(
                unit,
                spec.unit,
                catalog=standards.units,
                per_mole=spec.per_mole,
                basis_factor=standards.basis_factors.get((code, *bases)) if bases[0] != bases[1] else None,
            )
        except UnitConversionError as exc:
            reason = f"{code}: {exc.reason}"
        rows.append((code, unit, factor, reason, spec.name, spec.loinc, spec.unit))
    schema = {
        "_code": pl.String, "_unit_key": pl.String, "_factor": pl.Float64, "_unit_reason": pl.String,
        "_name": pl.String, "_loinc": pl.String, "_stunit": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def _reference_indicator(op: pl.Expr, value: pl.Expr, low: pl.Expr, high: pl.Expr) -> pl.Expr:
    """LOW/NORMAL/HIGH against the standardized range; for a censored value only when certain."""
    below = (op.is_null() & (value < low)) | ((op == "<") & (value <= low)) | ((op == "<=") & (value < low))
    above = (op.is_null() & (value > high)) | ((op == ">") & (value >= high)) | ((op == ">=") & (value > high))
    within_low = low.is_null() | (op.is_null() & (value >= low)) | (op.is_in([">", ">="]) & (value >= low))
    within_high = high.is_null() | (op.is_null() & (value <= high)) | (op.is_in(["<", "<="]) & (value <= high))
    known = low.is_not_null() | high.is_not_null()
    return (
        pl.when(~known | value.is_null()).then(None)
        .when(below.fill_null(False)).then(pl.lit("LOW"))
        .when(above.fill_null(False)).then(pl.lit("HIGH"))
        .when(within_low.fill_null(False) & within_high.fill_null(False)).then(pl.lit("NORMAL"))
    )
