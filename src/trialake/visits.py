"""Study days, analysis visits and their windows: the one definition every stage uses (clinical
and imaging silver tables, trial configuration, ADaM derivations, data quality)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import polars as pl
from pydantic import ConfigDict


def study_day(date: pl.Expr | str, reference: pl.Expr | str) -> pl.Expr:
    """SDTM study day of ``date`` relative to ``reference`` (expressions or column names): day 1 is
    the reference day and there is no day 0 (date - reference + 1 on or after it, else date - reference)."""
    days = (_column(date) - _column(reference)).dt.total_days()
    return pl.when(days >= 0).then(days + 1).otherwise(days).cast(pl.Int64)


def _column(value: pl.Expr | str) -> pl.Expr:
    return pl.col(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class VisitWindow:
    """An analysis visit: records with study day in [low_day, high_day] belong to it.

    In a post-baseline window the record nearest ``target_day`` is the analysis record; in the
    baseline window (the visit with the lowest AVISITN) the latest valid record is. Validated
    when made, also as a ``visits:`` entry of the trial configuration (unknown keys refused).
    """

    __pydantic_config__ = ConfigDict(extra="forbid")

    name: str
    avisitn: float
    target_day: int
    low_day: int
    high_day: int

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a visit needs a name")
        if not self.low_day <= self.target_day <= self.high_day:
            raise ValueError(f"visit {self.name!r}: window {self.low_day}..{self.high_day} "
                             f"does not contain target_day {self.target_day}")


def compute_window_problems(visits: Sequence[VisitWindow]) -> list[str]:
    """What is wrong with a set of analysis visits, one line each (empty when they are usable):
    fewer than two, a name or AVISITN used twice, windows sharing days, or a baseline visit (the
    lowest AVISITN) that is not the first in time."""
    if len(visits) < 2:
        return ["need a baseline visit and at least one post-baseline visit"]
    problems = []
    for label, values in (("name", [v.name for v in visits]), ("AVISITN", [v.avisitn for v in visits])):
        repeated = sorted({str(x) for x in values if values.count(x) > 1})
        if repeated:
            problems.append(f"visit {label}(s) used twice: {', '.join(repeated)}")
    for a, b in combinations(visits, 2):
        start, end = max(a.low_day, b.low_day), min(a.high_day, b.high_day)
        if start <= end:
            problems.append(f"windows {a.name!r} and {b.name!r} overlap (days {start}..{end})")
    baseline = min(visits, key=lambda v: v.avisitn)
    if not problems and min(visits, key=lambda v: v.low_day) != baseline:
        problems.append(f"the baseline visit {baseline.name!r} must come first in time (it has the lowest AVISITN)")
    return problems
