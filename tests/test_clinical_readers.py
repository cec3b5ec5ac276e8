"""Reader tests: every encoding / delimiter / workbook quirk, with the files made here."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import polars as pl
import pytest
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from trialake.clinical import ClinicalFileError, parse_clinical_file

LB_HEADER = "USUBJID,LBTEST,LBORRES,LBORRESU,LBDTC\n"


def _xlsx(rows: list[list[object]], *, epoch_1904: bool = False) -> bytes:
    workbook = openpyxl.Workbook()
    if epoch_1904:
        workbook.epoch = CALENDAR_MAC_1904
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_utf8_with_bom_comma_separated() -> None:
    data = b"\xef\xbb\xbf" + (LB_HEADER + "S-1,CRP,5.2,mg/L,2020-03-05\nS-1,WBC,7,10^9/L,2020-03-05\n").encode()
    parsed = parse_clinical_file("lb.csv", data)
    assert parsed.encoding == "utf-8-sig"
    assert parsed.delimiter == ","
    assert parsed.decimal_mark == "."
    assert parsed.domain == "LB"
    assert parsed.frame.columns == ["source_row", "USUBJID", "LBTEST", "LBORRES", "LBORRESU", "LBDTC"]
    assert parsed.frame.get_column("source_row").to_list() == [1, 2]
    assert parsed.frame.get_column("LBORRES").to_list() == ["5.2", "7"]  # strings, never inferred


def test_utf8_without_bom_keeps_accents() -> None:
    data = (LB_HEADER + "S-1,Hémoglobine,13.5,g/dL,2020-03-05\n").encode("utf-8")
    parsed = parse_clinical_file("lb_site1.csv", data)
    assert parsed.encoding == "utf-8"
    assert parsed.frame.get_column("LBTEST").to_list() == ["Hémoglobine"]


def test_latin1_semicolon_decimal_comma() -> None:
    text = "USUBJID;LBTEST;LBORRES;LBORRESU\r\nS-1;Créatinine;1,2;mg/dL\r\nS-2;Glycémie;5,5;mmol/L\r\n"  # Windows line ends
    parsed = parse_clinical_file("lb_site2.csv", text.encode("latin-1"))
    assert parsed.encoding == "latin-1"
    assert parsed.delimiter == ";"
    assert parsed.decimal_mark == ","  # ';'-separated exports come from decimal-comma locales
    assert parsed.frame.get_column("LBTEST").to_list() == ["Créatinine", "Glycémie"]
    assert parsed.frame.get_column("LBORRES").to_list() == ["1,2", "5,5"]
    assert parsed.frame.get_column("LBORRESU").to_list() == ["mg/dL", "mmol/L"]  # no stray '\r'


def test_windows_1252_bytes_are_read_as_cp1252() -> None:
    # 0x92 is a right single quote in Windows-1252 but a C1 control code in Latin-1.
    data = "USUBJID,LBTEST\nS-1,Patient’s CRP\n".encode("cp1252")
    parsed = parse_clinical_file("lb.csv", data)
    assert parsed.encoding == "cp1252"
    assert parsed.frame.get_column("LBTEST").to_list() == ["Patient’s CRP"]


def test_tab_separated_is_sniffed() -> None:
    parsed = parse_clinical_file("ae.csv", b"USUBJID\tAEDECOD\nS-1\tHeadache\n")
    assert parsed.delimiter == "\t"
    assert parsed.frame.get_column("AEDECOD").to_list() == ["Headache"]


def test_configured_encoding_that_does_not_fit_is_an_error_not_a_guess() -> None:
    data = "USUBJID;LBTEST\nS-1;Créatinine\n".encode("latin-1")
    with pytest.raises(ClinicalFileError, match=r"^not valid utf-8"):
        parse_clinical_file("lb_site2.csv", data, encoding="utf-8")


def test_bytes_undefined_in_every_supported_encoding_are_refused() -> None:
    # 0x81 is invalid UTF-8, a C1 control in Latin-1 and undefined in Windows-1252.
    with pytest.raises(ClinicalFileError, match=r"^encoding not recognised"):
        parse_clinical_file("lb.csv", b"USUBJID,LBTEST\nS-1,A\x81B\n")


def test_blank_lines_are_not_rows_and_source_row_follows_the_file() -> None:
    parsed = parse_clinical_file("sv.csv", b"USUBJID,VISIT\nS-1,Baseline\n\nS-1,Day 10\n,\n")
    assert parsed.frame.get_column("source_row").to_list() == [1, 3]
    assert parsed.frame.get_column("VISIT").to_list() == ["Baseline", "Day 10"]


def test_header_names_are_trimmed_and_upper_cased() -> None:
    parsed = parse_clinical_file("dm.csv", b" usubjid ,Sex\nS-1,F\n")
    assert parsed.frame.columns == ["source_row", "USUBJID", "SEX"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("Lab.csv", b"A\n1\n", r"^file name must start with the lower-case two-letter"),
        ("lb_Quixwell.txt", b"A\n1\n", r"^unsupported file type; expected \.csv or \.xlsx$"),
        ("lb.csv", b"", r"^file is empty$"),
        ("lb.csv", b"A,B\n1,2,3\n", r"^not a well-formed ','-separated file"),
        ("lb.csv", b"A,a\n1,2\n", r"^duplicate column names"),
        ("lb.xlsx", b"not a zip", r"^not a readable XLSX workbook"),
    ],
)
def test_file_level_problems_say_what_without_naming_the_file(name: str, data: bytes, message: str) -> None:
    """The message becomes a rejection reason: file names can carry PHI, so none is echoed
    (restricted/landing_files leads from the file's sha256 to its path)."""
    with pytest.raises(ClinicalFileError, match=message) as caught:
        parse_clinical_file(name, data)
    assert name.split(".")[0].lower() not in str(caught.value).lower()


def test_domain_comes_from_the_base_name() -> None:
    assert parse_clinical_file("clinical/site 3/lb_site3.csv", b"USUBJID\nS-1\n").domain == "LB"
    assert parse_clinical_file("dm.csv", b"USUBJID\nS-1\n").domain == "DM"


def test_xlsx_1900_system_date_cells_and_bare_serials() -> None:
    # Excel: DATE(2020,1,1) = 43831; + 31 (Jan) + 29 (Feb 2020) + 4 -> DATE(2020,3,5) = 43895.
    data = _xlsx(
        [
            ["USUBJID", "LBTEST", "LBORRES", "LBDTC"],
            ["S-1", "CRP", 5.25, dt.datetime(2020, 3, 5)],
            ["S-1", "PLAT", 250000, 43895],
            ["S-1", "WBC", 7.0, dt.datetime(2020, 3, 6, 8, 30)],
        ]
    )
    parsed = parse_clinical_file("lb_site2.xlsx", data)
    assert parsed.excel_epoch == 1900
    assert parsed.encoding is None and parsed.delimiter is None
    expected = pl.DataFrame(
        {
            "source_row": [1, 2, 3],
            "USUBJID": ["S-1", "S-1", "S-1"],
            "LBTEST": ["CRP", "PLAT", "WBC"],
            "LBORRES": ["5.25", "250000", "7"],
            "LBDTC": ["2020-03-05", "43895", "2020-03-06T08:30:00"],
        }
    )
    assert parsed.frame.to_dicts() == expected.to_dicts()


def test_xlsx_1904_system_is_detected() -> None:
    # A 1904-system serial is 1462 days smaller: 43895 - 1462 = 42433 for 2020-03-05.
    data = _xlsx([["USUBJID", "LBDTC"], ["S-1", dt.datetime(2020, 3, 5)], ["S-1", 42433]], epoch_1904=True)
    parsed = parse_clinical_file("lb.xlsx", data)
    assert parsed.excel_epoch == 1904
    assert parsed.frame.get_column("LBDTC").to_list() == ["2020-03-05", "42433"]


def test_xlsx_column_with_data_but_no_header_is_refused() -> None:
    with pytest.raises(ClinicalFileError, match=r"^a column holding data has no header name"):
        parse_clinical_file("lb.xlsx", _xlsx([["USUBJID", None], ["S-1", "x"]]))
