"""gold/endpoints and AE incidence on hand-built marts; expected tables worked out by hand."""
from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from trialake.marts.endpoints import (
    AE_COMPARISON_SCHEMA,
    ARM_COLUMNS,
    BLINDED,
    DESCRIPTIVE,
    ENDPOINT_SCHEMA,
    derive_ae_comparison,
    derive_blinded_endpoints,
    derive_endpoints,
    derive_hierarchy,
    derive_worst_rank,
)

TRT, CTL = "UC-MSC", "Placebo"
ENDPOINT_COLUMNS = [
    "PARAMCD", "PARAM", "PARAMN", "AVISIT", "AVISITN", "AVAR", "unit", "population", "trt_arm", "ctl_arm", "n_trt",
    "n_ctl", "median_trt", "q1_trt", "q3_trt", "median_ctl", "q1_ctl", "q3_ctl", "n_all", "median_all", "q1_all",
    "q3_all", "estimate", "ci_low", "ci_high", "conf_level", "p_value", "method", "missing_data", "primary",
    "hierarchy_rank", "alpha", "hierarchy_decision",
]  # the DESIGN.md contract columns, the pooled summaries and the analysis plan's marks


def _adsl() -> pl.DataFrame:
    # T5 is not in the full analysis set; X1 is in a third arm: neither may be counted.
    rows = [
        ("T1", TRT, "Y"), ("T2", TRT, "Y"), ("T3", TRT, "Y"), ("T4", TRT, "Y"), ("T5", TRT, "N"),
        ("C1", CTL, "Y"), ("C2", CTL, "Y"), ("C3", CTL, "Y"), ("X1", "Other", "Y"),
    ]
    return pl.DataFrame(
        {
            "USUBJID": [r[0] for r in rows],
            "TRT01P": [r[1] for r in rows],
            "FASFL": [r[2] for r in rows],
            "SAFFL": ["Y"] * 5 + ["N"] + ["Y"] * 3,  # C1 never dosed: not in the safety set
            "TRTSDT": [date(2020, 2, 1)] * len(rows),
            # C3 died on study day 20
            "DTHDT": [None] * 7 + [date(2020, 2, 20), None],
        }
    )


def _bds() -> pl.DataFrame:
    # (USUBJID, PARAMCD, AVISIT, AVISITN, ANL01FL, CHG, PCHG)
    records = [
        # baseline records carry no change
        *[(s, "LESPCT", "Baseline", 0.0, "Y", None, None) for s in ("T1", "T2", "T3", "T4", "C1", "C2", "C3")],
        ("T1", "SOLPCT", "Baseline", 0.0, "Y", None, None),
        # Day 28 LESPCT: CHG trt -10, -4, -7, -1; ctl -2, 3, 0. PCHG: T3 missing (complete cases).
        ("T1", "LESPCT", "Day 28", 28.0, "Y", -10.0, -50.0),
        ("T2", "LESPCT", "Day 28", 28.0, "Y", -4.0, -20.0),
        ("T3", "LESPCT", "Day 28", 28.0, "Y", -7.0, None),
        ("T4", "LESPCT", "Day 28", 28.0, "Y", -1.0, -5.0),
        ("C1", "LESPCT", "Day 28", 28.0, "Y", -2.0, -10.0),
        ("C2", "LESPCT", "Day 28", 28.0, "Y", 3.0, 15.0),
        ("C3", "LESPCT", "Day 28", 28.0, "Y", 0.0, 0.0),
        # a second scan in the window that lost the ANL01FL selection, a non-FAS and a third-arm subject
        ("T1", "LESPCT", "Day 28", 28.0, None, 99.0, 99.0),
        ("T5", "LESPCT", "Day 28", 28.0, "Y", -50.0, -90.0),
        ("X1", "LESPCT", "Day 28", 28.0, "Y", 42.0, 42.0),
        # Day 10: C3 missed the visit
        ("T1", "LESPCT", "Day 10", 10.0, "Y", -3.0, -15.0),
        ("T2", "LESPCT", "Day 10", 10.0, "Y", -2.5, -12.5),
        ("C1", "LESPCT", "Day 10", 10.0, "Y", 1.0, 5.0),
        ("C2", "LESPCT", "Day 10", 10.0, "Y", 0.5, 2.5),
        # SOLPCT: no placebo subject has a Day 10 value
        ("T1", "SOLPCT", "Day 10", 10.0, "Y", -1.0, -10.0),
        ("T2", "SOLPCT", "Day 10", 10.0, "Y", -2.0, -20.0),
        ("T1", "SOLPCT", "Day 28", 28.0, "Y", -1.5, -15.0),
        ("C1", "SOLPCT", "Day 28", 28.0, "Y", 0.5, 5.0),
    ]
    frame = pl.DataFrame(
        records,
        schema={"USUBJID": pl.String, "PARAMCD": pl.String, "AVISIT": pl.String, "AVISITN": pl.Float64,
                "ANL01FL": pl.String, "CHG": pl.Float64, "PCHG": pl.Float64},
        orient="row",
    )
    params = {"LESPCT": "Lesion volume (% of lung)", "SOLPCT": "Solid lesion volume (% of lung)"}
    return frame.with_columns(
        pl.col("PARAMCD").replace_strict(params).alias("PARAM"),
        pl.lit(TRT).alias("TRT01P"),  # a BDS column named like the ADSL one must not collide
        pl.when(pl.col("AVISIT") == "Baseline").then(pl.lit("Y")).alias("ABLFL"),
        pl.lit("%").alias("AVALU"),
        pl.col("PARAMCD").replace_strict({"LESPCT": 5, "SOLPCT": 7}, return_dtype=pl.Int64).alias("PARAMN"),
    )


def _endpoints(**kwargs) -> pl.DataFrame:
    return derive_endpoints(_bds(), _adsl(), treatment_arm=TRT, control_arm=CTL, visits=["Day 10", "Day 28"], **kwargs)


def _row(frame: pl.DataFrame, paramcd: str, visit: str, avar: str) -> dict:
    rows = frame.filter((pl.col("PARAMCD") == paramcd) & (pl.col("AVISIT") == visit) & (pl.col("AVAR") == avar))
    assert rows.height == 1
    return rows.row(0, named=True)


def test_one_row_per_parameter_visit_and_avar_with_the_contract_columns() -> None:
    result = _endpoints()
    assert result.columns == ENDPOINT_COLUMNS
    assert dict(result.schema) == ENDPOINT_SCHEMA
    assert result.select("PARAMCD", "AVISIT", "AVAR").rows() == [
        (p, v, a) for p in ("LESPCT", "SOLPCT") for v in ("Day 10", "Day 28") for a in ("CHG", "PCHG")
    ]
    assert set(result.get_column("missing_data")) == {"complete cases"}


def test_day28_change_worked_by_hand() -> None:
    """CHG trt (-10, -7, -4, -1), ctl (-2, 0, 3).

    Quartiles (R type 7): trt Q1 = -10 + 0.75 * 3 = -7.75, median -5.5, Q3 = -4 + 0.25 * 3 = -3.25;
    ctl Q1 = -1, median 0, Q3 = 1.5. The 12 differences sorted: -13 -10 -10 -8 -7 -7 | -5 -4 -4 -2 -1 1,
    HL estimate = (-7 + -5) / 2 = -6. No ties, n < 50: exact. W = ranks of trt in the pooled
    sample (1, 2, 3, 5) = 11 minus 4 * 5 / 2 = 1; P(W <= 1) = 2 / C(7, 3) = 2 / 35, P = 4 / 35.
    qwilcox(0.025, 4, 3) = 0 (1 / 35 >= 0.025) -> 1, so the CI is the 1st and 12th differences.
    """
    row = _row(_endpoints(), "LESPCT", "Day 28", "CHG")
    assert row["PARAM"] == "Lesion volume (% of lung)"
    assert row["AVISITN"] == 28.0
    assert (row["trt_arm"], row["ctl_arm"], row["n_trt"], row["n_ctl"]) == (TRT, CTL, 4, 3)
    assert (row["q1_trt"], row["median_trt"], row["q3_trt"]) == pytest.approx((-7.75, -5.5, -3.25))
    assert (row["q1_ctl"], row["median_ctl"], row["q3_ctl"]) == pytest.approx((-1.0, 0.0, 1.5))
    assert row["estimate"] == pytest.approx(-6.0)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((-13.0, 1.0))
    assert row["p_value"] == pytest.approx(4 / 35, abs=1e-12)
    assert row["conf_level"] == 0.95
    assert "Hodges-Lehmann" in row["method"] and "exact" in row["method"]


def test_day28_percent_change_uses_complete_cases() -> None:
    """PCHG trt (-50, -20, -5) (T3 missing), ctl (-10, 0, 15): differences
    -65 -50 -40 -35 -20 -20 -10 -5 5, median -20; W = (1 + 2 + 4) - 6 = 1, P = 2 * 2 / C(6, 3) = 0.2."""
    row = _row(_endpoints(), "LESPCT", "Day 28", "PCHG")
    assert (row["n_trt"], row["n_ctl"]) == (3, 3)
    assert row["median_trt"] == -20.0
    assert row["estimate"] == pytest.approx(-20.0)
    assert row["p_value"] == pytest.approx(0.2, abs=1e-12)


def test_missed_visit_reduces_n() -> None:
    """Day 10: C3 missed the visit. trt (-3, -2.5), ctl (1, 0.5): differences -4 -3.5 -3.5 -3, HL -3.5."""
    row = _row(_endpoints(), "LESPCT", "Day 10", "CHG")
    assert (row["n_trt"], row["n_ctl"]) == (2, 2)
    assert row["estimate"] == pytest.approx(-3.5)


def test_empty_arm_gives_nulls_and_says_why() -> None:
    row = _row(_endpoints(), "SOLPCT", "Day 10", "CHG")
    assert (row["n_trt"], row["n_ctl"]) == (2, 0)
    assert row["median_trt"] == pytest.approx(-1.5)
    assert row["median_ctl"] is None
    assert row["estimate"] is None and row["ci_low"] is None and row["p_value"] is None
    assert row["method"] == "not estimable: no Placebo subjects with a value"


def test_identical_values_are_not_estimable_not_an_error() -> None:
    bds = _bds().with_columns(pl.when(pl.col("AVISIT") == "Day 28").then(1.0).otherwise(pl.col("CHG")).alias("CHG"))
    result = derive_endpoints(bds, _adsl(), treatment_arm=TRT, control_arm=CTL, visits=["Day 28"])
    row = _row(result, "LESPCT", "Day 28", "CHG")
    assert (row["n_trt"], row["n_ctl"], row["median_trt"]) == (4, 3, 1.0)
    assert row["estimate"] is None
    assert row["method"].startswith("not estimable")


def test_visit_without_records_gives_empty_rows() -> None:
    result = derive_endpoints(_bds(), _adsl(), treatment_arm=TRT, control_arm=CTL, visits=["Day 90"])
    assert result.height == 4
    assert result.get_column("n_trt").to_list() == [0, 0, 0, 0]
    assert result.get_column("AVISITN").null_count() == 4


def test_two_analysis_records_for_one_visit_are_rejected() -> None:
    bds = _bds().with_columns(pl.col("ANL01FL").fill_null("Y"))
    with pytest.raises(ValueError, match=r"bds .*duplicated"):
        derive_endpoints(bds, _adsl(), treatment_arm=TRT, control_arm=CTL, visits=["Day 28"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"treatment_arm": "UCMSC"}, r"treatment_arm: 'UCMSC' is not a value of adsl.TRT01P"),
        ({"control_arm": TRT}, "both are"),
        ({"visits": "Day 28"}, "visits"),
        ({"visits": ["Day 28", "Day 28"]}, "visits: names must be unique"),
        ({"conf_level": 95}, "conf_level"),
    ],
)
def test_bad_arguments_are_named(kwargs, message) -> None:
    arguments = {"treatment_arm": TRT, "control_arm": CTL, "visits": ["Day 28"], **kwargs}
    with pytest.raises(ValueError, match=message):
        derive_endpoints(_bds(), _adsl(), **arguments)


def test_missing_column_is_named() -> None:
    with pytest.raises(ValueError, match=r"bds: missing column\(s\) \['PCHG'\]"):
        derive_endpoints(_bds().drop("PCHG"), _adsl(), treatment_arm=TRT, control_arm=CTL, visits=["Day 28"])


def test_pooled_summaries_units_and_populations() -> None:
    """Pooled Day 28 CHG: -10 -7 -4 -2 -1 0 3: median -2, Q1 -7 + 0.5 * 3 = -5.5, Q3 -1 + 0.5 = -0.5."""
    row = _row(_endpoints(), "LESPCT", "Day 28", "CHG")
    assert (row["n_all"], row["q1_all"], row["median_all"], row["q3_all"]) == (7, -5.5, -2.0, -0.5)
    assert (row["unit"], row["population"], row["PARAMN"]) == ("percentage points", "FASFL", 5)
    assert _row(_endpoints(), "LESPCT", "Day 28", "PCHG")["unit"] == "% of baseline"
    # the safety set for SOLPCT leaves C1 out: no placebo value at Day 28 then
    row = _row(_endpoints(populations={"SOLPCT": "SAFFL"}), "SOLPCT", "Day 28", "CHG")
    assert (row["population"], row["n_trt"], row["n_ctl"]) == ("SAFFL", 1, 0)


def test_descriptive_parameters_get_no_comparison() -> None:
    row = _row(_endpoints(descriptive_only=["LESPCT"]), "LESPCT", "Day 28", "CHG")
    assert (row["n_trt"], row["median_trt"], row["median_ctl"]) == (4, -5.5, 0.0)
    assert row["estimate"] is None and row["p_value"] is None and row["ci_low"] is None
    assert row["method"] == DESCRIPTIVE


def test_unknown_estimator_is_refused() -> None:
    with pytest.raises(ValueError, match="estimator: 't_test' is not one of"):
        _endpoints(estimator="t_test")


def test_blinded_endpoints_pool_the_arms_and_compare_nothing() -> None:
    blinded = derive_blinded_endpoints(_bds(), _adsl().drop("TRT01P"), visits=["Day 10", "Day 28"])
    unblinded = _endpoints()
    assert blinded.columns == ENDPOINT_COLUMNS
    assert blinded.select(ARM_COLUMNS).null_count().row(0) == (blinded.height,) * len(ARM_COLUMNS)
    # the pooled numbers are those of the unblinded table, minus X1 of the third arm
    pooled = ["n_all", "median_all", "q1_all", "q3_all"]
    row = _row(blinded, "LESPCT", "Day 28", "CHG")
    expected = _row(unblinded, "LESPCT", "Day 28", "CHG")
    # X1 (third arm, FAS) is pooled in the blinded table: 8 values, median (-2 + -1) / 2
    assert (row["n_all"], row["median_all"]) == (8, -1.5)
    assert expected["n_all"] == 7
    assert set(blinded["method"]) == {BLINDED}
    assert blinded.select(pooled).null_count().row(0)[0] == 0


def test_hierarchy_stops_at_the_first_test_not_rejected() -> None:
    """LESPCT Day 28 CHG: P = 4/35 = 0.114; LESPCT Day 10 CHG: P = 2 / C(4, 2) = 1/3."""
    order = [("LESPCT", "Day 28", "CHG"), ("LESPCT", "Day 10", "CHG"), ("LESPCT", "Day 28", "PCHG")]
    strict = derive_hierarchy(_endpoints(), primary=order[0], order=order, alpha=0.05)
    assert _row(strict, "LESPCT", "Day 28", "CHG")["primary"] == "Y"
    assert strict["primary"].drop_nulls().len() == 1
    decisions = [(_row(strict, *t)["hierarchy_rank"], _row(strict, *t)["hierarchy_decision"]) for t in order]
    assert decisions == [
        (1, "not rejected at alpha 0.05: testing stops"),
        (2, "not tested: an earlier test in the hierarchy was not rejected"),
        (3, "not tested: an earlier test in the hierarchy was not rejected"),
    ]
    lenient = derive_hierarchy(_endpoints(), primary=order[0], order=order, alpha=0.2)
    assert [_row(lenient, *t)["hierarchy_decision"] for t in order] == [
        "rejected at alpha 0.2 (P < 0.2)",
        "not rejected at alpha 0.2: testing stops",
        "not tested: an earlier test in the hierarchy was not rejected",
    ]
    # a test without a value yet (no SIXMW row) is marked nowhere and stops the sequence there
    waiting = [("SIXMW", "Day 28", "CHG"), *order]
    early = derive_hierarchy(_endpoints(), primary=waiting[0], order=waiting, alpha=0.2)
    assert early["primary"].drop_nulls().len() == 0
    assert [(_row(early, *t)["hierarchy_rank"], _row(early, *t)["hierarchy_decision"]) for t in order] == [
        (rank, "not tested: an earlier test in the hierarchy was not rejected") for rank in (2, 3, 4)]


def test_worst_rank_ranks_deaths_then_missing_values_last() -> None:
    """Day 28 CHG without T4 and C3: trt -10, -4, -7 and T4 missing; ctl -2, 3 and C3 dead on day 20.
    Lower is better, so the pooled ranks are -10 (1), -7 (2), -4 (3), -2 (4), 3 (5), T4 (6), C3 (7):
    W = 1 + 2 + 3 + 6 - 10 = 2, no ties: exact, P = 2 * (1 + 1 + 2) / 35 = 8/35."""
    bds = _bds().filter(~(pl.col("USUBJID").is_in(["T4", "C3"]) & (pl.col("AVISIT") == "Day 28")))
    result = derive_worst_rank(
        bds, _adsl(), tests=[("LESPCT", "Day 28", "CHG")], better={"LESPCT": "lower"}, window_end={"Day 28": 35},
        treatment_arm=TRT, control_arm=CTL,
    )
    row = result.row(0, named=True)
    assert (row["n_trt"], row["n_observed_trt"], row["n_died_trt"], row["n_missing_trt"]) == (4, 3, 0, 1)
    assert (row["n_ctl"], row["n_observed_ctl"], row["n_died_ctl"], row["n_missing_ctl"]) == (3, 2, 1, 0)
    assert row["p_value"] == pytest.approx(8 / 35, abs=1e-12)
    # higher is better: C3 (1), T4 (2), -10 (3), -7 (4), -4 (5), -2 (6), 3 (7); W = 2 + 3 + 4 + 5 - 10 = 4,
    # P = 2 * P(W <= 4) = 2 * (1 + 1 + 2 + 3 + 4) / 35 = 22/35
    higher = derive_worst_rank(
        bds, _adsl(), tests=[("LESPCT", "Day 28", "CHG")], better={"LESPCT": "higher"}, window_end={"Day 28": 35},
        treatment_arm=TRT, control_arm=CTL,
    )
    assert higher["p_value"][0] == pytest.approx(22 / 35, abs=1e-12)
    # a death after the window is a missing value, not a death
    late = derive_worst_rank(
        bds, _adsl(), tests=[("LESPCT", "Day 28", "CHG")], better={"LESPCT": "lower"}, window_end={"Day 28": 19},
        treatment_arm=TRT, control_arm=CTL,
    )
    assert (late["n_died_ctl"][0], late["n_missing_ctl"][0]) == (0, 1)


def _ae_incidence() -> pl.DataFrame:
    """summarize_ae_incidence's shape: a third arm, and no placebo row for "Related TEAE"."""
    rows = [
        ("Any TEAE", TRT, 3, 4), ("Any TEAE", CTL, 1, 3), ("Any TEAE", "Other", 1, 1),
        ("Serious TEAE", TRT, 1, 4), ("Serious TEAE", CTL, 0, 3),
        ("Related TEAE", TRT, 2, 4),
    ]
    return pl.DataFrame(rows, schema={"category": pl.String, "TRT01A": pl.String, "n": pl.Int64, "n_safety": pl.Int64}, orient="row")


def test_ae_comparison_by_hand() -> None:
    """Any TEAE: trt 3/4, ctl 1/3, difference 3/4 - 1/3. Fisher, table [[3, 1], [1, 2]]:
    hypergeometric probabilities of 1..4 trt events are 4, 18, 12, 1 (/35); those <= 12/35
    (the observed 3) sum to 17/35."""
    result = derive_ae_comparison(_ae_incidence(), treatment_arm=TRT, control_arm=CTL)
    assert result.columns == list(AE_COMPARISON_SCHEMA)
    assert result.select("category", "events_trt", "n_trt", "events_ctl", "n_ctl").rows() == [
        ("Any TEAE", 3, 4, 1, 3),
        ("Serious TEAE", 1, 4, 0, 3),
        ("Related TEAE", 2, 4, 0, 0),
    ]
    any_teae = result.row(0, named=True)
    assert any_teae["estimate"] == pytest.approx(3 / 4 - 1 / 3)
    assert any_teae["p_value"] == pytest.approx(17 / 35, abs=1e-12)
    assert any_teae["ci_low"] < any_teae["estimate"] < any_teae["ci_high"]
    assert "Newcombe" in any_teae["method"] and "Fisher" in any_teae["method"]
    serious = result.row(1, named=True)
    assert serious["p_value"] == pytest.approx(1.0)  # [[1, 3], [0, 3]]: P(X=1) = 4/7, P(X=0) = 3/7, both <= 4/7
    related = result.row(2, named=True)
    assert related["estimate"] is None and related["p_value"] is None
    assert related["method"] == "not estimable: no Placebo subjects in the safety population"


def test_ae_comparison_rejects_duplicated_categories() -> None:
    with pytest.raises(ValueError, match="ae_incidence: 1 duplicated key"):
        derive_ae_comparison(pl.concat([_ae_incidence(), _ae_incidence().head(1)]), treatment_arm=TRT, control_arm=CTL)
