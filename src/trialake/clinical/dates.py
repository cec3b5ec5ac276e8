"""Date expressions: SDTM --DTC text (ISO 8601, partial dates, Excel serials) and study day."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import polars as pl

__all__ = ["PRECISION_DAY", "DateParts", "dtc_parts", "shifted_dtc", "study_day"]

# ISO 8601 as SDTM uses it: YYYY, YYYY-MM, YYYY-MM-DD, optionally THH:MM[:SS[.f]] (a space is
# accepted for the 'T'). Right-truncated partial dates only, as SDTMIG recommends.
_ISO = r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?)?)?$"
# Excel serials: a 5-digit day number, optionally with a time fraction (10000 is 1927-05-18 in
# the 1900 system). Four digits alone are an ISO year, never a serial.
_SERIAL = r"^\d{5}(?:\.\d+)?$"
# Day 0 of each Excel date system. In the 1900 system Excel counts the nonexistent 1900-02-29
# (Lotus 1-2-3 compatibility), so for serials >= 61 (every 5-digit serial) day 0 is 1899-12-30;
# in the 1904 system serial 0 is 1904-01-01. Source: Microsoft, "Date systems in Excel".
_EXCEL_DAY0 = {1900: dt.date(1899, 12, 30), 1904: dt.date(1904, 1, 1)}

PRECISION_YEAR, PRECISION_MONTH, PRECISION_DAY = 1, 2, 3


@dataclass(frozen=True)
class DateParts:
    """Expressions describing one --DTC column.

    date: the date (a partial date is imputed to its first day, see ``precision``);
    precision: PRECISION_YEAR / _MONTH / _DAY (null when the cell is empty or invalid);
    time: the time part as sent ("HH:MM[:SS]") or null; invalid: True when the cell is not empty
    but is neither a valid ISO 8601 (partial) date nor an Excel serial.
    """

    date: pl.Expr
    precision: pl.Expr
    time: pl.Expr
    invalid: pl.Expr


def dtc_parts(column: str, *, excel_epoch: Literal[1900, 1904]) -> DateParts:
    """Parse expressions for the --DTC column ``column``; bare serials use ``excel_epoch``."""
    text = pl.col(column).str.strip_chars()
    parts = text.str.extract_groups(_ISO)
    year, month, day = parts.struct.field("1"), parts.struct.field("2"), parts.struct.field("3")
    iso = pl.concat_str(year, pl.lit("-"), month.fill_null("01"), pl.lit("-"), day.fill_null("01"))
    serial_days = pl.when(text.str.contains(_SERIAL)).then(text.cast(pl.Float64, strict=False).floor().cast(pl.Int64))
    date = pl.coalesce(
        iso.str.to_date("%Y-%m-%d", strict=False), pl.lit(_EXCEL_DAY0[excel_epoch]) + pl.duration(days=serial_days)
    )
    precision = (
        pl.when(date.is_null()).then(None)
        .when(day.is_not_null() | serial_days.is_not_null()).then(PRECISION_DAY)
        .when(month.is_not_null()).then(PRECISION_MONTH)
        .otherwise(PRECISION_YEAR)
        .cast(pl.Int8)
    )
    invalid = text.is_not_null() & (text != "") & date.is_null()
    return DateParts(date=date, precision=precision, time=parts.struct.field("4"), invalid=invalid)


def shifted_dtc(date: pl.Expr, precision: pl.Expr, time: pl.Expr) -> pl.Expr:
    """ISO 8601 text of an (already shifted) date at its original precision, time kept."""
    text = (
        pl.when(precision == PRECISION_DAY).then(date.dt.strftime("%Y-%m-%d"))
        .when(precision == PRECISION_MONTH).then(date.dt.strftime("%Y-%m"))
        .when(precision == PRECISION_YEAR).then(date.dt.strftime("%Y"))
    )
    return pl.when(time.is_null()).then(text).otherwise(pl.concat_str(text, pl.lit("T"), time))
