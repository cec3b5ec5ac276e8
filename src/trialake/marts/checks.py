"""Argument checks shared by the derivations: errors name the argument and the problem."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import polars as pl

Kind = Literal["date", "number", "text"] | None

_KIND_TEST = {
    "date": lambda dtype: isinstance(dtype, pl.Date),
    "number": lambda dtype: dtype.is_numeric(),
    "text": lambda dtype: isinstance(dtype, (pl.String, pl.Categorical, pl.Enum)),
}


def check_columns(frame: pl.DataFrame, argument: str, required: Mapping[str, Kind]) -> None:
    """Raise when ``frame`` is not a DataFrame, lacks a required column or has one of the wrong kind.

    ``required`` maps a column name to "date", "number", "text" or None (any type); an
    all-null column passes any kind.
    """
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"{argument}: expected a polars DataFrame, got {type(frame).__name__}")
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise ValueError(f"{argument}: missing column(s) {missing}")
    wrong = [
        f"{name} is {frame.schema[name]}, expected {kind}"
        for name, kind in required.items()
        if kind is not None and frame.schema[name] != pl.Null and not _KIND_TEST[kind](frame.schema[name])
    ]
    if wrong:
        raise ValueError(f"{argument}: wrong column type(s): {'; '.join(wrong)}")


def check_unique(frame: pl.DataFrame, argument: str, keys: Iterable[str]) -> None:
    """Raise ValueError when ``keys`` do not identify the rows of ``frame`` uniquely."""
    keys = list(keys)
    duplicated = frame.filter(pl.struct(keys).is_duplicated()).select(keys).unique()
    if duplicated.height:
        example = duplicated.row(0, named=True)
        raise ValueError(f"{argument}: {duplicated.height} duplicated key(s) {keys}, e.g. {example}")
