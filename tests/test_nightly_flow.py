"""The nightly flow end to end, in process (Prefect's ephemeral mode), on disk and on moto's S3."""
from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from trialake.lake import Lake, open_lake, read_object, read_table, write_object
from trialake.pipeline.context import SECRET_OBJECT
from trialake.synth import generate_trial

pytestmark = pytest.mark.xdist_group("prefect-flows")


@pytest.fixture(scope="module")
def small_trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trial")
    generate_trial(out, subjects=6, seed=7, matrix=32, slices=16, sites=2)
    return out


@pytest.fixture(scope="module")
def local_run(small_trial: Path, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    from flows.nightly import nightly

    lake_dir = tmp_path_factory.mktemp("lake")
    nightly(landing=str(small_trial / "landing"), lake=str(lake_dir))
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
    from flows.nightly import nightly

    before = {k: v for k, v in _lake_objects(local_run).items() if not k.startswith("reports/")}
    summary = nightly(landing=str(small_trial / "landing"), lake=local_run.url)
    after = {k: v for k, v in _lake_objects(local_run).items() if not k.startswith("reports/")}
    assert after == before
    assert summary["clinical"].files_new == 0 and summary["dicom"].files_new == 0


def test_a_run_on_s3_gives_the_same_tables_as_a_local_run(
    small_trial: Path, local_run: Lake, s3_bucket: str, s3_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.nightly import nightly
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
