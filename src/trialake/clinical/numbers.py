"""Number expressions for result text: censoring operators, decimal commas, thousands separators."""

from __future__ import annotations

import polars as pl

__all__ = ["censor_operator", "parse_number", "format_number", "with_number"]

_OPERATOR = r"^(<=|>=|≤|≥|<|>)"
_SPACES = r"[\s\u00a0\u202f']"  # blanks, (narrow) no-break spaces and the Swiss apostrophe as thousands marks
_DOT_GROUPS_COMMA_DECIMAL = r"^[+-]?\d{1,3}(\.\d{3})+,\d+$"  # 1.234,5
_COMMA_GROUPS_DOT_DECIMAL = r"^[+-]?\d{1,3}(,\d{3})+\.\d+$"  # 1,234.5
_COMMA_GROUPS = r"^[+-]?\d{1,3}(,\d{3})+$"  # 1,234 or 1,234,567
_DOT_GROUPS = r"^[+-]?\d{1,3}(\.\d{3})+$"  # 1.234 or 1.234.567
_COMMA_DECIMAL = r"^[+-]?\d*,\d+$"  # 1,5  ,5
_PLAIN = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"  # 1  1.5  .5  1e-3


def _compact(text: pl.Expr) -> pl.Expr:
    return text.str.replace_all(_SPACES, "")


def censor_operator(text: pl.Expr) -> pl.Expr:
    """The leading comparison of a censored result ("<", "<=", ">", ">="), null when uncensored."""
    op = _compact(text).str.extract(_OPERATOR, 1)
    return op.replace({"≤": "<=", "≥": ">="})


def parse_number(text: pl.Expr, decimal_mark: pl.Expr, *, allow_operator: bool = True) -> pl.Expr:
    """Float64 value of number text, null when it is not a number (callers turn that into a reason).

    Both separators: the last one is the decimal mark. One kind only: groups of exactly three
    digits are thousands when the file's ``decimal_mark`` is the other character or the
    separator occurs twice ("1,234" is 1234 in a '.'-decimal file, 1.234 in a ','-decimal
    file); anything else with one separator is a decimal ("1,5" is 1.5 everywhere).
    """
    body = _compact(text)
    if allow_operator:
        body = body.str.replace(_OPERATOR, "")
    normalized = (
        pl.when(body.str.contains(_DOT_GROUPS_COMMA_DECIMAL))
        .then(body.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True))
        .when(body.str.contains(_COMMA_GROUPS_DOT_DECIMAL))
        .then(body.str.replace_all(",", "", literal=True))
        .when(body.str.contains(_COMMA_GROUPS) & ((decimal_mark == ".") | (body.str.count_matches(",") > 1)))
        .then(body.str.replace_all(",", "", literal=True))
        .when(body.str.contains(_COMMA_DECIMAL))
        .then(body.str.replace(",", ".", literal=True))
        .when(body.str.contains(_DOT_GROUPS) & ((decimal_mark == ",") | (body.str.count_matches(r"\.") > 1)))
        .then(body.str.replace_all(".", "", literal=True))
        .when(body.str.contains(_PLAIN))
        .then(body)
    )
    return normalized.cast(pl.Float64, strict=False)


def format_number(value: pl.Expr, *, significant_digits: int) -> pl.Expr:
    """Text of a value rounded to ``significant_digits``, without a trailing '.0'."""
    return value.round_sig_figs(significant_digits).cast(pl.String).str.strip_suffix(".0")


def with_number(
    frame: pl.DataFrame, column: str, *, decimal_mark: pl.Expr, alias: str, allow_operator: bool = False
) -> pl.DataFrame:
    """Add ``alias`` = parse_number(``column``) (and ``alias``_op, the censoring operator, when
    ``allow_operator``). Plain numbers take a direct cast; only the remaining rows go through the
    separator rules, so the cost stays near one cast per row."""
    text = pl.col(column)
    direct = text.cast(pl.Float64, strict=False)
    plain = decimal_mark.eq(".") | ~text.str.contains(".", literal=True)
    parts = frame.select(
        text, decimal_mark.alias("_mark"), pl.when(plain & direct.is_finite()).then(direct).alias(alias)
    )
    value = parts.get_column(alias)
    slow_rows = parts.select((pl.col(alias).is_null() & text.is_not_null()).arg_true()).to_series()
    slow = parts[slow_rows]
    parsed = slow.select(parse_number(text, pl.col("_mark"), allow_operator=allow_operator)).to_series()
    outputs = [value.scatter(slow_rows, parsed)]
    if allow_operator:
        operators = pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias(f"{alias}_op")
        outputs.append(operators.scatter(slow_rows, slow.select(censor_operator(text)).to_series()))
    return frame.with_columns(outputs)
