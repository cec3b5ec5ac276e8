"""Leak scanner for tests: search every file of a tree (outside restricted/) for PHI values.

``find_phi_leaks(roots, phi_values)`` looks, case-insensitively, in
- object names (every path component below the root),
- Parquet column names, key-value metadata and every value (dates rendered as YYYY-MM-DD and
  YYYYMMDD, nested values),
- DICOM elements at every depth (file meta, sequences, private tags, binary and UN values),
  decoded with the file's character set; the pixel data's bytes for values of 8 characters or
  more (text in JPEG/JPEG 2000 comment segments), and native pixels for bits set outside Bits
  Stored/High Bit (where overlays hide),
- NIfTI headers (.nii/.nii.gz: the header and its extensions, not the voxels),
- PNG text chunks (tEXt, iTXt, zTXt), in PNG files and in PNGs embedded in HTML as base64
  ``data:`` URIs (whose base64 text itself is not searched: short values match it by chance),
- SQLite databases (Prefect's): every cell of every table as SQLite decodes it, never the file's
  raw bytes, where records lie back to back (a UUID ending ``...095`` followed by a byte ``Y`` of
  the next column is no leak of ``095Y``); values shorter than 8 characters count there only
  between non-alphanumeric neighbours (not inside a hex or base64 string); free pages (deleted
  rows) are not read,
- every other file as text, UTF-8 and Latin-1 (HTML, JSON, CSV, logs, ...), and JSON also after
  decoding (so ``\\u00e9`` escapes are seen as the characters they stand for).
A value that begins with a digit (a date, a number) counts only where no letter or digit precedes
it, so that it is not found by chance inside a UID or a hash (a date-time after it still counts).
Dates among the PHI values are also searched in the other common spellings (19610412, 1961-04-12,
12/04/1961, 04/12/1961, 12.04.1961, 1961/04/12, 12-04-1961).
It returns one line per finding, ``<file>: <where>: <value>``; an empty list means no leak.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import re
import sqlite3
import unicodedata
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pydicom
from pydicom.dataset import Dataset

RESTRICTED_ZONE = "restricted"
_DATA_URI = re.compile(rb"data:image/png;base64,([A-Za-z0-9+/=]+)")
PIXEL_DATA = 0x7FE00010
MIN_PIXEL_CANARY = 8  # shorter values would match random bytes of an image
SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE = "SQLite"  # prefix of the places where short values must stand on their own
_DATE_SPELLINGS = ("%Y%m%d", "%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y")


def _variants(value: str) -> set[str]:
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    variants = {value, folded, value.replace("^", " "), value.replace("^", ", ")}
    for fmt_in in ("%Y%m%d", "%Y-%m-%d"):
        try:
            day = dt.datetime.strptime(value, fmt_in).date()
        except ValueError:
            continue
        variants |= {day.strftime(spelling) for spelling in _DATE_SPELLINGS}
    return {v.strip() for v in variants if v.strip()}


def compile_phi_pattern(phi_values: Iterable[str], *, delimited: bool = False) -> re.Pattern[str]:
    """One case-insensitive pattern for all PHI values and their variants, shaped as a prefix
    trie so that the regex engine does not try every alternative at every position. A value that
    begins with a digit matches only where no letter or digit precedes it. ``delimited``: a value matches only with no letter or digit right before or after it."""
    variants = {v.lower() for value in phi_values if value for v in _variants(str(value))}
    if not variants:
        raise ValueError("phi_values: no non-empty values to search for")
    trie: dict = {}
    for word in variants:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    # a value that begins with a digit never begins inside a run of letters and digits: a date
    # found by chance inside a pseudonymous UID (2.25.1431955030...) or a hash is no leak
    body = f"(?:(?<![0-9a-z])(?=[0-9])|(?![0-9]))(?:{_trie_pattern(trie)})"
    if delimited:
        body = f"(?<![0-9a-z])(?:{body})(?![0-9a-z])"
    return re.compile(body, re.IGNORECASE)


def _trie_pattern(node: dict) -> str:
    branches = [re.escape(char) + _trie_pattern(child) for char, child in sorted(node.items()) if char]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if "" in node else body


def _files(roots: Iterable[Path], excluded: Iterable[str]) -> Iterable[tuple[Path, Path]]:
    excluded = set(excluded)
    for root in map(Path, roots):
        candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in candidates:
            relative = path.relative_to(root) if root.is_dir() else Path(path.name)
            if not excluded & set(relative.parts):
                yield root, path


def _dicom_strings(ds: Dataset, where: str) -> Iterable[tuple[str, str]]:
    for elem in ds.iterall():
        if elem.VR == "SQ" or elem.tag == PIXEL_DATA:
            continue
        value = elem.value
        texts = [value.decode("latin-1")] if isinstance(value, bytes) else [str(value)]
        for text in texts:
            yield f"{where} DICOM {elem.tag} {elem.keyword or 'private'}", text


def _parquet_strings(path: Path) -> Iterable[tuple[str, str]]:
    for name, value in (pq.read_metadata(path).metadata or {}).items():
        yield "Parquet key-value metadata", name.decode("utf-8", "replace") + " " + value.decode("utf-8", "replace")
    frame = pl.read_parquet(path)
    for column in frame.columns:
        yield "Parquet column name", column
        series = frame[column].drop_nulls()
        if series.dtype == pl.Date:
            texts = series.dt.strftime("%Y-%m-%d").to_list() + series.dt.strftime("%Y%m%d").to_list()
        elif series.dtype.is_nested() or series.dtype == pl.Object:
            texts = [json.dumps(series.to_list(), default=str, ensure_ascii=False)]
        elif series.dtype == pl.Binary:
            texts = [v.decode("latin-1") for v in series.to_list()]
        else:
            texts = series.cast(pl.String).to_list()
        for text in texts:
            yield f"Parquet column {column}", text


def _sqlite_strings(path: Path) -> Iterable[tuple[str, str]]:
    """Every column of every table as SQLite decodes it (one cell a line; BLOBs as Latin-1), with
    what the write-ahead log holds. Read-only: the database may be open in a running Prefect server."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            quoted = table.replace('"', '""')
            cursor = connection.execute(f'SELECT * FROM "{quoted}"')
            columns = [d[0] for d in cursor.description]
            cells: list[list[str]] = [[] for _ in columns]
            for row in cursor:
                for i, value in enumerate(row):
                    if value is not None:
                        cells[i].append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
            for column, texts in zip(columns, cells):
                yield f"{SQLITE} {table}.{column}", "\n".join(texts)
    finally:
        connection.close()


def _png_text(data: bytes) -> Iterable[tuple[str, str]]:
    offset = 8
    while offset + 8 <= len(data):
        length, kind = int.from_bytes(data[offset:offset + 4], "big"), data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        if kind in (b"tEXt", b"iTXt"):
            yield f"PNG {kind.decode()} chunk", body.decode("utf-8", errors="replace")
        elif kind == b"zTXt":
            keyword, _, compressed = body.partition(b"\x00")
            yield "PNG zTXt chunk", keyword.decode("latin-1") + " " + zlib.decompress(compressed[1:]).decode("latin-1")
        offset += 12 + length


def _pixel_bits(ds: Dataset) -> Iterable[tuple[str, str]]:
    """A finding for native pixels with bits set outside the stored range."""
    if ds.file_meta.TransferSyntaxUID.is_compressed or ds.BitsAllocated not in (8, 16, 32):
        return
    stored, high = ds.BitsStored, ds.get("HighBit", ds.BitsStored - 1)
    order = "<" if ds.file_meta.TransferSyntaxUID.is_little_endian else ">"
    words = np.frombuffer(ds.PixelData, dtype=f"{order}u{ds.BitsAllocated // 8}",
                          count=len(ds.PixelData) // (ds.BitsAllocated // 8))
    field = ((words.astype(np.int64) >> (high - stored + 1)) & ((1 << stored) - 1)) << (high - stored + 1)
    if ds.PixelRepresentation and stored < ds.BitsAllocated:  # sign extension above High Bit is no overlay
        negative = (words.astype(np.int64) >> high) & 1
        field |= negative * (((1 << ds.BitsAllocated) - 1) ^ ((1 << (high + 1)) - 1))
    if np.any(field != words):
        yield "pixel bits outside Bits Stored/High Bit", "OVERLAY BITS SET"


def _nifti_header(data: bytes) -> Iterable[tuple[str, str]]:
    """The NIfTI-1 header and its extensions (everything before the voxels)."""
    offset = int(np.frombuffer(data[108:112], "<f4")[0]) if len(data) >= 348 else len(data)
    yield "NIfTI header", data[:max(348, offset)].decode("latin-1")


def _file_strings(path: Path, data: bytes) -> Iterable[tuple[str, str]]:
    """Where to look in one file. Binary payloads (Parquet pages, pixel data, PNG image data) are
    not searched as raw bytes: short values would match random bytes there."""
    if path.suffix == ".parquet":
        yield from _parquet_strings(path)
    elif data[128:132] == b"DICM":
        ds = pydicom.dcmread(path, force=True)
        yield from _dicom_strings(ds.file_meta, "file meta")
        yield from _dicom_strings(ds, "dataset")
        if PIXEL_DATA in ds:
            yield "pixel data bytes", ds.PixelData.decode("latin-1")
            yield from _pixel_bits(ds)
    elif path.name.endswith((".nii", ".nii.gz")):
        yield from _nifti_header(gzip.decompress(data) if path.name.endswith(".gz") else data)
    elif data[:16] == SQLITE_HEADER:
        yield from _sqlite_strings(path)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        yield from _png_text(data)
    else:
        for image in _DATA_URI.findall(data):
            yield from _png_text(base64.b64decode(image))
        data = _DATA_URI.sub(b"data:image/png;base64,", data)
        for encoding in ("utf-8", "latin-1"):
            yield f"text ({encoding})", data.decode(encoding, errors="ignore")
        if path.suffix == ".json":  # one document, or one per line (Delta Lake's transaction log)
            text = data.decode("utf-8")
            try:
                documents = [json.loads(text)]
            except json.JSONDecodeError:
                documents = [json.loads(line) for line in text.splitlines() if line.strip()]
            for document in documents:
                yield "JSON", json.dumps(document, ensure_ascii=False)


def find_phi_leaks(
    roots: Iterable[Path | str], phi_values: Iterable[str], *, excluded_zones: Iterable[str] = (RESTRICTED_ZONE,)
) -> list[str]:
    """Every place under ``roots`` (the ``excluded_zones`` excepted, by default ``restricted/``)
    where one of the values appears."""
    phi_values = [str(v) for v in phi_values if v]
    pattern = compile_phi_pattern(phi_values)
    long_values = [v for v in phi_values if len(v) >= MIN_PIXEL_CANARY]
    long_pattern = compile_phi_pattern(long_values) if long_values else None
    short_values = [v for v in phi_values if len(v) < MIN_PIXEL_CANARY]
    short_pattern = compile_phi_pattern(short_values, delimited=True) if short_values else None
    findings: list[str] = []
    for root, path in _files(roots, excluded_zones):
        name = str(path.relative_to(root)) if root.is_dir() else path.name
        for match in pattern.finditer(name):
            findings.append(f"{path}: object name: {match.group(0)}")
        for where, text in _file_strings(path, path.read_bytes()):
            if where == "pixel data bytes":
                matches = [m for m in long_pattern.finditer(text)] if long_pattern else []
            elif where.startswith(SQLITE):
                matches = [m for p in (short_pattern, long_pattern) if p is not None for m in p.finditer(text)]
            elif where.startswith("pixel bits"):
                findings.append(f"{path}: {where}: {text}")
                continue
            else:
                matches = list(pattern.finditer(text))
            for match in matches:
                findings.append(f"{path}: {where}: {match.group(0)}")
    return sorted(set(findings))
