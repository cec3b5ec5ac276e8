"""EDC exports (USUBJID-keyed SDTM-style CSV: DM, EX, SV, FT, RE, AE) and the subject key."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trialake.synth.formats import Cell, render_csv
from trialake.synth.identity import SITES, Identity, PhiLedger, compute_age
from trialake.synth.model import STREAM_IDENTITY, Measurement, SubjectPlan, compute_date_for_day
from trialake.synth.params import SynthParams

Pair = tuple[SubjectPlan, Identity]
#: An EDC export before it is rendered: header and rows of cells (rendered with ``render_csv``).
Table = tuple[tuple[str, ...], list[list[Cell]]]
COUNTRIES = ("USA", "ESP", "GBR")
FT_TEST = "Six Minute Walk Test Distance"
RE_TESTS = {"FVC": "Forced Vital Capacity", "MVC": "Maximum Vital Capacity",
            "DLCO": "Diffusing Capacity of the Lung for CO"}


@dataclass(frozen=True)
class ReUnit:
    """How a site reports a lung-function test: unit, decimals, factor to the standard unit."""

    unit: str
    decimals: int
    factor: float


# Standard units: L (FVC, MVC) and mmol/min/kPa (DLCO). One site reports MVC in mL (x0.001), one
# DLCO in mL/min/mmHg (x0.3348, i.e. 1 mmol/min/kPa = 2.987 mL/min/mmHg).
RE_STANDARD = {"FVC": ReUnit("L", 2, 1.0), "MVC": ReUnit("L", 2, 1.0), "DLCO": ReUnit("mmol/min/kPa", 2, 1.0)}
RE_MVC_ML = ReUnit("mL", 0, 0.001)
RE_DLCO_MMHG = ReUnit("mL/min/mmHg", 1, 0.3348)


def compute_re_unit(testcd: str, site_index: int, n_sites: int) -> ReUnit:
    """Site 2 sends MVC in mL; the last site (site 3, or site 2 in a two-site trial) DLCO in mmHg units."""
    if testcd == "MVC" and site_index == 1:
        return RE_MVC_ML
    if testcd == "DLCO" and site_index == n_sites - 1:
        return RE_DLCO_MMHG
    return RE_STANDARD[testcd]


def compute_reported(value: float, unit: ReUnit) -> tuple[str, float]:
    """(REORRES text, its value in the standard unit) for a standard-unit value."""
    reported = round(value / unit.factor, unit.decimals)
    text = f"{reported:.{unit.decimals}f}"
    return text, float(text) * unit.factor


def render_subject_key(pairs: Sequence[Pair], ledger: PhiLedger) -> bytes:
    """keys/subject_key.csv: SITEID, PATIENT_ID, USUBJID."""
    rows = [[s.siteid, ledger.add(i.mrn, "mrn", "keys/subject_key.csv:PATIENT_ID"), s.usubjid] for s, i in pairs]
    return render_csv(("SITEID", "PATIENT_ID", "USUBJID"), rows)


def build_dm_table(pairs: Sequence[Pair], params: SynthParams, ledger: PhiLedger) -> Table:
    """dm.csv with consent/first/last dose dates, arms, and two identifying columns (INVNAM, BRTHDTC)."""
    header = ("STUDYID", "DOMAIN", "USUBJID", "SUBJID", "SITEID", "INVNAM", "BRTHDTC", "AGE", "AGEU", "SEX", "RACE",
              "COUNTRY", "RFICDTC", "RFSTDTC", "RFENDTC", "ARMCD", "ARM", "ACTARMCD", "ACTARM")
    rows = []
    for s, i in pairs:
        last_dose = compute_date_for_day(s.first_dose_date, max(params.dosing_days))
        rows.append([
            params.study_id, "DM", s.usubjid, s.subjid, s.siteid,
            ledger.add(SITES[s.site_index].investigator, "investigator_name", "clinical/dm.csv:INVNAM"),
            ledger.add(f"{i.birth_date:%Y-%m-%d}", "birth_date", "clinical/dm.csv:BRTHDTC"),
            compute_age(i.birth_date, s.consent_date), "YEARS", s.sex, s.race, COUNTRIES[s.site_index],
            f"{s.consent_date:%Y-%m-%d}", f"{s.first_dose_date:%Y-%m-%d}", f"{last_dose:%Y-%m-%d}",
            s.arm.armcd, s.arm.arm, s.arm.armcd, s.arm.arm,
        ])
    return header, rows


def build_ex_table(pairs: Sequence[Pair], params: SynthParams) -> Table:
    """ex.csv: one row per infusion (study days ``params.dosing_days``)."""
    header = ("STUDYID", "DOMAIN", "USUBJID", "EXSEQ", "EXTRT", "EXDOSE", "EXDOSU", "EXDOSFRM", "EXROUTE",
              "EXSTDTC", "EXENDTC")
    rows = []
    for s, _ in pairs:
        for seq, day in enumerate(params.dosing_days, start=1):
            when = f"{compute_date_for_day(s.first_dose_date, day):%Y-%m-%d}"
            rows.append([params.study_id, "EX", s.usubjid, seq, s.arm.extrt, f"{s.arm.dose:.0f}", params.dose_unit,
                         "SUSPENSION", "INTRAVENOUS", when, when])
    return header, rows


def build_sv_table(pairs: Sequence[Pair], params: SynthParams) -> Table:
    """sv.csv: screening (consent), each attended visit, unscheduled repeat scans."""
    header = ("STUDYID", "DOMAIN", "USUBJID", "VISITNUM", "VISIT", "SVSTDTC", "SVENDTC")
    rows = [[params.study_id, "SV", s.usubjid, f"{v.visitnum:g}", v.name, f"{v.date:%Y-%m-%d}", f"{v.date:%Y-%m-%d}"]
            for s, _ in pairs for v in s.visits]
    return header, rows


def _measurements(subject: SubjectPlan, testcds: set[str]) -> list[Measurement]:
    return [m for m in subject.measurements if m.testcd in testcds]


def build_ft_table(pairs: Sequence[Pair], params: SynthParams) -> Table:
    """ft.csv: 6-minute walk distance in metres."""
    header = ("STUDYID", "DOMAIN", "USUBJID", "FTSEQ", "FTTESTCD", "FTTEST", "FTORRES", "FTORRESU", "VISITNUM",
              "VISIT", "FTDTC")
    rows = [[params.study_id, "FT", s.usubjid, seq, m.testcd, FT_TEST, f"{m.value:.0f}", "m", f"{m.visitnum:g}",
             m.visit, f"{m.date:%Y-%m-%d}"]
            for s, _ in pairs for seq, m in enumerate(_measurements(s, {"SIXMW"}), start=1)]
    return header, rows


def build_re_table(pairs: Sequence[Pair], params: SynthParams, n_sites: int) -> Table:
    """re.csv: FVC, MVC, DLCO in each site's units (see ``compute_re_unit``)."""
    header = ("STUDYID", "DOMAIN", "USUBJID", "RESEQ", "RETESTCD", "RETEST", "REORRES", "REORRESU", "VISITNUM",
              "VISIT", "REDTC")
    rows = []
    for s, _ in pairs:
        for seq, m in enumerate(_measurements(s, set(RE_TESTS)), start=1):
            unit = compute_re_unit(m.testcd, s.site_index, n_sites)
            text, _ = compute_reported(m.value, unit)
            rows.append([params.study_id, "RE", s.usubjid, seq, m.testcd, RE_TESTS[m.testcd], text, unit.unit,
                         f"{m.visitnum:g}", m.visit, f"{m.date:%Y-%m-%d}"])
    return header, rows


def build_ae_table(pairs: Sequence[Pair], params: SynthParams, seed: int, ledger: PhiLedger) -> Table:
    """ae.csv; a few verbatim terms name the nurse who reported them (free text with PHI)."""
    header = ("STUDYID", "DOMAIN", "USUBJID", "AESEQ", "AETERM", "AEDECOD", "AEBODSYS", "AESEV", "AESER", "AEREL",
              "AESTDTC", "AEENDTC")
    rows = []
    for s, _ in pairs:
        rng = np.random.default_rng([seed, s.index, STREAM_IDENTITY, 1])
        for seq, ae in enumerate(s.adverse_events, start=1):
            term = ae.term
            if rng.random() < params.p_phi_in_aeterm:
                nurse = SITES[s.site_index].operators[int(rng.integers(2))].split("^")
                name = f"{nurse[1].title()} {nurse[0].title()}"
                term = f"{term} (reported by nurse {ledger.add(name, 'staff_name', 'clinical/ae.csv:AETERM')})"
            end = None if ae.end_day is None else f"{compute_date_for_day(s.first_dose_date, ae.end_day):%Y-%m-%d}"
            rows.append([params.study_id, "AE", s.usubjid, seq, term, ae.decod, ae.bodsys, ae.severity, ae.serious,
                         ae.relation, f"{compute_date_for_day(s.first_dose_date, ae.start_day):%Y-%m-%d}", end])
    return header, rows


def compute_standard_measurement(m: Measurement, site_index: int, n_sites: int) -> tuple[float, str]:
    """(value in the standard unit as recoverable from the landing text, standard unit)."""
    if m.testcd == "SIXMW":
        return float(f"{m.value:.0f}"), "m"
    return compute_reported(m.value, compute_re_unit(m.testcd, site_index, n_sites))[1], RE_STANDARD[m.testcd].unit


def measurement_rows(pairs: Sequence[Pair], n_sites: int) -> list[dict[str, Cell]]:
    """Truth rows (per subject and visit) of the functional endpoints in standard units."""
    out = []
    for s, _ in pairs:
        for m in s.measurements:
            value, unit = compute_standard_measurement(m, s.site_index, n_sites)
            out.append({"USUBJID": s.usubjid, "PARAMCD": m.testcd, "VISIT": m.visit, "ADY": m.study_day,
                        "ADT": f"{m.date:%Y-%m-%d}", "AVAL": value, "AVALU": unit})
    return out
