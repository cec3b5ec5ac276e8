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
    N = None
    expected = pl.DataFrame(
        {
            "STUDYID": ["ST"] * 4,
            "USUBJID": ["P1", "P2", "P3", "P4"],
            "SUBJID": ["P1", "P2", "P3", "P4"],
            "SITEID": ["01", "02", "02", "01"],
            "AGE": [55, 61, 38, 40],
            "AGEU": ["YEARS"] * 4,
            "AGEGR1": ["<65"] * 4,
            "AGEGR1N": [1] * 4,
            "SEX": ["M", "F", "M", "F"],
            "RACE": [N] * 4,
            "ETHNIC": [N] * 4,
            "ARMCD": ["UCMSC", "PBO", "SCRNFAIL", "PBO"],
            "ARM": ["UC-MSC", "Placebo", "Screen Failure", "Placebo"],
            "ACTARMCD": ["UCMSC", "NOTTRT", "SCRNFAIL", None],
            "ACTARM": ["UC-MSC", "Not Treated", "Screen Failure", None],
            "TRT01P": ["UC-MSC", "Placebo", None, "Placebo"],
            "TRT01PN": [1, 2, N, 2],
            "TRT01A": ["UC-MSC", None, None, "Placebo"],
            "TRT01AN": [1, N, N, 2],
            "RANDDT": [N] * 4,
            "TRTSDT": [date(2020, 3, 1), None, None, date(2020, 3, 2)],
            "TRTEDT": [date(2020, 3, 8), None, None, date(2020, 3, 2)],
            "TRTDURD": [8, N, N, 1],
            "EOSDT": [N] * 4,
            "EOSSTT": ["ONGOING"] * 4,  # no disposition records
            "DCSREAS": [N] * 4,
            "DTHFL": [N] * 4,
            "DTHDT": [N] * 4,
            "DTHDTF": [N] * 4,
            "RANDFL": ["Y", "Y", "N", "Y"],
            "ITTFL": ["Y", "Y", "N", "Y"],
            "SAFFL": ["Y", "N", "N", "Y"],
        },
        schema_overrides={"RACE": pl.String, "ETHNIC": pl.String, "RANDDT": pl.Date, "EOSDT": pl.Date,
                          "DCSREAS": pl.String, "DTHFL": pl.String, "DTHDT": pl.Date, "DTHDTF": pl.String},
    )
    assert_frame_equal(derive_adsl(SUBJECTS, EXPOSURE, config=CONFIG), expected)


def test_disposition_deaths_and_groupings() -> None:
    """D1 completed; D2 withdrew; D3 died (DM gives only the month, DS the day); D4 died per DS
    only; D5 has no end-of-study record yet. USUBJID = STUDYID-SITEID-SUBJID except D5."""
    subjects = pl.DataFrame(
        {
            "USUBJID": ["ST-01-1001", "ST-01-1002", "ST-02-2001", "ST-02-2002", "X-5"],
            "STUDYID": ["ST"] * 5, "SITEID": ["01", "01", "02", "02", "02"], "SEX": ["F"] * 5,
            "AGE": [17, 18, 64, 65, None], "AGEU": ["YEARS"] * 5,
            "ARMCD": ["UCMSC"] * 5, "ARM": ["UC-MSC"] * 5, "ACTARMCD": ["UCMSC"] * 5, "ACTARM": ["UC-MSC"] * 5,
            "DTHFL": [None, None, "Y", None, None], "DTHDTC": [None, None, "2020-04", None, None],
        },
        schema_overrides={"AGE": pl.Int64},
    )
    ds = pl.DataFrame(
        [
            ("ST-01-1001", "PROTOCOL MILESTONE", "RANDOMIZED", "2020-03-01"),
            ("ST-01-1001", "DISPOSITION EVENT", "COMPLETED", "2020-04-02"),
            ("ST-01-1002", "DISPOSITION EVENT", "WITHDRAWAL BY SUBJECT", "2020-03-10"),
            ("ST-02-2001", "DISPOSITION EVENT", "DEATH", "2020-04-11"),
            ("ST-02-2002", "DISPOSITION EVENT", "DEATH", "2020-05"),
            ("X-5", "PROTOCOL MILESTONE", "RANDOMIZED", "2020-03-03"),
        ],
        schema=["USUBJID", "DSCAT", "DSDECOD", "DSSTDTC"],
        orient="row",
    )
    config = AnalysisConfig(age_groups=(18, 65))
    adsl = derive_adsl(subjects, EXPOSURE.head(0), ds, config=config)
    N = None
    assert adsl.select("SUBJID", "AGEGR1", "AGEGR1N", "RANDDT", "EOSDT", "EOSSTT", "DCSREAS", "DTHFL", "DTHDT", "DTHDTF").rows() == [
        ("1001", "<18", 1, date(2020, 3, 1), date(2020, 4, 2), "COMPLETED", N, N, N, N),
        ("1002", "18-64", 2, N, date(2020, 3, 10), "DISCONTINUED", "WITHDRAWAL BY SUBJECT", N, N, N),
        ("2001", "18-64", 2, N, date(2020, 4, 11), "DISCONTINUED", "DEATH", "Y", date(2020, 4, 1), "D"),
        ("2002", ">=65", 3, N, date(2020, 5, 1), "DISCONTINUED", "DEATH", "Y", date(2020, 5, 1), "D"),
        ("X-5", N, N, date(2020, 3, 3), N, "ONGOING", N, N, N, N),
    ]


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


def test_fas_needs_randomization_dosing_and_any_baseline_and_pp_needs_all_doses() -> None:
    adsl = pl.DataFrame(
        {
            "USUBJID": ["F1", "F2", "F3", "F4", "F5", "F6", "F7"],
            "ITTFL": ["Y", "Y", "Y", "Y", "N", "Y", "Y"],
            "SAFFL": ["Y", "Y", "Y", "N", "Y", "Y", "Y"],
            "ARMCD": ["A"] * 7,
            "ACTARMCD": ["A", "A", "A", "A", "A", "A", "B"],
        }
    )
    # F1 CT baseline and Day 28; F2 CT baseline only (its later scans failed): stays in FAS;
    # F3 post-baseline only; F4 not dosed; F5 not randomized; F6 a walk-test baseline only;
    # F7 baseline but got the other arm's treatment (FAS, not per protocol).
    adct = pl.DataFrame(
        [("F1", "Y"), ("F1", None), ("F2", "Y"), ("F2", None), ("F3", None), ("F4", "Y"), ("F5", "Y"), ("F7", "Y")],
        schema={"USUBJID": pl.String, "ABLFL": pl.String}, orient="row",
    )
    adft = pl.DataFrame({"USUBJID": ["F6", "F6"], "ABLFL": ["Y", None]})
    # three infusions each, but F2 only two (and one without a date)
    exposure = pl.DataFrame(
        {"USUBJID": [u for u in ("F1", "F3", "F6", "F7") for _ in range(3)] + ["F2"] * 3,
         "EXSTDT": [date(2020, 1, d) for _ in range(4) for d in (1, 4, 7)] + [date(2020, 1, 1), date(2020, 1, 4), None]}
    )
    expected = adsl.with_columns(
        FASFL=pl.Series(["Y", "Y", "N", "N", "N", "Y", "Y"]), PPROTFL=pl.Series(["Y", "N", "N", "N", "N", "Y", "N"])
    )
    config = AnalysisConfig(per_protocol_min_doses=3)
    assert_frame_equal(derive_fasfl(adsl, [adct, adft], exposure=exposure, config=config), expected)
