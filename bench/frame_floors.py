"""Floors for the table benchmarks, measured in the same run: the least work a derivation must do."""
from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from bench.floors import best_of


def polars_parse_floor(bronze_labs: pl.DataFrame) -> float:
    """One Polars pass turning the result text into numbers (decimal commas mended): the least a lab
    normalization does per row."""
    expr = pl.col("LBORRES").str.replace(",", ".", literal=True).cast(pl.Float64, strict=False)
    return best_of(lambda: bronze_labs.select(expr))


def polars_sort_floor(frames: Mapping[str, pl.DataFrame]) -> float:
    """Sorting every input table by subject: the least a per-subject mart derivation does."""
    return best_of(lambda: [frame.sort("USUBJID") for frame in frames.values()])
