"""The landing area: list what arrived, with checksums, on disk or on S3."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from trialake.lake.storage import Lake


@dataclass(frozen=True)
class LandingFile:
    """One file in the landing area. ``relpath`` may carry PHI: it stays in restricted/."""

    relpath: str
    size: int
    version: str  # mtime on disk, ETag on S3: changes when the bytes may have changed


def compute_sha256(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def _read_local(paths: Iterable[str]) -> dict[str, bytes | OSError]:
    """Files on disk with plain reads (fsspec's local ``cat`` costs more than the read itself);
    an error is returned in place of the bytes, as ``fs.cat(on_error="return")`` does."""
    out: dict[str, bytes | OSError] = {}
    for path in paths:
        try:
            with open(path, "rb") as handle:
                out[path] = handle.read()
        except OSError as exc:
            out[path] = exc
    return out


#: A file Trialake itself is writing (a staging file renamed into place when complete, see
#: ``write_object``): not a landed file yet.
_IN_FLIGHT = re.compile(r"^\.[0-9a-f]{32}\.partial$")


def list_landing_files(landing: Lake, subdir: str) -> list[LandingFile]:
    """Every file under ``<landing>/<subdir>/`` (recursively), sorted by path, hidden names and
    folders included (the stages decide what to do with them); only files that Trialake's own
    writers are still writing are left out."""
    root = landing.path(subdir)
    if not landing.fs.exists(root):
        return []
    found = landing.fs.find(root, detail=True)
    files = [
        LandingFile(relpath=f"{subdir}/{path[len(root) + 1:]}", size=int(info["size"]), version=object_version(info))
        for path, info in found.items()
        if info.get("type") == "file" and not _IN_FLIGHT.match(path.rsplit("/", 1)[-1])
    ]
    return sorted(files, key=lambda f: f.relpath)


def is_hidden(relpath: str) -> bool:
    """Whether a landing path has a hidden file or folder name (starting with '.') below its area."""
    return any(part.startswith(".") for part in relpath.split("/")[1:])


def object_version(info: Mapping) -> str:
    """What changes when an object is rewritten: ETag on S3, mtime on disk."""
    for key in ("ETag", "etag", "mtime", "LastModified", "created"):
        if info.get(key) is not None:
            return str(info[key]).strip('"')
    return ""


def read_landing_bytes(landing: Lake, relpaths: Iterable[str]) -> dict[str, bytes]:
    """Bytes of several landing files in one call (concurrent on S3)."""
    paths = [landing.path(p) for p in relpaths]
    if not paths:
        return {}
    data = _read_local(paths) if landing.is_local else landing.fs.cat(paths, on_error="return")
    prefix = len(landing.path()) + 1
    out: dict[str, bytes] = {}
    for path, value in data.items():
        if isinstance(value, Exception):
            raise OSError(f"landing file could not be read: {type(value).__name__}") from value
        out[path[prefix:]] = value
    return out
