"""ADAE derivation and AE incidence, expected tables written by hand."""
from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trialake.marts import derive_adae, summarize_ae_by_term, summarize_ae_incidence

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
    # A1: rows 1, 2 and 6 ended before the first dose (not treatment-emergent); row 5 has no
    # dates (emergent) and no causality (counted as related). A3 was never dosed.
    expected = pl.DataFrame(
        [
            ("A1", "Fever", 3, "RELATED", -6, -5, N, N, N, N, N, N, 2),
            ("A1", "Headache", 1, "NOT RELATED", -3, -2, N, N, N, N, N, N, 1),
            ("A1", "Headache", 2, "RELATED", 1, 4, "Y", "Y", "Y", "Y", "Y", "Y", 3),
            ("A1", "Nausea", 2, "NOT RELATED", 3, N, "Y", N, "Y", "Y", N, "Y", 4),
            ("A1", "Headache", 2, "RELATED", N, N, "Y", N, N, N, N, N, 5),
            ("A1", "Rash", 1, "NOT RELATED", N, -11, N, N, N, N, N, N, 6),
            ("A2", "Cough", 3, "RELATED", 3, N, "Y", "Y", "Y", "Y", "Y", "Y", 7),
            ("A2", "Cough", 3, "NOT RELATED", 3, N, "Y", N, N, N, N, N, 8),
            ("A2", "Fatigue", 1, "NOT RELATED", 5, 6, "Y", N, "Y", "Y", N, "Y", 9),
            ("A3", "Headache", 1, "RELATED", N, N, N, N, N, N, N, N, 10),
        ],
        schema={"USUBJID": pl.String, "AEDECOD": pl.String, "ASEVN": pl.Int64, "AREL": pl.String,
                "ASTDY": pl.Int64, "AENDY": pl.Int64, "TRTEMFL": pl.String, "AOCCFL": pl.String,
                "AOCCSFL": pl.String, "AOCCPFL": pl.String, "AOCCIFL": pl.String, "AOCCPIFL": pl.String,
                "source_row": pl.Int64},
        orient="row",
    )
    assert_frame_equal(derive_adae(AES, ADSL).select(expected.columns), expected)


def test_partial_dates_are_imputed_as_admiral_and_the_window_ends_emergence() -> None:
    """A4: first dose 2020-05-02, last dose 2020-05-08, died 2020-06-10."""
    adsl = ADSL.with_columns(DTHDT=pl.when(pl.col("USUBJID") == "A4").then(pl.lit(date(2020, 6, 10))),
                             EOSDT=pl.lit(None, pl.Date), TRT01AN=pl.lit(1, pl.Int64))
    rows = [
        # month only, the first dose in that month: imputed to the first dose (not 2020-05-01)
        ("A4", 1, "Nausea", "2020-05", "2020-06"),
        # month only, before the first dose's month: the first of the month; ends in the month of death: by the death
        ("A4", 2, "Rash", "2020-04", "2020-06"),
        # year only: 1 January, unless the first dose is in that year (then the first dose)
        ("A4", 3, "Cough", "2020", None),
        # starts 31 days after the last dose: outside the 30-day window
        ("A4", 4, "Fatigue", "2020-06-08", None),
        # 30 days after the last dose: inside
        ("A4", 5, "Headache", "2020-06-07", None),
        # no start at all: kept, treatment-emergent
        ("A4", 6, "Pyrexia", None, None),
    ]
    events = pl.DataFrame(
        [(u, seq, decod, "Body", "MILD", "N", "NOT RELATED", start, end, "ae", seq) for u, seq, decod, start, end in rows],
        schema=["USUBJID", "AESEQ", "AEDECOD", "AEBODSYS", "AESEV", "AESER", "AEREL", "AESTDTC", "AEENDTC",
                "source_sha256", "source_row"],
        orient="row",
    )
    adae = derive_adae(events, adsl).sort("AESEQ")
    assert adae.select("AESEQ", "ASTDT", "ASTDTF", "AENDT", "AENDTF", "TRTEMFL", "TRTA", "TRTAN", "SRCDOM", "SRCSEQ").rows() == [
        (1, date(2020, 5, 2), "D", date(2020, 6, 10), "D", "Y", "UC-MSC", 1, "AE", 1),
        (2, date(2020, 4, 1), "D", date(2020, 6, 10), "D", N, "UC-MSC", 1, "AE", 2),
        (3, date(2020, 5, 2), "M", N, N, "Y", "UC-MSC", 1, "AE", 3),
        (4, date(2020, 6, 8), N, N, N, N, "UC-MSC", 1, "AE", 4),
        (5, date(2020, 6, 7), N, N, N, "Y", "UC-MSC", 1, "AE", 5),
        (6, N, N, N, N, "Y", "UC-MSC", 1, "AE", 6),
    ]
    assert derive_adae(events, adsl, window_days=None).sort("AESEQ")["TRTEMFL"].to_list() == ["Y", N, "Y", "Y", "Y", "Y"]
    # AOCCFL on the earliest treatment-emergent start (AESEQ 1, 2020-05-02; AESEQ 3 ties on date, later AESEQ)
    assert adae.filter(pl.col("AOCCFL") == "Y")["AESEQ"].to_list() == [1]


def test_incidence_counts_subjects_per_actual_arm_in_safety_set() -> None:
    expected = pl.DataFrame(
        {
            "category": ["Any TEAE"] * 2 + ["Serious TEAE"] * 2 + ["Severe TEAE"] * 2 + ["Related TEAE"] * 2
            + ["Fatal TEAE"] * 2,
            "TRT01A": ["Placebo", "UC-MSC"] * 5,
            "n": [1, 1, 1, 0, 1, 0, 1, 1, 0, 0],
            "n_safety": [1, 2] * 5,
            "pct": [100.0, 50.0, 100.0, 0.0, 100.0, 0.0, 100.0, 50.0, 0.0, 0.0],
        }
    )
    assert_frame_equal(summarize_ae_incidence(derive_adae(AES, ADSL), ADSL), expected)


def test_pooled_incidence_and_terms_name_no_arm() -> None:
    adae = derive_adae(AES, ADSL)
    pooled = summarize_ae_incidence(adae, ADSL, arm_variable=None)
    assert pooled.columns == ["category", "n", "n_safety", "pct"]
    assert pooled.select("n", "n_safety").rows()[:2] == [(2, 3), (1, 3)]  # any: A1, A2 of A1, A2, A4
    terms = summarize_ae_by_term(adae, ADSL, arm_variable=None)
    # every body system has one subject: alphabetical, each followed by its terms
    assert terms.select("AEBODSYS", "AEDECOD", "n").rows() == [
        ("Gastro", None, 1), ("Gastro", "Nausea", 1),
        ("General", None, 1), ("General", "Fatigue", 1),
        ("Nervous", None, 1), ("Nervous", "Headache", 1),
        ("Respiratory", None, 1), ("Respiratory", "Cough", 1),
    ]
    by_arm = summarize_ae_by_term(adae, ADSL, condition=pl.col("AESER") == "Y")
    assert by_arm.rows() == [
        ("Respiratory", None, "Placebo", 1, 1, 100.0), ("Respiratory", None, "UC-MSC", 0, 2, 0.0),
        ("Respiratory", "Cough", "Placebo", 1, 1, 100.0), ("Respiratory", "Cough", "UC-MSC", 0, 2, 0.0),
    ]


def test_unknown_severity_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"adverse_events: AESEV \['GRADE 3'\]"):
        derive_adae(AES.with_columns(AESEV=pl.lit("GRADE 3")), ADSL)
