"""Analysis parameters for the ADaM derivations: arms, analysis visit windows, populations.

The defaults are the reference trial (NCT04288102); the lead maps the trial YAML onto these
frozen dataclasses at the edge and passes them down.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArmSpec:
    """A randomized arm: its SDTM code (ARMCD) and description (ARM)."""

    armcd: str
    arm: str


@dataclass(frozen=True)
class VisitWindow:
    """An analysis visit: records with study day in [low_day, high_day] belong to it.

    In a post-baseline window the record nearest ``target_day`` is the analysis record; in the
    baseline window (the visit with the lowest AVISITN) the latest valid record is.
    """

    name: str
    avisitn: float
    target_day: int
    low_day: int
    high_day: int

    def __post_init__(self) -> None:
        if not self.low_day <= self.target_day <= self.high_day:
            raise ValueError(
                f"visit {self.name!r}: window {self.low_day}..{self.high_day} "
                f"does not contain target_day {self.target_day}"
            )


_REFERENCE_VISITS = (
    VisitWindow("Baseline", 0.0, 1, -30, 1),
    VisitWindow("Day 10", 10.0, 10, 7, 13),
    VisitWindow("Day 28", 28.0, 28, 21, 35),
)


@dataclass(frozen=True)
class AnalysisConfig:
    """Parameters of every derivation in ``trialake.marts``.

    Attributes:
        treatment: the experimental arm (default UC-MSC, ARMCD UCMSC).
        control: the comparator arm (default Placebo, ARMCD PBO).
        visits: analysis visits; the one with the lowest AVISITN is the baseline visit
            (default Baseline days -30..1, Day 10 days 7..13, Day 28 days 21..35).
        fas_paramcd: the parameter whose baseline and post-baseline values define the full
            analysis set (default LESPCT, the primary endpoint's parameter).
    """

    treatment: ArmSpec = ArmSpec("UCMSC", "UC-MSC")
    control: ArmSpec = ArmSpec("PBO", "Placebo")
    visits: tuple[VisitWindow, ...] = _REFERENCE_VISITS
    fas_paramcd: str = "LESPCT"

    def __post_init__(self) -> None:
        if self.treatment.armcd == self.control.armcd:
            raise ValueError(f"treatment and control share ARMCD {self.control.armcd!r}")
        if len(self.visits) < 2:
            raise ValueError("visits: need a baseline visit and at least one post-baseline visit")
        names = [v.name for v in self.visits]
        numbers = [v.avisitn for v in self.visits]
        if len(set(names)) != len(names) or len(set(numbers)) != len(numbers):
            raise ValueError(f"visits: names and AVISITN must be unique, got {list(zip(names, numbers))}")
        ordered = sorted(self.visits, key=lambda v: v.low_day)
        for before, after in zip(ordered, ordered[1:]):
            if after.low_day <= before.high_day:
                raise ValueError(f"visits: windows {before.name!r} and {after.name!r} overlap")
        if ordered[0] != self.baseline:
            raise ValueError(f"visits: the baseline visit {self.baseline.name!r} must come first in time")

    @property
    def baseline(self) -> VisitWindow:
        """The baseline visit (lowest AVISITN)."""
        return min(self.visits, key=lambda v: v.avisitn)

    @property
    def arms(self) -> tuple[ArmSpec, ArmSpec]:
        """Treatment then control."""
        return (self.treatment, self.control)
