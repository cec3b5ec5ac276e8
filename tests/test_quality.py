"""Publish gating, dq_results / rejection rows, suite-file errors, visit windows and reports."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from test_quality_suites import CONSENT, EXPECTATIONS_DIR, PACKAGED_STANDARDS, SHA_A, clean_tables, set_cell
from trialake.clinical.common import REJECTION_SCHEMA
from trialake.visits import VisitWindow
from trialake.quality import (
    DQ_RESULTS_SCHEMA,
    IntakeCounts,
    QualityParams,
    SuiteSpec,
    SuiteSpecError,
    build_config_context,
    check_visit_windows,
    load_suites,
    render_data_docs,
    render_dq_summary_markdown,
    render_nightly_summary,
    validate_table,
)


@pytest.fixture(scope="session")
def suites() -> dict[str, SuiteSpec]:
    return load_suites(EXPECTATIONS_DIR, standards=PACKAGED_STANDARDS)


def validate(suites: dict[str, SuiteSpec], tables: dict[str, pl.DataFrame], table: str, **kw: object):
    suite = suites[table]
    return validate_table(
        table, tables[table], suite, context_tables={t: tables[t] for t in suite.context_tables}, run_id="run-7", **kw
    )


def labs_with_wrong_crp_unit() -> dict[str, pl.DataFrame]:
    tables = clean_tables()
    set_cell(tables, "silver/labs", 0, "LBSTRESU", "mg/dL")  # S1 CRP on day -1, source row 1
    return tables


def labs_with_duplicate_result() -> dict[str, pl.DataFrame]:
    tables = clean_tables()
    # S2's CRP becomes a copy of S1's (same subject, test, date and result): a warn-level duplicate
    set_cell(tables, "silver/labs", 1, "USUBJID", "S1")
    set_cell(tables, "silver/labs", 1, "LBSTRESC", "12")
    return tables


def test_a_failed_table_rule_blocks_publishing_and_names_the_expectation(suites) -> None:
    outcome = validate(suites, labs_with_wrong_crp_unit(), "silver/labs")
    assert outcome.should_publish is False
    assert outcome.failed_errors == outcome.held_back_by == ("standard_unit_per_test",)
    assert outcome.failed_warnings == () and outcome.quarantined == ()
    assert outcome.rejections.is_empty()  # the table is held back whole, no row is singled out
    assert "not published, failed table rule(s): standard_unit_per_test (1 rows)" in outcome.message


def labs_with_implausible_hgb() -> dict[str, pl.DataFrame]:
    tables = clean_tables()
    set_cell(tables, "silver/labs", 2, "LBSTRESN", 9999.5)  # HGB above physiological max: source row 3
    return tables


def test_a_failed_row_rule_quarantines_the_rows_and_publishes_the_table(suites) -> None:
    outcome = validate(suites, labs_with_implausible_hgb(), "silver/labs")
    assert outcome.should_publish is True
    assert outcome.quarantined == (2,)
    assert outcome.failed_errors == ("value_not_above_physiological_max",) and outcome.held_back_by == ()
    fix = suites["silver/labs"].expectation("value_not_above_physiological_max").fix
    expected = pl.DataFrame(
        {"source_sha256": [SHA_A], "source_row": [3], "stage": ["dq"], "reason": [f"value_not_above_physiological_max: {fix}"],
         "run_id": ["run-7"]},
        schema=REJECTION_SCHEMA,
    )
    assert outcome.rejections.equals(expected)
    assert "9999" not in outcome.rejections.write_csv()  # the reason says what to do, never the value
    assert "1 row(s) quarantined by value_not_above_physiological_max (1 rows)" in outcome.message


def test_a_row_failing_two_row_rules_is_quarantined_once_with_both_reasons(suites) -> None:
    tables = labs_with_implausible_hgb()
    set_cell(tables, "silver/labs", 2, "LBDT", CONSENT - dt.timedelta(days=3))  # and drawn before consent
    set_cell(tables, "silver/labs", 2, "LBDY", -5)  # study day kept consistent with the date
    outcome = validate(suites, tables, "silver/labs")
    assert outcome.quarantined == (2,)
    suite = suites["silver/labs"]
    both = [suite.expectation(n).reason() for n in ("value_not_above_physiological_max", "not_before_consent")]
    assert outcome.rejections["reason"].to_list() == ["; ".join(both)]  # in suite order


def test_warn_failure_publishes_and_is_recorded(suites) -> None:
    outcome = validate(suites, labs_with_duplicate_result(), "silver/labs")
    assert outcome.should_publish is True
    assert outcome.failed_errors == ()
    assert outcome.failed_warnings == ("result_not_duplicated",)
    assert outcome.rejections.is_empty()  # warn rows are published, so not rejected by default


def test_dq_results_rows(suites) -> None:
    outcome = validate(suites, labs_with_wrong_crp_unit(), "silver/labs")
    results = outcome.results
    assert dict(results.schema) == DQ_RESULTS_SCHEMA
    assert results["expectation"].to_list() == [e.name for e in suites["silver/labs"].expectations]
    assert set(results["run_id"]) == {"run-7"} and set(results["table"]) == {"silver/labs"}
    failed = results.filter(~pl.col("success")).row(0, named=True)
    assert failed["expectation"] == "standard_unit_per_test"
    assert failed["severity"] == "error"
    assert failed["unexpected_count"] == 1
    assert json.loads(failed["sample_keys"]) == [{"USUBJID": "S1", "LBTESTCD": "CRP", "LBDY": -1}]
    passed_row_level = results.filter(pl.col("expectation") == "subject_enrolled").row(0, named=True)
    assert passed_row_level["success"] is True and passed_row_level["unexpected_count"] == 0
    assert results.filter(pl.col("expectation") == "schema")["unexpected_count"].to_list() == [None]


def test_sample_keys_hold_key_columns_only(suites) -> None:
    tables = clean_tables()
    set_cell(tables, "silver/labs", 2, "LBSTRESN", 9999.5)  # HGB above physiological max
    outcome = validate(suites, tables, "silver/labs")
    row = outcome.results.filter(~pl.col("success")).row(0, named=True)
    assert row["expectation"] == "value_not_above_physiological_max"
    assert json.loads(row["sample_keys"]) == [{"USUBJID": "S1", "LBTESTCD": "HGB", "LBDY": 10}]
    assert "9999" not in outcome.results.write_csv()


def test_rejection_rows_carry_the_configured_stage(suites) -> None:
    outcome = validate(suites, labs_with_implausible_hgb(), "silver/labs", params=QualityParams(rejection_stage="dq_silver_labs"))
    assert outcome.rejections["stage"].to_list() == ["dq_silver_labs"]


def test_table_without_lineage_gives_no_rejection_rows(suites) -> None:
    tables = clean_tables()
    set_cell(tables, "gold/adct", 0, "AVAL", 150.0)  # LESPCT above 100
    outcome = validate(suites, tables, "gold/adct")
    assert outcome.failed_errors == ("aval_not_above_plausible_max",)
    assert outcome.rejections.is_empty()
    assert dict(outcome.rejections.schema) == REJECTION_SCHEMA


def test_whole_file_rows_rejected_with_null_source_row(suites) -> None:
    tables = clean_tables()
    set_cell(tables, "bronze/dicom_instances", 1, "USUBJID", None)
    outcome = validate(suites, tables, "bronze/dicom_instances")
    reason = "usubjid_present: " + suites["bronze/dicom_instances"].expectation("usubjid_present").fix
    assert outcome.rejections.select("source_sha256", "source_row", "reason").rows() == [("f" * 64, None, reason)]


def _not_checked(outcome) -> dict[str, str]:
    rows = outcome.results.filter(pl.col("success").is_null())
    assert rows["unexpected_count"].null_count() == rows.height
    return dict(zip(rows["expectation"], rows["details"], strict=True))


def test_an_absent_context_table_skips_the_checks_that_need_it(suites) -> None:
    tables = clean_tables()
    outcome = validate_table("silver/labs", tables["silver/labs"], suites["silver/labs"], run_id="r")
    needs_subjects = {"subject_enrolled", "not_before_consent", "study_day_consistent"}
    assert _not_checked(outcome) == {name: "not checked: silver/subjects not published" for name in needs_subjects}
    assert dict(outcome.not_checked) == {name: "silver/subjects not published" for name in needs_subjects}
    assert outcome.should_publish and outcome.failed_errors == ()
    assert "not checked: " in outcome.message


def test_an_empty_context_table_or_column_skips_the_checks_that_need_it(suites) -> None:
    tables = clean_tables()
    empty = {**tables, "silver/subjects": pl.DataFrame()}  # what read_table gives for a table never published
    assert set(_not_checked(validate(suites, empty, "silver/visits"))) == {"subject_enrolled", "not_before_consent", "study_day_consistent"}
    no_consent = {**tables, "silver/subjects": tables["silver/subjects"].with_columns(pl.lit(None, pl.Date).alias("RFICDT"))}
    set_cell(no_consent, "silver/labs", 0, "LBDT", CONSENT - dt.timedelta(days=9))  # would fail were it checked
    set_cell(no_consent, "silver/labs", 0, "LBDY", -11)
    outcome = validate(suites, no_consent, "silver/labs")
    assert _not_checked(outcome) == {"not_before_consent": "not checked: silver/subjects.RFICDT has no values"}
    assert outcome.failed_errors == () and outcome.quarantined == ()


def test_columns_the_source_did_not_send_skip_their_checks(suites) -> None:
    tables = clean_tables()
    set_cell(tables, "silver/subjects", 0, "RFICDT", None)
    outcome = validate(suites, tables, "silver/subjects", unavailable={"RFICDT": "DM variable RFICDTC not sent"})
    assert _not_checked(outcome) == {
        "consent_date_present": "not checked: DM variable RFICDTC not sent",
        "first_dose_not_before_consent": "not checked: DM variable RFICDTC not sent",
    }
    assert outcome.failed_warnings == ()


def test_table_must_match_suite(suites) -> None:
    with pytest.raises(ValueError, match=r"'silver/visits' does not match suite 'silver/labs'"):
        validate_table("silver/visits", clean_tables()["silver/labs"], suites["silver/labs"], run_id="r")


def test_context_table_not_unique_on_join_key(suites) -> None:
    tables = clean_tables()
    tables["silver/subjects"] = pl.concat([tables["silver/subjects"], tables["silver/subjects"].head(1)])
    with pytest.raises(ValueError, match=r"silver/subjects is not unique on \['USUBJID'\]"):
        validate(suites, tables, "silver/labs")


# --- suite files -------------------------------------------------------------------------------

GOOD_SUITE = """\
table: silver/things
keys: [USUBJID]
schema: {USUBJID: String, AVAL: Float64}
expectations:
  - name: aval_range
    type: expect_column_values_to_be_between
    kwargs: {column: AVAL, min_value: 0, max_value: 10}
    severity: error
    scope: table
    rationale: a range
"""


def write_suite(tmp_path: Path, text: str, name: str = "silver__things.yaml") -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("severity: error", "severity: fatal", r"silver__things\.yaml: expectations\[aval_range\]\.severity"),
        ("expect_column_values_to_be_between", "expect_column_values_to_be_lovely", r"silver__things\.yaml: expectations\[aval_range\]\.type: unknown GX"),
        ("min_value: 0", "minimum: 0", r"silver__things\.yaml: expectations\[aval_range\]\.kwargs"),
        ("AVAL: Float64", "AVAL: Double", r"silver__things\.yaml: schema\.AVAL"),
        ("keys: [USUBJID]", "keys: [SUBJECT]", r"silver__things\.yaml: keys \['SUBJECT'\]"),
        ("    rationale: a range\n", "", r"silver__things\.yaml: expectations\[0\]: missing key\(s\) \['rationale'\]"),
        ("table: silver/things", "table: things", r"silver__things\.yaml: table 'things'"),
        ("keys: [USUBJID]", "keys: [USUBJID]\nextra: 1", r"silver__things\.yaml: unknown key\(s\) \['extra'\]"),
        ("schema:", "schema: {: }", r"silver__things\.yaml: not valid YAML"),
    ],
)
def test_bad_suite_file_is_named_with_the_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD_SUITE
    write_suite(tmp_path, GOOD_SUITE.replace(old, new, 1))
    with pytest.raises(SuiteSpecError, match=message):
        load_suites(tmp_path, standards={})


def test_good_suite_file_loads(tmp_path: Path) -> None:
    suite = load_suites(write_suite(tmp_path, GOOD_SUITE), standards={})["silver/things"]
    assert [e.name for e in suite.expectations] == ["schema", "aval_range"]
    assert suite.expectation("aval_range").kwargs == {"column": "AVAL", "min_value": 0, "max_value": 10}


def test_two_files_for_one_table_rejected(tmp_path: Path) -> None:
    write_suite(tmp_path, GOOD_SUITE)
    write_suite(tmp_path, GOOD_SUITE, name="silver__things_again.yaml")
    with pytest.raises(SuiteSpecError, match=r"silver__things_again\.yaml: table 'silver/things' already defined"):
        load_suites(tmp_path, standards={})


def test_row_condition_on_column_pair_rejected(tmp_path: Path) -> None:
    text = GOOD_SUITE + """\
  - name: pair
    type: expect_column_pair_values_to_be_equal
    kwargs: {column_A: AVAL, column_B: AVAL}
    when: {USUBJID: S1}
    severity: warn
    scope: table
    rationale: r
"""
    with pytest.raises(SuiteSpecError, match=r"expectations\[pair\]\.when: GX 1\.24 ignores row conditions"):
        load_suites(write_suite(tmp_path, text), standards={})


def test_empty_directory_rejected(tmp_path: Path) -> None:
    with pytest.raises(SuiteSpecError, match="no suite files"):
        load_suites(tmp_path, standards={})


# --- visit windows -----------------------------------------------------------------------------

def test_reference_visit_windows_are_valid() -> None:
    from trialake.config import load_trial_config

    outcome = check_visit_windows(load_trial_config().visits, run_id="r")
    assert outcome.should_publish and outcome.results["success"].to_list() == [True]


def test_overlapping_windows_fail_with_the_shared_days() -> None:
    visits = [VisitWindow("Baseline", 0.0, 1, -30, 7), VisitWindow("Day 10", 10.0, 10, 7, 13), VisitWindow("Day 28", 28.0, 28, 21, 35)]
    outcome = check_visit_windows(visits, run_id="r")
    assert outcome.should_publish is False and outcome.failed_errors == ("visit_windows_consistent",)
    assert outcome.results["details"].to_list() == ["windows 'Baseline' and 'Day 10' overlap (days 7..7)"]


def test_an_inverted_window_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="'Day 28': window 35..21 does not contain target_day 28"):
        VisitWindow("Day 28", 28.0, 28, 35, 21)


# --- reports -----------------------------------------------------------------------------------

def test_data_docs_pages_show_failures_but_no_row_values(suites) -> None:
    tables = labs_with_wrong_crp_unit()
    outcomes = [validate(suites, tables, "silver/labs"), validate(suites, tables, "silver/subjects")]
    pages = render_data_docs(outcomes)
    assert set(pages) == {"index.html", "silver__labs.html", "silver__subjects.html"}
    assert "standard_unit_per_test" in pages["silver__labs.html"]
    assert "mg/dL" not in "".join(pages.values())
    assert 'href="silver__labs.html"' in pages["index.html"]
    assert "NOT published" in pages["index.html"]


def test_markdown_summary_lists_status_and_failures(suites) -> None:
    tables = labs_with_wrong_crp_unit()
    outcomes = [validate(suites, tables, "silver/labs"), validate(suites, tables, "silver/subjects")]
    text = render_dq_summary_markdown(outcomes)
    assert text.startswith("# Data quality, run run-7\n")
    assert "| silver/labs | NOT published | standard_unit_per_test | - |" in text
    assert "| silver/subjects | published | - | - |" in text
    assert '| silver/labs | standard_unit_per_test | error | 1 | [{"USUBJID": "S1", "LBTESTCD": "CRP", "LBDY": -1}] |' in text


def test_nightly_summary_counts_this_runs_rejections_and_lists_unmeasurable_series(suites) -> None:
    tables = labs_with_wrong_crp_unit()
    outcomes = [validate(suites, tables, "silver/labs")]
    rejections = pl.DataFrame(
        {
            "source_sha256": ["c" * 64, "c" * 64, "d" * 64, "e" * 64],
            "source_row": [3, 4, None, 1],
            "stage": ["labs", "labs", "ingest_dicom", "labs"],
            "reason": ["unit mg/dL not convertible for CRP", "unit mg/dL not convertible for CRP", "not a DICOM file <b>", "old"],
            "run_id": ["run-7", "run-7", "run-7", "run-6"],
        },
        schema=REJECTION_SCHEMA,
    )
    volumetry = tables["silver/ct_volumetry"]  # S1's Day 28 series failed: "too few slices"
    summary = render_nightly_summary(
        run_id="run-7",
        intake=[IntakeCounts("dicom", 10, 9, 1), IntakeCounts("clinical", 2, 2, 0)],
        rejections=rejections,
        outcomes=outcomes,
        ct_series=tables["silver/ct_series"],
        ct_volumetry=volumetry,
        links={"Data Docs": "data_docs/index.html"},
    )
    md = summary.markdown
    assert "| dicom | 10 | 9 | 1 |" in md
    assert "| labs | unit mg/dL not convertible for CRP | 2 | 0 |" in md  # run-6's row not counted
    assert "| ingest_dicom | not a DICOM file <b> | 0 | 1 |" in md
    assert "old" not in md
    assert "| silver/labs | NOT published | standard_unit_per_test | - |" in md
    assert "| S1 | 2.25.12 | series QC | too few slices |" in md
    assert "| S1 | 2.25.12 | volumetry | too few slices |" in md
    assert "- [Data Docs](data_docs/index.html)" in md
    assert "not a DICOM file &lt;b&gt;" in summary.html and "<b>" not in summary.html
    assert '<a href="data_docs/index.html">Data Docs</a>' in summary.html


def test_nightly_summary_of_a_quiet_night(suites) -> None:
    tables = clean_tables()
    summary = render_nightly_summary(
        run_id="run-8",
        intake=[],
        rejections=pl.DataFrame(schema=REJECTION_SCHEMA),
        outcomes=[validate(suites, tables, "silver/subjects")],
        ct_series=tables["silver/ct_series"].filter(pl.col("status") == "usable"),
        ct_volumetry=tables["silver/ct_volumetry"].filter(pl.col("status") == "measured"),
    )
    for text in ("No new files.", "Nothing rejected.", "All expectations passed on 1 table(s).", "Every series was measured."):
        assert text in summary.markdown and text in summary.html


def test_importing_the_package_does_not_import_great_expectations() -> None:
    code = "import sys, trialake.quality; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_config_context_tables_match_the_hand_built_ones() -> None:
    built = build_config_context(arms={"UCMSC": "UC-MSC", "PBO": "Placebo"}, visits=["Baseline", "Day 10", "Day 28"])
    expected = clean_tables()
    assert built["config/arms"].equals(expected["config/arms"])
    assert built["config/visits"].equals(expected["config/visits"])
    with pytest.raises(ValueError, match="arms and visits must not be empty"):
        build_config_context(arms={}, visits=["Baseline"])


ROW_RULE = """\
  - name: aval_known
    type: expect_column_values_to_not_be_null
    kwargs: {column: AVAL}
    severity: error
    scope: row
    fix: send the value
    rationale: r
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD_SUITE.replace("    scope: table\n", ""), r"expectations\[aval_range\]\.scope: None must be 'row'"),
        (GOOD_SUITE.replace("scope: table", "scope: row"), r"expectations\[aval_range\]\.fix \(what the site must do"),
        (GOOD_SUITE.replace("scope: table", "scope: table\n    fix: x"), r"expectations\[aval_range\]\.fix: only row-scope"),
        (GOOD_SUITE + ROW_RULE, r"row-scope error expectations \['aval_known'\] .* must list source_sha256"),
        (GOOD_SUITE.replace("AVAL: Float64}", "AVAL: Float64, source_sha256: String}") + ROW_RULE.replace(
            "expect_column_values_to_not_be_null\n    kwargs: {column: AVAL}", "expect_table_row_count_to_be_between\n    kwargs: {min_value: 1}"),
         r"expectations\[aval_known\]\.scope: expect_table_row_count_to_be_between tests the whole table"),
    ],
)
def test_every_expectation_says_whether_it_quarantines_rows_or_holds_the_table(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SuiteSpecError, match=message):
        load_suites(write_suite(tmp_path, text), standards={})


def test_every_shipped_row_rule_says_what_the_site_must_do_without_values(suites) -> None:
    row_rules = [(t, e) for t, s in suites.items() for e in s.expectations if e.scope == "row"]
    assert row_rules
    for table, exp in row_rules:
        assert exp.fix and "{" not in exp.fix, (table, exp.name)
        assert exp.reason().startswith(f"{exp.name}: ")
    assert all(e.scope == "table" for t, s in suites.items() if t.startswith("gold/") for e in s.expectations)


def test_nightly_summary_says_what_was_held_back_failed_quarantined_or_not_checked(suites) -> None:
    tables = labs_with_implausible_hgb()
    outcomes = [validate(suites, tables, "silver/labs"),
                validate_table("silver/visits", tables["silver/visits"], suites["silver/visits"], run_id="run-7")]
    summary = render_nightly_summary(
        run_id="run-7", intake=[], rejections=pl.DataFrame(schema=REJECTION_SCHEMA), outcomes=outcomes,
        ct_series=pl.DataFrame(), ct_volumetry=pl.DataFrame(),  # never published: nothing to list
        status="incomplete: held back silver/subjects (x); everything else was published",
        held_back=[("silver/subjects", "failed table rule(s) has_rows; previous version kept", "gold use its previous version")],
        failures=[("publish DICOM", "OSError: disk full")], not_sent=["DM.RFICDTC"],
    )
    md = summary.markdown
    assert "**Status**: incomplete: held back silver/subjects (x); everything else was published" in md
    assert "| silver/subjects | failed table rule(s) has_rows; previous version kept | gold use its previous version |" in md
    assert "| publish DICOM | OSError: disk full |" in md
    assert "| silver/labs | published | value_not_above_physiological_max | - | 1 |" in md
    assert "| silver/visits | subject_enrolled | silver/subjects not published |" in md
    assert "| DM | - | Expected SDTM variable RFICDTC not sent by any export |" in md
    assert "Every series was measured." in md


CUSTOM_LB_MAPPING = """version: "t1"
domain: LB
tests:
  - {code: CRP, name: C Reactive Protein, unit: mg/dL, plausible: [0, 100], names: [CRP]}
  - {code: HGB, name: Hemoglobin, unit: g/dL, names: [HGB]}
"""


def test_lab_units_and_limits_of_the_suite_come_from_the_configured_mapping(tmp_path: Path) -> None:
    """One definition of the standard units: the silver/labs suite reads the configured mapping."""
    from trialake.clinical import derive_standard_lookups
    from trialake.config.trial import LabsConfig
    from trialake.pipeline.params import measurement_standards

    (tmp_path / "lb.yaml").write_text(CUSTOM_LB_MAPPING, encoding="utf-8")
    standards = derive_standard_lookups(measurement_standards(LabsConfig(mapping=str(tmp_path / "lb.yaml"))))
    derive = {d.name: d for d in load_suites(EXPECTATIONS_DIR, standards=standards)["silver/labs"].derive}
    assert derive["standard_unit"].values == {"CRP": "mg/dL", "HGB": "g/dL"}
    assert derive["physiological_min"].values == {"CRP": 0.0}  # HGB has no limits: not range-checked
    assert derive["physiological_max"].values == {"CRP": 100.0}
    packaged = {d.name: d for d in load_suites(EXPECTATIONS_DIR, standards=PACKAGED_STANDARDS)["silver/labs"].derive}
    assert packaged["standard_unit"].values["CRP"] == "mg/L" and packaged["physiological_max"].values["HGB"] == 250.0


def test_a_suite_naming_a_standard_that_is_not_given_is_refused(tmp_path: Path) -> None:
    text = GOOD_SUITE.replace("expectations:", "derive:\n  - {name: unit, lookup: {key: USUBJID, standard: XX.unit}}\nexpectations:")
    with pytest.raises(SuiteSpecError, match=r"silver__things\.yaml: derive\[unit\]\.lookup\.standard: 'XX\.unit'"):
        load_suites(write_suite(tmp_path, text), standards={})


def test_a_mapping_with_inverted_plausible_limits_is_refused(tmp_path: Path) -> None:
    from trialake.clinical import load_test_mapping

    (tmp_path / "lb.yaml").write_text(CUSTOM_LB_MAPPING.replace("[0, 100]", "[100, 0]"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"lb.yaml: test CRP: plausible"):
        load_test_mapping(tmp_path / "lb.yaml")
