"""The lake root and its objects, local or on S3, through fsspec (objects on a local disk are
written with plain system calls, which cost a fraction of fsspec's local layer). Tables are Delta
Lake tables: see `trialake.lake.tables`."""
from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import fsspec

ZONES = ("restricted", "bronze", "silver", "gold", "reports", "unblinded")


@dataclass(frozen=True)
class Lake:
    """A lake root (local path or ``s3://bucket/prefix``) and how to reach it.

    ``commit_info`` is recorded in the metadata of every table commit made through this handle
    (run id, flow, stage, code version, input fingerprints): see `with_commit_info`.
    """

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    commit_info: Mapping[str, Any] = field(default_factory=dict, compare=False)

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

    def with_commit_info(self, **info: Any) -> Lake:
        """The same lake, with ``info`` added to what its table commits record."""
        return replace(self, commit_info={**self.commit_info, **info})


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


def create_object(lake: Lake, relpath: str, data: bytes) -> bool:
    """Write an object only if none exists at ``relpath`` (atomically: two writers can never both
    succeed); returns whether this call created it. On disk a hard link of a complete staging
    file, which fails if the name exists; on S3 a PUT with ``If-None-Match: *``."""
    target = lake.path(relpath)
    if not lake.is_local:
        bucket, _, key = target.partition("/")
        try:
            lake.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        except OSError as exc:
            response = getattr(exc.__cause__, "response", None) or {}
            if isinstance(exc, FileExistsError) or str(response.get("Error", {}).get("Code")) in ("PreconditionFailed", "412"):
                return False
            raise
        finally:
            lake.fs.invalidate_cache(target)
        return True
    return _write_file_atomically(target, [data], exclusive=True)


def _write_file_atomically(target: str, parts: Sequence[bytes | memoryview], *, exclusive: bool = False) -> bool:
    """A hidden staging file beside ``target``, renamed over it once complete (removed if anything
    fails); plain system calls, because fsspec's local layer costs more than writing a DICOM copy.
    ``exclusive``: hard-link it instead, which fails if ``target`` exists (returns False then)."""
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
        if not exclusive:
            os.replace(staging, target)
            return True
        try:
            os.link(staging, target)
        except FileExistsError:
            return False
        finally:
            os.unlink(staging)
        return True
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise


def list_folder(lake: Lake, relpath: str) -> list[tuple[str, bool]]:
    """(name, is a folder) of each entry of a lake folder, listed afresh (an object store's listing
    may be cached by an earlier call in the process); empty if there is no such folder."""
    try:
        entries = lake.fs.ls(lake.path(relpath), detail=True, refresh=True)
    except FileNotFoundError:
        return []
    root = lake.path(relpath).rstrip("/")
    return sorted((e["name"].rstrip("/").rsplit("/", 1)[-1], e["type"] == "directory")
                  for e in entries if e["name"].rstrip("/") != root)


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


def polars_storage_options(storage_options: Mapping[str, Any]) -> dict[str, str]:
    """Translate s3fs options (see `storage_options_from_env`) to the object-store keys of Polars
    and delta-rs."""
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


def delta_storage_options(lake: Lake) -> dict[str, str] | None:
    """delta-rs options for the lake: None on disk; on S3 the credentials and endpoint plus
    ``conditional_put: etag``, so that a commit is a conditional PUT (``If-None-Match``) and two
    writers can never both create the same table version, without an external lock service."""
    if lake.is_local:
        return None
    return {**polars_storage_options(lake.storage_options), "conditional_put": "etag"}
