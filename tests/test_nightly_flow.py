"""The nightly flow end to end, in process (Prefect's ephemeral mode), on disk and on S3 (SeaweedFS)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from trialake.imaging.targets import TARGETS
from trialake.lake import Lake, open_lake, read_object, read_table, write_object
from trialake.pipeline.context import SECRET_OBJECT

pytestmark = pytest.mark.xdist_group("prefect-flows")


@pytest.fixture(scope="module")
def local_run(clean_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A copy of the clean nightly run's lake, for this module (the second-run test runs on it)."""
    import shutil

    lake_dir = tmp_path_factory.mktemp("local-run") / "lake"
    shutil.copytree(clean_run, lake_dir)
    return open_lake(str(lake_dir))


def _landing_hashes(landing: Path, area: str) -> dict[str, str]:
    return {str(p.relative_to(landing)): hashlib.sha256(p.read_bytes()).hexdigest() for p in (landing / area).rglob("*") if p.is_file()}


def _lake_objects(lake: Lake) -> dict[str, str]:
    root = lake.path()
    return {p[len(root) + 1 :]: hashlib.sha256(lake.fs.cat_file(p)).hexdigest() for p in lake.fs.find(root)}


def test_every_dicom_file_is_ingested_or_rejected(small_trial: Path, local_run: Lake) -> None:
    landing = _landing_hashes(small_trial / "landing", "dicom")
    instances = set(read_table(local_run, "bronze/dicom_instances")["source_sha256"])
    rejections = read_table(local_run, "silver/rejections")
    rejected = set(rejections["source_sha256"]) if not rejections.is_empty() else set()
    assert set(landing.values()) <= instances | rejected
    truth = pl.read_csv(small_trial / "truth" / "ct_series.csv")
    assert len(instances) == truth["n_files"].sum()  # the generator writes no bad DICOM by default


def test_every_clinical_row_is_in_bronze_or_rejected(small_trial: Path, local_run: Lake) -> None:
    from trialake.clinical import parse_clinical_file

    landing = small_trial / "landing"
    rejections = read_table(local_run, "silver/rejections").filter(pl.col("stage") == "clinical_read")
    for path in sorted((landing / "clinical").iterdir()):
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        rows = parse_clinical_file(path.name, path.read_bytes()).frame.height
        domain = path.name[:2]
        bronze = read_table(local_run, f"bronze/{domain}").filter(pl.col("source_sha256") == sha)
        rejected = rejections.filter(pl.col("source_sha256") == sha)
        assert bronze.height + rejected.height == rows, path.name
        assert set(bronze["source_row"]).isdisjoint(set(rejected["source_row"]))


def test_bronze_carries_lineage_and_no_identifying_columns(local_run: Lake) -> None:
    dm = read_table(local_run, "bronze/dm")
    assert {"USUBJID", "source_sha256", "source_row", "run_id"} <= set(dm.columns)
    assert not {"PATIENT_ID", "BRTHDTC", "SUBJID"} & set(dm.columns)


def test_second_run_on_the_same_landing_changes_nothing(small_trial: Path, local_run: Lake) -> None:
    from trialake_flows.nightly import nightly

    before = {k: v for k, v in _lake_objects(local_run).items() if not k.startswith("reports/")}
    summary = nightly(landing=str(small_trial / "landing"), lake=local_run.url)
    after = {k: v for k, v in _lake_objects(local_run).items() if not k.startswith("reports/")}
    assert after == before  # no table commit (no new _delta_log entry), no data file rewritten
    assert summary.clinical.files_new == 0 and summary.dicom.files_new == 0 and summary.gold is None
    assert "No table changed." in read_object(local_run, "reports/nightly_summary.html").decode()


def test_every_version_names_the_run_flow_stage_code_and_inputs_that_made_it(local_run: Lake) -> None:
    import json

    from trialake.lake import list_tables, table_history
    from trialake.pipeline.context import read_config

    tables = list_tables(local_run)
    assert {"bronze/dicom_instances", "silver/labs", "gold/adct", "gold/endpoints", "restricted/landing_files"} <= set(tables)
    run_ids = set()
    for table in tables:
        for commit in table_history(local_run, table):
            assert commit.info["flow"] == "nightly" and commit.info["stage"], (table, commit)
            assert commit.info["code_version"].startswith("trialake ")
            run_ids.add(commit.info["run_id"])
    assert len(run_ids) == 1  # one run made every version
    (endpoints,) = table_history(local_run, "gold/endpoints")
    assert endpoints.info["stage"] == "build gold marts and report"
    inputs = endpoints.info["inputs"]["tables"]
    assert inputs["silver/ct_volumetry"]["version"] == table_history(local_run, "silver/ct_volumetry")[0].version
    assert read_config(local_run, endpoints.info["config_sha256"]).arms.treatment.armcd
    (labs_bronze, *_) = table_history(local_run, "bronze/lb")
    assert len(labs_bronze.info["inputs"]["landing_sha256"]) == 1  # the export it was loaded from, by checksum
    state = json.loads(read_object(local_run, "_state/gold"))
    assert state["run_id"] == endpoints.info["run_id"] and state["inputs"] == inputs


def test_a_run_on_s3_gives_the_same_tables_as_a_local_run(
    small_trial: Path, local_run: Lake, s3_bucket: str, s3_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from trialake_flows.nightly import nightly
    from trialake.config import storage_options_from_env

    for name, value in s3_environ.items():
        monkeypatch.setenv(name, value)
    options = storage_options_from_env(s3_environ)
    landing = Lake(url=f"{s3_bucket}/landing", storage_options=options)
    landing.fs.put(str(small_trial / "landing") + "/", landing.path(), recursive=True)
    s3_lake = open_lake(f"{s3_bucket}/lake", options)
    # The same lake secret, so that date shifts and pseudonymous UIDs can be compared one to one.
    write_object(s3_lake, SECRET_OBJECT, read_object(local_run, SECRET_OBJECT))
    nightly(landing=landing.url, lake=s3_lake.url)
    for table in ("bronze/dm", "bronze/lb", "silver/labs", "silver/subjects", "bronze/dicom_instances", "silver/ct_series"):
        local = read_table(local_run, table).drop("run_id", strict=False)
        remote = read_table(s3_lake, table).drop("run_id", strict=False)
        assert local.sort(local.columns).equals(remote.sort(remote.columns)), table


def _file_shas(landing: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (landing / "clinical").iterdir()}


def test_lab_values_match_the_generator_truth(small_trial: Path, local_run: Lake) -> None:
    """Every good lab row of the generator is in silver/labs within 0.5 % of its true standard
    value; every deliberately bad row, and every row the truth quarantines (a sample drawn before
    consent), is in silver/rejections."""
    shas = _file_shas(small_trial / "landing")
    truth = pl.read_csv(small_trial / "truth" / "labs.csv", infer_schema_length=0).with_columns(
        pl.col("file").replace_strict(shas).alias("source_sha256"), pl.col("source_row").cast(pl.Int64)
    )
    labs = read_table(local_run, "silver/labs")
    kept = (pl.col("status") == "ok") & pl.col("quarantine").is_null()
    good = truth.filter(kept).join(labs, on=["source_sha256", "source_row"], how="left", suffix="_lake")
    assert good["LBTESTCD_lake"].null_count() == 0, "a good lab row is missing from silver/labs"
    assert (good["LBTESTCD"] == good["LBTESTCD_lake"]).all()
    assert (good["LBSTRESU"] == good["LBSTRESU_lake"]).all()
    numeric = good.filter(pl.col("censored") == "N").with_columns(pl.col("LBSTRESN").cast(pl.Float64))
    relative = ((numeric["LBSTRESN_lake"] - numeric["LBSTRESN"]).abs() / numeric["LBSTRESN"].abs()).max()
    assert relative <= 0.005
    assert good.filter(pl.col("censored") == "Y")["LBSTRESN_lake"].null_count() == good.filter(pl.col("censored") == "Y").height
    bad = truth.filter(~kept)
    rejections = read_table(local_run, "silver/rejections")
    caught = bad.join(rejections, on=["source_sha256", "source_row"], how="inner")
    assert caught.select("source_sha256", "source_row").n_unique() == bad.height > 0
    assert labs.join(bad, on=["source_sha256", "source_row"], how="semi").is_empty()


def test_no_identifying_data_outside_restricted(small_trial: Path, local_run: Lake, tmp_path: Path) -> None:
    """Every fake PHI value of the generator (names, MRNs, birth dates, institutions, accession
    numbers, original UIDs, folder names, private tags) searched for in every lake object outside
    restricted/, in the console output of a CLI run, and in Prefect's own database (logs,
    parameters, artifacts)."""
    import json
    import os
    import subprocess
    import sys

    from phi_scan import find_phi_leaks

    phi = json.loads((small_trial / "truth" / "phi.json").read_text())["values"]
    console = tmp_path / "console.log"
    lake_dir = tmp_path / "lake"
    with console.open("wb") as out:
        subprocess.run(
            [sys.executable, "-m", "trialake.cli", "run", "nightly", "--landing", str(small_trial / "landing"), "--lake", str(lake_dir)],
            stdout=out, stderr=subprocess.STDOUT, check=True, env=os.environ | {"PREFECT_LOGGING_LEVEL": "DEBUG"},
        )
    prefect_db = [p for p in Path(os.environ["PREFECT_HOME"]).rglob("*.db")]
    assert prefect_db, "Prefect's database should be scanned too"
    assert find_phi_leaks([Path(local_run.url), lake_dir, console, *prefect_db], phi) == []
    # restricted/ does hold PHI (landing paths, MRNs): the scan above is not blind, it skipped it
    assert find_phi_leaks(list((lake_dir / "restricted" / "landing_files").glob("part-*.parquet")), phi)


def test_a_subject_with_an_arm_the_trial_does_not_have_is_quarantined_and_its_rows_wait(small_trial: Path, tmp_path: Path) -> None:
    """A DM export that gives one subject an arm code the trial does not have: that DM row is
    quarantined (a row rule), silver/subjects is published without it, the subject's other rows
    wait for a correct DM record, and the run completes."""
    import shutil

    from trialake_flows.nightly import nightly
    from trialake.clinical.common import NO_SUBJECT_REASON

    landing = tmp_path / "landing"
    shutil.copytree(small_trial / "landing", landing)
    lake = open_lake(str(tmp_path / "lake"))
    nightly(landing=str(landing), lake=lake.url)
    before = read_table(lake, "silver/subjects")
    dm = landing / "clinical" / "dm.csv"
    text = dm.read_text(encoding="utf-8-sig")
    header, *rows = text.splitlines()
    line = next(row for row in rows if ",PBO," in row)
    subject = line.split(",")[header.split(",").index("USUBJID")]
    dm.write_text(text.replace(line, line.replace(",PBO,", ",XYZ,", 1)), encoding="utf-8")
    report = nightly(landing=str(landing), lake=lake.url)
    assert report.complete
    after = read_table(lake, "silver/subjects")
    assert sorted(after["USUBJID"]) == sorted(u for u in before["USUBJID"] if u != subject)
    rejections = read_table(lake, "silver/rejections")
    quarantined = rejections.filter(pl.col("stage") == "dq_silver_subjects")
    assert quarantined.height == 1 and quarantined["reason"][0].startswith("armcd_configured: correct ARMCD")
    assert "XYZ" not in quarantined["reason"][0]
    assert subject not in set(read_table(lake, "silver/labs")["USUBJID"])
    assert rejections.filter((pl.col("stage") == "labs") & (pl.col("reason") == NO_SUBJECT_REASON)).height > 0
    results = read_table(lake, "silver/dq_results").filter(pl.col("table") == "silver/subjects")
    failed = results.filter(pl.col("success").not_())
    assert failed["expectation"].to_list() == ["armcd_configured"] and failed["severity"].to_list() == ["error"]


def test_volumetry_matches_the_phantom_truth(small_trial: Path, local_run: Lake) -> None:
    """Every generated series is measured, and within the accuracy targets of the phantoms'
    analytic truth (lung 3 %, lesion 1 point, GGO max(10 mL, 15 %), solid max(10 mL, 30 %))."""
    from trialake.pseudonym import compute_pseudo_uid

    secret = read_object(local_run, SECRET_OBJECT)
    truth = pl.read_csv(small_trial / "truth" / "ct_series.csv").with_columns(
        pl.col("SeriesInstanceUID").map_elements(lambda uid: compute_pseudo_uid(secret, uid), return_dtype=pl.String).alias("series_id")
    )
    measured = read_table(local_run, "silver/ct_volumetry")
    both = truth.join(measured, on="series_id", how="left", suffix="_lake")
    # a flag asks the core lab to look; the numbers stand and are checked below
    assert set(both["status"].to_list()) <= {"measured", "measured-with-flags"} and both["status"].null_count() == 0
    lung_tol = TARGETS.lung_pct / 100.0 * both["lung_volume_ml"]
    assert ((both["lung_volume_ml_lake"] - both["lung_volume_ml"]).abs() <= lung_tol).all()
    assert ((both["lesion_pct_lake"] - both["lesion_pct"]).abs() <= TARGETS.lesion_points).all()
    ggo_tol = pl.max_horizontal(pl.lit(TARGETS.ggo_ml), TARGETS.ggo_share * pl.col("ggo_volume_ml"))
    solid_tol = pl.max_horizontal(pl.lit(TARGETS.solid_ml), TARGETS.solid_share * pl.col("solid_volume_ml"))
    checks = both.select(
        ((pl.col("ggo_volume_ml_lake") - pl.col("ggo_volume_ml")).abs() <= ggo_tol).all().alias("ggo"),
        ((pl.col("solid_volume_ml_lake") - pl.col("solid_volume_ml")).abs() <= solid_tol).all().alias("solid"),
    )
    assert checks.row(0) == (True, True)
    assert (both["ADY_lake"] == both["ADY"]).all()


def test_every_gold_endpoint_row_equals_r(local_run: Lake, tmp_path: Path) -> None:
    """The reference trial's gold/endpoints, recomputed in R from gold/adsl, adct and adft."""
    from r_double import assert_equal_to_r, recompute_in_r

    endpoints = read_table(local_run, "gold/endpoints")
    efficacy = pl.concat([read_table(local_run, "gold/adct"), read_table(local_run, "gold/adft")], how="diagonal_relaxed")
    r_endpoints, _ = recompute_in_r(tmp_path, read_table(local_run, "gold/adsl"), efficacy, endpoints)
    assert assert_equal_to_r(endpoints, r_endpoints) == endpoints.height > 0
    assert endpoints.filter(pl.col("primary") == "Y").select("PARAMCD", "AVISIT", "AVAR").rows() == [("LESPCT", "Day 28", "CHG")]


def test_data_docs_index_lists_every_validated_table_after_a_second_run_and_loads_nothing_from_the_network(
    clean_run: Path, local_run: Lake
) -> None:
    """The index keeps the newest validation of every table, also those a run with nothing new did
    not validate again (this module's second run has run on local_run)."""
    import re

    validated = set(read_table(local_run, "silver/dq_results")["table"])
    assert {"silver/ct_volumetry", "silver/ct_series", "bronze/dicom_instances", "silver/labs", "gold/endpoints"} <= validated
    index = read_object(local_run, "reports/data_docs/index.html").decode()
    for table in validated:
        assert f"<td>{table}</td>" in index, table
    fetched = re.compile(r"""(?:\bsrc\s*=\s*["']?|<link\b[^>]*?\bhref\s*=\s*["']?|url\(\s*["']?)\s*(?:https?:)?//""", re.I)
    for page in (Path(local_run.url) / "reports" / "data_docs").glob("*.html"):
        assert fetched.search(page.read_text(encoding="utf-8")) is None, page.name
    first_summary = (clean_run / "reports" / "nightly_summary.html").read_text(encoding="utf-8")
    assert "<td>silver/ct_volumetry</td>" in first_summary and "<td>bronze/dicom_instances</td>" in first_summary


def test_the_endpoints_artifact_shows_the_primary_first_and_no_rows_without_subjects(clean_run: Path) -> None:
    from trialake.pipeline.gold import endpoints_for_display, endpoints_with_subjects

    endpoints = read_table(open_lake(str(clean_run)), "gold/endpoints")
    primary = endpoints.filter(pl.col("primary") == "Y").row(0, named=True)
    # a visit nobody has reached yet: n=0 in both groups and pooled
    counts = ("n_trt", "n_ctl", "n_all")
    empty = endpoints.with_row_index("_i").with_columns(
        pl.when((pl.col("_i") < 4) & pl.col("primary").ne_missing("Y")).then(0).otherwise(pl.col(c)).alias(c)
        for c in counts).drop("_i")
    empty_rows = empty.filter(pl.all_horizontal(pl.col(c).fill_null(0) == 0 for c in counts)).height
    assert empty_rows >= 3
    shown = endpoints_for_display(endpoints_with_subjects(empty))
    assert shown.height == endpoints.height - empty_rows
    first = shown.row(0, named=True)
    assert (first["parameter"], first["visit"], first["analysis"]) == (primary["PARAM"], primary["AVISIT"], primary["AVAR"])
