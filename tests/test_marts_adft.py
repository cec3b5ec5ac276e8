"""ADFT derivation: 6-minute walk and lung function, expected tables written by hand."""
from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trialake.clinical import TestSpec
from trialake.marts import AnalysisConfig, derive_adft

CONFIG = AnalysisConfig()
TESTS = {
    "SIXMW": TestSpec("SIXMW", "Walk", None, "m", None),
    "FVC": TestSpec("FVC", "FVC test", None, "L", None),
    "DLCO": TestSpec("DLCO", "DLCO test", None, "mmol/min/kPa", None),
}
ADSL = pl.DataFrame(
    {"STUDYID": ["ST", "ST"], "USUBJID": ["W1", "W2"], "SITEID": ["01", "02"], "TRT01P": ["UC-MSC", "Placebo"],
     "TRT01A": ["UC-MSC", "Placebo"], "TRTSDT": [date(2020, 5, 1), date(2020, 6, 1)]}
)
SIXMWT = pl.DataFrame(
    {
        "USUBJID": ["W1", "W1", "W1", "W1"],
        "FTTESTCD": ["SIXMW"] * 4,
        "FTSTRESN": [300.0, 360.0, 350.0, 420.0],
        "FTSTRESU": ["m"] * 4,
        # baseline day 0 does not exist: 2020-04-30 is day -1; two walks on day 28 from two files.
        "FTDT": [date(2020, 4, 30), date(2020, 5, 28), date(2020, 5, 28), date(2020, 5, 10)],
        "source_sha256": ["f2", "f2", "f1", "f2"],
        "source_row": [1, 2, 7, 3],
    }
)
LUNG = pl.DataFrame(
    {
        "USUBJID": ["W2", "W2", "W2", "W2"],
        "RETESTCD": ["DLCO", "DLCO", "DLCO", "FVC"],
        "RESTRESN": [6.0, 7.5, 8.0, 3.1],
        "RESTRESU": ["mmol/min/kPa"] * 3 + ["L"],
        # W2 day 1 baseline; two DLCO tests on day 28 in one file: source_row 4 beats 5.
        "REDT": [date(2020, 6, 1), date(2020, 6, 28), date(2020, 6, 28), date(2020, 6, 1)],
        "source_sha256": ["r1"] * 4,
        "source_row": [1, 5, 4, 2],
    }
)


def test_adft_matches_hand_derived_table() -> None:
    N = None
    dlco, unit, re_ = "DLCO test (mmol/min/kPa)", "mmol/min/kPa", "RE"
    expected = pl.DataFrame(
        [
            ("W1", "SIXMW", "Walk (m)", 300.0, "m", -1, "Baseline", "Y", "Y", 300.0, N, N, "FT", "f2", 1),
            ("W1", "SIXMW", "Walk (m)", 420.0, "m", 10, "Day 10", N, "Y", 300.0, 120.0, 40.0, "FT", "f2", 3),
            ("W1", "SIXMW", "Walk (m)", 350.0, "m", 28, "Day 28", N, "Y", 300.0, 50.0, 50.0 / 3, "FT", "f1", 7),
            ("W1", "SIXMW", "Walk (m)", 360.0, "m", 28, "Day 28", N, N, 300.0, 60.0, 20.0, "FT", "f2", 2),
            ("W2", "DLCO", dlco, 6.0, unit, 1, "Baseline", "Y", "Y", 6.0, N, N, re_, "r1", 1),
            ("W2", "DLCO", dlco, 8.0, unit, 28, "Day 28", N, "Y", 6.0, 2.0, 100.0 / 3, re_, "r1", 4),
            ("W2", "DLCO", dlco, 7.5, unit, 28, "Day 28", N, N, 6.0, 1.5, 25.0, re_, "r1", 5),
            ("W2", "FVC", "FVC test (L)", 3.1, "L", 1, "Baseline", "Y", "Y", 3.1, N, N, re_, "r1", 2),
        ],
        schema={"USUBJID": pl.String, "PARAMCD": pl.String, "PARAM": pl.String, "AVAL": pl.Float64,
                "AVALU": pl.String, "ADY": pl.Int64, "AVISIT": pl.String, "ABLFL": pl.String, "ANL01FL": pl.String,
                "BASE": pl.Float64, "CHG": pl.Float64, "PCHG": pl.Float64, "SRCDOM": pl.String,
                "source_sha256": pl.String, "source_row": pl.Int64},
        orient="row",
    )
    got = derive_adft(SIXMWT, LUNG, ADSL, config=CONFIG, tests=TESTS).select(expected.columns)
    assert_frame_equal(got, expected)


def test_default_tests_come_from_the_clinical_mappings() -> None:
    adft = derive_adft(SIXMWT, LUNG, ADSL, config=CONFIG)
    assert set(adft["PARAM"]) == {
        "6 Minute Walk Distance (m)",
        "Diffusing Capacity of the Lung for CO (mmol/min/kPa)",
        "Forced Vital Capacity (L)",
    }


def test_unit_other_than_the_standard_is_an_error() -> None:
    fvc = pl.col("RETESTCD") == "FVC"
    in_ml = LUNG.with_columns(RESTRESU=pl.when(fvc).then(pl.lit("mL")).otherwise("RESTRESU"))
    with pytest.raises(ValueError, match=r"lung_function: PARAMCD 'FVC' in unit\(s\) \['mL'\], expected 'L'"):
        derive_adft(SIXMWT, in_ml, ADSL, config=CONFIG, tests=TESTS)


def test_unknown_test_code_is_an_error() -> None:
    fev1 = LUNG.with_columns(RETESTCD=pl.lit("FEV1"))
    with pytest.raises(ValueError, match=r"lung_function: unknown test code\(s\) \['FEV1'\]"):
        derive_adft(SIXMWT, fev1, ADSL, config=CONFIG, tests=TESTS)
