"""Subjects, exposure, visits, 6MWD, lung function and adverse events: expected tables by hand."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from trialake.clinical import (
    derive_adverse_events,
    derive_exposure,
    derive_lung_function,
    derive_sixmwt,
    derive_subjects,
    derive_visits,
)

D = dt.date
LINEAGE = {"source_sha256": "b" * 64, "run_id": "run-1"}


def _bronze(rows: list[dict]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, infer_schema_length=None)
    return frame.with_columns(
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("source_row"),
        *[pl.lit(v).alias(k) for k, v in LINEAGE.items()],
    )


EX = _bronze([
    {"USUBJID": "TL-001", "EXTRT": "UC-MSC", "EXDOSE": "4", "EXDOSU": "10^7 cells", "EXSTDT": D(2020, 3, 2), "EXENDT": None},
    {"USUBJID": "TL-001", "EXTRT": "UC-MSC", "EXDOSE": "4", "EXDOSU": "10^7 cells", "EXSTDT": D(2020, 3, 5), "EXENDT": None},
    {"USUBJID": "TL-001", "EXTRT": "UC-MSC", "EXDOSE": "4", "EXDOSU": "10^7 cells", "EXSTDT": D(2020, 3, 8), "EXENDT": D(2020, 3, 8)},
    {"USUBJID": "TL-002", "EXTRT": "Placebo", "EXDOSE": "n/a", "EXDOSU": "mL", "EXSTDT": D(2020, 3, 1), "EXENDT": None},
    {"USUBJID": "TL-002", "EXTRT": "Placebo", "EXDOSE": "0,0", "EXDOSU": "mL", "EXSTDT": None, "EXENDT": None},
])
DM = _bronze([
    {"USUBJID": "TL-001", "STUDYID": "NCT04288102", "SITEID": "01", "SEX": "Male", "AGE": "45", "ARMCD": "UCMSC",
     "ARM": "UC-MSC", "RFSTDT": D(2020, 3, 1), "RFICDT": D(2020, 2, 28)},
    {"USUBJID": "TL-002", "STUDYID": "NCT04288102", "SITEID": "01", "SEX": "f", "AGE": "61", "ARMCD": "PBO",
     "ARM": "Placebo", "RFSTDT": D(2020, 3, 3), "RFICDT": D(2020, 3, 1)},
    {"USUBJID": "TL-003", "STUDYID": "NCT04288102", "SITEID": "02", "SEX": "X", "AGE": "52.5", "ARMCD": "PBO",
     "ARM": "Placebo", "RFSTDT": D(2020, 3, 3), "RFICDT": None},
    {"USUBJID": "TL-002", "STUDYID": "NCT04288102", "SITEID": "01", "SEX": "F", "AGE": "61", "ARMCD": "PBO",
     "ARM": "Placebo", "RFSTDT": D(2020, 3, 3), "RFICDT": D(2020, 3, 1)},
])
SUBJECTS = pl.DataFrame({"USUBJID": ["TL-001", "TL-002"], "RFSTDT": [D(2020, 3, 2), D(2020, 3, 3)]})


def test_exposure_study_day_counts_from_the_first_dose() -> None:
    exposure, rejected = derive_exposure(EX)
    # TL-001 first dose 2020-03-02: day 1, 03-05 is day 4, 03-08 is day 7.
    assert exposure.select("USUBJID", "EXDOSE", "EXSTDT", "EXSTDY").to_dicts() == [
        {"USUBJID": "TL-001", "EXDOSE": 4.0, "EXSTDT": D(2020, 3, 2), "EXSTDY": 1},
        {"USUBJID": "TL-001", "EXDOSE": 4.0, "EXSTDT": D(2020, 3, 5), "EXSTDY": 4},
        {"USUBJID": "TL-001", "EXDOSE": 4.0, "EXSTDT": D(2020, 3, 8), "EXSTDY": 7},
    ]
    assert rejected.select("source_row", "stage", "reason").to_dicts() == [
        {"source_row": 4, "stage": "clinical_ex", "reason": "EXDOSE is not a number"},
        {"source_row": 5, "stage": "clinical_ex", "reason": "EXSTDTC is missing or not a complete date"},
    ]


def test_subjects_take_first_dose_from_exposure_else_dm() -> None:
    exposure, _ = derive_exposure(EX)
    subjects, rejected = derive_subjects(DM, exposure=exposure)
    # TL-001: EX first dose 2020-03-02 wins over DM RFSTDTC 2020-03-01; last dose 2020-03-08.
    # TL-002: no accepted EX row -> DM RFSTDTC 2020-03-03 and RFENDT null.
    assert subjects.select("USUBJID", "SEX", "AGE", "ARMCD", "RFICDT", "RFSTDT", "RFENDT", "source_row").to_dicts() == [
        {"USUBJID": "TL-001", "SEX": "M", "AGE": 45, "ARMCD": "UCMSC", "RFICDT": D(2020, 2, 28),
         "RFSTDT": D(2020, 3, 2), "RFENDT": D(2020, 3, 8), "source_row": 1},
        {"USUBJID": "TL-002", "SEX": "F", "AGE": 61, "ARMCD": "PBO", "RFICDT": D(2020, 3, 1),
         "RFSTDT": D(2020, 3, 3), "RFENDT": None, "source_row": 2},
    ]
    assert dict(zip(rejected.get_column("source_row"), rejected.get_column("reason"))) == {
        3: "AGE is not a whole number; SEX is not a recognised value",
        4: "USUBJID appears more than once in DM (kept row 2)",
    }
    assert subjects.schema["AGE"] == pl.Int64


def test_visits_with_study_day_and_no_day_zero() -> None:
    sv = _bronze([
        {"USUBJID": "TL-001", "VISITNUM": "1", "VISIT": "Baseline", "SVSTDT": D(2020, 3, 1)},
        {"USUBJID": "TL-001", "VISITNUM": "2", "VISIT": "Day 10", "SVSTDT": D(2020, 3, 11)},
        {"USUBJID": "TL-001", "VISITNUM": "2,5", "VISIT": "Unscheduled", "SVSTDT": D(2020, 3, 2)},
        {"USUBJID": "TL-001", "VISITNUM": "three", "VISIT": "Day 28", "SVSTDT": None},
    ])
    visits, rejected = derive_visits(sv, subjects=SUBJECTS)
    # first dose 2020-03-02: 03-01 -> -1 (no day 0), 03-11 -> 10, 03-02 -> 1
    assert visits.select("VISITNUM", "VISIT", "SVSTDY").to_dicts() == [
        {"VISITNUM": 1.0, "VISIT": "Baseline", "SVSTDY": -1},
        {"VISITNUM": 2.0, "VISIT": "Day 10", "SVSTDY": 10},
        {"VISITNUM": 2.5, "VISIT": "Unscheduled", "SVSTDY": 1},
    ]
    assert rejected.get_column("reason").to_list() == [
        "VISITNUM is not a number; SVSTDTC is missing or not a complete date"
    ]


def test_six_minute_walk_in_metres() -> None:
    ft = _bronze([
        {"USUBJID": "TL-001", "FTTESTCD": "SIXMW", "FTORRES": "420", "FTORRESU": "m", "FTDT": D(2020, 3, 30), "VISIT": "Day 28"},
        {"USUBJID": "TL-001", "FTTESTCD": "6MWT", "FTORRES": "1000", "FTORRESU": "ft", "FTDT": D(2020, 3, 1), "VISIT": "Baseline"},
        {"USUBJID": "TL-002", "FTTESTCD": "SIXMW", "FTORRES": "<100", "FTORRESU": "m", "FTDT": D(2020, 3, 3), "VISIT": "Baseline"},
        {"USUBJID": "TL-002", "FTTESTCD": "SIXMW", "FTORRES": "300", "FTORRESU": "s", "FTDT": D(2020, 3, 3), "VISIT": "Baseline"},
    ])
    sixmwt, rejected = derive_sixmwt(ft, subjects=SUBJECTS)
    # 1000 ft x 0.3048 m/ft (international foot) = 304.8 m; day 28 visit 2020-03-30 -> 03-30 - 03-02 + 1 = 29
    assert sixmwt.select("FTTESTCD", "FTSTRESN", "FTSTRESU", "FTDY", "VISIT").to_dicts() == [
        {"FTTESTCD": "SIXMW", "FTSTRESN": 420.0, "FTSTRESU": "m", "FTDY": 29, "VISIT": "Day 28"},
        {"FTTESTCD": "SIXMW", "FTSTRESN": 304.8, "FTSTRESU": "m", "FTDY": -1, "VISIT": "Baseline"},
    ]
    assert rejected.get_column("reason").to_list() == [
        "FTORRES is censored; only exact values are accepted here",
        "SIXMW: unit cannot be converted to m",
    ]
    assert set(rejected.get_column("stage")) == {"clinical_ft"}


def test_lung_function_in_litres_and_si_dlco() -> None:
    re_ = _bronze([
        {"USUBJID": "TL-001", "RETESTCD": "FVC", "REORRES": "3150", "REORRESU": "mL", "REDT": D(2020, 3, 30)},
        {"USUBJID": "TL-001", "RETESTCD": "VCMAX", "REORRES": "3,4", "REORRESU": "L", "REDT": D(2020, 3, 30)},
        {"USUBJID": "TL-001", "RETESTCD": "DLCO", "REORRES": "20", "REORRESU": "mL/min/mmHg", "REDT": D(2020, 3, 30)},
        {"USUBJID": "TL-001", "RETESTCD": "DLCO", "REORRES": "6.1", "REORRESU": "mmol/min/kPa", "REDT": D(2020, 3, 30)},
        {"USUBJID": "TL-001", "RETESTCD": "FEV1", "REORRES": "2.5", "REORRESU": "L", "REDT": D(2020, 3, 30)},
    ])
    lung, rejected = derive_lung_function(re_, subjects=SUBJECTS)
    # 3150 mL = 3.15 L; DLCO 20 mL/min/mmHg x 0.334849 (7.50062 mmHg/kPa / 22.4 mL/mmol, ERS/ATS) = 6.69698
    assert lung.select("RETESTCD", "RESTRESN", "RESTRESU").to_dicts() == [
        {"RETESTCD": "FVC", "RESTRESN": 3.15, "RESTRESU": "L"},
        {"RETESTCD": "MVC", "RESTRESN": 3.4, "RESTRESU": "L"},
        {"RETESTCD": "DLCO", "RESTRESN": 6.69698, "RESTRESU": "mmol/min/kPa"},
        {"RETESTCD": "DLCO", "RESTRESN": 6.1, "RESTRESU": "mmol/min/kPa"},
    ]
    assert rejected.get_column("reason").to_list()[0].startswith("unknown test name (RETESTCD/RETEST not in RE mapping")


def test_adverse_events_are_normalized_and_free_text_is_not_carried() -> None:
    ae = _bronze([
        {"USUBJID": "TL-001", "AEDECOD": "Headache", "AESEV": "mild", "AESER": "No", "AEREL": "Unlikely", "AESTDT": D(2020, 3, 4)},
        {"USUBJID": "TL-001", "AEDECOD": "Rash", "AESEV": None, "AETOXGR": "3", "AESER": "Oui", "AEREL": "probably-related", "AESTDT": D(2020, 3, 1)},
        {"USUBJID": "TL-002", "AEDECOD": "Fever", "AESEV": "Modéré", "AESER": "N", "AEREL": None, "AESTDT": D(2020, 3, 3)},
        {"USUBJID": "TL-002", "AEDECOD": "Cough", "AESEV": "awful", "AESER": "maybe", "AEREL": "who knows", "AESTDT": D(2020, 3, 3)},
        {"USUBJID": "TL-002", "AEDECOD": None, "AESEV": "MILD", "AESER": "N", "AEREL": None, "AESTDT": None},
    ])
    events, rejected = derive_adverse_events(ae, subjects=SUBJECTS)
    assert events.select("AEDECOD", "AESEV", "AESER", "AEREL", "AESTDY").to_dicts() == [
        {"AEDECOD": "Headache", "AESEV": "MILD", "AESER": "N", "AEREL": "UNLIKELY RELATED", "AESTDY": 3},
        {"AEDECOD": "Rash", "AESEV": "SEVERE", "AESER": "Y", "AEREL": "PROBABLY RELATED", "AESTDY": -1},
        {"AEDECOD": "Fever", "AESEV": "MODERATE", "AESER": "N", "AEREL": None, "AESTDY": 1},
    ]
    assert rejected.get_column("reason").to_list() == [
        "severity not recognised (AESEV given, AETOXGR empty); AESER given is not Y or N; "
        "AEREL is not a recognised causality",
        "AEDECOD is empty; AESTDTC is missing or not a complete date",
    ]
    assert "AETERM" not in events.columns


@pytest.mark.parametrize(
    ("function", "argument"),
    [(derive_exposure, "bronze_ex"), (derive_visits, "bronze_sv"), (derive_adverse_events, "bronze_ae")],
)
def test_missing_required_columns_are_named(function, argument: str) -> None:
    kwargs = {} if function is derive_exposure else {"subjects": SUBJECTS}
    with pytest.raises(ValueError, match=rf"{argument}: missing required column"):
        function(_bronze([{"USUBJID": "TL-001"}]), **kwargs)
