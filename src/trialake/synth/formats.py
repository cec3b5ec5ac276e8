"""Byte renderers for the landing files (CSV in several dialects, deterministic XLSX)."""
from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Sequence
from datetime import date, datetime

from openpyxl import Workbook

Cell = str | int | float | None
FIXED_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
FIXED_DOC_TIME = datetime(2020, 1, 1)
EXCEL_EPOCH = date(1899, 12, 30)


def render_csv(
    header: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    bom: bool = False,
    lineterminator: str = "\n",
) -> bytes:
    """CSV bytes; None becomes an empty field. ``bom`` prefixes a UTF-8 byte order mark."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter=delimiter, lineterminator=lineterminator)
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    data = text.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


def render_xlsx(header: Sequence[str], rows: Sequence[Sequence[Cell]], *, sheet: str) -> bytes:
    """XLSX bytes with fixed document and zip timestamps (same input, same bytes)."""
    workbook = Workbook()
    worksheet = workbook.active
    worksheet.title = sheet
    worksheet.append(list(header))
    for row in rows:
        worksheet.append(list(row))
    workbook.properties.created = FIXED_DOC_TIME
    buffer = io.BytesIO()
    workbook.save(buffer)
    return _normalize_zip(buffer.getvalue())


def _normalize_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed member timestamps and a fixed dcterms:modified."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                stamp = FIXED_DOC_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
                content = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + stamp, content)
            dst.writestr(zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME), content, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def compute_excel_serial(day: date, minutes: int = 0) -> float:
    """Excel (1900 system) date serial of a date plus minutes past midnight."""
    return (day - EXCEL_EPOCH).days + minutes / 1440.0
