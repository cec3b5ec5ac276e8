"""ADAE derivation and AE incidence, expected tables written by hand."""
from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trialake.marts import derive_adae, summarize_ae_incidence

N = None
ADSL = pl.DataFrame(
    {
        "STUDYID": ["ST"] * 4,
        "USUBJID": ["A1", "A2", "A3", "A4"],
        "SITEID": ["01"] * 4,
        "TRT01A": ["UC-MSC", "Placebo", None, "UC-MSC"],
        "TRTSDT": [date(2020, 5, 1), date(2020, 5, 8), None, date(2020, 5, 2)],
        "TRTEDT": [date(2020, 5, 7), date(2020, 5, 14), None, date(2020, 5, 8)],
        "SAFFL": ["Y", "Y", "N", "Y"],
    }
)
AE_SCHEMA = {"USUBJID": pl.String, "AEDECOD": pl.String, "AEBODSYS": pl.String, "AESEV": pl.String,
             "AESER": pl.String, "AEREL": pl.String, "AESTDT": pl.Date, "AEENDT": pl.Date,
             "source_sha256": pl.String, "source_row": pl.Int64}
AES = pl.DataFrame(
    [
        ("A1", "Headache", "Nervous", "MILD", "N", "NOT RELATED", date(2020, 4, 28), date(2020, 4, 29), "ae", 1),
        ("A1", "Fever", "General", "SEVERE", "Y", "POSSIBLY RELATED", date(2020, 4, 25), date(2020, 4, 26), "ae", 2),
        ("A1", "Headache", "Nervous", "MODERATE", "N", "RELATED", date(2020, 5, 1), date(2020, 5, 4), "ae", 3),
        ("A1", "Nausea", "Gastro", "MODERATE", "N", "NOT RELATED", date(2020, 5, 3), N, "ae", 4),
        ("A1", "Headache", "Nervous", "MODERATE", "N", N, N, N, "ae", 5),
        ("A1", "Rash", "Skin", "MILD", "N", "UNLIKELY RELATED", N, date(2020, 4, 20), "ae", 6),
        ("A2", "Cough", "Respiratory", "SEVERE", "N", "NOT RELATED", date(2020, 5, 10), N, "ae", 8),
        ("A2", "Cough", "Respiratory", "SEVERE", "Y", "PROBABLY RELATED", date(2020, 5, 10), N, "ae", 7),
        ("A2", "Fatigue", "General", "MILD", "N", "NOT RELATED", date(2020, 5, 12), date(2020, 5, 13), "ae", 9),
        ("A3", "Headache", "Nervous", "MILD", "N", "RELATED", date(2020, 5, 5), N, "ae", 10),
    ],
    schema=AE_SCHEMA,
    orient="row",
)


def test_adae_matches_hand_derived_table() -> None:
    expected = pl.DataFrame(
        [
            ("A1", "Fever", 3, "RELATED", -6, -5, N, N, N, 2),
            ("A1", "Headache", 1, "NOT RELATED", -3, -2, N, N, N, 1),
            ("A1", "Headache", 2, "RELATED", 1, 4, "Y", "Y", "Y", 3),
            ("A1", "Nausea", 2, "NOT RELATED", 3, N, "Y", N, "Y", 4),
            ("A1", "Headache", 2, N, N, N, "Y", N, N, 5),
            ("A1", "Rash", 1, "NOT RELATED", N, -11, N, N, N, 6),
            ("A2", "Cough", 3, "RELATED", 3, N, "Y", "Y", "Y", 7),
            ("A2", "Cough", 3, "NOT RELATED", 3, N, "Y", N, N, 8),
            ("A2", "Fatigue", 1, "NOT RELATED", 5, 6, "Y", N, "Y", 9),
            ("A3", "Headache", 1, "RELATED", N, N, N, N, N, 10),
        ],
        schema={"USUBJID": pl.String, "AEDECOD": pl.String, "ASEVN": pl.Int64, "AREL": pl.String,
                "ASTDY": pl.Int64, "AENDY": pl.Int64, "TRTEMFL": pl.String, "AOCCIFL": pl.String,
                "AOCPIFL": pl.String, "source_row": pl.Int64},
        orient="row",
    )
    assert_frame_equal(derive_adae(AES, ADSL).select(expected.columns), expected)


def test_incidence_counts_subjects_per_actual_arm_in_safety_set() -> None:
    expected = pl.DataFrame(
        {
            "category": ["Any TEAE"] * 2 + ["Serious TEAE"] * 2 + ["Severe TEAE"] * 2 + ["Related TEAE"] * 2,
            "TRT01A": ["Placebo", "UC-MSC"] * 4,
            "n": [1, 1, 1, 0, 1, 0, 1, 1],
            "n_safety": [1, 2] * 4,
            "pct": [100.0, 50.0, 100.0, 0.0, 100.0, 0.0, 100.0, 50.0],
        }
    )
    assert_frame_equal(summarize_ae_incidence(derive_adae(AES, ADSL), ADSL), expected)


def test_unknown_severity_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"adverse_events: AESEV \['GRADE 3'\]"):
        derive_adae(AES.with_columns(AESEV=pl.lit("GRADE 3")), ADSL)
