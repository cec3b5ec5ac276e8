"""Parameters of the synthetic trial generator (frozen dataclasses with documented defaults).

The defaults mimic the reference trial (NCT04288102, see ``trial.md``): 2:1 UC-MSC vs placebo,
infusions on study days 1, 4 and 7, CT at baseline, day 10 and day 28, and treatment effects of
the published size. Every number the generator draws from is here, so the generative model can be
read (and changed) in one place; ``truth/effects.json`` records the values used for a run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class Arm:
    """A randomized arm and its share of the allocation ratio."""

    armcd: str
    arm: str
    ratio: int
    extrt: str
    dose: float  # per infusion, in ``dose_unit``
    treated: bool  # receives the active effect of the outcome models


@dataclass(frozen=True)
class VisitPlan:
    """A scheduled visit: study-day window, target day, and chance of being missed or repeated."""

    name: str
    visitnum: float
    target_day: int
    low_day: int
    high_day: int
    jitter_sd_days: float
    p_missed: float
    p_repeat: float  # chance of a second CT scan inside the same window


@dataclass(frozen=True)
class OutcomeModel:
    """A continuous outcome: baseline ~ Normal(mean, sd) clipped to [low, high]; change at day 28 ~
    Normal(control_change + effect * treated, change_sd), reached along the recovery curve."""

    baseline_mean: float
    baseline_sd: float
    low: float
    high: float
    control_change: float
    effect: float
    change_sd: float
    decimals: int


@dataclass(frozen=True)
class LesionModel:
    """CT lesion model, in percent of lung volume.

    Baseline GGO% = lesion% * (1 - solid share), solid% = lesion% * solid share, with
    lesion% = low + (high - low) * Beta(2, 2) and solid share = share_low + (share_high -
    share_low) * Beta(2, 2). At study day t each component keeps (1 - r * g(t)) of its baseline,
    g(t) = (1 - exp(-t / tau)) / (1 - exp(-28 / tau)) (g(28) = 1), with a subject resolution
    fraction r ~ Normal(arm mean, resolution_sd) clipped to [0, max_resolution].
    """

    lesion_low_pct: float = 25.0
    lesion_high_pct: float = 65.0
    share_low: float = 0.15
    share_high: float = 0.40
    ggo_resolution_control: float = 0.27
    ggo_resolution_treated: float = 0.62
    solid_resolution_control: float = 0.20
    solid_resolution_treated: float = 0.35
    resolution_sd: float = 0.15
    max_resolution: float = 0.95
    tau_days: float = 10.0
    min_lesion_pct: float = 0.5


@dataclass(frozen=True)
class ScanModel:
    """Phantom acquisition settings (see ``trialake.synth.phantom.PhantomSpec``)."""

    fov_mm: float = 380.0
    z_extent_mm: float = 300.0
    body_scale_sd: float = 0.06
    noise_hu: float = 18.0
    blur_mm: float = 1.2
    p_feet_first: float = 0.1
    p_chest_wall_consolidation: float = 0.5


@dataclass(frozen=True)
class MessParams:
    """Deliberate, realistic mess in the clinical exports, at rates from 0 (none, the default) to 1.

    Each kind leaves the rows of the clean trial as they are (so the endpoint truth holds) and adds
    rows, drops a column or holds records back; ``truth/quarantine.csv`` names every landing row
    the lake must keep out of silver, with the stage that does it.

    before_consent: per subject, a copy of its first lab result and 6-minute walk dated 1-3 days
        before informed consent (a local result sent with the study data): quarantined.
    missing_expected: per EDC export, one Expected SDTM variable left out (DM RFICDTC or RACE, EX
        EXENDTC, SV SVENDTC, FT FTTEST, RE RETEST, AE AEREL or AEBODSYS): its checks are skipped.
        Without RFICDTC, nothing is quarantined for being before consent.
    unknown_unit: per 6-minute walk and lung function row, a copy with a unit no mapping knows.
    partial_date: per lab, 6-minute walk and AE row, a copy dated to the month only.
    duplicate: per row of every export, an exact copy sent right after it.
    late_dm: per subject, its DM record left out of dm.csv (it is in ``truth/late_dm.csv``, to be
        landed later): every other clinical row of the subject waits for it.
    """

    before_consent: float = 0.0
    missing_expected: float = 0.0
    unknown_unit: float = 0.0
    partial_date: float = 0.0
    duplicate: float = 0.0
    late_dm: float = 0.0

    @classmethod
    def uniform(cls, rate: float) -> MessParams:
        """Every kind of mess at the same rate."""
        return cls(rate, rate, rate, rate, rate, rate)


def _default_arms() -> tuple[Arm, ...]:
    return (
        Arm(armcd="UCMSC", arm="UC-MSC", ratio=2, extrt="UC-MSC", dose=4.0e7, treated=True),
        Arm(armcd="PBO", arm="Placebo", ratio=1, extrt="PLACEBO", dose=0.0, treated=False),
    )


def _default_visits() -> tuple[VisitPlan, ...]:
    return (
        VisitPlan("Baseline", 2.0, 1, -2, 1, 1.0, 0.02, 0.0),
        VisitPlan("Day 10", 3.0, 10, 7, 13, 1.5, 0.08, 0.06),
        VisitPlan("Day 28", 4.0, 28, 21, 35, 3.0, 0.08, 0.06),
    )


@dataclass(frozen=True)
class SynthParams:
    """Everything the generator draws from. Defaults: the reference trial.

    Effects (treated minus control, population means at day 28): lesion% change about -13 points
    (from the GGO/solid resolution fractions and the mean baseline burden), solid volume percent
    change about -15 points, 6-minute walk +27 m, FVC +0.15 L, max vital capacity +0.15 L,
    DLCO +0.6 mmol/min/kPa.
    """

    study_id: str = "NCT04288102"
    arms: tuple[Arm, ...] = field(default_factory=_default_arms)
    dose_unit: str = "cells"
    dosing_days: tuple[int, ...] = (1, 4, 7)
    visits: tuple[VisitPlan, ...] = field(default_factory=_default_visits)
    screening_name: str = "Screening"
    screening_visitnum: float = 1.0
    unscheduled_name: str = "Unscheduled"
    enrollment_start: date = date(2020, 3, 5)
    enrollment_days: int = 24
    max_consent_to_dose_days: int = 2
    age_range: tuple[int, int] = (32, 78)
    lesion: LesionModel = field(default_factory=LesionModel)
    scan: ScanModel = field(default_factory=ScanModel)
    sixmw: OutcomeModel = OutcomeModel(300.0, 70.0, 120.0, 520.0, 60.0, 27.0, 45.0, 0)
    fvc: OutcomeModel = OutcomeModel(2.6, 0.6, 1.0, 4.5, 0.20, 0.15, 0.25, 2)
    mvc: OutcomeModel = OutcomeModel(2.8, 0.6, 1.1, 4.8, 0.20, 0.15, 0.25, 2)
    dlco: OutcomeModel = OutcomeModel(5.5, 1.3, 2.0, 10.0, 0.50, 0.60, 0.60, 2)
    function_visits: tuple[str, ...] = ("Baseline", "Day 28")  # lung function (RE)
    walk_visits: tuple[str, ...] = ("Baseline", "Day 10", "Day 28")  # 6-minute walk (FT)
    lab_visits: tuple[str, ...] = ("Baseline", "Day 10", "Day 28")
    ae_rate: float = 1.4  # adverse events per subject, Poisson, same in both arms
    ae_ongoing_fraction: float = 0.1
    p_phi_in_aeterm: float = 0.08  # verbatim AE terms that mention a person's name
    mess: MessParams = field(default_factory=MessParams)
