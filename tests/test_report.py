"""The endpoint report: table values, embedded figures, provenance, blinding, no identifying data."""
from __future__ import annotations

import base64
import re
from datetime import date

import numpy as np
import polars as pl
import pytest

from trialake.marts.endpoints import AE_COMPARISON_SCHEMA, BLINDED, ENDPOINT_SCHEMA
from trialake.report import ReportInputs, ReportOptions, change_label, render_endpoint_report

TRT, CTL = "UC-MSC", "Placebo"
# Identifying strings planted in columns the report must never render.
PHI = ["PHI-SUBJ-0001", "PHI-SUBJ-0007", "Zhang Wei", "MRN-8812734", "1961-04-09", "/landing/dicom/Zhang_Wei"]
CHECKSUM = "9f2c" * 16
N = None


def _adsl() -> pl.DataFrame:
    """10 randomized (1-6 UC-MSC, 7-10 placebo): PHI-SUBJ-0006 never dosed (not in FAS) and
    withdrew, PHI-SUBJ-0007 died on day 20; PHI-SUBJ-0011 not randomized."""
    ids = [f"PHI-SUBJ-{i:04d}" for i in range(1, 12)]
    arm = [TRT] * 6 + [CTL] * 4 + [None]
    return pl.DataFrame(
        {
            "USUBJID": ids,
            "TRT01P": arm,
            "TRT01A": [TRT] * 5 + [None] + [CTL] * 4 + [None],
            "RANDFL": ["Y"] * 10 + ["N"],
            "SAFFL": ["Y"] * 5 + ["N"] + ["Y"] * 4 + ["N"],
            "FASFL": ["Y"] * 5 + ["N"] + ["Y"] * 4 + ["N"],
            "AGE": [40, 50, 60, 70, 80, 45, 55, 65, 75, 66, 30],
            "AGEGR1": ["<65", "<65", "<65", ">=65", ">=65", "<65", "<65", ">=65", ">=65", ">=65", "<65"],
            "SEX": ["F", "M"] * 5 + ["F"],
            "RACE": ["ASIAN"] * 11,
            "ETHNIC": ["NOT HISPANIC OR LATINO"] * 11,
            "EOSSTT": ["COMPLETED"] * 5 + ["DISCONTINUED", "DISCONTINUED"] + ["COMPLETED"] * 3 + [None],
            "DCSREAS": [N] * 5 + ["WITHDRAWAL BY SUBJECT", "DEATH"] + [N] * 4,
            "DTHFL": [N] * 6 + ["Y"] + [N] * 4,
            "TRTSDT": [date(2020, 3, 1)] * 5 + [None] + [date(2020, 3, 1)] * 4 + [None],
            "DTHDT": [N] * 6 + [date(2020, 3, 20)] + [N] * 4,
            "PATIENT_NAME": ["Zhang Wei"] * 11,
            "PATIENT_ID": ["MRN-8812734"] * 11,
            "BRTHDTC": ["1961-04-09"] * 11,
        },
        schema_overrides={"DCSREAS": pl.String, "DTHFL": pl.String, "DTHDT": pl.Date},
    )


def _bds(params: dict[str, str], seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for subject in _adsl().get_column("USUBJID")[:10]:
        for paramcd, param in params.items():
            base = float(rng.uniform(20, 60))
            for visit, number, day in (("Baseline", 0.0, 1), ("Day 10", 10.0, 10), ("Day 28", 28.0, 28)):
                if subject == "PHI-SUBJ-0007" and number == 28.0:
                    continue  # died on day 20
                aval = base if number == 0 else base + float(rng.normal(-5, 5))
                chg = None if number == 0 else aval - base
                rows.append((subject, paramcd, param, visit, number, day, "Y", "Y" if number == 0 else None, aval, chg,
                             None if chg is None else 100 * chg / base))
    frame = pl.DataFrame(
        rows,
        schema=["USUBJID", "PARAMCD", "PARAM", "AVISIT", "AVISITN", "ADY", "ANL01FL", "ABLFL", "AVAL", "CHG", "PCHG"],
        orient="row",
    )
    return frame.with_columns(pl.lit("/landing/dicom/Zhang_Wei/IM0001.dcm").alias("source_path"))


def _adlb() -> pl.DataFrame:
    """ALT (ULN 40): subject 1 NORMAL -> HIGH (grade 2 at 130, 3.25 x ULN), subject 8 stays NORMAL."""
    rows = [
        ("PHI-SUBJ-0001", 1, "NORMAL", 20.0, 0), ("PHI-SUBJ-0001", 10, "HIGH", 130.0, 2), ("PHI-SUBJ-0001", 28, "HIGH", 50.0, 1),
        ("PHI-SUBJ-0008", 1, "NORMAL", 25.0, 0), ("PHI-SUBJ-0008", 28, "NORMAL", 30.0, 0),
    ]
    frame = pl.DataFrame(rows, schema=["USUBJID", "ADY", "ANRIND", "AVAL", "ATOXGRN"], orient="row")
    return frame.with_columns(
        PARAMCD=pl.lit("ALT"), PARAM=pl.lit("Alanine Aminotransferase (U/L)"), PARAMN=pl.lit(1),
        ABLFL=pl.when(pl.col("ADY") == 1).then(pl.lit("Y")), A1LO=pl.lit(0.0), A1HI=pl.lit(40.0),
        BNRIND=pl.lit("NORMAL"), BTOXGRN=pl.lit(0),
    )


def _adae() -> pl.DataFrame:
    rows = [
        ("PHI-SUBJ-0001", "Nervous system disorders", "Headache", "N", "MILD", "RELATED", "RECOVERED/RESOLVED"),
        ("PHI-SUBJ-0002", "Nervous system disorders", "Headache", "N", "MILD", "NOT RELATED", "RECOVERED/RESOLVED"),
        ("PHI-SUBJ-0007", "Infections and infestations", "COVID-19 pneumonia", "Y", "SEVERE", "NOT RELATED", "FATAL"),
    ]
    frame = pl.DataFrame(rows, schema=["USUBJID", "AEBODSYS", "AEDECOD", "AESER", "ASEV", "AREL", "AEOUT"], orient="row")
    return frame.with_columns(TRTEMFL=pl.lit("Y"))


def _ae_incidence() -> pl.DataFrame:
    rows = [("Any TEAE", TRT, 2, 5), ("Any TEAE", CTL, 1, 4), ("Fatal TEAE", TRT, 0, 5), ("Fatal TEAE", CTL, 1, 4)]
    return pl.DataFrame(rows, schema=["category", "TRT01A", "n", "n_safety"], orient="row")


def _endpoints() -> pl.DataFrame:
    """Hand-written gold/endpoints rows: the primary (marked, first in the hierarchy), a
    descriptive parameter, and a visit nobody attended."""
    common = {"trt_arm": TRT, "ctl_arm": CTL, "conf_level": 0.95, "missing_data": "complete cases", "population": "FASFL"}
    method = "Hodges-Lehmann shift (UC-MSC minus Placebo); Wilcoxon rank sum exact test"
    rows = [
        {"PARAMCD": "SIXMW", "PARAM": "6-minute walk distance (m)", "PARAMN": 8, "AVISIT": "Day 28", "AVISITN": 28.0,
         "AVAR": "CHG", "unit": "m", "n_trt": 4, "n_ctl": 3, "median_trt": 30.0, "q1_trt": 12.0, "q3_trt": 41.0,
         "median_ctl": 2.0, "q1_ctl": 0.0, "q3_ctl": 5.0, "n_all": 7, "median_all": 12.0, "q1_all": 1.0, "q3_all": 35.0,
         "estimate": 27.0, "ci_low": 0.0, "ci_high": 57.0, "p_value": 0.057, "method": method,
         "hierarchy_rank": 2, "alpha": 0.05, "hierarchy_decision": "not tested: an earlier test in the hierarchy was not rejected", **common},
        {"PARAMCD": "LESPCT", "PARAM": "Lesion volume (% of lung)", "PARAMN": 5, "AVISIT": "Day 28", "AVISITN": 28.0,
         "AVAR": "CHG", "unit": "percentage points", "n_trt": 4, "n_ctl": 3, "median_trt": -20.5, "q1_trt": -30.25,
         "q3_trt": -5.0, "median_ctl": -7.125, "q1_ctl": -12.0, "q3_ctl": 1.5, "n_all": 7, "median_all": -12.0,
         "q1_all": -20.0, "q3_all": -3.0, "estimate": -13.31, "ci_low": -29.14, "ci_high": 2.13, "p_value": 0.0801,
         "method": method, "primary": "Y", "hierarchy_rank": 1, "alpha": 0.05,
         "hierarchy_decision": "not rejected at alpha 0.05: testing stops", **common},
        {"PARAMCD": "LESPCT", "PARAM": "Lesion volume (% of lung)", "PARAMN": 5, "AVISIT": "Day 28", "AVISITN": 28.0,
         "AVAR": "PCHG", "unit": "% of baseline", "n_trt": 4, "n_ctl": 3, "median_trt": -40.0, "q1_trt": -50.0,
         "q3_trt": -10.0, "median_ctl": -10.0, "q1_ctl": -20.0, "q3_ctl": 5.0, "n_all": 7, "median_all": -20.0,
         "q1_all": -45.0, "q3_all": -5.0, "estimate": -31.5, "ci_low": -60.25, "ci_high": 4.75, "p_value": 0.00004,
         "method": method, **common},
        {"PARAMCD": "LUNGVOL", "PARAM": "Whole-lung volume (mL)", "PARAMN": 1, "AVISIT": "Day 28", "AVISITN": 28.0,
         "AVAR": "CHG", "unit": "mL", "n_trt": 4, "n_ctl": 3, "median_trt": 12.0, "q1_trt": 1.0, "q3_trt": 20.0,
         "median_ctl": 3.0, "q1_ctl": 0.0, "q3_ctl": 9.0, "n_all": 7, "median_all": 7.0, "q1_all": 1.0, "q3_all": 15.0,
         "method": "descriptive only (no comparison)", **common},
        {"PARAMCD": "LESPCT", "PARAM": "Lesion volume (% of lung)", "PARAMN": 5, "AVISIT": "Day 90", "AVISITN": 90.0,
         "AVAR": "CHG", "unit": "percentage points", "n_trt": 0, "n_ctl": 0, "n_all": 0,
         "method": "not estimable: no UC-MSC or Placebo subjects with a value", **common},
    ]
    return pl.DataFrame(rows, schema=ENDPOINT_SCHEMA)


def _ae_comparison() -> pl.DataFrame:
    common = {"trt_arm": TRT, "ctl_arm": CTL, "conf_level": 0.95, "method": "Newcombe hybrid score CI; Fisher's exact test"}
    rows = [{"category": "Any TEAE", "events_trt": 2, "n_trt": 5, "events_ctl": 1, "n_ctl": 4, "proportion_trt": 0.4,
             "proportion_ctl": 0.25, "estimate": 0.15, "ci_low": -0.4, "ci_high": 0.6, "p_value": 1.0, **common}]
    return pl.DataFrame(rows, schema=AE_COMPARISON_SCHEMA)


PROVENANCE = {"run_id": "run-20260101T020000Z", "code_version": "trialake 0.1.0 (abc1234)", "lake_version": "inputs 0123abcd",
              "input_checksums": {"silver/ct_volumetry": CHECKSUM}}
METHODS = (("Primary endpoint", "LESPCT at Day 28, change from baseline (percentage points)"),
           ("Missing data, sensitivity analysis", "worst rank: deaths ranked worst"))


def _inputs(**changes) -> ReportInputs:
    adct = _bds({"LESPCT": "Lesion volume (% of lung)", "SOLPCT": "Solid lesion < -300 HU (% of lung)"}, seed=1)
    adft = _bds({"SIXMW": "6-minute walk distance (m)"}, seed=2)
    base = {"endpoints": _endpoints(), "adsl": _adsl(), "adct": adct, "adft": adft, "adlb": _adlb(), "adae": _adae(),
            "ae_incidence": _ae_incidence(), "ae_comparison": _ae_comparison()}
    return ReportInputs(**(base | changes))


OPTIONS = ReportOptions(title="Endpoint report: TEST", study_id="TEST-1", methods=METHODS, data_cut="every record received by 2026-01-01",
                        provenance=PROVENANCE, primary_window=(21, 35), dpi=40)


@pytest.fixture(scope="module")
def report() -> str:
    return render_endpoint_report(_inputs(), OPTIONS)


def _section(page: str, heading: str) -> str:
    start = page.index(f"<h2>{heading}")
    following = page.find("<h2>", start + 4)
    return page[start:following if following > 0 else None]


def test_primary_endpoint_comes_first_marked_with_the_hierarchy(report: str) -> None:
    results = _section(report, "Results")
    rows = re.findall(r"<tr class=\"(primary)?\"><td>(.*?)</td>", results)
    assert [label for _, label in rows] == [
        "PRIMARY: Lesion volume (% of lung)", "6-minute walk distance (m)", "Lesion volume (% of lung)", "Whole-lung volume (mL)",
    ]
    assert rows[0][0] == "primary"
    for text in ["-13.31 (-29.14 to 2.13)", "0.080", "1. not rejected at alpha 0.05: testing stops",
                 "2. not tested: an earlier test in the hierarchy was not rejected", "&lt;0.001",
                 "-20.50 (-30.25 to -5.00)", "-7.12 (-12.00 to 1.50)", "Difference<br>(95% CI)", "UC-MSC minus Placebo"]:
        assert text in results, text


def test_no_empty_rows_and_descriptive_parameters_have_no_comparison(report: str) -> None:
    results = _section(report, "Results")
    assert "Day 90" not in results  # n = 0 in both arms
    lung = re.search(r"<td>Whole-lung volume \(mL\)</td>.*?</tr>", results, re.S).group(0)
    assert "descriptive only" in lung and "12.00 (1.00 to 20.00)" in lung and "0." not in lung.split("descriptive only")[1]


def test_units_of_changes_are_unambiguous() -> None:
    assert change_label("CHG", "percentage points") == "change from baseline (percentage points)"
    assert change_label("PCHG", "% of baseline") == "relative change from baseline (% of the baseline value)"
    assert change_label("CHG", "m") == "change from baseline (m)"


def test_consort_counts_and_reasons(report: str) -> None:
    flow = _section(report, "Subject flow")

    def cells(label: str) -> list[str]:
        row = re.search(rf"<td class=\"level\d\">{re.escape(label)}</td>(.*?)</tr>", flow, re.S).group(1)
        return re.findall(r"<td>(.*?)</td>", row)

    assert cells("Enrolled (in the subject-level dataset)")[-1] == "11"
    assert cells("Randomized") == ["6", "4", "10"]
    assert cells("Never dosed") == ["1", "0", "1"]
    assert cells("Analysis population (FASFL)") == ["5", "4", "9"]
    assert cells("Death") == ["0", "1", "1"]
    assert cells("Withdrawal by subject") == ["1", "0", "1"]
    # placebo subject 7 has no Day 28 value because he died on day 20
    assert cells("Analysed for the primary endpoint at Day 28") == ["5", "3", "8"]
    assert cells("Died before the end of the visit window") == ["0", "1", "1"]
    assert cells("No record in the visit window (visit missed or not yet done)") == ["0", "0", "0"]


def test_baseline_characteristics(report: str) -> None:
    table = _section(report, "Baseline characteristics")
    # randomized UC-MSC subjects: ages 40, 50, 60, 70, 80, 45: median 55, Q1 46.25, Q3 67.5
    assert "55.0 (46.2 to 67.5)" in table or "55.0 (46.3 to 67.5)" in table
    assert "<td>4 (66.7%)</td>" in table  # <65 among the 6 UC-MSC subjects


def test_ae_tables_with_deaths_and_serious_events(report: str) -> None:
    ae = _section(report, "Adverse events")
    for text in ["Fatal TEAE", "0/5 (0.0%)", "1/4 (25.0%)", "Deaths (safety set)", "Serious adverse events",
                 "COVID-19 pneumonia", "Infections and infestations", "Nervous system disorders", "15.0 (-40.0 to 60.0)"]:
        assert text in ae, text


def test_lab_shift_tables(report: str) -> None:
    labs = _section(report, "Laboratory shifts")
    range_table = labs[:labs.index("toxicity grade, worst")]
    # UC-MSC: one subject NORMAL at baseline, worst HIGH; Placebo: one NORMAL -> NORMAL
    assert re.search(r"UC-MSC: baseline NORMAL</td><td>0</td><td>0</td><td>1</td><td>1</td>", range_table)
    assert re.search(r"Placebo: baseline NORMAL</td><td>0</td><td>1</td><td>0</td><td>1</td>", range_table)
    grades = labs[labs.index("toxicity grade, worst"):]
    assert re.search(r"UC-MSC: baseline 0</td><td>0</td><td>0</td><td>1</td>", grades)  # worst grade 2


def test_methods_data_cut_and_lake_version(report: str) -> None:
    for text in ["Methods", "worst rank: deaths ranked worst", "every record received by 2026-01-01", "inputs 0123abcd"]:
        assert text in report, text


def test_figures_are_embedded_pngs_with_a_forest_plot(report: str) -> None:
    images = re.findall(r"src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"", report)
    assert len(images) == 6  # forest, box/strip per mart (2), waterfall (1), spaghetti per mart (2)
    for encoded in images:
        assert base64.b64decode(encoded).startswith(b"\x89PNG\r\n\x1a\n")
    assert "Forest plot" in report and "src='http" not in report and "<script" not in report


def test_provenance_footer(report: str) -> None:
    footer = report[report.index("<footer>"):]
    for text in ["run-20260101T020000Z", "trialake 0.1.0 (abc1234)", "silver/ct_volumetry", CHECKSUM]:
        assert text in footer


def test_no_identifying_data_and_labels_are_escaped(report: str) -> None:
    for planted in PHI:
        assert planted not in report, planted
    assert "PHI-SUBJ" not in report  # not even pseudonymous subject ids
    assert "Solid lesion &lt; -300 HU (% of lung)" in report and "Solid lesion < -300" not in report


def test_blinded_report_names_no_arm_and_compares_nothing() -> None:
    endpoints = _endpoints().with_columns(pl.lit(None, pl.String).alias(c) for c in ("trt_arm", "ctl_arm"))
    endpoints = endpoints.with_columns(
        pl.lit(None, pl.Float64).alias(c) for c in ("estimate", "ci_low", "ci_high", "p_value", "median_trt", "median_ctl")
    ).with_columns(*(pl.lit(None, pl.Int64).alias(c) for c in ("n_trt", "n_ctl")), method=pl.lit(BLINDED))
    adsl = _adsl().drop("TRT01P", "TRT01A")
    pooled = _ae_incidence().group_by("category", maintain_order=True).agg(pl.col("n").sum(), pl.col("n_safety").sum())
    page = render_endpoint_report(
        _inputs(endpoints=endpoints, adsl=adsl, ae_incidence=pooled, ae_comparison=None),
        ReportOptions(**{**OPTIONS.__dict__, "blinded": True}),
    )
    assert "BLINDED" in page
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page).lower()  # base64 matches short codes by chance
    for arm in (TRT, CTL, "UCMSC", "PBO"):
        assert arm.lower() not in text, arm
    assert "Forest plot" not in page and "Difference" not in page
    # pooled: every randomized subject in one column
    assert re.search(r"Randomized</td><td>10</td>", _section(page, "Subject flow"))
    assert "-12.00 (-20.00 to -3.00)" in _section(page, "Results")


@pytest.mark.parametrize(
    ("provenance", "message"),
    [
        ({"run_id": "r", "code_version": "v"}, r"provenance: missing key\(s\) \['input_checksums'\]"),
        ({"run_id": "r", "code_version": "v", "input_checksums": "abc"}, "input_checksums must map"),
    ],
)
def test_bad_provenance_is_named(provenance, message) -> None:
    with pytest.raises(ValueError, match=message):
        render_endpoint_report(_inputs(), ReportOptions(provenance=provenance))


def test_two_arm_pairs_are_rejected() -> None:
    endpoints = _endpoints().with_columns(pl.when(pl.col("PARAMCD") == "SIXMW").then(pl.lit("Other")).otherwise("ctl_arm").alias("ctl_arm"))
    with pytest.raises(ValueError, match="endpoints: expected one treatment/control pair"):
        render_endpoint_report(_inputs(endpoints=endpoints), OPTIONS)


def test_spaghetti_lines_are_sampled_for_large_arms_and_say_so() -> None:
    page = render_endpoint_report(_inputs(), ReportOptions(**{**OPTIONS.__dict__, "spaghetti_max_subjects": 4}))
    assert "Lines for a random 4 subjects of UC-MSC; medians from all subjects." in page  # 5 UC-MSC in FAS, 4 placebo
