"""Database locks and retention, on disk and on SeaweedFS: a lock names one version of every
table for good, reads as of a lock return exactly those versions, and vacuum removes what no
recent or locked version needs, never what a lock needs."""
from __future__ import annotations

import json

import polars as pl
import pytest

from trialake.lake import (
    Lake,
    LockExists,
    create_lock,
    list_locks,
    read_lock,
    read_object,
    read_table,
    scan_table,
    table_version,
    vacuum_lake,
    write_object,
    write_table,
)
from trialake.lake.tables import file_names


def _table(value: int, parts: int = 3) -> pl.DataFrame:
    return pl.DataFrame({"part": [f"p{i}" for i in range(parts)], "value": [value] * parts})


def _objects(lake: Lake, table: str) -> set[str]:
    lake.fs.invalidate_cache()
    root = len(lake.path(table)) + 1
    return {p[root:] for p in lake.fs.find(lake.path(table)) if p.endswith(".parquet")}


def test_a_lock_names_the_versions_of_every_table_for_good(lake: Lake) -> None:
    run = lake.with_commit_info(run_id="run-1")
    write_table(run, "silver/a", _table(1), partition_by=["part"])
    write_table(run, "silver/a", _table(2), partition_by=["part"])
    write_table(run, "gold/b", _table(10))
    record = create_lock(lake, "primary-analysis", run_id="lock-run", created_by="dm@site", extra={"note": "SAP v2"})
    assert {t: (e.version, e.run_id) for t, e in record.tables.items()} == {"silver/a": (1, "run-1"), "gold/b": (0, "run-1")}
    assert record.tables["silver/a"].table_id == table_version(lake, "silver/a").table_id

    write_table(lake.with_commit_info(run_id="run-2"), "silver/a", _table(3), partition_by=["part"])
    write_table(lake, "gold/c", _table(5))
    assert read_table(lake, "silver/a", as_of="primary-analysis")["value"].unique().to_list() == [2]
    assert scan_table(lake, "silver/a", as_of="primary-analysis").collect()["value"].unique().to_list() == [2]
    assert read_table(lake, "silver/a")["value"].unique().to_list() == [3]
    with pytest.raises(LookupError, match="no table gold/c"):
        read_table(lake, "gold/c", as_of="primary-analysis")
    with pytest.raises(LookupError, match=r"no lock 'interim'.*primary-analysis"):
        read_table(lake, "silver/a", as_of="interim")

    stored = read_object(lake, "_locks/primary-analysis.json")
    with pytest.raises(LockExists, match="never changed"):
        create_lock(lake, "primary-analysis", run_id="other", created_by="someone")
    assert read_object(lake, "_locks/primary-analysis.json") == stored
    assert json.loads(stored)["extra"] == {"note": "SAP v2"}
    assert read_lock(lake, "primary-analysis") == record
    assert [lock.name for lock in list_locks(lake)] == ["primary-analysis"]


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b", "x" * 129, "spaces are not allowed"])
def test_bad_lock_names_are_refused(lake: Lake, name: str) -> None:
    with pytest.raises(ValueError, match="lock name"):
        create_lock(lake, name, run_id="r", created_by="u")


def test_vacuum_keeps_locked_and_current_versions_and_removes_the_rest(lake: Lake) -> None:
    for value in range(4):  # versions 0..3, each replacing every partition
        write_table(lake, "silver/a", _table(value), partition_by=["part"])
    create_lock(lake, "interim", run_id="r", created_by="u", tables=["silver/a"])
    write_table(lake, "silver/a", _table(4), partition_by=["part"])  # version 4 (current); 3 is locked
    write_object(lake, "silver/a/part=p0/part-orphan.parquet", b"left by a writer killed before its commit")
    needed = file_names(lake, "silver/a", 3) | file_names(lake, "silver/a", 4)
    before = _objects(lake, "silver/a")
    assert len(before) == 5 * 3 + 1

    planned = vacuum_lake(lake, retention_hours=0, dry_run=True)
    assert _objects(lake, "silver/a") == before  # a dry run removes nothing
    removed = vacuum_lake(lake, retention_hours=0)
    assert set(removed["silver/a"]) == set(planned["silver/a"]) == before - needed
    assert _objects(lake, "silver/a") == needed
    assert read_table(lake, "silver/a", as_of="interim")["value"].unique().to_list() == [3]
    assert read_table(lake, "silver/a")["value"].unique().to_list() == [4]
    with pytest.raises(LookupError):
        read_table(lake, "silver/a", as_of=1)  # not locked: its files are gone
    with pytest.raises(ValueError, match="retention_hours"):
        vacuum_lake(lake, retention_hours=-1)


def test_vacuum_keeps_recent_versions_within_the_retention(lake: Lake) -> None:
    for value in range(3):
        write_table(lake, "silver/a", _table(value), partition_by=["part"])
    assert vacuum_lake(lake, retention_hours=24) == {"silver/a": []}
    assert [read_table(lake, "silver/a", as_of=v)["value"][0] for v in range(3)] == [0, 1, 2]
