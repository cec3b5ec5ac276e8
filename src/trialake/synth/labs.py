"""Site lab exports with per-site test names, units, encodings and bad rows, plus their truth.

Values are drawn in the standard unit, converted to the site unit with the factor of the site's
profile (standard = site value x factor), reported to three significant digits, and the truth is
the *reported* value times the same factor, so the expected LBSTRESN is exactly recomputable.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from trialake.synth.formats import Cell, compute_excel_serial, render_csv, render_xlsx
from trialake.synth.identity import FAMILY_NAMES, GIVEN_NAMES, Identity, PhiLedger, compute_mrn
from trialake.synth.model import STREAM_LABS, SubjectPlan, Visit

SiteNumber = str | float | None  # as written: text (CSV sites) or a numeric cell (XLSX site)


@dataclass(frozen=True)
class LabTest:
    """A lab test in its standard unit: log-normal around ``median`` (x ``trend`` by day 28),
    reference range, lower limit of quantitation (None: never censored)."""

    testcd: str
    unit: str
    median: float
    log_sd: float
    trend: float
    nr_low: float
    nr_high: float
    lloq: float | None = None


LAB_TESTS = (
    LabTest("CRP", "mg/L", 12.0, 1.2, 0.3, 0.0, 5.0, 0.5),
    LabTest("WBC", "10^9/L", 6.5, 0.3, 1.0, 3.5, 9.5),
    LabTest("LYM", "10^9/L", 0.9, 0.35, 1.4, 1.1, 3.2),
    LabTest("NEUT", "10^9/L", 4.8, 0.35, 0.9, 1.8, 6.3),
    LabTest("PLAT", "10^9/L", 210.0, 0.3, 1.1, 125.0, 350.0),
    LabTest("HGB", "g/L", 128.0, 0.08, 1.0, 115.0, 175.0),
    LabTest("ALB", "g/L", 35.0, 0.1, 1.08, 40.0, 55.0),
    LabTest("CREAT", "umol/L", 72.0, 0.25, 1.0, 57.0, 111.0),
    LabTest("BILI", "umol/L", 11.0, 0.4, 0.95, 0.0, 21.0),
    LabTest("GLUC", "mmol/L", 6.6, 0.22, 0.95, 3.9, 6.1),
    LabTest("ALT", "U/L", 34.0, 0.5, 0.9, 9.0, 50.0),
    LabTest("AST", "U/L", 36.0, 0.45, 0.85, 15.0, 40.0),
    LabTest("LDH", "U/L", 290.0, 0.3, 0.8, 120.0, 250.0),
    LabTest("DDIMER", "mg/L FEU", 1.1, 0.8, 0.7, 0.0, 0.55, 0.19),
    LabTest("FERRITIN", "ug/L", 620.0, 0.7, 0.8, 30.0, 400.0),
    LabTest("IL6", "ng/L", 18.0, 0.9, 0.5, 0.0, 7.0, 1.5),
    LabTest("PCT", "ug/L", 0.08, 0.8, 0.7, 0.0, 0.05, 0.05),
    LabTest("TROPI", "ng/L", 6.0, 0.8, 0.9, 0.0, 26.0, 2.0),
)


@dataclass(frozen=True)
class SiteTest:
    """How one site sends a test: name, its own code, unit, and factor to the standard unit."""

    lbtest: str
    lbtestcd: str
    unit: str
    factor: float


def _profile(*entries: tuple[str, str, str, float]) -> dict[str, SiteTest]:
    return {test.testcd: SiteTest(*entry) for test, entry in zip(LAB_TESTS, entries, strict=True)}


# Conversion factors (standard = site x factor): CRP mg/dL x10; WBC-type 10^3/uL x1, /uL x0.001;
# HGB, ALB g/dL x10; CREAT mg/dL x88.4; BILI mg/dL x17.1; GLUC mg/dL x0.0555; ALT/AST/LDH
# ukat/L x60; D-dimer ug/mL FEU x1, ng/mL DDU x0.002 (x0.001 for ng/mL -> mg/L, x2 DDU -> FEU);
# TROPI ng/mL x1000; pg/mL == ng/L, ng/mL == ug/L x1.
SITE_PROFILES: tuple[dict[str, SiteTest], ...] = (
    _profile(
        ("C-reactive protein", "CRP", "mg/dL", 10.0), ("White blood cell count", "WBC", "10^3/uL", 1.0),
        ("Lymphocytes, absolute", "LYMAB", "10^3/uL", 1.0), ("Neutrophils, absolute", "NEUTAB", "10^3/uL", 1.0),
        ("Platelet count", "PLT", "10^3/uL", 1.0), ("Hemoglobin", "HGB", "g/dL", 10.0),
        ("Albumin", "ALB", "g/dL", 10.0), ("Creatinine", "CREAT", "mg/dL", 88.4),
        ("Total bilirubin", "TBIL", "mg/dL", 17.1), ("Glucose", "GLU", "mg/dL", 0.0555),
        ("Alanine aminotransferase", "ALT", "U/L", 1.0), ("Aspartate aminotransferase", "AST", "U/L", 1.0),
        ("Lactate dehydrogenase", "LDH", "U/L", 1.0), ("D-dimer", "DDIMER", "ug/mL FEU", 1.0),
        ("Ferritin", "FERR", "ng/mL", 1.0), ("Interleukin-6", "IL6", "pg/mL", 1.0),
        ("Procalcitonin", "PCT", "ng/mL", 1.0), ("Troponin I, high sensitivity", "TNIHS", "ng/mL", 1000.0),
    ),
    _profile(
        ("Proteína C reactiva", "PCR", "mg/L", 1.0), ("Leucocitos", "LEUC", "10^9/L", 1.0),
        ("Linfocitos", "LINF", "10^9/L", 1.0), ("Neutrófilos", "NEUT", "10^9/L", 1.0),
        ("Plaquetas", "PLAQ", "10^9/L", 1.0), ("Hemoglobina", "HB", "g/dL", 10.0),
        ("Albúmina", "ALB", "g/L", 1.0), ("Creatinina", "CREA", "µmol/L", 1.0),
        ("Bilirrubina total", "BILT", "µmol/L", 1.0), ("Glucosa", "GLU", "mmol/L", 1.0),
        ("Alanina aminotransferasa (GPT)", "GPT", "µkat/L", 60.0),
        ("Aspartato aminotransferasa (GOT)", "GOT", "µkat/L", 60.0),
        ("Lactato deshidrogenasa", "LDH", "µkat/L", 60.0), ("Dímero D", "DD", "ng/mL DDU", 0.002),
        ("Ferritina", "FERR", "ug/L", 1.0), ("Interleucina 6", "IL6", "pg/mL", 1.0),
        ("Procalcitonina", "PCT", "ug/L", 1.0), ("Troponina I", "TNI", "ng/L", 1.0),
    ),
    _profile(
        ("CRP", "CRP", "mg/L", 1.0), ("WBC", "WBC", "/uL", 0.001), ("Lymphocyte count", "LYM", "/uL", 0.001),
        ("Neutrophil count", "NEU", "/uL", 0.001), ("Platelets", "PLT", "10^3/uL", 1.0),
        ("Haemoglobin", "HB", "g/L", 1.0), ("Albumin", "ALB", "g/L", 1.0), ("Creatinine", "CRE", "umol/L", 1.0),
        ("Bilirubin", "BIL", "mg/dL", 17.1), ("Glucose (fasting)", "GLU", "mg/dL", 0.0555),
        ("ALT", "ALT", "U/L", 1.0), ("AST", "AST", "U/L", 1.0), ("LDH", "LDH", "U/L", 1.0),
        ("D-Dimer", "DDIM", "mg/L FEU", 1.0), ("Ferritin", "FER", "ng/mL", 1.0), ("IL-6", "IL6", "ng/L", 1.0),
        ("Procalcitonin", "PCT", "ng/mL", 1.0), ("hs-Troponin I", "TROP", "pg/mL", 1.0),
    ),
)
LAB_FILE_NAMES = ("lb_site1.csv", "lb_site2.csv", "lb_site3.xlsx")
_RESULT = ("LBORRES", "LBORRESU", "LBORNRLO", "LBORNRHI", "LBDTC")
SITE_HEADERS = (
    ("SITEID", "PATIENT_ID", "PATIENT_NAME", "LBTESTCD", "LBTEST", *_RESULT),
    ("SITEID", "PATIENT_ID", "APELLIDOS", "NOMBRE", "LBTESTCD", "LBTEST", *_RESULT),
    ("SITEID", "PATIENT_ID", "PATIENT_NAME", "LBTEST", "LBTESTCD", *_RESULT),
)
BAD_KINDS = ("unknown_test", "unknown_unit", "unparseable_value", "unknown_subject", "invalid_date")
TRUTH_COLUMNS = (
    "file", "source_row", "USUBJID", "SITEID", "PATIENT_ID", "LBTEST", "LBORRES", "LBORRESU", "LBTESTCD",
    "factor", "LBSTRESN", "LBSTRESU", "censored", "censor_limit", "LBSTNRLO", "LBSTNRHI", "LBNRIND", "LBDT", "VISIT",
    "status", "category", "quarantine",
)


@dataclass(frozen=True)
class LabRow:
    """One landing row (site fields, as written) and its truth."""

    siteid: str
    patient_id: str
    family: str
    given: str
    site_test: SiteTest
    orres: SiteNumber
    nrlo: SiteNumber
    nrhi: SiteNumber
    dtc: str | float
    truth: dict[str, Cell]


def compute_significant(value: float) -> float:
    """Round to three significant digits (at most 4 decimals)."""
    decimals = min(4, max(0, 2 - math.floor(math.log10(abs(value))))) if value else 0
    return round(value, decimals)


def compute_nrind(value: float | None, low: float | None, high: float) -> str | None:
    """LOW / NORMAL / HIGH against the reference range (None for a censored value)."""
    if value is None:
        return None
    if low is not None and value < low:
        return "LOW"
    return "HIGH" if value > high else "NORMAL"


def compute_site_number(value: float, site_index: int) -> SiteNumber:
    """A number as the site writes it: decimal comma at site 2, a numeric cell at site 3."""
    if site_index == 2:
        return value
    text = repr(value) if value != int(value) else str(int(value))
    return text.replace(".", ",") if site_index == 1 else text


def compute_site_date(day: date, minutes: int, site_index: int) -> str | float:
    """Lab date as the site writes it: ISO datetime, ISO date, or an Excel serial."""
    if site_index == 0:
        return f"{day:%Y-%m-%d}T{minutes // 60:02d}:{minutes % 60:02d}"
    if site_index == 1:
        return f"{day:%Y-%m-%d}"
    return compute_excel_serial(day, minutes)


def _range(test: LabTest, site_test: SiteTest, site_index: int) -> tuple[SiteNumber, SiteNumber, float | None, float]:
    """(LBORNRLO, LBORNRHI as the site writes them, the same in the standard unit); no low limit when 0."""
    lo = compute_significant(test.nr_low / site_test.factor) if test.nr_low else None
    hi = compute_significant(test.nr_high / site_test.factor)
    return (
        None if lo is None else compute_site_number(lo, site_index),
        compute_site_number(hi, site_index),
        None if lo is None else lo * site_test.factor,
        hi * site_test.factor,
    )


def _good_row(
    subject: SubjectPlan, identity: Identity, visit: Visit, test: LabTest, file_name: str, rng: np.random.Generator
) -> LabRow:
    site_index = subject.site_index
    site_test = SITE_PROFILES[site_index][test.testcd]
    trend = test.trend ** (max(visit.study_day - 1, 0) / 27.0)
    value = test.median * trend * math.exp(rng.normal(0.0, test.log_sd))
    censored = test.lloq is not None and value < test.lloq
    reported = compute_significant((test.lloq if censored else value) / site_test.factor)
    orres = compute_site_number(reported, site_index)
    if censored:
        orres = f"<{orres}"
    nrlo, nrhi, st_lo, st_hi = _range(test, site_test, site_index)
    minutes = int(rng.integers(6 * 60, 11 * 60))
    truth = {
        "file": file_name, "USUBJID": subject.usubjid, "SITEID": subject.siteid, "PATIENT_ID": identity.mrn,
        "LBTEST": site_test.lbtest, "LBORRES": str(orres), "LBORRESU": site_test.unit, "LBTESTCD": test.testcd,
        "factor": site_test.factor, "LBSTRESN": None if censored else reported * site_test.factor,
        "LBSTRESU": test.unit, "censored": "Y" if censored else "N",
        "censor_limit": reported * site_test.factor if censored else None, "LBSTNRLO": st_lo, "LBSTNRHI": st_hi,
        "LBNRIND": compute_nrind(None if censored else reported * site_test.factor, st_lo, st_hi),
        "LBDT": f"{visit.date:%Y-%m-%d}", "VISIT": visit.name, "status": "ok", "category": None,
    }
    return LabRow(subject.siteid, identity.mrn, identity.family, identity.given, site_test, orres, nrlo,
                  nrhi, compute_site_date(visit.date, minutes, site_index), truth)


def _bad_row(kind: str, template: LabRow, site_index: int, rng: np.random.Generator) -> LabRow:
    """A deliberately bad copy of a good row; the truth names the rejection category."""
    row = template
    truth = {**row.truth, "status": "rejected", "category": kind, "LBSTRESN": None, "LBNRIND": None,
             "censored": "N", "censor_limit": None}
    changes: dict[str, object] = {}
    if kind == "unknown_test":
        unknown = SiteTest(("Vitamin Q", "Vitamina Q", "VITQ")[site_index], "VITQ", "mg/L", 1.0)
        changes["site_test"] = unknown
        truth.update(LBTEST=unknown.lbtest, LBORRESU="mg/L", LBTESTCD=None, factor=None,
                     LBSTRESU=None, LBSTNRLO=None, LBSTNRHI=None)
    elif kind == "unknown_unit":
        changes["site_test"] = SiteTest(row.site_test.lbtest, row.site_test.lbtestcd, "mmol/h", row.site_test.factor)
        truth.update(LBORRESU="mmol/h", factor=None, LBSTRESU=None, LBSTNRLO=None, LBSTNRHI=None)
    elif kind == "unparseable_value":
        changes["orres"] = ("see comment", "hemolizada", "HAEMOLYSED")[site_index]
        truth.update(LBORRES=changes["orres"])
    elif kind == "unknown_subject":
        mrn = compute_mrn(site_index, 99999)  # real MRNs are >= 100000 (see make_identity)
        changes.update(patient_id=mrn, family=str(rng.choice(FAMILY_NAMES)), given=str(rng.choice(GIVEN_NAMES)))
        truth.update(USUBJID=None, PATIENT_ID=mrn)
    elif kind == "invalid_date":
        changes["dtc"] = ("2020-02-30T08:10", "2020-13-05", "31/04/2020")[site_index]
        truth.update(LBDT=None)
    return replace(row, **changes, truth=truth)


def _cells(row: LabRow, site_index: int) -> list[Cell]:
    test = row.site_test
    if site_index == 0:
        return [row.siteid, row.patient_id, f"{row.given} {row.family}", test.lbtestcd, test.lbtest, row.orres,
                test.unit, row.nrlo, row.nrhi, row.dtc]
    if site_index == 1:
        return [row.siteid, row.patient_id, row.family, row.given, test.lbtestcd, test.lbtest, row.orres, test.unit,
                row.nrlo, row.nrhi, row.dtc]
    return [row.siteid, row.patient_id, f"{row.family}, {row.given}", test.lbtest, test.lbtestcd, row.orres,
            test.unit, row.nrlo, row.nrhi, row.dtc]


def _record_phi(ledger: PhiLedger, row: LabRow, site_index: int, file_name: str) -> None:
    where = f"clinical/{file_name}"
    ledger.add(row.patient_id, "mrn", f"{where}:PATIENT_ID")
    if site_index == 0:
        ledger.add(f"{row.given} {row.family}", "patient_name", f"{where}:PATIENT_NAME")
    elif site_index == 1:
        ledger.add(row.family, "patient_family_name", f"{where}:APELLIDOS")
        ledger.add(row.given, "patient_given_name", f"{where}:NOMBRE")
    else:
        ledger.add(f"{row.family}, {row.given}", "patient_name", f"{where}:PATIENT_NAME")


def build_site_lab_rows(
    site_index: int, subjects: Sequence[tuple[SubjectPlan, Identity]], lab_visits: Sequence[str], seed: int
) -> list[LabRow]:
    """Every row of one site's lab file, bad rows inserted at random positions."""
    file_name = LAB_FILE_NAMES[site_index]
    rows: list[LabRow] = []
    for subject, identity in subjects:
        rng = np.random.default_rng([seed, subject.index, STREAM_LABS])
        visits = {v.name: v for v in subject.visits}
        for name in lab_visits:
            if name in visits:
                rows += [_good_row(subject, identity, visits[name], test, file_name, rng) for test in LAB_TESTS]
    rng = np.random.default_rng([seed, 2**31 - 2, site_index])
    templates = [rows[int(i)] for i in rng.choice(len(rows), size=len(BAD_KINDS), replace=False)]
    for kind, template in zip(BAD_KINDS, templates, strict=True):
        rows.insert(int(rng.integers(0, len(rows) + 1)), _bad_row(kind, template, site_index, rng))
    return rows


def render_site_lab_file(
    site_index: int, rows: Sequence[LabRow], ledger: PhiLedger
) -> tuple[bytes, list[dict[str, Cell]]]:
    """(file bytes, truth rows with 1-based ``source_row``) for one site's lab export."""
    file_name = LAB_FILE_NAMES[site_index]
    cells = []
    for row in rows:
        _record_phi(ledger, row, site_index, file_name)
        cells.append(_cells(row, site_index))
    truth = [{**row.truth, "source_row": i} for i, row in enumerate(rows, start=1)]
    header = SITE_HEADERS[site_index]
    if site_index == 0:
        return render_csv(header, cells, bom=True), truth
    if site_index == 1:
        return render_csv(header, cells, delimiter=";", encoding="latin-1", lineterminator="\r\n"), truth
    return render_xlsx(header, cells, sheet="Labs"), truth
