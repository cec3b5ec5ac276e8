"""The clinical stage without Prefect: incremental loading and replaced exports."""
from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from trialake.config import load_trial_config
from trialake.config.settings import Settings
from trialake.lake import read_table
from trialake.pipeline import open_run
from trialake.pipeline.clinical import derive_clinical_silver, ingest_clinical_bronze
from trialake.pipeline.quality import QualityGate, load_quality_gate
from trialake.pipeline.subjects import load_subject_key

NO_SUITES = QualityGate(suites={}, config_context={})
DM_HEADER = "STUDYID,DOMAIN,USUBJID,SITEID,BRTHDTC,AGE,SEX,RFSTDTC,ARMCD,ARM\n"


def _landing(root: Path, dm_rows: str) -> Path:
    (root / "keys").mkdir(parents=True, exist_ok=True)
    (root / "clinical").mkdir(exist_ok=True)
    (root / "keys" / "subject_key.csv").write_text("SITEID,PATIENT_ID,USUBJID\n01,MRN1,T-01-001\n01,MRN2,T-01-002\n")
    (root / "clinical" / "dm.csv").write_text(DM_HEADER + dm_rows)
    return root


def _run(landing: Path, lake: Path):
    ctx = open_run(Settings(landing=str(landing), lake=str(lake), trial=load_trial_config()), run_id="run")
    key, shifts = load_subject_key(ctx)
    return ctx, ingest_clinical_bronze(ctx, NO_SUITES, key, shifts)


def test_unchanged_exports_are_not_read_again_and_replaced_ones_replace_bronze(tmp_path: Path) -> None:
    landing = _landing(tmp_path / "landing", "T,DM,T-01-001,01,1960-01-02,60,M,2020-03-01,UCMSC,UC-MSC\n")
    ctx, first = _run(landing, tmp_path / "lake")
    assert (first.files_new, first.rows_loaded, first.changed_domains) == (1, 1, ("DM",))
    _, again = _run(landing, tmp_path / "lake")
    assert (again.files_new, again.rows_loaded, again.changed_domains) == (0, 0, ())

    new_rows = "T,DM,T-01-001,01,1960-01-02,60,M,2020-03-01,UCMSC,UC-MSC\nT,DM,T-01-002,01,1961-05-06,58,F,2020-03-02,PBO,Placebo\n"
    (landing / "clinical" / "dm.csv").write_text(DM_HEADER + new_rows)
    _, replaced = _run(landing, tmp_path / "lake")
    assert (replaced.files_new, replaced.rows_loaded, replaced.changed_domains) == (1, 2, ("DM",))
    bronze = read_table(ctx.lake, "bronze/dm")
    new_sha = hashlib.sha256((DM_HEADER + new_rows).encode()).hexdigest()
    assert bronze["source_sha256"].unique().to_list() == [new_sha]
    assert sorted(bronze["USUBJID"]) == ["T-01-001", "T-01-002"]
    assert "BRTHDTC" not in bronze.columns


def test_a_row_for_a_subject_outside_the_key_is_rejected_and_the_rest_loaded(tmp_path: Path) -> None:
    rows = "T,DM,T-01-001,01,1960-01-02,60,M,2020-03-01,UCMSC,UC-MSC\nT,DM,T-09-999,09,1950-01-01,70,F,2020-03-01,PBO,Placebo\n"
    ctx, summary = _run(_landing(tmp_path / "landing", rows), tmp_path / "lake")
    assert (summary.rows_loaded, summary.rows_rejected) == (1, 1)
    rejected = read_table(ctx.lake, "silver/rejections").filter(pl.col("stage") == "clinical_read")
    assert rejected["source_row"].to_list() == [2]
    assert "not in the subject key" in rejected["reason"][0]
    assert "T-09-999" not in rejected["reason"][0]


def test_rows_of_a_subject_without_demographics_are_rejected_and_the_rest_published(tmp_path: Path) -> None:
    # T-01-002 is in the subject key but has no DM row: its exposure and visit rows cannot be
    # placed in time (no first dose, no arm), so they are rejected with a reason, not published.
    landing = _landing(tmp_path / "landing", "T,DM,T-01-001,01,1960-01-02,60,M,2020-03-01,UCMSC,UC-MSC\n")
    (landing / "clinical" / "ex.csv").write_text(
        "STUDYID,DOMAIN,USUBJID,EXSEQ,EXTRT,EXDOSE,EXDOSU,EXSTDTC,EXENDTC\n"
        "T,EX,T-01-001,1,UC-MSC,100,10^6 cells,2020-03-01,2020-03-01\n"
        "T,EX,T-01-002,1,PLACEBO,0,10^6 cells,2020-03-02,2020-03-02\n")
    (landing / "clinical" / "sv.csv").write_text(
        "STUDYID,DOMAIN,USUBJID,VISITNUM,VISIT,SVSTDTC,SVENDTC\n"
        "T,SV,T-01-002,1,DAY 1,2020-03-02,2020-03-02\n"
        "T,SV,T-01-001,1,DAY 1,2020-03-01,2020-03-01\n")
    ctx, _ = _run(landing, tmp_path / "lake")

    summary = derive_clinical_silver(ctx, NO_SUITES)

    assert summary is not None
    assert read_table(ctx.lake, "silver/exposure")["USUBJID"].to_list() == ["T-01-001"]
    assert read_table(ctx.lake, "silver/visits")["USUBJID"].to_list() == ["T-01-001"]
    rejected = read_table(ctx.lake, "silver/rejections").filter(pl.col("stage").is_in(["clinical_ex", "clinical_sv"]))
    assert sorted(zip(rejected["stage"], rejected["source_row"])) == [("clinical_ex", 2), ("clinical_sv", 1)]
    assert all("no accepted demographics (DM) row" in reason for reason in rejected["reason"])
    assert summary.rows_rejected == 2


def test_dq_results_keep_each_bronze_files_latest_validation(tmp_path: Path) -> None:
    # bronze is validated file by file: the results of one export must not replace another's,
    # and those of an export that was replaced must go with it.
    landing = _landing(tmp_path / "landing", "T,DM,T-01-001,01,1960-01-02,60,M,2020-03-01,UCMSC,UC-MSC\n")
    second = landing / "clinical" / "dm_site2.csv"
    second.write_text(DM_HEADER + "T,DM,T-01-002,01,1961-05-06,58,F,2020-03-02,PBO,Placebo\n")

    def run() -> pl.DataFrame:
        ctx = open_run(Settings(landing=str(landing), lake=str(tmp_path / "lake"), trial=load_trial_config()), run_id="r")
        key, shifts = load_subject_key(ctx)
        ingest_clinical_bronze(ctx, load_quality_gate(ctx, ctx.settings.expectations_dir), key, shifts)
        return read_table(ctx.lake, "silver/dq_results").filter(pl.col("table") == "bronze/dm")

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    first_sha, old_second_sha = sha(landing / "clinical" / "dm.csv"), sha(second)
    results = run()
    assert set(results["source_sha256"]) == {first_sha, old_second_sha}
    per_file = results.group_by("source_sha256").len()["len"].to_list()
    assert per_file[0] == per_file[1] > 0  # the same suite, once per file

    second.write_text(DM_HEADER + "T,DM,T-01-002,01,1961-05-06,59,F,2020-03-02,PBO,Placebo\n")
    results = run()
    assert set(results["source_sha256"]) == {first_sha, sha(second)}
