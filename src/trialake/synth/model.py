"""The generative model of the synthetic trial: who is randomized to what, when they are seen,
and what their true CT burden, walk distance and lung function are. Pure: numbers in, plans out.

Random streams are keyed by (seed, subject index, stream), so a subject's data do not depend on
how many other subjects there are or in which order files are written.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from trialake.synth.params import Arm, OutcomeModel, SynthParams, VisitPlan

STREAM_SUBJECT, STREAM_IDENTITY, STREAM_LABS, STREAM_FILES, STREAM_MESS = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Visit:
    """An attended visit (SV row)."""

    name: str
    visitnum: float
    study_day: int
    date: date


@dataclass(frozen=True)
class Scan:
    """One CT series to synthesize. ``visit`` is the SV visit (a repeat is unscheduled), ``window``
    the scheduled visit whose window holds it; ``analysis`` marks the scan nearest the target."""

    visit: str
    window: str
    visitnum: float
    study_day: int
    date: date
    lesion_pct: float
    solid_share: float
    analysis: bool
    phantom_seed: int


@dataclass(frozen=True)
class Measurement:
    """A functional measurement in its standard unit (FT: m; RE: L, mmol/min/kPa)."""

    testcd: str
    visit: str
    visitnum: float
    study_day: int
    date: date
    value: float


@dataclass(frozen=True)
class AdverseEvent:
    """An adverse event; ``end_day`` is None while ongoing."""

    decod: str
    bodsys: str
    term: str
    severity: str
    serious: str
    relation: str
    start_day: int
    end_day: int | None


@dataclass(frozen=True)
class SubjectPlan:
    """Everything non-identifying about one subject."""

    index: int
    usubjid: str
    subjid: str
    siteid: str
    site_index: int
    arm: Arm
    sex: str
    age: int
    race: str
    consent_date: date
    first_dose_date: date
    visits: tuple[Visit, ...]
    scans: tuple[Scan, ...]
    measurements: tuple[Measurement, ...]
    adverse_events: tuple[AdverseEvent, ...]
    body_scale: float
    feet_first: bool
    chest_wall_consolidation: bool


AE_CATALOG: tuple[tuple[str, str, str], ...] = (
    ("Pyrexia", "General disorders and administration site conditions", "fever"),
    ("Headache", "Nervous system disorders", "headache"),
    ("Diarrhoea", "Gastrointestinal disorders", "loose stools"),
    ("Nausea", "Gastrointestinal disorders", "nausea"),
    ("Rash", "Skin and subcutaneous tissue disorders", "skin rash on forearm"),
    ("Fatigue", "General disorders and administration site conditions", "tiredness"),
    ("Insomnia", "Psychiatric disorders", "trouble sleeping"),
    ("Hypokalaemia", "Metabolism and nutrition disorders", "low potassium"),
    ("Alanine aminotransferase increased", "Investigations", "ALT elevated"),
    ("Anaemia", "Blood and lymphatic system disorders", "anemia"),
    ("Infusion related reaction", "Injury, poisoning and procedural complications", "chills during infusion"),
)
SEVERITIES = ("MILD", "MODERATE", "SEVERE")
SEVERITY_P = (0.62, 0.30, 0.08)
RELATIONS = ("NOT RELATED", "UNLIKELY RELATED", "POSSIBLY RELATED", "RELATED")
RELATION_P = (0.55, 0.25, 0.15, 0.05)
P_SERIOUS = 0.06
RACES = ("ASIAN", "WHITE", "BLACK OR AFRICAN AMERICAN", "OTHER")
RACE_P = (0.55, 0.30, 0.10, 0.05)


def compute_date_for_day(first_dose: date, study_day: int) -> date:
    """Calendar date of a study day (day 1 = first dose, no day 0)."""
    if study_day == 0:
        raise ValueError("study_day 0 does not exist (day 1 is the first dose, day -1 the day before)")
    return first_dose + timedelta(days=study_day - 1 if study_day > 0 else study_day)


def compute_recovery_fraction(study_day: int, tau_days: float) -> float:
    """g(day): 0 up to day 1, 1 at day 28, saturating exponential in between and beyond."""
    elapsed = max(study_day - 1, 0)
    return (1.0 - math.exp(-elapsed / tau_days)) / (1.0 - math.exp(-27.0 / tau_days))


def compute_allocation(n_subjects: int, arms: tuple[Arm, ...], rng: np.random.Generator) -> list[int]:
    """Arm index per subject in enrollment order: permuted blocks of sum(ratios), the last partial
    block filled by largest remainders so every arm is within one subject of its exact share."""
    block = [i for i, arm in enumerate(arms) for _ in range(arm.ratio)]
    n_blocks, rest = divmod(n_subjects, len(block))
    allocation: list[int] = []
    for _ in range(n_blocks):
        allocation.extend(int(x) for x in rng.permutation(block))
    shares = [arm.ratio * rest / len(block) for arm in arms]
    counts = [math.floor(s) for s in shares]
    by_remainder = sorted(range(len(arms)), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[: rest - sum(counts)]:
        counts[i] += 1
    tail = [i for i, c in enumerate(counts) for _ in range(c)]
    allocation.extend(int(x) for x in rng.permutation(tail))
    return allocation


def _visit_days(plan: VisitPlan, rng: np.random.Generator) -> tuple[int, ...]:
    """Study days of the scans at one visit: () when missed, one day, or two (a repeat)."""
    if rng.random() < plan.p_missed:
        return ()
    window = [d for d in range(plan.low_day, plan.high_day + 1) if d != 0]
    day = int(np.clip(round(plan.target_day + rng.normal(0.0, plan.jitter_sd_days)), plan.low_day, plan.high_day))
    day = day if day != 0 else 1
    if rng.random() >= plan.p_repeat:
        return (day,)
    others = [d for d in window if abs(d - plan.target_day) != abs(day - plan.target_day)]
    return (day, int(rng.choice(others))) if others else (day,)


def _clipped(rng: np.random.Generator, mean: float, sd: float, low: float, high: float) -> float:
    return float(np.clip(rng.normal(mean, sd), low, high))


def _beta_between(rng: np.random.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(rng.beta(2.0, 2.0))


def compute_lesion(
    ggo0: float, solid0: float, ggo_res: float, solid_res: float, study_day: int, params: SynthParams
) -> tuple[float, float]:
    """(lesion %, solid share) on a study day from baseline GGO% and solid% and the subject's
    resolution fractions (see ``LesionModel``)."""
    model = params.lesion
    g = compute_recovery_fraction(study_day, model.tau_days)
    ggo = ggo0 * (1.0 - min(ggo_res * g, model.max_resolution))
    solid = solid0 * (1.0 - min(solid_res * g, model.max_resolution))
    lesion = max(ggo + solid, model.min_lesion_pct)
    return lesion, solid / (ggo + solid)


def _scans(
    visit_days: dict[str, tuple[int, ...]],
    first_dose: date,
    treated: bool,
    params: SynthParams,
    rng: np.random.Generator,
) -> tuple[Scan, ...]:
    model = params.lesion
    lesion0 = _beta_between(rng, model.lesion_low_pct, model.lesion_high_pct)
    share0 = _beta_between(rng, model.share_low, model.share_high)
    ggo_mean = model.ggo_resolution_treated if treated else model.ggo_resolution_control
    solid_mean = model.solid_resolution_treated if treated else model.solid_resolution_control
    ggo_res = _clipped(rng, ggo_mean, model.resolution_sd, 0.0, model.max_resolution)
    solid_res = _clipped(rng, solid_mean, model.resolution_sd, 0.0, model.max_resolution)
    scans = []
    for plan in params.visits:
        days = visit_days[plan.name]
        nearest = min(days, key=lambda d: abs(d - plan.target_day), default=None)
        for k, day in enumerate(days):
            lesion, share = compute_lesion(lesion0 * (1 - share0), lesion0 * share0, ggo_res, solid_res, day, params)
            scans.append(
                Scan(
                    visit=plan.name if k == 0 else params.unscheduled_name,
                    window=plan.name,
                    visitnum=plan.visitnum if k == 0 else plan.visitnum + 0.1,
                    study_day=day,
                    date=compute_date_for_day(first_dose, day),
                    lesion_pct=lesion,
                    solid_share=share,
                    analysis=day == nearest,
                    phantom_seed=int(rng.integers(0, 2**31 - 1)),
                )
            )
    return tuple(scans)


def _measurements(
    testcd: str, model: OutcomeModel, visit_names: tuple[str, ...], visits: dict[str, Visit], treated: bool,
    tau_days: float, rng: np.random.Generator,
) -> list[Measurement]:
    base = _clipped(rng, model.baseline_mean, model.baseline_sd, model.low, model.high)
    change = rng.normal(model.control_change + (model.effect if treated else 0.0), model.change_sd)
    out = []
    for name in visit_names:
        visit = visits.get(name)
        if visit is None:
            continue
        value = base + change * compute_recovery_fraction(visit.study_day, tau_days)
        value = round(float(np.clip(value, model.low, model.high)), model.decimals)
        out.append(Measurement(testcd, visit.name, visit.visitnum, visit.study_day, visit.date, value))
    return out


def _adverse_events(params: SynthParams, rng: np.random.Generator) -> tuple[AdverseEvent, ...]:
    events = []
    for _ in range(int(rng.poisson(params.ae_rate))):
        decod, bodsys, term = AE_CATALOG[int(rng.integers(len(AE_CATALOG)))]
        start = int(rng.integers(1, 29))
        end = None if rng.random() < params.ae_ongoing_fraction else start + int(rng.integers(0, 10))
        events.append(
            AdverseEvent(
                decod=decod, bodsys=bodsys, term=term,
                severity=str(rng.choice(SEVERITIES, p=SEVERITY_P)),
                serious="Y" if rng.random() < P_SERIOUS else "N",
                relation=str(rng.choice(RELATIONS, p=RELATION_P)),
                start_day=start, end_day=end,
            )
        )
    return tuple(sorted(events, key=lambda e: (e.start_day, e.decod)))


def plan_subject(index: int, site_index: int, seq: int, arm: Arm, seed: int, params: SynthParams) -> SubjectPlan:
    """Draw one subject's schedule and outcomes from its own random stream (``seq``: number within the site)."""
    rng = np.random.default_rng([seed, index, STREAM_SUBJECT])
    siteid = f"S{site_index + 1:02d}"
    consent = params.enrollment_start + timedelta(days=int(rng.integers(0, params.enrollment_days)))
    first_dose = consent + timedelta(days=int(rng.integers(0, params.max_consent_to_dose_days + 1)))
    visit_days = {plan.name: _visit_days(plan, rng) for plan in params.visits}
    scans = _scans(visit_days, first_dose, arm.treated, params, rng)
    screening_day = (consent - first_dose).days or 1
    visits = [Visit(params.screening_name, params.screening_visitnum, screening_day, consent)]
    visits += [Visit(s.visit, s.visitnum, s.study_day, s.date) for s in scans]
    main_visits = {v.name: v for v in visits}
    tau = params.lesion.tau_days
    measurements = _measurements("SIXMW", params.sixmw, params.walk_visits, main_visits, arm.treated, tau, rng)
    for testcd, model in (("FVC", params.fvc), ("MVC", params.mvc), ("DLCO", params.dlco)):
        measurements += _measurements(testcd, model, params.function_visits, main_visits, arm.treated, tau, rng)
    scan = params.scan
    return SubjectPlan(
        index=index,
        usubjid=f"{params.study_id}-{siteid}-{site_index + 1}{seq:03d}",
        subjid=f"{site_index + 1}{seq:03d}",
        siteid=siteid,
        site_index=site_index,
        arm=arm,
        sex=str(rng.choice(["M", "F"])),
        age=int(rng.integers(params.age_range[0], params.age_range[1] + 1)),
        race=str(rng.choice(RACES, p=RACE_P)),
        consent_date=consent,
        first_dose_date=first_dose,
        visits=tuple(sorted(visits, key=lambda v: (v.date, v.visitnum))),
        scans=scans,
        measurements=tuple(measurements),
        adverse_events=_adverse_events(params, rng),
        body_scale=float(np.clip(rng.normal(1.0, scan.body_scale_sd), 0.88, 1.12)),
        feet_first=bool(rng.random() < scan.p_feet_first),
        chest_wall_consolidation=bool(rng.random() < scan.p_chest_wall_consolidation),
    )


def plan_trial(n_subjects: int, n_sites: int, seed: int, params: SynthParams) -> tuple[SubjectPlan, ...]:
    """All subjects, in enrollment order; sites take turns, subject numbers count up per site
    (SUBJID = site number + 3-digit sequence, e.g. 1001, 2001)."""
    allocation = compute_allocation(n_subjects, params.arms, np.random.default_rng([seed, 2**31 - 1]))
    seq_per_site = [0] * n_sites
    subjects = []
    for index, arm_index in enumerate(allocation):
        site_index = index % n_sites
        seq_per_site[site_index] += 1
        subjects.append(plan_subject(index, site_index, seq_per_site[site_index], params.arms[arm_index], seed, params))
    return tuple(subjects)
