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
- PNG text chunks (tEXt, iTXt, zTXt),
- every other file as text, UTF-8 and Latin-1 (HTML, JSON, CSV, logs, ...), and JSON also after
  decoding (so ``\\u00e9`` escapes are seen as the characters they stand for).
Dates among the PHI values are also searched in the other common spellings (19610412, 1961-04-12,
12/04/1961, 04/12/1961, 12.04.1961, 1961/04/12, 12-04-1961).
It returns one line per finding, ``<file>: <where>: <value>``; an empty list means no leak.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
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
PIXEL_DATA = 0x7FE00010
MIN_PIXEL_CANARY = 8  # shorter values would match random bytes of an image
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


def compile_phi_pattern(phi_values: Iterable[str]) -> re.Pattern[str]:
    """One case-insensitive pattern for all PHI values and their variants, shaped as a prefix
    trie so that the regex engine does not try every alternative at every position."""
    variants = {v.lower() for value in phi_values if value for v in _variants(str(value))}
    if not variants:
        raise ValueError("phi_values: no non-empty values to search for")
    trie: dict = {}
    for word in variants:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return re.compile(_trie_pattern(trie), re.IGNORECASE)


def _trie_pattern(node: dict) -> str:
    branches = [re.escape(char) + _trie_pattern(child) for char, child in sorted(node.items()) if char]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if "" in node else body


def _files(roots: Iterable[Path]) -> Iterable[tuple[Path, Path]]:
    for root in map(Path, roots):
        candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in candidates:
            relative = path.relative_to(root) if root.is_dir() else Path(path.name)
            if RESTRICTED_ZONE not in relative.parts:
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
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        yield from _png_text(data)
    else:
        for encoding in ("utf-8", "latin-1"):
            yield f"text ({encoding})", data.decode(encoding, errors="ignore")
        if path.suffix == ".json":
            yield "JSON", json.dumps(json.loads(data.decode("utf-8")), ensure_ascii=False)


def find_phi_leaks(roots: Iterable[Path | str], phi_values: Iterable[str]) -> list[str]:
    """Every place under ``roots`` (the ``restricted/`` zone excepted) where a PHI value appears."""
    phi_values = [str(v) for v in phi_values if v]
    pattern = compile_phi_pattern(phi_values)
    long_values = [v for v in phi_values if len(v) >= MIN_PIXEL_CANARY]
    long_pattern = compile_phi_pattern(long_values) if long_values else None
    findings: list[str] = []
    for root, path in _files(roots):
        name = str(path.relative_to(root)) if root.is_dir() else path.name
        for match in pattern.finditer(name):
            findings.append(f"{path}: object name: {match.group(0)}")
        for where, text in _file_strings(path, path.read_bytes()):
            if where == "pixel data bytes":
                matches = [m for m in long_pattern.finditer(text)] if long_pattern else []
            elif where.startswith("pixel bits"):
                findings.append(f"{path}: {where}: {text}")
                continue
            else:
                matches = list(pattern.finditer(text))
            for match in matches:
                findings.append(f"{path}: {where}: {match.group(0)}")
    return sorted(set(findings))
