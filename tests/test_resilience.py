"""A bad file, row or place never stops the lake, without Prefect: SDTM variable roles, hidden and
stray landing files, and start-up checks that fail in one line, exit 2 and create nothing."""
from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from trialake.cli import main
from trialake.clinical.domains import VARIABLE_ROLES, absent_variables, missing_required_variables
from trialake.config import load_trial_config
from trialake.config.settings import Settings
from trialake.lake import Lake, list_landing_files, read_table
from trialake.pipeline import open_run
from trialake.pipeline.clinical import derive_clinical_silver, ingest_clinical_bronze
from trialake.pipeline.inventory import HIDDEN_REASON, STRAY_REASON, read_manifest, record_stray_files
from trialake.pipeline.quality import QualityGate, load_quality_gate
from trialake.pipeline.subjects import load_subject_key

NO_SUITES = QualityGate(suites={}, config_context={})
KEY = "SITEID,PATIENT_ID,USUBJID\n01,MRN1,T-01-001\n01,MRN2,T-01-002\n"
DM = ("USUBJID,SEX,AGE,RFICDTC,RFSTDTC,ARMCD,ARM\n"
      "T-01-001,M,60,2020-03-01,2020-03-02,UCMSC,UC-MSC\nT-01-002,F,58,2020-03-03,2020-03-03,PBO,Placebo\n")
SV = ("USUBJID,VISITNUM,VISIT,SVSTDTC\n"
      "T-01-001,1,Baseline,2020-02-28\n"   # before T-01-001's consent (2020-03-01)
      "T-01-002,1,Baseline,2020-03-03\n")


def _landing(root: Path, files: dict[str, str | bytes]) -> Path:
    for relpath, content in {"keys/subject_key.csv": KEY, **files}.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def _context(landing: Path, lake: Path, run_id: str = "run-1"):
    ctx = open_run(Settings(landing=str(landing), lake=str(lake), trial=load_trial_config()), run_id=run_id)
    key, shifts = load_subject_key(ctx)
    return ctx, key, shifts


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


# --- SDTM variable roles ---------------------------------------------------------------------------

def test_roles_are_data_for_every_domain_and_name_the_missing_required_ones() -> None:
    assert set(VARIABLE_ROLES) == {"DM", "EX", "SV", "LB", "FT", "RE", "AE"}
    assert {v for v, r in VARIABLE_ROLES["DM"].items() if r == "Required"} == {"ARMCD", "ARM"}
    assert VARIABLE_ROLES["DM"]["RFICDTC"] == "Expected"
    assert missing_required_variables("LB", ["LBORRES", "LBORRESU", "LBDTC", "LBTEST"]) == []
    assert missing_required_variables("LB", ["LBORRES", "LBDTC"]) == ["LBORRESU", "LBTESTCD or LBTEST"]
    absent = absent_variables("DM", ["ARMCD", "ARM", "RFICDTC", "RFICDT", "SITEID"], "Expected")
    assert {"RFSTDTC", "RFENDTC", "SEX"} <= set(absent) and not {"RFICDTC", "SITEID", "ARM"} & set(absent)


def test_an_export_without_a_required_variable_is_rejected_naming_it_and_not_the_file(tmp_path: Path) -> None:
    lb = "SITEID,PATIENT_ID,LBTEST,LBORRES,LBDTC\n01,MRN1,CRP,3,2020-03-05\n"  # no LBORRESU
    dm = "USUBJID,SEX,RFSTDTC\nT-01-001,M,2020-03-02\n"  # no ARMCD, no ARM
    landing = _landing(tmp_path / "landing", {"clinical/lb_smith_john.csv": lb, "clinical/dm.csv": dm})
    ctx, key, shifts = _context(landing, tmp_path / "lake")
    summary = ingest_clinical_bronze(ctx, NO_SUITES, key, shifts)
    assert (summary.files_new, summary.files_rejected, summary.rows_loaded) == (2, 2, 0)
    reasons = dict(read_table(ctx.lake, "silver/rejections").select("source_sha256", "reason").iter_rows())
    assert reasons[_sha(lb)].startswith("required SDTM variable(s) LBORRESU missing from this LB export")
    assert reasons[_sha(dm)].startswith("required SDTM variable(s) ARMCD, ARM missing from this DM export")
    assert not any("smith" in r or ".csv" in r for r in reasons.values())


def test_expected_variables_not_sent_skip_their_checks_and_publish_the_rows(tmp_path: Path) -> None:
    dm = DM.replace("RFICDTC,", "").replace("2020-03-01,", "").replace("2020-03-03,2020-03-03", "2020-03-03")
    ae = "USUBJID,AEDECOD,AESTDTC\nT-01-001,Headache,2020-03-04\n"  # no AESER, AESEV, AEREL (Expected/Permissible)
    landing = _landing(tmp_path / "landing", {"clinical/dm.csv": dm, "clinical/sv.csv": SV, "clinical/ae.csv": ae})
    ctx, key, shifts = _context(landing, tmp_path / "lake")
    gate = load_quality_gate(ctx, ctx.settings.expectations_dir)
    ingest_clinical_bronze(ctx, gate, key, shifts)
    summary = derive_clinical_silver(ctx, gate)
    assert summary is not None and summary.held_back == ()
    assert "DM.RFICDTC" in summary.not_sent and "AE.AESER" in summary.not_sent
    assert read_table(ctx.lake, "silver/subjects")["RFICDT"].null_count() == 2
    assert read_table(ctx.lake, "silver/visits").height == 2  # the early visit cannot be checked, so it is kept
    assert read_table(ctx.lake, "silver/adverse_events").height == 1  # no severity or seriousness sent: not a rejection
    results = read_table(ctx.lake, "silver/dq_results").filter(pl.col("success").is_null())
    skipped = set(zip(results["table"], results["expectation"], results["details"]))
    assert ("silver/subjects", "consent_date_present", "not checked: DM variable RFICDTC not sent") in skipped
    assert ("silver/visits", "not_before_consent", "not checked: silver/subjects.RFICDT has no values") in skipped


def test_a_row_before_consent_is_quarantined_and_its_table_published(tmp_path: Path) -> None:
    landing = _landing(tmp_path / "landing", {"clinical/dm.csv": DM, "clinical/sv.csv": SV})
    ctx, key, shifts = _context(landing, tmp_path / "lake")
    gate = load_quality_gate(ctx, ctx.settings.expectations_dir)
    ingest_clinical_bronze(ctx, gate, key, shifts)
    summary = derive_clinical_silver(ctx, gate)
    assert summary is not None and summary.held_back == ()
    assert read_table(ctx.lake, "silver/visits")["USUBJID"].to_list() == ["T-01-002"]
    quarantined = read_table(ctx.lake, "silver/rejections").filter(pl.col("stage") == "dq_silver_visits")
    assert quarantined.select("source_sha256", "source_row").rows() == [(_sha(SV), 1)]
    assert quarantined["reason"][0].startswith("not_before_consent: query the site")
    assert "2020" not in quarantined["reason"][0]


def test_a_table_rule_holds_the_table_back_and_its_readers_use_the_previous_version(tmp_path: Path) -> None:
    landing = _landing(tmp_path / "landing", {"clinical/dm.csv": DM, "clinical/sv.csv": SV})
    lake = tmp_path / "lake"
    ctx, key, shifts = _context(landing, lake)
    gate = load_quality_gate(ctx, ctx.settings.expectations_dir)
    ingest_clinical_bronze(ctx, gate, key, shifts)
    derive_clinical_silver(ctx, gate)
    before = read_table(ctx.lake, "silver/subjects")
    # Every subject now has an arm the trial does not have: each row is quarantined (a row rule),
    # which would leave silver/subjects empty (a table rule): the table is held back.
    (landing / "clinical" / "dm.csv").write_text(DM.replace("UCMSC", "XYZ").replace(",PBO,", ",XYZ,"))
    ctx, key, shifts = _context(landing, lake, run_id="run-2")
    ingest_clinical_bronze(ctx, gate, key, shifts)
    summary = derive_clinical_silver(ctx, gate)
    assert summary is not None
    assert [(h.table, h.reason) for h in summary.held_back] == [
        ("silver/subjects", "failed table rule(s) has_rows; previous version kept")]
    assert read_table(ctx.lake, "silver/subjects").equals(before)
    assert read_table(ctx.lake, "silver/visits")["USUBJID"].to_list() == ["T-01-002"]  # against the previous subjects


# --- every landing file accounted for --------------------------------------------------------------

def test_the_listing_keeps_hidden_files_and_leaves_out_only_files_being_written(tmp_path: Path) -> None:
    landing = _landing(tmp_path / "landing", {
        "dicom/a/IM1": b"x", "dicom/.trash/IM0001": b"x", "dicom/a/.x_hidden.dcm": b"x",
        "dicom/a/.0123456789abcdef0123456789abcdef.partial": b"x",
    })
    listed = [f.relpath for f in list_landing_files(Lake(url=str(landing)), "dicom")]
    assert listed == ["dicom/.trash/IM0001", "dicom/a/.x_hidden.dcm", "dicom/a/IM1"]


def test_hidden_clinical_files_and_files_outside_the_areas_are_rejected_once(tmp_path: Path) -> None:
    landing = _landing(tmp_path / "landing", {
        "clinical/dm.csv": DM, "clinical/.old/dm.csv": DM + "\n", "README.txt": "notes", "keys/old_key.csv": KEY,
        "exports/sv.csv": SV,
    })
    ctx, key, shifts = _context(landing, tmp_path / "lake")
    assert record_stray_files(ctx) == 3
    summary = ingest_clinical_bronze(ctx, NO_SUITES, key, shifts)
    assert (summary.files_new, summary.files_rejected) == (2, 1)
    rejections = read_table(ctx.lake, "silver/rejections")
    assert rejections.filter(pl.col("stage") == "landing").select("source_sha256", "reason").sort("source_sha256").rows() == sorted(
        (_sha(text), STRAY_REASON) for text in ("notes", KEY, SV))
    assert rejections.filter(pl.col("stage") == "clinical_read").select("source_sha256", "reason").rows() == [
        (_sha(DM + "\n"), HIDDEN_REASON)]
    assert set(read_manifest(ctx)["relpath"]) == {
        "README.txt", "keys/old_key.csv", "exports/sv.csv", "clinical/dm.csv", "clinical/.old/dm.csv"}
    assert record_stray_files(ctx) == 0  # seen once, rejected once


# --- start-up: one line, exit 2, nothing created ---------------------------------------------------

def _exit_and_message(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    status = main(["run", "nightly", *argv])  # a crash would raise here instead of returning
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("trialake ")]  # not the S3 server's log
    assert len(lines) == 1, lines
    return status, lines[0]


def test_a_landing_folder_one_level_too_high_is_named_with_the_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _landing(tmp_path / "delivery" / "landing", {"clinical/dm.csv": DM})
    lake = tmp_path / "lake"
    status, err = _exit_and_message(capsys, "--landing", str(tmp_path / "delivery"), "--lake", str(lake))
    assert status == 2
    assert "keys/subject_key.csv not found (a landing area holds keys/subject_key.csv, dicom/ and clinical/)" in err
    assert f"pass --landing {tmp_path / 'delivery' / 'landing'}" in err
    assert not lake.exists()


@pytest.mark.parametrize(("content", "message"), [
    ("study_id: caf\xe9\n".encode("latin-1"), "not UTF-8 text (byte 13)"),
    (bytes(range(256)) * 4, "not UTF-8 text (byte 128)"),
    (b"version: [1\n", "not valid YAML"),
])
def test_a_configuration_that_is_not_utf8_yaml_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: bytes, message: str
) -> None:
    landing = _landing(tmp_path / "landing", {})
    config = tmp_path / "trial.yaml"
    config.write_bytes(content)
    status, err = _exit_and_message(capsys, "--landing", str(landing), "--lake", str(tmp_path / "lake"), "--config", str(config))
    assert status == 2 and f"trial.yaml: {message}" in err
    assert not (tmp_path / "lake").exists()


def test_a_subject_key_without_its_columns_or_a_lake_inside_the_landing_area_stops_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    landing = _landing(tmp_path / "landing", {"keys/subject_key.csv": "SITEID,MRN\n01,123\n"})
    status, err = _exit_and_message(capsys, "--landing", str(landing), "--lake", str(tmp_path / "lake"))
    assert status == 2 and "keys/subject_key.csv: missing column(s) PATIENT_ID, USUBJID" in err
    (landing / "keys" / "subject_key.csv").write_text(KEY)
    status, err = _exit_and_message(capsys, "--landing", str(landing), "--lake", str(landing / "lake"))
    assert status == 2 and "overlap" in err
    assert not (tmp_path / "lake").exists() and not (landing / "lake").exists()


def test_s3_that_cannot_be_used_says_which_part_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture, s3_environ: dict[str, str], s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = _landing(tmp_path / "landing", {})
    for name, value in s3_environ.items():
        monkeypatch.setenv(name, value)
    status, err = _exit_and_message(capsys, "--landing", str(landing), "--lake", "s3://no-such-bucket-here/lake")
    assert status == 2 and "lake s3://no-such-bucket-here/lake: bucket 'no-such-bucket-here' does not exist" in err

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    status, err = _exit_and_message(capsys, "--landing", str(landing), "--lake", f"{s3_bucket}/lake")
    assert status == 2 and f"lake {s3_bucket}/lake: S3 endpoint not reachable" in err

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_environ["AWS_ENDPOINT_URL"])
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    status, err = _exit_and_message(capsys, "--landing", str(landing), "--lake", f"{s3_bucket}/lake")
    assert status == 2 and "no AWS credentials found" in err
    fs = Lake(url=s3_bucket, storage_options={"key": "testing", "secret": "testing",
                                               "client_kwargs": {"endpoint_url": s3_environ["AWS_ENDPOINT_URL"]}}).fs
    assert fs.ls(s3_bucket.removeprefix("s3://"), refresh=True) == []  # nothing created


def test_the_run_status_names_what_was_held_back_and_what_failed() -> None:
    from trialake.pipeline.gold import GoldSummary
    from trialake.pipeline.quality import HeldBack
    from trialake.pipeline.run_report import RunIncomplete, RunReport, StageFailure, readers_of

    gold = GoldSummary({}, ("silver/subjects",), None, None, held_back=(HeldBack("gold", "not built: no rows yet in silver/subjects"),))
    complete = RunReport(None, None, None, None, None)
    assert complete.complete and complete.status().startswith("complete: everything publishable was published")
    incomplete = RunReport(None, None, None, None, gold, (StageFailure("publish DICOM", "OSError: disk full"),))
    assert not incomplete.complete
    assert incomplete.status() == ("incomplete: held back gold (not built: no rows yet in silver/subjects); "
                                   "stage publish DICOM failed (OSError: disk full); everything else was published")
    error = RunIncomplete(incomplete)
    assert str(error) == incomplete.status() and error.report is incomplete
    assert readers_of("silver/subjects").startswith("the other clinical silver tables") and readers_of("bronze/lb") == "clinical silver"
