"""Tables and objects in the lake, local or on S3, through fsspec (objects on a local disk are
written with plain system calls, which cost a fraction of fsspec's local layer)."""
from __future__ import annotations

import contextlib
import io
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import fsspec
import polars as pl
import pyarrow.parquet as pq

ZONES = ("restricted", "bronze", "silver", "gold", "reports", "unblinded")
PARTITION_FILE = "part-0.parquet"
WriteMode = Literal["replace_table", "replace_partitions"]


@dataclass(frozen=True)
class Lake:
    """A lake root (local path or ``s3://bucket/prefix``) and how to reach it."""

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def fs(self) -> fsspec.AbstractFileSystem:
        protocol = fsspec.utils.get_protocol(self.url)
        options = dict(self.storage_options) if protocol != "file" else {}
        return fsspec.filesystem(protocol, **options)

    @property
    def is_local(self) -> bool:
        return fsspec.utils.get_protocol(self.url) == "file"

    def path(self, *parts: str) -> str:
        """Filesystem path (no protocol) of a location inside the lake."""
        root = self.fs._strip_protocol(self.url).rstrip("/")
        return "/".join([root, *(p.strip("/") for p in parts if p)])

    def uri(self, *parts: str) -> str:
        """URL of a location inside the lake, as Polars and people spell it."""
        return "/".join([self.url.rstrip("/"), *(p.strip("/") for p in parts if p)])


@dataclass(frozen=True)
class TableWrite:
    """What a write changed: partitions written, left as they were, and removed."""

    table: str
    written: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]
    rows: int


def open_lake(url: str, storage_options: Mapping[str, Any] | None = None) -> Lake:
    """A handle on the lake at ``url``; checks that the root is reachable."""
    lake = Lake(url=url.rstrip("/"), storage_options=dict(storage_options or {}))
    if lake.is_local:
        lake.fs.makedirs(lake.path(), exist_ok=True)
    else:
        bucket = lake.path().split("/", 1)[0]
        if not lake.fs.exists(bucket):
            raise FileNotFoundError(f"lake {url}: bucket {bucket!r} does not exist or is not reachable")
    return lake


def _check_table_name(table: str) -> None:
    zone, _, name = table.partition("/")
    if zone not in ZONES or not name or "/" in name:
        raise ValueError(f"table {table!r}: expected '<zone>/<name>' with zone in {ZONES}")


def _partition_dir(partition: Mapping[str, Any]) -> str:
    return "/".join(f"{key}={_hive_value(value)}" for key, value in partition.items())


def _hive_value(value: Any) -> str:
    text = "__HIVE_DEFAULT_PARTITION__" if value is None else str(value)
    if "/" in text or "=" in text:
        raise ValueError(f"partition value {text!r} cannot contain '/' or '='")
    return text


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(frame.to_arrow(), buffer, compression="zstd")
    return buffer.getvalue()


_BUFFERS = (bytes, bytearray, memoryview)


def write_object(lake: Lake, relpath: str, data: bytes | Sequence[bytes | memoryview]) -> str:
    """Write bytes (or buffers, one after the other: the object is their concatenation) so that
    readers see the old or the new object, never a partial one.

    On disk: a hidden temporary file in the same folder, then an atomic rename. On S3: one PUT,
    which is atomic per object. Returns the lake-relative path.
    """
    target = lake.path(relpath)
    if lake.is_local:
        _write_file_atomically(target, [data] if isinstance(data, _BUFFERS) else data)
    else:
        lake.fs.pipe_file(target, bytes(data) if isinstance(data, _BUFFERS) else b"".join(data))
    return relpath


def _write_file_atomically(target: str, parts: Sequence[bytes | memoryview]) -> None:
    """A hidden staging file beside ``target``, renamed over it once complete (removed if anything
    fails); plain system calls, because fsspec's local layer costs more than writing a DICOM copy."""
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{uuid.uuid4().hex}.partial")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            for part in parts:
                view = memoryview(part)
                while view:
                    view = view[os.write(descriptor, view):]
        finally:
            os.close(descriptor)
        os.replace(staging, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise


def read_object(lake: Lake, relpath: str) -> bytes:
    """Bytes of one object in the lake."""
    return lake.fs.cat_file(lake.path(relpath))


def copy_object(lake: Lake, relpath: str, data: bytes, *, sha256: str) -> str:
    """Write ``data`` and check it arrived intact against its sha256."""
    from trialake.lake.landing import compute_sha256

    if compute_sha256(data) != sha256:
        raise ValueError(f"{relpath}: bytes do not match the expected sha256 before the copy")
    write_object(lake, relpath, data)
    if compute_sha256(read_object(lake, relpath)) != sha256:
        raise OSError(f"{relpath}: copy in the lake does not match its sha256")
    return relpath


def table_exists(lake: Lake, table: str) -> bool:
    """Whether the table has at least one published partition."""
    return bool(_partition_files(lake, table))


def _partition_files(lake: Lake, table: str) -> dict[str, str]:
    """Published partition files of a table: partition dir (relative, '' if unpartitioned) -> path."""
    root = lake.path(table)
    if not lake.fs.exists(root):
        return {}
    files = [p for p in lake.fs.find(root) if p.endswith(".parquet") and not p.rsplit("/", 1)[-1].startswith((".", "_"))]
    return {p[len(root) + 1 :].rsplit("/", 1)[0] if "/" in p[len(root) + 1 :] else "": p for p in files}


def write_table(
    lake: Lake,
    table: str,
    frame: pl.DataFrame,
    *,
    partition_by: Sequence[str] = (),
    mode: WriteMode = "replace_table",
) -> TableWrite:
    """Publish ``frame`` as ``<lake>/<table>/`` in Hive layout (one object per partition).

    ``replace_table`` makes the table equal to ``frame`` (partitions not in it are removed after
    the new ones are in place); ``replace_partitions`` rewrites only the partitions present in
    ``frame`` and leaves every other partition alone. A partition whose bytes would not change is
    not rewritten, so a re-run with the same data leaves the lake untouched. Partition columns are
    kept inside the files too, so readers get their true types.
    """
    _check_table_name(table)
    missing = [c for c in partition_by if c not in frame.columns]
    if missing:
        raise ValueError(f"table {table!r}: partition columns {missing} not in the frame")
    existing = _partition_files(lake, table)
    written, unchanged = [], []
    for part_dir, part in _split_partitions(frame, partition_by):
        relpath = "/".join(p for p in (table, part_dir, PARTITION_FILE) if p)
        data = _parquet_bytes(part)
        current = existing.get(part_dir)
        if current is not None and lake.fs.size(current) == len(data) and lake.fs.cat_file(current) == data:
            unchanged.append(part_dir)
            continue
        write_object(lake, relpath, data)
        written.append(part_dir)
    removed: list[str] = []
    if mode == "replace_table":
        keep = set(written) | set(unchanged)
        for part_dir, path in existing.items():
            if part_dir not in keep:
                lake.fs.rm(path)
                removed.append(part_dir)
    return TableWrite(table, tuple(written), tuple(unchanged), tuple(removed), frame.height)


def _split_partitions(frame: pl.DataFrame, partition_by: Sequence[str]) -> list[tuple[str, pl.DataFrame]]:
    if not partition_by:
        return [("", frame)]
    parts = frame.partition_by(list(partition_by), as_dict=True, maintain_order=True)
    return [
        (_partition_dir(dict(zip(partition_by, key))), part)
        for key, part in sorted(parts.items(), key=lambda item: tuple(str(v) for v in item[0]))
    ]


def read_table(lake: Lake, table: str, *, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """The whole published table as one frame (empty frame with no columns if it does not exist)."""
    _check_table_name(table)
    frames = []
    for _, path in sorted(_partition_files(lake, table).items()):
        with lake.fs.open(path, "rb") as handle:
            frames.append(pl.read_parquet(handle, columns=list(columns) if columns else None))
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed")


def delete_partition(lake: Lake, table: str, partition: Mapping[str, Any]) -> bool:
    """Remove one partition of a table; returns whether it existed."""
    _check_table_name(table)
    path = lake.path(table, _partition_dir(partition), PARTITION_FILE)
    if not lake.fs.exists(path):
        return False
    lake.fs.rm(path)
    return True


def delete_table(lake: Lake, table: str) -> None:
    """Remove a table and everything under it."""
    _check_table_name(table)
    if lake.fs.exists(lake.path(table)):
        lake.fs.rm(lake.path(table), recursive=True)


def polars_storage_options(storage_options: Mapping[str, Any]) -> dict[str, str]:
    """Translate s3fs options (see `storage_options_from_env`) to Polars' object-store keys."""
    client = storage_options.get("client_kwargs", {})
    translated = {
        "aws_access_key_id": storage_options.get("key"),
        "aws_secret_access_key": storage_options.get("secret"),
        "aws_session_token": storage_options.get("token"),
        "aws_endpoint_url": client.get("endpoint_url"),
        "aws_region": client.get("region_name"),
    }
    options = {k: v for k, v in translated.items() if v}
    if str(options.get("aws_endpoint_url", "")).startswith("http://"):
        options["aws_allow_http"] = "true"
    return options


def scan_table(
    lake: str | Lake, table: str, *, storage_options: Mapping[str, Any] | None = None
) -> pl.LazyFrame:
    """A Polars LazyFrame over a lake table, for analysts.

    >>> scan_table("demo/lake", "gold/adct").filter(pl.col("PARAMCD") == "LESPCT")  # doctest: +SKIP
    """
    handle = lake if isinstance(lake, Lake) else Lake(url=lake.rstrip("/"), storage_options=dict(storage_options or {}))
    _check_table_name(table)
    options = None if handle.is_local else polars_storage_options(handle.storage_options) or None
    return pl.scan_parquet(
        handle.uri(table, "**/*.parquet"), hive_partitioning=True, storage_options=options
    )

