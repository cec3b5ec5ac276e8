"""A derived stage is derived again exactly when something it depends on changed, and says what.

Stages and what they depend on (trialake.pipeline.freshness.StageDependencies): silver clinical
tables (bronze, arms/blinding/labs/visits, lab mapping and toxicity files, silver suites, clinical
code), silver/ct_series (instances and subjects, its suite, DICOM code), gold (silver tables, the
analysis sections, lab files, gold suites, marts/report/stats code).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trialake.config import Settings, load_trial_config
from trialake.config.trial import default_trial_config_path
from trialake.lake import Lake, read_object
from trialake.pipeline import freshness
from trialake.pipeline.clinical import CLINICAL_SILVER
from trialake.pipeline.context import RunContext, open_run
from trialake.pipeline.dicom import CT_SERIES
from trialake.pipeline.gold import GOLD, build_gold
from trialake.pipeline.quality import load_quality_gate, suite_files

pytestmark = pytest.mark.xdist_group("prefect-flows")  # shares the clean nightly run
STAGES = {"clinical_silver": CLINICAL_SILVER, "ct_series": CT_SERIES, "gold": GOLD}
PACKAGED_EXPECTATIONS = Path(__file__).resolve().parents[1] / "expectations"


def _context(lake: Lake, *, config: Path | None = None, expectations: Path = PACKAGED_EXPECTATIONS) -> RunContext:
    settings = Settings(landing=lake.url, lake=lake.url, trial=load_trial_config(config), expectations_dir=expectations)
    return open_run(settings, "rederive-test")


def _reasons(ctx: RunContext) -> dict[str, tuple[str, ...]]:
    suites = suite_files(load_quality_gate(ctx, ctx.settings.expectations_dir))
    return {stage: freshness.stale_reasons(ctx, stage, deps, suites) for stage, deps in STAGES.items()}


def _reference_with(tmp_path: Path, old: str, new: str) -> Path:
    text = default_trial_config_path().read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "trial.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_nothing_changed_nothing_is_derived_again(fresh_run: Lake) -> None:
    assert _reasons(_context(fresh_run)) == {"clinical_silver": (), "ct_series": (), "gold": ()}


def test_an_analysis_setting_re_derives_gold_only(fresh_run: Lake, tmp_path: Path) -> None:
    config = _reference_with(tmp_path, "per_protocol_min_doses: 3", "per_protocol_min_doses: 2")
    assert _reasons(_context(fresh_run, config=config)) == {
        "clinical_silver": (), "ct_series": (), "gold": ("configuration section adam changed",)}


def test_a_changed_gold_suite_re_derives_gold_only(fresh_run: Lake, tmp_path: Path) -> None:
    expectations = tmp_path / "expectations"
    shutil.copytree(PACKAGED_EXPECTATIONS, expectations)
    with (expectations / "gold__adsl.yaml").open("a", encoding="utf-8") as suite:
        suite.write("# reviewed again\n")
    assert _reasons(_context(fresh_run, expectations=expectations)) == {
        "clinical_silver": (), "ct_series": (), "gold": ("quality suite of gold/adsl changed",)}


def test_new_code_of_the_marts_re_derives_gold_only(fresh_run: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    real = freshness.code_digest
    monkeypatch.setattr(freshness, "code_digest", lambda package: "new" if package == "trialake.marts" else real(package))
    assert _reasons(_context(fresh_run)) == {"clinical_silver": (), "ct_series": (), "gold": ("code of trialake.marts changed",)}


def test_a_lab_mapping_file_whose_contents_change_re_derives_labs_and_gold(tmp_path: Path) -> None:
    """The mapping's path stays the same; only its contents change (a new site spelling)."""
    from trialake.clinical.mapping import packaged_mapping_path

    mapping = tmp_path / "lb.yaml"
    shutil.copy(packaged_mapping_path("lb_mapping.yaml"), mapping)
    config = _reference_with(tmp_path, "  mapping: null", f"  mapping: {mapping}")
    ctx = _context(_empty_lake(tmp_path), config=config)
    suites = suite_files(load_quality_gate(ctx, ctx.settings.expectations_dir))
    for stage, deps in STAGES.items():
        freshness.mark_fresh(ctx, stage, deps, suites)
    mapping.write_text(mapping.read_text(encoding="utf-8").replace("names: [CRP,", "names: [CRP, C-RP,"), encoding="utf-8")
    assert _reasons(ctx) == {"clinical_silver": ("file labs.mapping changed",), "ct_series": (),
                             "gold": ("file labs.mapping changed",)}


def _empty_lake(tmp_path: Path) -> Lake:
    from trialake.lake import open_lake

    (tmp_path / "lake").mkdir()
    return open_lake(str(tmp_path / "lake"))


def test_gold_built_again_records_and_reports_why(fresh_run: Lake, tmp_path: Path) -> None:
    import json

    config = _reference_with(tmp_path, "per_protocol_min_doses: 3", "per_protocol_min_doses: 2")
    ctx = _context(fresh_run, config=config)
    summary = build_gold(ctx, load_quality_gate(ctx, ctx.settings.expectations_dir))
    assert summary is not None and summary.rederived_because == ("configuration section adam changed",)
    state = json.loads(read_object(fresh_run, "_state/gold"))
    assert state["reasons"] == ["configuration section adam changed"] and state["run_id"] == "rederive-test"
    assert build_gold(ctx, load_quality_gate(ctx, ctx.settings.expectations_dir)) is None  # now up to date


def test_stale_reasons_name_every_kind_of_change() -> None:
    before = freshness.StageState(fingerprint="f", run_id="r", derived_at="t", config_sha256="c", inputs={}, components={
        "tables": {"silver/labs": {"table_id": "a", "version": 1}}, "config": {"labs": "1"}, "files": {"labs.mapping": "1"},
        "suites": {"silver/labs": "1"}, "code": {"trialake.clinical": "1"}})
    now = {"tables": {"silver/labs": {"table_id": "a", "version": 2}}, "config": {"labs": "2"}, "files": {"labs.mapping": "2"},
           "suites": {"silver/labs": "2"}, "code": {"trialake.clinical": "2"}}
    assert freshness.compute_stale_reasons(before, now) == (
        "input table silver/labs changed", "configuration section labs changed", "file labs.mapping changed",
        "quality suite of silver/labs changed", "code of trialake.clinical changed")
    assert freshness.compute_stale_reasons(before, before.components) == ()
    assert freshness.compute_stale_reasons(None, now) == ("never derived",)
    old_format = freshness.StageState(fingerprint="f", run_id="r", derived_at="t", config_sha256="c", inputs={})
    assert freshness.compute_stale_reasons(old_format, now) == ("recorded by an earlier version of trialake",)
