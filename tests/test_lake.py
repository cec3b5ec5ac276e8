"""Lake storage on disk and on a real S3 API (moto server): publish, replace, read, scan."""
from __future__ import annotations

import hashlib

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trialake.lake import (
    Lake,
    compute_sha256,
    copy_object,
    list_landing_files,
    open_lake,
    polars_storage_options,
    read_landing_bytes,
    read_object,
    read_table,
    scan_table,
    table_exists,
    write_object,
    write_table,
)

VISITS = pl.DataFrame(
    {
        "USUBJID": ["S-001", "S-001", "S-002", "S-003"],
        "AVISIT": ["Baseline", "Day 10", "Baseline", "Baseline"],
        "AVAL": [10.5, 7.25, 3.0, 0.0],
        "SITE": ["01", "01", "02", "02"],
    }
)


def _all_objects(lake: Lake) -> dict[str, str]:
    """Every object under the lake with the sha256 of its bytes."""
    root = lake.path()
    return {p[len(root) + 1 :]: hashlib.sha256(lake.fs.cat_file(p)).hexdigest() for p in lake.fs.find(root)}


def test_round_trip_keeps_values_types_and_hive_layout(lake: Lake) -> None:
    result = write_table(lake, "gold/example", VISITS, partition_by=["SITE"])
    assert sorted(result.written) == ["SITE=01", "SITE=02"]
    assert sorted(_all_objects(lake)) == ["gold/example/SITE=01/part-0.parquet", "gold/example/SITE=02/part-0.parquet"]
    back = read_table(lake, "gold/example").sort("USUBJID", "AVISIT")
    assert_frame_equal(back, VISITS.sort("USUBJID", "AVISIT"))


def test_partition_values_that_look_numeric_stay_strings_for_glob_readers(lake: Lake) -> None:
    # "01" and "02" would be read back as integers 1 and 2 if the type came from the folder names.
    write_table(lake, "gold/example", VISITS, partition_by=["SITE"])
    scanned = scan_table(lake, "gold/example").collect().sort("USUBJID", "AVISIT")
    assert scanned["SITE"].to_list() == ["01", "01", "02", "02"]
    assert scanned.schema["SITE"] == pl.String


def test_replace_partitions_leaves_other_partitions_alone(lake: Lake) -> None:
    write_table(lake, "silver/example", VISITS, partition_by=["SITE"])
    before = _all_objects(lake)
    update = pl.DataFrame({"USUBJID": ["S-004"], "AVISIT": ["Baseline"], "AVAL": [1.0], "SITE": ["03"]})
    result = write_table(lake, "silver/example", update, partition_by=["SITE"], mode="replace_partitions")
    after = _all_objects(lake)
    assert result.written == ("SITE=03",) and result.removed == ()
    for untouched in ("silver/example/SITE=01/part-0.parquet", "silver/example/SITE=02/part-0.parquet"):
        assert after[untouched] == before[untouched]
    assert read_table(lake, "silver/example").height == VISITS.height + 1


def test_replace_table_removes_partitions_that_are_gone(lake: Lake) -> None:
    write_table(lake, "silver/example", VISITS, partition_by=["SITE"])
    only_site_02 = VISITS.filter(pl.col("SITE") == "02")
    result = write_table(lake, "silver/example", only_site_02, partition_by=["SITE"])
    assert result.removed == ("SITE=01",)
    assert result.unchanged == ("SITE=02",)
    assert read_table(lake, "silver/example")["USUBJID"].to_list() == ["S-002", "S-003"]


def test_rewriting_the_same_data_changes_nothing(lake: Lake) -> None:
    write_table(lake, "silver/example", VISITS, partition_by=["SITE"])
    before = {p: lake.fs.info(lake.path(p)) for p in _all_objects(lake)}
    result = write_table(lake, "silver/example", VISITS, partition_by=["SITE"])
    assert result.written == () and len(result.unchanged) == 2
    after = {p: lake.fs.info(lake.path(p)) for p in _all_objects(lake)}
    assert before == after  # same size, same mtime/ETag: not rewritten


_WRITER = """
import sys, polars as pl
from trialake.lake import Lake, write_table
lake = Lake(url=sys.argv[1], storage_options={k: v for k, v in eval(sys.argv[2]).items()})
version = 0
while True:
    version += 1
    rows = 200_000 + version
    frame = pl.DataFrame({"version": [version] * rows, "SITE": ["01", "02"] * (rows // 2) + ["01"] * (rows % 2)})
    frame = frame.with_columns(pl.int_range(rows).alias("i"))
    write_table(lake, "silver/crashy", frame, partition_by=["SITE"])
    print(version, flush=True)
"""


def test_a_writer_killed_mid_write_leaves_each_partition_whole(lake: Lake) -> None:
    """Kill -9 a process that keeps republishing a table: what is left must read back whole."""
    import signal
    import subprocess
    import sys

    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, lake.url, repr(dict(lake.storage_options))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(3):  # let it publish a few versions, then kill it while it writes the next
            assert writer.stdout.readline().strip(), "writer stopped early"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    table = read_table(lake, "silver/crashy")
    for site, part in table.group_by("SITE"):
        versions = part["version"].unique().to_list()
        assert len(versions) == 1, f"partition {site} mixes versions {versions}"
        total = 200_000 + versions[0]
        assert part.height == total // 2 + (total % 2 if site == ("01",) else 0)
    # A staging file the kill left behind is hidden: glob readers see the same whole table.
    assert scan_table(lake, "silver/crashy").select(pl.len()).collect().item() == table.height


def test_unpartitioned_table_and_missing_table(lake: Lake) -> None:
    assert not table_exists(lake, "gold/nothing")
    assert read_table(lake, "gold/nothing").is_empty()
    write_table(lake, "gold/example", VISITS)
    assert table_exists(lake, "gold/example")
    assert sorted(_all_objects(lake)) == ["gold/example/part-0.parquet"]


@pytest.mark.parametrize("table", ["example", "public/example", "gold/", "gold/a/b"])
def test_table_names_must_name_a_zone(lake: Lake, table: str) -> None:
    with pytest.raises(ValueError, match="zone"):
        write_table(lake, table, VISITS)


def test_copy_object_checks_the_checksum(lake: Lake) -> None:
    data = b"DICM payload"
    digest = hashlib.sha256(data).hexdigest()
    copy_object(lake, "bronze/dicom/a.dcm", data, sha256=digest)
    assert read_object(lake, "bronze/dicom/a.dcm") == data
    with pytest.raises(ValueError, match="sha256"):
        copy_object(lake, "bronze/dicom/b.dcm", data, sha256="0" * 64)
    assert not lake.fs.exists(lake.path("bronze/dicom/b.dcm"))


def test_an_object_written_in_parts_is_their_concatenation(lake: Lake) -> None:
    image = bytes(range(256)) * 4
    write_object(lake, "bronze/dicom/a.dcm", [b"header", memoryview(image)[8:]])
    assert read_object(lake, "bronze/dicom/a.dcm") == b"header" + image[8:]


def test_a_single_buffer_of_any_kind_is_written_whole(lake: Lake) -> None:
    write_object(lake, "bronze/dicom/b.dcm", bytearray(b"DICM"))
    write_object(lake, "bronze/dicom/c.dcm", memoryview(b"header and pixels")[7:])
    assert (read_object(lake, "bronze/dicom/b.dcm"), read_object(lake, "bronze/dicom/c.dcm")) == (b"DICM", b"and pixels")


def test_a_failed_write_leaves_neither_the_object_nor_a_staging_file(lake: Lake) -> None:
    write_object(lake, "bronze/dicom/keep.dcm", b"old")
    with pytest.raises(TypeError):
        write_object(lake, "bronze/dicom/keep.dcm", [b"new header", 42])  # type: ignore[list-item]
    assert read_object(lake, "bronze/dicom/keep.dcm") == b"old"
    assert [p.rsplit("/", 1)[-1] for p in lake.fs.find(lake.path("bronze/dicom"))] == ["keep.dcm"]


def test_a_write_that_cannot_be_renamed_into_place_leaves_no_staging_file(tmp_path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    (tmp_path / "lake" / "bronze" / "taken").mkdir(parents=True)
    with pytest.raises(OSError):
        write_object(lake, "bronze/taken", b"bytes")  # a folder of that name is in the way
    assert [p.name for p in (tmp_path / "lake" / "bronze").iterdir()] == ["taken"]


def test_reading_a_landing_file_that_went_away_says_so_without_its_path(lake: Lake) -> None:
    write_object(lake, "dicom/Doe^John/1.dcm", b"one")
    with pytest.raises(OSError, match="landing file could not be read: FileNotFoundError") as error:
        read_landing_bytes(lake, ["dicom/Doe^John/1.dcm", "dicom/Doe^John/2.dcm"])
    assert "Doe" not in str(error.value)


def test_list_landing_files_with_checksums(lake: Lake) -> None:
    write_object(lake, "dicom/Doe^John/1.dcm", b"one")
    write_object(lake, "dicom/Doe^John/sub/2.dcm", b"two")
    write_object(lake, "dicom/.hidden", b"x")  # listed: a stage accounts for it (rejects it, saying so)
    write_object(lake, "clinical/dm.csv", b"USUBJID\n")
    files = list_landing_files(lake, "dicom")
    assert [f.relpath for f in files] == ["dicom/.hidden", "dicom/Doe^John/1.dcm", "dicom/Doe^John/sub/2.dcm"]
    assert [f.size for f in files] == [1, 3, 3]
    data = read_landing_bytes(lake, [f.relpath for f in files])
    assert {p: compute_sha256(b) for p, b in data.items()} == {
        "dicom/.hidden": hashlib.sha256(b"x").hexdigest(),
        "dicom/Doe^John/1.dcm": hashlib.sha256(b"one").hexdigest(),
        "dicom/Doe^John/sub/2.dcm": hashlib.sha256(b"two").hexdigest(),
    }
    assert list_landing_files(lake, "nothing-here") == []


def test_open_lake_on_a_missing_bucket_says_so(s3_environ: dict[str, str]) -> None:
    from trialake.config import storage_options_from_env

    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_lake("s3://no-such-bucket-here/lake", storage_options_from_env(s3_environ))


def test_polars_storage_options_translate_the_aws_variables() -> None:
    s3fs_options = {
        "key": "AKIA",
        "secret": "s3cr3t",
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"},
    }
    assert polars_storage_options(s3fs_options) == {
        "aws_access_key_id": "AKIA",
        "aws_secret_access_key": "s3cr3t",
        "aws_endpoint_url": "http://127.0.0.1:9000",
        "aws_region": "eu-west-1",
        "aws_allow_http": "true",
    }
