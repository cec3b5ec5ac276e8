"""Readers for landing clinical exports (CSV and XLSX) into all-string Polars frames.

Every cell comes back as a string (or null), so nothing is guessed at read time: numbers,
dates and units are interpreted later, where a failure becomes a rejected row with a reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

import polars as pl

__all__ = ["ClinicalFileError", "ParsedFile", "parse_clinical_file"]

_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_DELIMITERS = (",", ";", "\t")
_C1_CONTROLS = re.compile(rb"[\x80-\x9f]")


class ClinicalFileError(ValueError):
    """A clinical landing file cannot be read as a whole. The message names the problem and
    carries no file name (names can carry PHI; restricted/landing_files maps the file's sha256 to
    its path) and no cell value, so it can be used as a rejection reason."""


@dataclass(frozen=True)
class ParsedFile:
    """One clinical export read as strings.

    frame: one column per source column (upper-cased SDTM names, all ``pl.String``) plus
    ``source_row`` (Int64, 1-based data row: the line after the header is 1; rows that are
    entirely empty are not data and are left out). ``decimal_mark`` is the file's decimal
    separator ("," for ';'-separated CSV, else "."); ``excel_epoch`` is the workbook's date
    system (1900 or 1904; 1900 for CSV) used to read bare Excel date serials.
    """

    name: str
    domain: str
    frame: pl.DataFrame
    encoding: str | None
    delimiter: str | None
    decimal_mark: Literal[".", ","]
    excel_epoch: Literal[1900, 1904]


def parse_clinical_file(
    name: str,
    data: bytes,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    decimal_mark: Literal[".", ","] | None = None,
    excel_epoch: Literal[1900, 1904] | None = None,
) -> ParsedFile:
    """Read a landing clinical file (``<dom>*.csv`` or ``<dom>*.xlsx``) from its bytes.

    CSV: encoding detected (BOM, else strict UTF-8, else Latin-1, else Windows-1252; bytes are
    never dropped) unless ``encoding`` is given; delimiter sniffed from the header line among
    ``, ; TAB`` unless given. XLSX: the first worksheet, read with openpyxl; date cells become ISO
    strings, bare numbers stay numbers (a date column holding serials is read with
    ``excel_epoch``, taken from the workbook unless given). Raises ClinicalFileError.
    """
    base = PurePosixPath(name.replace("\\", "/")).name
    domain = domain_from_name(base)
    suffix = PurePosixPath(base).suffix.lower()
    if suffix == ".csv":
        text, used_encoding = _decode(data, encoding)
        sep = delimiter or _sniff_delimiter(text)
        frame = _read_csv_text(text, sep)
        mark = decimal_mark or ("," if sep == ";" else ".")
        return ParsedFile(base, domain, frame, used_encoding, sep, mark, excel_epoch or 1900)
    if suffix == ".xlsx":
        frame, epoch = _read_xlsx(data)
        return ParsedFile(base, domain, frame, None, None, decimal_mark or ".", excel_epoch or epoch)
    raise ClinicalFileError("unsupported file type; expected .csv or .xlsx")


def domain_from_name(base: str) -> str:
    """The SDTM domain code a landing file name starts with (``lb_site2.csv`` -> ``LB``)."""
    match = re.match(r"([a-z]{2})", base)
    if match is None:
        raise ClinicalFileError(
            "file name must start with the lower-case two-letter SDTM domain code (e.g. lb_site2.csv)"
        )
    return match.group(1).upper()


def _decode(data: bytes, encoding: str | None) -> tuple[str, str]:
    if encoding is not None:
        try:
            return data.decode(encoding), encoding
        except LookupError:
            raise ClinicalFileError(f"unknown encoding {encoding!r}") from None
        except UnicodeDecodeError as exc:
            raise ClinicalFileError(f"not valid {encoding} at byte {exc.start}") from None
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), codec
            except UnicodeDecodeError:
                raise ClinicalFileError(f"has a {codec} byte-order mark but is not valid {codec}") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # Latin-1 decodes every byte; bytes 0x80-0x9F are C1 control codes there, which in real
    # exports means Windows-1252 (curly quotes, euro sign), so those files are read as cp1252.
    if _C1_CONTROLS.search(data) is None:
        return data.decode("latin-1"), "latin-1"
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        raise ClinicalFileError(
            "encoding not recognised (not UTF-8, Latin-1 or Windows-1252); pass the encoding for this source"
        ) from None


def _sniff_delimiter(text: str) -> str:
    header = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    counts = {sep: header.count(sep) for sep in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


def _read_csv_text(text: str, sep: str) -> pl.DataFrame:
    if not text.strip():
        raise ClinicalFileError("file is empty")
    header = next(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=sep))
    if len({name.strip().upper() for name in header}) != len(header):
        raise ClinicalFileError("duplicate column names in the header")
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            separator=sep,
            infer_schema=False,
            row_index_name="source_row",
            row_index_offset=1,
        )
    except pl.exceptions.PolarsError as exc:
        raise ClinicalFileError(f"not a well-formed {sep!r}-separated file ({type(exc).__name__})") from None
    return _finish_frame(frame)


def _read_xlsx(data: bytes) -> tuple[pl.DataFrame, Literal[1900, 1904]]:
    import openpyxl  # imported here: only XLSX sources pay for it
    from openpyxl.utils.datetime import CALENDAR_MAC_1904

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for corrupt archives
        raise ClinicalFileError(f"not a readable XLSX workbook ({type(exc).__name__})") from None
    try:
        epoch: Literal[1900, 1904] = 1904 if workbook.epoch == CALENDAR_MAC_1904 else 1900
        rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    finally:
        workbook.close()
    if not rows:
        raise ClinicalFileError("first worksheet is empty")
    width = max(len(row) for row in rows)
    header = [_cell_text(cell) for cell in rows[0]] + [None] * (width - len(rows[0]))
    body = [[_cell_text(cell) for cell in row] + [None] * (width - len(row)) for row in rows[1:]]
    keep = [i for i, h in enumerate(header) if h is not None or any(r[i] is not None for r in body)]
    if any(header[i] is None for i in keep):
        raise ClinicalFileError("a column holding data has no header name")
    columns = {str(header[i]): [r[i] for r in body] for i in keep}
    if len(columns) != len(keep):
        raise ClinicalFileError("duplicate column names in the header")
    frame = pl.DataFrame(columns, schema={c: pl.String for c in columns}).with_row_index(
        "source_row", offset=1
    )
    return _finish_frame(frame), epoch


def _cell_text(value: object) -> str | None:
    """One XLSX cell as text: dates as ISO 8601, integral floats without '.0', None for blanks."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(timespec="seconds")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _finish_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Upper-case/strip header names, type source_row, drop rows that are entirely empty."""
    names = {c: c if c == "source_row" else c.strip().lstrip("\ufeff").strip().upper() for c in frame.columns}
    if len(set(names.values())) != len(names):
        raise ClinicalFileError("duplicate column names in the header")
    if any(not n for n in names.values()):
        raise ClinicalFileError("empty column name in the header")
    frame = frame.rename(names)
    data_cols = [c for c in frame.columns if c != "source_row"]
    if not data_cols:
        raise ClinicalFileError("no columns")
    return frame.with_columns(pl.col("source_row").cast(pl.Int64)).filter(
        pl.any_horizontal(pl.col(data_cols).str.strip_chars().ne("").fill_null(False))
    )
