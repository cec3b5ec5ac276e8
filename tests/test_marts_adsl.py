"""ADSL and FASFL derivations against hand-written expected tables."""
from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trialake.marts import AnalysisConfig, ArmSpec, derive_adsl, derive_fasfl

CONFIG = AnalysisConfig()
SUBJECTS = pl.DataFrame(
    {
        "USUBJID": ["P4", "P1", "P2", "P3"],
        "STUDYID": ["ST"] * 4,
        "SITEID": ["01", "01", "02", "02"],
        "SEX": ["F", "M", "F", "M"],
        "AGE": [40, 55, 61, 38],
        "AGEU": ["YEARS"] * 4,
        # P1 treated; P2 randomized, never dosed; P3 screen failure; P4 placebo, ACTARM not sent.
        "ARMCD": ["PBO", "UCMSC", "PBO", "SCRNFAIL"],
        "ARM": ["Placebo", "UC-MSC", "Placebo", "Screen Failure"],
        "ACTARMCD": [None, "UCMSC", "NOTTRT", "SCRNFAIL"],
        "ACTARM": [None, "UC-MSC", "Not Treated", "Screen Failure"],
        "RFSTDT": [date(2020, 3, 2), date(2020, 3, 1), None, None],
        "run_id": ["r"] * 4,
    },
    schema_overrides={"AGE": pl.Int32},
)
EXPOSURE = pl.DataFrame(
    {
        "USUBJID": ["P1", "P1", "P1", "P4", "P4"],
        "EXTRT": ["UC-MSC", "UC-MSC", "UC-MSC", "PLACEBO", "PLACEBO"],
        "EXDOSE": [4e7, 4e7, 4e7, 0.0, 0.0],  # a placebo infusion is a dose
        "EXSTDT": [date(2020, 3, 7), date(2020, 3, 1), date(2020, 3, 4), date(2020, 3, 2), None],
        "EXENDT": [date(2020, 3, 8), None, None, None, None],  # P1's last infusion ended a day later
    }
)


def test_adsl_matches_hand_derived_table() -> None:
    expected = pl.DataFrame(
        {
            "STUDYID": ["ST"] * 4,
            "USUBJID": ["P1", "P2", "P3", "P4"],
            "SITEID": ["01", "02", "02", "01"],
            "AGE": [55, 61, 38, 40],
            "AGEU": ["YEARS"] * 4,
            "SEX": ["M", "F", "M", "F"],
            "ARMCD": ["UCMSC", "PBO", "SCRNFAIL", "PBO"],
            "ARM": ["UC-MSC", "Placebo", "Screen Failure", "Placebo"],
            "ACTARMCD": ["UCMSC", "NOTTRT", "SCRNFAIL", None],
            "ACTARM": ["UC-MSC", "Not Treated", "Screen Failure", None],
            "TRT01P": ["UC-MSC", "Placebo", None, "Placebo"],
            "TRT01A": ["UC-MSC", None, None, "Placebo"],
            "TRTSDT": [date(2020, 3, 1), None, None, date(2020, 3, 2)],
            "TRTEDT": [date(2020, 3, 8), None, None, date(2020, 3, 2)],
            "RANDFL": ["Y", "Y", "N", "Y"],
            "ITTFL": ["Y", "Y", "N", "Y"],
            "SAFFL": ["Y", "N", "N", "Y"],
        }
    )
    assert_frame_equal(derive_adsl(SUBJECTS, EXPOSURE, config=CONFIG), expected)


def test_last_dose_falls_back_to_start_dates_without_exendt() -> None:
    adsl = derive_adsl(SUBJECTS, EXPOSURE.drop("EXENDT"), config=CONFIG)
    assert adsl["TRTEDT"].to_list() == [date(2020, 3, 7), None, None, date(2020, 3, 2)]


def test_randomization_follows_configured_arms() -> None:
    other = AnalysisConfig(treatment=ArmSpec("A", "Drug A"), control=ArmSpec("PBO", "Placebo"))
    adsl = derive_adsl(SUBJECTS, EXPOSURE, config=other)
    assert adsl["RANDFL"].to_list() == ["N", "Y", "N", "Y"]


def test_exposure_of_unknown_subject_is_an_error() -> None:
    stray = pl.DataFrame({"USUBJID": ["P9"], "EXSTDT": [date(2020, 1, 1)]})
    with pytest.raises(ValueError, match="exposure: 1 subject.*'P9'"):
        derive_adsl(SUBJECTS, pl.concat([EXPOSURE.select(stray.columns), stray]), config=CONFIG)


def test_duplicated_subject_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"subjects: 1 duplicated key\(s\) \['USUBJID'\]"):
        derive_adsl(pl.concat([SUBJECTS, SUBJECTS.tail(1)]), EXPOSURE, config=CONFIG)


def test_missing_subject_column_is_named() -> None:
    with pytest.raises(ValueError, match=r"subjects: missing column\(s\) \['ARMCD'\]"):
        derive_adsl(SUBJECTS.drop("ARMCD"), EXPOSURE, config=CONFIG)


def test_fasfl_needs_itt_safety_baseline_and_post_baseline_value() -> None:
    adsl = pl.DataFrame(
        {
            "USUBJID": ["F1", "F2", "F3", "F4", "F5", "F6"],
            "ITTFL": ["Y", "Y", "Y", "Y", "N", "Y"],
            "SAFFL": ["Y", "Y", "Y", "N", "Y", "Y"],
        }
    )
    # F1 complete; F2 baseline only; F3 post-baseline only; F4 not dosed; F5 not randomized;
    # F6 complete for LESVOL but its LESPCT Day 10 record is not an analysis record.
    adct = pl.DataFrame(
        [
            ("F1", "LESPCT", "Y", "Y", 0.0), ("F1", "LESPCT", None, "Y", 28.0),
            ("F2", "LESPCT", "Y", "Y", 0.0), ("F2", "LESPCT", None, None, 10.0),
            ("F3", "LESPCT", None, "Y", 10.0),
            ("F4", "LESPCT", "Y", "Y", 0.0), ("F4", "LESPCT", None, "Y", 10.0),
            ("F5", "LESPCT", "Y", "Y", 0.0), ("F5", "LESPCT", None, "Y", 10.0),
            ("F6", "LESVOL", "Y", "Y", 0.0), ("F6", "LESVOL", None, "Y", 10.0),
            ("F6", "LESPCT", "Y", "Y", 0.0), ("F6", "LESPCT", None, None, 10.0),
        ],
        schema={"USUBJID": pl.String, "PARAMCD": pl.String, "ABLFL": pl.String, "ANL01FL": pl.String,
                "AVISITN": pl.Float64},
        orient="row",
    )
    expected = adsl.with_columns(FASFL=pl.Series(["Y", "N", "N", "N", "N", "N"]))
    assert_frame_equal(derive_fasfl(adsl, adct, config=CONFIG), expected)
