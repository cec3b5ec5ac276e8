"""Analysis parameters for the ADaM derivations: arms, analysis visit windows, populations.

The defaults are the reference trial (NCT04288102); the pipeline maps the trial configuration onto
these frozen dataclasses at the edge (``trialake.pipeline.gold``) and passes them down.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trialake.visits import VisitWindow, compute_window_problems


@dataclass(frozen=True)
class ArmSpec:
    """A randomized arm: its SDTM code (ARMCD) and description (ARM)."""

    armcd: str
    arm: str


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
        outside_window: what happens to a post-baseline record outside every window: "exclude"
            (default: unscheduled, never analysed) or "nearest" (a candidate for the nearest
            post-baseline window, used only when that window has no valid record of its own).
        age_groups: AGEGR1 cut points (default (65,): "<65", ">=65").
        per_protocol_min_doses: dosing records a subject needs for PPROTFL (default 1).
        treatment_window_days: days after the last dose that still count as on treatment for
            TRTEMFL and ONTRTFL (default 30; None: no limit).
    """

    treatment: ArmSpec = ArmSpec("UCMSC", "UC-MSC")
    control: ArmSpec = ArmSpec("PBO", "Placebo")
    visits: tuple[VisitWindow, ...] = _REFERENCE_VISITS
    outside_window: Literal["exclude", "nearest"] = "exclude"
    age_groups: tuple[int, ...] = (65,)
    per_protocol_min_doses: int = 1
    treatment_window_days: int | None = 30

    def __post_init__(self) -> None:
        if self.treatment.armcd == self.control.armcd:
            raise ValueError(f"treatment and control share ARMCD {self.control.armcd!r}")
        problems = compute_window_problems(self.visits)
        if problems:
            raise ValueError(f"visits: {problems[0]}")
        if self.outside_window not in ("exclude", "nearest"):
            raise ValueError(f"outside_window: expected 'exclude' or 'nearest', got {self.outside_window!r}")
        if list(self.age_groups) != sorted(set(self.age_groups)):
            raise ValueError(f"age_groups: cut points must be distinct and increasing, got {list(self.age_groups)}")
        if self.per_protocol_min_doses < 1:
            raise ValueError(f"per_protocol_min_doses: must be at least 1, got {self.per_protocol_min_doses}")
        if self.treatment_window_days is not None and self.treatment_window_days < 0:
            raise ValueError(f"treatment_window_days: must not be negative, got {self.treatment_window_days}")

    @property
    def baseline(self) -> VisitWindow:
        """The baseline visit (lowest AVISITN)."""
        return min(self.visits, key=lambda v: v.avisitn)

    @property
    def arms(self) -> tuple[ArmSpec, ArmSpec]:
        """Treatment then control."""
        return (self.treatment, self.control)

    @property
    def post_baseline(self) -> tuple[VisitWindow, ...]:
        """The post-baseline visits in AVISITN order."""
        return tuple(sorted((v for v in self.visits if v != self.baseline), key=lambda v: v.avisitn))

    def age_group_labels(self) -> tuple[str, ...]:
        """AGEGR1 values in order (AGEGR1N = position + 1), e.g. ("<65", ">=65")."""
        cuts = self.age_groups
        middle = [f"{low}-{high - 1}" for low, high in zip(cuts, cuts[1:])]
        return (f"<{cuts[0]}", *middle, f">={cuts[-1]}") if cuts else ("All",)
