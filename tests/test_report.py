"""The endpoint report: table values, embedded figures, provenance, and no identifying data."""
from __future__ import annotations

import base64
import re

import numpy as np
import polars as pl
import pytest

from trialake.marts.endpoints import AE_COMPARISON_SCHEMA, ENDPOINT_SCHEMA
from trialake.report import ReportOptions, render_endpoint_report

TRT, CTL = "UC-MSC", "Placebo"
# Identifying strings planted in columns the report must never render.
PHI = ["PHI-SUBJ-0001", "PHI-SUBJ-0007", "Zhang Wei", "MRN-8812734", "1961-04-09", "/landing/dicom/Zhang_Wei"]
CHECKSUM = "9f2c" * 16


def _adsl() -> pl.DataFrame:
    ids = [f"PHI-SUBJ-{i:04d}" for i in range(1, 11)]
    return pl.DataFrame(
        {
            "USUBJID": ids,
            "TRT01P": [TRT] * 6 + [CTL] * 4,
            "FASFL": ["Y"] * 10,
            "PATIENT_NAME": ["Zhang Wei"] * 10,
            "PATIENT_ID": ["MRN-8812734"] * 10,
            "BRTHDTC": ["1961-04-09"] * 10,
        }
    )


def _bds(params: dict[str, str], seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for subject in _adsl().get_column("USUBJID"):
        for paramcd, param in params.items():
            base = float(rng.uniform(20, 60))
            for visit, number in (("Baseline", 0.0), ("Day 10", 10.0), ("Day 28", 28.0)):
                aval = base if number == 0 else base + float(rng.normal(-5, 5))
                chg = None if number == 0 else aval - base
                rows.append((subject, paramcd, param, visit, number, "Y", aval, chg, None if chg is None else 100 * chg / base))
    frame = pl.DataFrame(
        rows,
        schema=["USUBJID", "PARAMCD", "PARAM", "AVISIT", "AVISITN", "ANL01FL", "AVAL", "CHG", "PCHG"],
        orient="row",
    )
    return frame.with_columns(pl.lit("/landing/dicom/Zhang_Wei/IM0001.dcm").alias("source_path"))


def _endpoints() -> pl.DataFrame:
    """Hand-written gold/endpoints rows (reference-trial-like numbers, one empty arm)."""
    common = {"trt_arm": TRT, "ctl_arm": CTL, "conf_level": 0.95, "missing_data": "complete cases"}
    rows = [
        {"PARAMCD": "LESPCT", "PARAM": "Lesion volume (% of lung)", "AVISIT": "Day 28", "AVISITN": 28.0, "AVAR": "CHG",
         "n_trt": 6, "n_ctl": 4, "median_trt": -20.5, "q1_trt": -30.25, "q3_trt": -5.0,
         "median_ctl": -7.125, "q1_ctl": -12.0, "q3_ctl": 1.5,
         "estimate": -13.31, "ci_low": -29.14, "ci_high": 2.13, "p_value": 0.0801,
         "method": "Hodges-Lehmann shift (UC-MSC minus Placebo); Wilcoxon rank sum exact test", **common},
        {"PARAMCD": "SOLPCT", "PARAM": "Solid lesion < -300 HU (% of lung)", "AVISIT": "Day 28", "AVISITN": 28.0,
         "AVAR": "CHG", "n_trt": 6, "n_ctl": 4, "median_trt": -16.0, "q1_trt": -22.0, "q3_trt": -9.5,
         "median_ctl": -1.0, "q1_ctl": -3.0, "q3_ctl": 0.25,
         "estimate": -15.45, "ci_low": -30.82, "ci_high": -0.39, "p_value": 0.0431,
         "method": "Hodges-Lehmann shift (UC-MSC minus Placebo); Wilcoxon rank sum exact test", **common},
        {"PARAMCD": "SIXMW", "PARAM": "6-minute walk distance (m)", "AVISIT": "Day 10", "AVISITN": 10.0, "AVAR": "PCHG",
         "n_trt": 6, "n_ctl": 4, "median_trt": 27.0, "q1_trt": 10.0, "q3_trt": 40.0,
         "median_ctl": 1.0, "q1_ctl": 0.0, "q3_ctl": 2.0,
         "estimate": 27.0, "ci_low": 20.0, "ci_high": 57.0, "p_value": 0.00004,
         "method": "Hodges-Lehmann shift (UC-MSC minus Placebo); Wilcoxon rank sum exact test", **common},
        {"PARAMCD": "SIXMW", "PARAM": "6-minute walk distance (m)", "AVISIT": "Day 28", "AVISITN": 28.0, "AVAR": "CHG",
         "n_trt": 6, "n_ctl": 0, "median_trt": 30.0, "q1_trt": 12.0, "q3_trt": 41.0,
         "median_ctl": None, "q1_ctl": None, "q3_ctl": None,
         "estimate": None, "ci_low": None, "ci_high": None, "p_value": None,
         "method": "not estimable: no Placebo subjects with a value", **common},
    ]
    return pl.DataFrame(rows, schema=ENDPOINT_SCHEMA)


def _adae_summary() -> pl.DataFrame:
    common = {"trt_arm": TRT, "ctl_arm": CTL, "conf_level": 0.95, "method": "Newcombe hybrid score CI; Fisher's exact test"}
    rows = [
        {"category": "Any TEAE", "events_trt": 3, "n_trt": 4, "events_ctl": 1, "n_ctl": 3,
         "proportion_trt": 0.75, "proportion_ctl": 1 / 3, "estimate": 0.75 - 1 / 3, "ci_low": -0.123, "ci_high": 0.781,
         "p_value": 17 / 35, **common},
        {"category": "Serious TEAE", "events_trt": 2, "n_trt": 4, "events_ctl": 0, "n_ctl": 3,
         "proportion_trt": 0.5, "proportion_ctl": 0.0, "estimate": 0.5, "ci_low": -0.1, "ci_high": 0.85,
         "p_value": 0.4286, **common},
    ]
    return pl.DataFrame(rows, schema=AE_COMPARISON_SCHEMA)


PROVENANCE = {"run_id": "run-20260101T020000Z", "code_version": "trialake 0.1.0 (abc1234)",
              "input_checksums": {"silver/ct_volumetry": CHECKSUM}}


@pytest.fixture(scope="module")
def report() -> str:
    adct = _bds({"LESPCT": "Lesion volume (% of lung)", "SOLPCT": "Solid lesion < -300 HU (% of lung)"}, seed=1)
    adft = _bds({"SIXMW": "6-minute walk distance (m)"}, seed=2)
    return render_endpoint_report(_endpoints(), _adsl(), adct, adft, _adae_summary(), PROVENANCE)


def test_results_table_shows_the_endpoint_values(report: str) -> None:
    for text in [
        "-13.31 (-29.14 to 2.13)", "0.080", "-20.50 (-30.25 to -5.00)", "-7.12 (-12.00 to 1.50)",
        "-15.45 (-30.82 to -0.39)", "0.043", "27.00 (20.00 to 57.00)", "&lt;0.001",
        "Difference<br>(95% CI)", "% change from baseline", "Wilcoxon rank sum exact test",
        "Missing data: complete cases", "UC-MSC minus Placebo",
    ]:
        assert text in report, text
    # the escaped parameter label, never the raw "<" that would break the page
    assert "Solid lesion &lt; -300 HU (% of lung)" in report
    assert "Solid lesion < -300" not in report
    assert report.count("<td>6-minute walk distance (m)</td>") == 1  # named once for its two rows


def test_empty_arm_row_shows_dashes_not_numbers(report: str) -> None:
    # the parameter is named on its block's first row (Day 10) only
    row = re.search(r"<tr><td></td><td>Day 28</td>.*?</tr>", report[report.index("6-minute walk"):]).group(0)
    assert row.count("&ndash;") == 3  # placebo median (IQR), difference, P
    assert "30.00 (12.00 to 41.00)" in row


def test_ae_table(report: str) -> None:
    for text in ["3/4 (75.0%)", "1/3 (33.3%)", "41.7 (-12.3 to 78.1)", "0.486", "2/4 (50.0%)", "0/3 (0.0%)", "Serious TEAE"]:
        assert text in report, text


def test_figures_are_embedded_pngs(report: str) -> None:
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", report)
    assert len(images) == 5  # box/strip per mart (2), waterfall (1), spaghetti per mart (2)
    for encoded in images:
        assert base64.b64decode(encoded).startswith(b"\x89PNG\r\n\x1a\n")
    assert "src='http" not in report and "<script" not in report


def test_provenance_footer(report: str) -> None:
    footer = report[report.index("<footer>"):]
    for text in ["run-20260101T020000Z", "trialake 0.1.0 (abc1234)", "silver/ct_volumetry", CHECKSUM]:
        assert text in footer


def test_no_identifying_data(report: str) -> None:
    for planted in PHI:
        assert planted not in report, planted
    assert "PHI-SUBJ" not in report  # not even pseudonymous subject ids


def test_waterfall_is_skipped_with_a_note_when_its_parameter_is_absent() -> None:
    adft = _bds({"SIXMW": "6-minute walk distance (m)"}, seed=2)
    html = render_endpoint_report(
        _endpoints(), _adsl(), adft.clear(), adft, _adae_summary(), PROVENANCE,
        options=ReportOptions(waterfall_paramcd="LESPCT"),
    )
    assert "No LESPCT CHG at Day 28" in html
    assert html.count("data:image/png;base64,") == 2  # adft box/strip and spaghetti only


@pytest.mark.parametrize(
    ("provenance", "message"),
    [
        ({"run_id": "r", "code_version": "v"}, r"provenance: missing key\(s\) \['input_checksums'\]"),
        ({"run_id": "r", "code_version": "v", "input_checksums": "abc"}, "input_checksums must map"),
    ],
)
def test_bad_provenance_is_named(provenance, message) -> None:
    adct = _bds({"LESPCT": "Lesion"}, seed=1)
    with pytest.raises(ValueError, match=message):
        render_endpoint_report(_endpoints(), _adsl(), adct, adct, _adae_summary(), provenance)


def test_two_arm_pairs_are_rejected() -> None:
    endpoints = _endpoints().with_columns(pl.when(pl.col("PARAMCD") == "SIXMW").then(pl.lit("Other")).otherwise("ctl_arm").alias("ctl_arm"))
    adct = _bds({"LESPCT": "Lesion"}, seed=1)
    with pytest.raises(ValueError, match="endpoints: expected one treatment/control pair"):
        render_endpoint_report(endpoints, _adsl(), adct, adct, _adae_summary(), PROVENANCE)


def test_spaghetti_lines_are_sampled_for_large_arms_and_say_so() -> None:
    adct = _bds({"LESPCT": "Lesion volume (% of lung)"}, seed=1)
    html = render_endpoint_report(
        _endpoints(), _adsl(), adct, adct.clear(), _adae_summary(), PROVENANCE,
        options=ReportOptions(spaghetti_max_subjects=5),
    )
    assert "Lines for a random 5 subjects of UC-MSC; medians from all subjects." in html  # 6 UC-MSC, 4 placebo
