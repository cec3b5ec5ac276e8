"""ADLB derivation: range indicators, baseline indicator and shift, expected table by hand."""
from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trialake.clinical import TestSpec
from trialake.marts import AnalysisConfig, derive_adlb

CONFIG = AnalysisConfig()
TESTS = {"CRP": TestSpec("CRP", "CRP test", None, "mg/L", None), "ALT": TestSpec("ALT", "ALT test", None, "U/L", None)}
ADSL = pl.DataFrame(
    {"STUDYID": ["ST"] * 3, "USUBJID": ["L1", "L2", "L3"], "SITEID": ["01", "02", "02"],
     "TRT01P": ["UC-MSC", "Placebo", "Placebo"], "TRT01A": ["UC-MSC", "Placebo", "Placebo"],
     "TRTSDT": [date(2020, 5, 1), date(2020, 5, 1), date(2020, 6, 1)]}
)
LAB_SCHEMA = {
    "USUBJID": pl.String, "LBTESTCD": pl.String, "LBSTRESC": pl.String, "LBSTRESN": pl.Float64,
    "LBSTRESU": pl.String, "LBSTNRLO": pl.Float64, "LBSTNRHI": pl.Float64, "LBNRIND": pl.String,
    "LBDT": pl.Date, "source_sha256": pl.String, "source_row": pl.Int64,
}
LABS = pl.DataFrame(
    [
        # L1: baseline NORMAL, Day 10 HIGH; in Day 28 a censored result on day 28 (a valid observation,
        # nearest the target) beats a numeric one on day 31.
        ("L1", "CRP", "4", 4.0, "mg/L", 0.0, 10.0, "NORMAL", date(2020, 4, 30), "a", 1),
        ("L1", "CRP", "25", 25.0, "mg/L", 0.0, 10.0, "HIGH", date(2020, 5, 10), "a", 2),
        ("L1", "CRP", "<0.5", None, "mg/L", 0.0, 10.0, "NORMAL", date(2020, 5, 28), "a", 3),
        ("L1", "CRP", "8", 8.0, "mg/L", 0.0, 10.0, "NORMAL", date(2020, 5, 31), "a", 4),
        # L2: no CRP baseline, so no BNRIND and no shift; an ALT result without a reference range.
        ("L2", "CRP", "12", 12.0, "mg/L", 0.0, 10.0, "HIGH", date(2020, 5, 9), "b", 1),
        ("L2", "ALT", "15", 15.0, "U/L", None, None, None, date(2020, 5, 1), "b", 2),
        # L3: censored baseline: it is the baseline record (BNRIND known) but there is no BASE or CHG;
        # an earlier numeric pre-dose value does not replace it.
        ("L3", "CRP", "6", 6.0, "mg/L", 0.0, 10.0, "NORMAL", date(2020, 5, 30), "c", 1),
        ("L3", "CRP", "<0.5", None, "mg/L", 0.0, 10.0, "NORMAL", date(2020, 6, 1), "c", 2),
        ("L3", "CRP", "25", 25.0, "mg/L", 0.0, 10.0, "HIGH", date(2020, 6, 10), "c", 3),
    ],
    schema=LAB_SCHEMA,
    orient="row",
)


def test_adlb_matches_hand_derived_table() -> None:
    N = None
    crp = "CRP test (mg/L)"
    expected = pl.DataFrame(
        [
            ("L1", "CRP", crp, 4.0, "4", -1, "Baseline", "Y", "Y", 4.0, N, "NORMAL", "NORMAL", N),
            ("L1", "CRP", crp, 25.0, "25", 10, "Day 10", N, "Y", 4.0, 21.0, "HIGH", "NORMAL", "NORMAL to HIGH"),
            ("L1", "CRP", crp, N, "<0.5", 28, "Day 28", N, "Y", 4.0, N, "NORMAL", "NORMAL", "NORMAL to NORMAL"),
            ("L1", "CRP", crp, 8.0, "8", 31, "Day 28", N, N, 4.0, 4.0, "NORMAL", "NORMAL", "NORMAL to NORMAL"),
            ("L2", "ALT", "ALT test (U/L)", 15.0, "15", 1, "Baseline", "Y", "Y", 15.0, N, N, N, N),
            ("L2", "CRP", crp, 12.0, "12", 9, "Day 10", N, "Y", N, N, "HIGH", N, N),
            ("L3", "CRP", crp, 6.0, "6", -2, "Baseline", N, N, N, N, "NORMAL", "NORMAL", N),
            ("L3", "CRP", crp, N, "<0.5", 1, "Baseline", "Y", "Y", N, N, "NORMAL", "NORMAL", N),
            ("L3", "CRP", crp, 25.0, "25", 10, "Day 10", N, "Y", N, N, "HIGH", "NORMAL", "NORMAL to HIGH"),
        ],
        schema={"USUBJID": pl.String, "PARAMCD": pl.String, "PARAM": pl.String, "AVAL": pl.Float64,
                "AVALC": pl.String, "ADY": pl.Int64, "AVISIT": pl.String, "ABLFL": pl.String, "ANL01FL": pl.String,
                "BASE": pl.Float64, "CHG": pl.Float64, "ANRIND": pl.String, "BNRIND": pl.String, "SHIFT1": pl.String},
        orient="row",
    )
    adlb = derive_adlb(LABS, ADSL, config=CONFIG, tests=TESTS)
    assert_frame_equal(adlb.select(expected.columns), expected)
    assert adlb.select("A1LO", "A1HI").row(0) == (0.0, 10.0)


def test_result_in_another_unit_than_the_standard_is_an_error() -> None:
    second = (pl.col("source_sha256") == "a") & (pl.col("source_row") == 2)
    mixed = LABS.with_columns(LBSTRESU=pl.when(second).then(pl.lit("mg/dL")).otherwise("LBSTRESU"))
    with pytest.raises(ValueError, match=r"labs: PARAMCD 'CRP' in unit\(s\) \['mg/dL'\], expected 'mg/L'"):
        derive_adlb(mixed, ADSL, config=CONFIG, tests=TESTS)


def test_unknown_test_code_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"labs: unknown test code\(s\) \['ALT'\]"):
        derive_adlb(LABS, ADSL, config=CONFIG, tests={"CRP": TESTS["CRP"]})


def test_default_tests_come_from_the_clinical_lab_mapping() -> None:
    adlb = derive_adlb(LABS, ADSL, config=CONFIG)
    assert set(adlb["PARAM"]) == {"C Reactive Protein (mg/L)", "Alanine Aminotransferase (U/L)"}
