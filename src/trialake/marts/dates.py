"""Partial-date imputation as admiral's ``derive_vars_dt`` with ``highest_imputation = "M"``.

An ISO 8601 --DTC text that gives at least the year becomes a date: a missing day (and month)
is set to the first (``imputation="first"``) or last (``"last"``) possible one, and the
imputation flag (--DTF) says what was imputed: ``"M"`` (month and day), ``"D"`` (day), null for
a complete date. Like admiral's ``min_dates``/``max_dates``, a ``bound`` date that lies in the
range of possible dates caps the imputed one: with "first" the date is not before the bound
(an event in the month of first dose starts on the first dose, not before it), with "last" not
after it (an event ending in the month of death ends by the death). Empty or year-less text
gives null and no flag.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import polars as pl

_ISO_DATE = r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?"


def imputed_date(
    dtc: str, *, imputation: Literal["first", "last"], bounds: Sequence[str] = ()
) -> tuple[pl.Expr, pl.Expr]:
    """(date, imputation flag) expressions for the --DTC column ``dtc`` (module rules); ``bounds``
    are Date columns that restrict the imputed date when they fall in its possible range."""
    parts = pl.col(dtc).str.strip_chars().str.extract_groups(_ISO_DATE)
    year = parts.struct.field("1").cast(pl.Int32, strict=False)
    month = parts.struct.field("2").cast(pl.Int8, strict=False)
    day = parts.struct.field("3").cast(pl.Int8, strict=False)
    lower = pl.date(year, month.fill_null(1), day.fill_null(1))
    upper = (
        pl.when(day.is_not_null()).then(lower)
        .when(month.is_not_null()).then(lower.dt.month_end())
        .otherwise(pl.date(year, 12, 31))
    )
    date = lower if imputation == "first" else upper
    for bound in bounds:
        inside = (pl.col(bound) >= lower) & (pl.col(bound) <= upper)
        capped = pl.max_horizontal(date, pl.col(bound)) if imputation == "first" else pl.min_horizontal(date, pl.col(bound))
        date = pl.when(inside.fill_null(False)).then(capped).otherwise(date)
    flag = pl.when(year.is_null()).then(None).when(month.is_null()).then(pl.lit("M")).when(day.is_null()).then(pl.lit("D"))
    return pl.when(year.is_not_null()).then(date), flag
