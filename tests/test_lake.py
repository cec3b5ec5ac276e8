"""Lake objects and the landing area, on disk and on a real S3 API (SeaweedFS): atomic writes,
conditional creation, checksums, listings. Tables: test_lake_tables.py."""
from __future__ import annotations

import hashlib

import pytest

from trialake.lake import (
    Lake,
    compute_sha256,
    copy_object,
    create_object,
    delta_storage_options,
    list_landing_files,
    open_lake,
    polars_storage_options,
    read_landing_bytes,
    read_object,
    write_object,
)


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


def test_create_object_never_replaces_and_exactly_one_of_two_racing_writers_wins(lake: Lake) -> None:
    from concurrent.futures import ThreadPoolExecutor

    assert create_object(lake, "_locks/a.json", b"first") is True
    assert create_object(lake, "_locks/a.json", b"second") is False
    assert read_object(lake, "_locks/a.json") == b"first"
    with ThreadPoolExecutor(max_workers=8) as pool:
        won = list(pool.map(lambda i: create_object(lake, "_locks/race.json", str(i).encode()), range(8)))
    assert won.count(True) == 1
    assert read_object(lake, "_locks/race.json") == str(won.index(True)).encode()
    assert sorted(p.rsplit("/", 1)[-1] for p in lake.fs.find(lake.path("_locks"))) == ["a.json", "race.json"]


def test_delta_options_ask_for_conditional_commits_on_s3_only(s3_environ: dict[str, str]) -> None:
    from trialake.config import storage_options_from_env

    s3 = Lake(url="s3://bucket/lake", storage_options=storage_options_from_env(s3_environ))
    assert delta_storage_options(s3) == {
        "aws_access_key_id": s3_environ["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": s3_environ["AWS_SECRET_ACCESS_KEY"],
        "aws_endpoint_url": s3_environ["AWS_ENDPOINT_URL"], "aws_region": s3_environ["AWS_REGION"],
        "aws_allow_http": "true", "conditional_put": "etag",
    }
    assert delta_storage_options(Lake(url="/tmp/lake")) is None
