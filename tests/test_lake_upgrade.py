"""Upgrading in place a lake written before tables were Delta tables (one part-0.parquet per Hive
partition, partition columns inside the files), on disk and on SeaweedFS: nothing lost, types
kept, other objects untouched, idempotent, finished by the next upgrade after a crash."""
from __future__ import annotations

import datetime

import polars as pl
import pytest

from legacy_lake import write_legacy_table

from trialake.lake import (
    Lake,
    is_upgraded,
    list_tables,
    read_object,
    read_table,
    table_history,
    upgrade_lake,
    write_object,
)
from trialake.lake.upgrade import find_legacy_tables

INSTANCES = pl.DataFrame({
    "USUBJID": ["S-01", "S-01", "S-02"], "source_sha256": ["a" * 64, "b" * 64, "c" * 64],
    "InstanceNumber": [1, 2, 1], "acquired": [datetime.date(2020, 3, 1)] * 3, "object_names": [["x"], ["y"], []],
})
REJECTIONS = pl.DataFrame({"source_sha256": ["d" * 64, "e" * 64], "source_row": [None, 3], "stage": ["deid", "labs"],
                           "reason": ["burned-in annotation", "unit"], "run_id": ["r0", "r0"]},
                          schema_overrides={"source_row": pl.Int64})
SUBJECTS = pl.DataFrame({"USUBJID": ["S-01", "S-02"], "SITEID": ["01", "02"], "NOTE": [None, None]})
INCIDENCE = pl.DataFrame({"category": ["Any TEAE"], "n": [1], "N": [2]})


@pytest.fixture
def legacy(lake: Lake) -> Lake:
    write_legacy_table(lake, "bronze/dicom_instances", INSTANCES, partition_by=["USUBJID"])
    write_legacy_table(lake, "silver/rejections", REJECTIONS, partition_by=["stage"])
    write_legacy_table(lake, "silver/subjects", SUBJECTS, partition_by=[])
    write_legacy_table(lake, "gold/ae_incidence", INCIDENCE, partition_by=[])
    write_object(lake, "bronze/dicom/S-01/1.2.3/4.dcm", b"DICM copy")
    write_object(lake, "reports/endpoints.html", b"<html>")
    write_object(lake, "restricted/secrets/lake.key", b"k" * 32)
    return lake


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort([c for c, d in frame.schema.items() if not d.is_nested()])


def test_an_old_lake_becomes_delta_tables_with_the_same_rows_and_types(legacy: Lake) -> None:
    assert not is_upgraded(legacy)
    assert sorted(find_legacy_tables(legacy)) == ["bronze/dicom_instances", "gold/ae_incidence", "silver/rejections", "silver/subjects"]
    done = {u.table: u for u in upgrade_lake(legacy.with_commit_info(run_id="upgrade-run", stage="upgrade"))}
    assert {t: (u.partition_by, u.rows) for t, u in done.items()} == {
        "bronze/dicom_instances": (("USUBJID",), 3), "silver/rejections": (("stage",), 2),
        "silver/subjects": ((), 2), "gold/ae_incidence": ((), 1),
    }
    assert list_tables(legacy) == sorted(done)
    instances = read_table(legacy, "bronze/dicom_instances")
    assert _sorted(instances.select(INSTANCES.columns)).equals(_sorted(INSTANCES))
    assert instances.schema["acquired"] == pl.Date and instances.schema["object_names"] == pl.List(pl.String)
    assert _sorted(read_table(legacy, "silver/rejections").select(REJECTIONS.columns)).equals(_sorted(REJECTIONS))
    assert read_table(legacy, "silver/subjects")["SITEID"].to_list() == ["01", "02"]  # "01" stays text
    # n and N cannot both be Delta columns: N is kept under another name, with its values
    assert done["gold/ae_incidence"].renamed == (("N", "N_2"),)
    assert read_table(legacy, "gold/ae_incidence").rows() == [("Any TEAE", 1, 2)]
    assert [c.info.get("run_id") for c in table_history(legacy, "silver/subjects")] == ["upgrade-run"]
    legacy.fs.invalidate_cache()
    assert not [p for p in legacy.fs.find(legacy.path()) if p.endswith("/part-0.parquet")]
    assert read_object(legacy, "bronze/dicom/S-01/1.2.3/4.dcm") == b"DICM copy"
    assert read_object(legacy, "reports/endpoints.html") == b"<html>"
    assert is_upgraded(legacy)
    assert upgrade_lake(legacy) == [] and len(table_history(legacy, "silver/subjects")) == 1


def test_an_upgrade_stopped_before_removing_the_old_files_is_finished_by_the_next(legacy: Lake) -> None:
    old = read_object(legacy, "silver/subjects/part-0.parquet")
    upgrade_lake(legacy)
    write_object(legacy, "silver/subjects/part-0.parquet", old)  # as if killed before the removal
    legacy.fs.rm(legacy.path("_lake.json"))
    assert upgrade_lake(legacy) == []  # already a Delta table: no new version, old file removed
    assert len(table_history(legacy, "silver/subjects")) == 1
    legacy.fs.invalidate_cache()
    assert not legacy.fs.exists(legacy.path("silver/subjects/part-0.parquet"))
    assert read_table(legacy, "silver/subjects").height == 2
