"""Lake tables as Delta tables, on disk and on a real S3 server (SeaweedFS): one commit per write,
unchanged partitions kept, readers that never see half a publication, writers that never corrupt
a table (optimistic concurrency), a writer killed mid-commit, time travel, history, schema
changes, and plain Delta readers without this package."""
from __future__ import annotations

import datetime
import json
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trialake.lake import (
    Lake,
    TableConflict,
    delete_partition,
    delete_table,
    read_table,
    scan_table,
    table_exists,
    table_history,
    table_version,
    write_table,
)
from trialake.lake.tables import file_names

VISITS = pl.DataFrame(
    {
        "USUBJID": ["S-001", "S-001", "S-002", "S-003"],
        "AVISIT": ["Baseline", "Day 10", "Baseline", "Baseline"],
        "AVAL": [10.5, 7.25, 3.0, 0.0],
        "SITE": ["01", "01", "02", "02"],
    }
)


def _commits(lake: Lake, table: str) -> list[str]:
    """The table's commit files (one per version)."""
    lake.fs.invalidate_cache()
    return sorted(p.rsplit("/", 1)[-1] for p in lake.fs.ls(lake.path(table, "_delta_log"), detail=False) if p.endswith(".json"))


def _data_files(lake: Lake, table: str) -> dict[str, str]:
    """Every Parquet object under the table with its ETag or mtime (changes when rewritten)."""
    lake.fs.invalidate_cache()
    found = lake.fs.find(lake.path(table), detail=True)
    root = len(lake.path(table)) + 1
    return {p[root:]: str(info.get("ETag") or info.get("mtime")) for p, info in found.items() if p.endswith(".parquet")}


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns)


def test_a_table_is_a_delta_table_in_hive_layout_and_round_trips(lake: Lake) -> None:
    result = write_table(lake, "gold/example", VISITS, partition_by=["SITE"])
    assert sorted(result.written) == ["SITE=01", "SITE=02"] and result.committed and result.version == 0
    assert _commits(lake, "gold/example") == ["00000000000000000000.json"]
    files = sorted(_data_files(lake, "gold/example"))
    assert [f.split("/")[0] for f in files] == ["SITE=01", "SITE=02"]
    assert all(f.split("/")[1].startswith("part-") for f in files)
    assert_frame_equal(_sorted(read_table(lake, "gold/example")), _sorted(VISITS))
    # partition values that look numeric keep their type: "01" is not 1
    scanned = scan_table(lake, "gold/example").collect()
    assert scanned.schema["SITE"] == pl.String and sorted(scanned["SITE"].unique()) == ["01", "02"]


def test_plain_polars_and_deltalake_read_the_table_without_this_package(lake: Lake) -> None:
    """An analyst's Python without trialake (its import is blocked) reads the table with
    pl.scan_delta and with deltalake, given only the URL and the standard object-store options."""
    write_table(lake, "gold/example", VISITS, partition_by=["SITE"])
    from trialake.lake import polars_storage_options

    options = None if lake.is_local else polars_storage_options(lake.storage_options)
    script = (
        "import sys, json; sys.modules['trialake'] = None\n"
        "import polars as pl; from deltalake import DeltaTable\n"
        "uri, options = sys.argv[1], json.loads(sys.argv[2])\n"
        "frame = pl.scan_delta(uri, storage_options=options).collect()\n"
        "rows = DeltaTable(uri, storage_options=options).to_pyarrow_table().num_rows\n"
        "print(json.dumps({'rows': frame.height, 'rows_deltalake': rows, 'sites': sorted(frame['SITE'].unique().to_list()),"
        " 'aval': frame['AVAL'].sum()}))\n"
        # Both libraries' S3 runtimes sometimes abort while the interpreter tears down (SIGABRT,
        # "terminate called without an active exception", after the output: seen about once in
        # twenty runs on S3); the read itself is done, so the script leaves without the teardown.
        "sys.stdout.flush(); import os; os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, lake.uri("gold/example"), json.dumps(options)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"rows": 4, "rows_deltalake": 4, "sites": ["01", "02"], "aval": 20.75}


def test_replace_partitions_is_one_commit_and_leaves_other_partitions_files_alone(lake: Lake) -> None:
    write_table(lake, "silver/example", VISITS, partition_by=["SITE"])
    before = _data_files(lake, "silver/example")
    update = pl.DataFrame({"USUBJID": ["S-004", "S-005"], "AVISIT": ["Baseline"] * 2, "AVAL": [1.0, 2.0], "SITE": ["03", "04"]})
    result = write_table(lake, "silver/example", update, partition_by=["SITE"], mode="replace_partitions")
    assert result.written == ("SITE=03", "SITE=04") and result.removed == () and result.version == 1
    assert len(_commits(lake, "silver/example")) == 2  # two partitions, one commit
    after = _data_files(lake, "silver/example")
    assert {k: v for k, v in after.items() if k in before} == before
    assert read_table(lake, "silver/example").height == VISITS.height + 2
    # a partition listed as owned but absent from the frame is removed in the same commit
    result = write_table(lake, "silver/example", update.head(1), partition_by=["SITE"], mode="replace_partitions",
                         partitions=[{"SITE": "03"}, {"SITE": "04"}])
    assert result.removed == ("SITE=04",) and result.unchanged == ("SITE=03",) and result.version == 2
    assert sorted(read_table(lake, "silver/example")["SITE"].unique()) == ["01", "02", "03"]


def test_replace_table_removes_partitions_that_are_gone(lake: Lake) -> None:
    write_table(lake, "silver/example", VISITS, partition_by=["SITE"])
    result = write_table(lake, "silver/example", VISITS.filter(pl.col("SITE") == "02"), partition_by=["SITE"])
    assert result.removed == ("SITE=01",) and result.unchanged == ("SITE=02",)
    assert sorted(read_table(lake, "silver/example")["USUBJID"]) == ["S-002", "S-003"]
    assert read_table(lake, "silver/example", as_of=0).height == VISITS.height  # the old version stays readable


def test_rewriting_the_same_data_makes_no_commit_and_touches_no_file(lake: Lake) -> None:
    write_table(lake, "silver/example", VISITS, partition_by=["SITE"])
    files, commits = _data_files(lake, "silver/example"), _commits(lake, "silver/example")
    shuffled = VISITS.select("SITE", "AVAL", "USUBJID", "AVISIT")  # same columns in another order
    for frame in (VISITS, shuffled):
        result = write_table(lake, "silver/example", frame, partition_by=["SITE"])
        assert result.written == () and len(result.unchanged) == 2 and not result.committed and result.version == 0
    assert _data_files(lake, "silver/example") == files and _commits(lake, "silver/example") == commits


def test_each_commit_records_who_made_it(lake: Lake) -> None:
    run_a = lake.with_commit_info(run_id="run-A", flow="nightly", stage="publish DICOM", code_version="trialake 0.1.0")
    write_table(run_a, "silver/example", VISITS, partition_by=["SITE"])
    write_table(lake.with_commit_info(run_id="run-B", stage="clinical silver"), "silver/example", VISITS.head(1), partition_by=["SITE"])
    history = table_history(lake, "silver/example")
    assert [(c.version, c.info.get("run_id"), c.info.get("stage")) for c in history] == [
        (1, "run-B", "clinical silver"), (0, "run-A", "publish DICOM")]
    assert history[1].info["flow"] == "nightly" and history[1].info["code_version"] == "trialake 0.1.0"
    assert history[0].timestamp >= history[1].timestamp > datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)


def test_a_new_column_is_added_and_a_wider_type_rewrites_the_table_in_one_commit(lake: Lake) -> None:
    write_table(lake, "bronze/lb", VISITS, partition_by=["SITE"], mode="replace_partitions")
    site3 = pl.DataFrame({"USUBJID": ["S-009"], "AVISIT": ["Day 10"], "AVAL": [5.5], "SITE": ["03"], "LBSPEC": ["serum"]})
    write_table(lake, "bronze/lb", site3, partition_by=["SITE"], mode="replace_partitions")
    table = read_table(lake, "bronze/lb")
    assert table.columns == ["USUBJID", "AVISIT", "AVAL", "SITE", "LBSPEC"]
    assert table.filter(pl.col("SITE") != "03")["LBSPEC"].null_count() == 4
    # AVAL as text in one export: every partition is rewritten with text, in one commit
    texts = pl.DataFrame({"USUBJID": ["S-010"], "AVISIT": ["Day 28"], "AVAL": ["<0.5"], "SITE": ["04"]})
    result = write_table(lake, "bronze/lb", texts, partition_by=["SITE"], mode="replace_partitions")
    assert result.committed and result.version == 2 and len(_commits(lake, "bronze/lb")) == 3
    table = read_table(lake, "bronze/lb")
    assert table.schema["AVAL"] == pl.String
    assert sorted(table["AVAL"].to_list()) == sorted(["10.5", "7.25", "3.0", "0.0", "5.5", "<0.5"])


def test_types_are_stored_as_delta_types_and_impossible_ones_are_refused(lake: Lake) -> None:
    frame = pl.DataFrame({
        "nothing": pl.Series([None, None]),
        "code": pl.Series(["a", "b"], dtype=pl.Categorical),
        "count": pl.Series([1, 4_000_000_000], dtype=pl.UInt32),
        "at": pl.Series([datetime.datetime(2020, 3, 1, 12, 30, 0, 123456)] * 2, dtype=pl.Datetime("ns")),
        "names": [["x"], []],
    })
    write_table(lake, "silver/types", frame)
    back = read_table(lake, "silver/types")
    assert back.schema == pl.Schema({"nothing": pl.String, "code": pl.String, "count": pl.Int64,
                                     "at": pl.Datetime("us"), "names": pl.List(pl.String)})
    assert back["count"].to_list() == [1, 4_000_000_000] and back["at"][0] == datetime.datetime(2020, 3, 1, 12, 30, 0, 123456)
    with pytest.raises(ValueError, match=r"silver/types.*'wait'.*Duration"):
        write_table(lake, "silver/types", frame.with_columns(wait=pl.duration(days=1)))
    with pytest.raises(ValueError, match=r"'n' and 'N' differ only in case"):
        write_table(lake, "gold/counts", pl.DataFrame({"n": [1], "N": [2]}))
    assert table_version(lake, "gold/counts") is None


def test_deleting_a_partition_or_the_rows_keeps_the_history(lake: Lake) -> None:
    write_table(lake, "silver/example", VISITS, partition_by=["SITE"])
    assert delete_partition(lake, "silver/example", {"SITE": "01"}) is True
    assert delete_partition(lake, "silver/example", {"SITE": "01"}) is False
    assert sorted(read_table(lake, "silver/example")["SITE"]) == ["02", "02"]
    with pytest.raises(ValueError, match="partition columns"):
        delete_partition(lake, "silver/example", {"USUBJID": "S-001"})
    delete_table(lake, "silver/example")
    assert not table_exists(lake, "silver/example") and read_table(lake, "silver/example").is_empty()
    assert read_table(lake, "silver/example", as_of=0).height == 4
    assert [c.version for c in table_history(lake, "silver/example")] == [2, 1, 0]


def test_unpartitioned_missing_and_misnamed_tables(lake: Lake) -> None:
    assert not table_exists(lake, "gold/nothing") and read_table(lake, "gold/nothing").is_empty()
    assert table_version(lake, "gold/nothing") is None
    with pytest.raises(LookupError, match="gold/nothing"):
        read_table(lake, "gold/nothing", as_of=0)
    write_table(lake, "gold/example", VISITS)
    assert table_exists(lake, "gold/example") and len(file_names(lake, "gold/example")) == 1
    with pytest.raises(LookupError, match="version 7"):
        read_table(lake, "gold/example", as_of=7)
    for table in ("example", "public/example", "gold/", "gold/a/b"):
        with pytest.raises(ValueError, match="zone"):
            write_table(lake, table, VISITS)


def test_a_write_based_on_an_older_version_is_refused(lake: Lake) -> None:
    write_table(lake, "silver/counter", pl.DataFrame({"value": [0]}))
    seen = table_version(lake, "silver/counter").version
    write_table(lake, "silver/counter", pl.DataFrame({"value": [1]}), expected_version=seen)
    with pytest.raises(TableConflict, match="expected version 0, found version 1"):
        write_table(lake, "silver/counter", pl.DataFrame({"value": [1]}), expected_version=seen)
    assert read_table(lake, "silver/counter")["value"].to_list() == [1]


# Child processes for the concurrency and crash tests -----------------------------------------

_CHILD = """
import json, sys, time
import polars as pl
from trialake.lake import Lake, TableConflict, read_table, table_version, write_table
import trialake.lake.tables as tables

url, options, mode, tag = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
lake = Lake(url=url, storage_options=options).with_commit_info(run_id=tag)
PARTS = 6

def frame(version):
    rows = 500 + version  # every partition holds version-dependent rows: a mix would show
    return pl.DataFrame({"part": [f"p{i % PARTS}" for i in range(rows * PARTS)], "version": [version] * (rows * PARTS),
                         "writer": [tag] * (rows * PARTS), "i": list(range(rows * PARTS))})

if mode == "publish":  # republish all partitions, version after version
    version = 0
    while True:
        version += 1
        write_table(lake, "silver/published", frame(version), partition_by=["part"])
        print(version, flush=True)
elif mode == "stall":  # files written, then stopped before the commit: the test kills it there
    real = tables._commit
    def stalled(*args, **kwargs):
        print("files written", flush=True)
        time.sleep(600)
    tables._commit = stalled
    write_table(lake, "silver/published", frame(99), partition_by=["part"])
elif mode == "compete":  # replace the whole table, retrying when the other writer got in first
    print("ready", flush=True); sys.stdin.readline()
    conflicts = 0
    for version in range(1, 6):
        while True:
            try:
                write_table(lake, "silver/published", frame(version), partition_by=["part"]); break
            except TableConflict:
                conflicts += 1
    print(conflicts, flush=True)
elif mode == "increment":  # read-modify-write of a counter
    print("ready", flush=True); sys.stdin.readline()
    for _ in range(5):
        while True:
            seen = table_version(lake, "silver/counter").version
            value = read_table(lake, "silver/counter", as_of=seen)["value"][0]
            try:
                write_table(lake, "silver/counter", pl.DataFrame({"value": [value + 1]}), expected_version=seen); break
            except TableConflict:
                continue
"""


def _child(lake: Lake, mode: str, tag: str = "writer") -> subprocess.Popen:
    args = [sys.executable, "-c", _CHILD, lake.url, json.dumps(dict(lake.storage_options)), mode, tag]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _kill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait()


def _check_whole(frame: pl.DataFrame) -> int:
    """A published table holds one version of one writer, every partition complete; returns it."""
    assert frame.select("version", "writer").n_unique() == 1, "a read mixes versions or writers"
    version = frame["version"][0]
    assert frame.height == (500 + version) * 6
    assert sorted(frame["i"]) == list(range(frame.height))
    return version


def test_a_reader_never_sees_half_a_publication(lake: Lake) -> None:
    """A writer republishes six partitions again and again; every read in between (read_table
    and a Polars scan) sees all six at one version."""
    writer = _child(lake, "publish")
    try:
        assert writer.stdout.readline().strip() == "1"
        seen, reads = set(), 0
        deadline = time.monotonic() + 60
        while (len(seen) < 4 or reads < 20) and time.monotonic() < deadline:
            seen.add(_check_whole(read_table(lake, "silver/published")))
            seen.add(_check_whole(scan_table(lake, "silver/published").collect()))
            reads += 2
        assert len(seen) >= 4, f"the reader saw only versions {seen} in {reads} reads"
    finally:
        _kill(writer)
    _check_whole(read_table(lake, "silver/published"))


def test_a_writer_killed_mid_commit_leaves_the_last_committed_version_and_the_next_write_converges(lake: Lake) -> None:
    writer = _child(lake, "publish")
    try:
        for _ in range(2):  # two versions published, then killed at some point of the third
            assert writer.stdout.readline().strip()
    finally:
        _kill(writer)
    killed_at = _check_whole(read_table(lake, "silver/published"))
    staller = _child(lake, "stall")  # killed after its data files are written, before the commit
    try:
        assert staller.stdout.readline().strip() == "files written"
    finally:
        _kill(staller)
    assert _check_whole(read_table(lake, "silver/published")) == killed_at  # the files are invisible
    version = table_version(lake, "silver/published").version
    result = write_table(lake.with_commit_info(run_id="next run"), "silver/published",
                         pl.DataFrame({"part": ["p0"], "version": [7], "writer": ["next"], "i": [0]}), partition_by=["part"])
    assert result.version == version + 1 and read_table(lake, "silver/published")["writer"].to_list() == ["next"]


def test_two_writers_never_corrupt_a_table(lake: Lake) -> None:
    """Two processes replace the same six partitions five times each: every commit that lands is
    one writer's whole table (a writer that lost the race retries), and no version mixes them."""
    children = [_child(lake, "compete", tag) for tag in ("A", "B")]
    assert [c.stdout.readline().strip() for c in children] == ["ready", "ready"]
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        assert int(child.stdout.readline()) >= 0  # how often it lost the race and retried
    assert [child.wait(timeout=120) for child in children] == [0, 0]
    history = table_history(lake, "silver/published")
    assert len(history) == 10  # every write landed once, as one version; a lost race committed nothing
    for commit in history:
        frame = read_table(lake, "silver/published", as_of=commit.version)
        assert _check_whole(frame) and frame["writer"][0] == commit.info["run_id"]


def test_concurrent_read_modify_writes_lose_no_update(lake: Lake) -> None:
    write_table(lake, "silver/counter", pl.DataFrame({"value": [0]}))
    children = [_child(lake, "increment", tag) for tag in ("A", "B")]
    assert [c.stdout.readline().strip() for c in children] == ["ready", "ready"]
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    assert [child.wait(timeout=120) for child in children] == [0, 0]
    assert read_table(lake, "silver/counter")["value"].to_list() == [10]
    assert len(table_history(lake, "silver/counter")) == 11


def test_a_table_can_change_its_partitioning_only_as_a_whole(lake: Lake) -> None:
    from trialake.lake.tables import delta_table

    write_table(lake, "silver/example", VISITS, partition_by=["SITE"])
    with pytest.raises(ValueError, match=r"partitioned by \['SITE'\], this write by \['USUBJID'\]"):
        write_table(lake, "silver/example", VISITS, partition_by=["USUBJID"], mode="replace_partitions")
    result = write_table(lake, "silver/example", VISITS, partition_by=["USUBJID"])
    assert result.committed and sorted(result.written) == ["USUBJID=S-001", "USUBJID=S-002", "USUBJID=S-003"]
    assert delta_table(lake, "silver/example").metadata().partition_columns == ["USUBJID"]
    assert_frame_equal(_sorted(read_table(lake, "silver/example")), _sorted(VISITS))
    assert_frame_equal(_sorted(read_table(lake, "silver/example", as_of=0)), _sorted(VISITS))
