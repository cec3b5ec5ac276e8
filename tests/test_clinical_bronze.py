"""Bronze clinical rows: subject mapping, allow-list, date parsing and shifting, lineage."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import polars as pl
import pytest
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from trialake.clinical import ClinicalFileError, derive_bronze_clinical, parse_clinical_file

KEY = pl.DataFrame({"SITEID": ["01", "01", "02"], "PATIENT_ID": ["MRN-111", "MRN-222", "MRN-111"],
                    "USUBJID": ["TL-001", "TL-002", "TL-003"]})
SHIFT = pl.DataFrame({"USUBJID": ["TL-001", "TL-002"], "shift_days": [-10, -100]})


def _bronze(name: str, text: str, *, date_shift: pl.DataFrame | None = SHIFT, encoding: str = "utf-8"):
    parsed = parse_clinical_file(name, text.encode(encoding))
    return derive_bronze_clinical(parsed, key=KEY, date_shift=date_shift, source_sha256="f" * 64, run_id="run-1")


def test_site_patient_id_is_mapped_and_identifying_columns_never_reach_bronze() -> None:
    text = (
        "SITEID;PATIENT_ID;NAME;BRTHDTC;LBTEST;LBORRES;LBORRESU;LBDTC;COMMENT\n"
        "01;MRN-111;Jeanne Dupont;1950-04-02;Créatinine;1,2;mg/dL;2020-03-05;called at 0612345678\n"
        "02;MRN-111;Paul Martin;1960-01-01;CRP;3;mg/L;2020-03-05;\n"
    )
    bronze, rejected = _bronze("lb_site2.csv", text, date_shift=None, encoding="latin-1")
    assert bronze.columns == [
        "USUBJID", "SITEID", "LBTEST", "LBORRES", "LBORRESU", "LBDTC", "LBDT",
        "decimal_mark", "source_sha256", "source_row", "run_id",
    ]
    assert bronze.get_column("USUBJID").to_list() == ["TL-001", "TL-003"]  # same MRN, different sites
    assert bronze.get_column("decimal_mark").to_list() == [",", ","]
    assert rejected.height == 0
    everything = str(bronze.to_dicts())
    for phi in ("MRN-111", "Dupont", "1950-04-02", "0612345678", "Martin"):
        assert phi not in everything


def test_unknown_or_inconsistent_subjects_are_rejected_with_a_phi_free_reason() -> None:
    text = (
        "USUBJID,SITEID,PATIENT_ID,LBTEST,LBORRES\n"
        ",01,MRN-999,CRP,1\n"          # not in the key
        "TL-404,,,CRP,1\n"             # USUBJID not in the key
        "TL-002,01,MRN-111,CRP,1\n"    # USUBJID disagrees with the key's TL-001
        "TL-002,,,CRP,1\n"             # fine
        ",01, MRN-222 ,CRP,1\n"        # fine after trimming
    )
    bronze, rejected = _bronze("lb.csv", text)
    assert bronze.select("USUBJID", "source_row").to_dicts() == [
        {"USUBJID": "TL-002", "source_row": 4},
        {"USUBJID": "TL-002", "source_row": 5},
    ]
    assert rejected.select("source_row", "stage", "reason").to_dicts() == [
        {"source_row": 1, "stage": "clinical_read", "reason": "subject (SITEID + PATIENT_ID) not in the subject key"},
        {"source_row": 2, "stage": "clinical_read", "reason": "USUBJID not in the subject key"},
        {"source_row": 3, "stage": "clinical_read",
         "reason": "USUBJID disagrees with SITEID + PATIENT_ID in the subject key"},
    ]
    assert "MRN" not in str(rejected.to_dicts())
    assert set(rejected.get_column("source_sha256")) == {"f" * 64}
    assert set(rejected.get_column("run_id")) == {"run-1"}


def test_dates_are_parsed_and_shifted_keeping_their_precision() -> None:
    # Shift TL-001 by -10 days (2020 is a leap year):
    #   2020-03-05          -> 2020-02-24            (full date: LBDT set)
    #   2020-03-05T08:30    -> 2020-02-24T08:30      (time kept as sent)
    #   2020-03 (partial)   -> 2020-03-01 - 10 d = 2020-02-20 -> "2020-02", LBDT null
    #   2020 (year only)    -> 2020-01-01 - 10 d = 2019-12-22 -> "2019", LBDT null
    #   43895 (Excel 1900)  -> 2020-03-05 -> 2020-02-24
    #   empty               -> null, not a rejection
    text = "USUBJID,LBDTC\n" + "".join(
        f"TL-001,{value}\n" for value in ["2020-03-05", "2020-03-05T08:30", "2020-03", "2020", "43895", ""]
    )
    bronze, rejected = _bronze("lb.csv", text)
    assert rejected.height == 0
    assert bronze.select("LBDTC", "LBDT").to_dicts() == [
        {"LBDTC": "2020-02-24", "LBDT": dt.date(2020, 2, 24)},
        {"LBDTC": "2020-02-24T08:30", "LBDT": dt.date(2020, 2, 24)},
        {"LBDTC": "2020-02", "LBDT": None},
        {"LBDTC": "2019", "LBDT": None},
        {"LBDTC": "2020-02-24", "LBDT": dt.date(2020, 2, 24)},
        {"LBDTC": None, "LBDT": None},
    ]


def test_dates_that_do_not_parse_reject_the_row() -> None:
    text = "USUBJID,LBDTC,LBORRES\nTL-001,05/03/2020,1\nTL-001,2020-02-30,2\nTL-001,2020-13,3\nTL-001,2020-03-01,4\n"
    bronze, rejected = _bronze("lb.csv", text)
    assert bronze.get_column("LBORRES").to_list() == ["4"]
    assert rejected.get_column("source_row").to_list() == [1, 2, 3]
    assert set(rejected.get_column("reason")) == {"LBDTC is not an ISO 8601 date or Excel date serial"}


def test_a_subject_without_a_date_shift_is_rejected_when_shifting_is_on() -> None:
    text = "USUBJID,LBDTC\nTL-003,2020-03-05\nTL-001,2020-03-05\n"
    bronze, rejected = _bronze("lb.csv", text)
    assert bronze.get_column("USUBJID").to_list() == ["TL-001"]
    assert rejected.select("source_row", "reason").to_dicts() == [
        {"source_row": 1, "reason": "no date shift for this subject"}
    ]


def test_every_row_is_in_bronze_or_rejected() -> None:
    text = "USUBJID,LBDTC\nTL-001,2020-03-05\nTL-404,2020-03-05\nTL-002,bad\nTL-002,2020-01-01\n"
    bronze, rejected = _bronze("lb.csv", text)
    assert sorted(bronze.get_column("source_row").to_list() + rejected.get_column("source_row").to_list()) == [1, 2, 3, 4]


@pytest.mark.parametrize(("epoch_1904", "serial"), [(False, 43895), (True, 42433)])
def test_xlsx_serial_dates_in_both_excel_systems(epoch_1904: bool, serial: int) -> None:
    # DATE(2020,3,5) is 43895 in the 1900 system and 43895 - 1462 = 42433 in the 1904 system.
    workbook = openpyxl.Workbook()
    if epoch_1904:
        workbook.epoch = CALENDAR_MAC_1904
    workbook.active.append(["USUBJID", "EXTRT", "EXSTDTC"])
    workbook.active.append(["TL-002", "UC-MSC", serial])
    workbook.active.append(["TL-002", "UC-MSC", dt.datetime(2020, 3, 8)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    parsed = parse_clinical_file("ex_site1.xlsx", buffer.getvalue())
    bronze, rejected = derive_bronze_clinical(parsed, key=KEY, date_shift=None, source_sha256="a", run_id="r")
    assert rejected.height == 0
    assert bronze.get_column("EXSTDT").to_list() == [dt.date(2020, 3, 5), dt.date(2020, 3, 8)]


def test_file_level_problems_raise_clinical_file_error() -> None:
    with pytest.raises(ClinicalFileError, match=r"^domain XX is not supported$"):
        _bronze("xx.csv", "USUBJID\nTL-001\n")
    with pytest.raises(ClinicalFileError, match=r"^no subject columns"):
        _bronze("lb.csv", "LBTEST\nCRP\n")


def test_bad_arguments_are_named() -> None:
    parsed = parse_clinical_file("lb.csv", b"USUBJID\nTL-001\n")
    with pytest.raises(ValueError, match=r"key: missing column\(s\) PATIENT_ID"):
        derive_bronze_clinical(parsed, key=KEY.drop("PATIENT_ID"), date_shift=None, source_sha256="a", run_id="r")
    with pytest.raises(ValueError, match=r"date_shift: missing column\(s\) shift_days"):
        derive_bronze_clinical(parsed, key=KEY, date_shift=SHIFT.drop("shift_days"), source_sha256="a", run_id="r")


def test_allow_listed_free_text_is_cleaned_and_ages_over_89_capped() -> None:
    """VISIT by the vocabulary rule; a result as sent when it is a number, else cleaned; a coded
    value that carries a word of the file's name columns or a date is cleaned; AGE >= 90 -> 90."""
    text = (
        "SITEID;PATIENT_ID;APELLIDOS;NOMBRE;LBTEST;LBORRES;LBORRESU;VISIT;LBDTC\n"
        "01;MRN-111;Ravenscroft;Imelda;CRP;1,5;mg/L;Day 10 seen by Dr Ottershaw;2020-03-05\n"
        "01;MRN-111;Ravenscroft;Imelda;CRP;see note 12/03/2020;mg/L;Baseline;2020-03-05\n"
        "01;MRN-111;Ravenscroft;Imelda;Ravenscroft CRP;19610412;mg/L;Week 2;2020-03-05\n"
    )
    bronze, rejected = _bronze("lb_site2.csv", text)
    assert rejected.height == 0
    assert bronze.get_column("VISIT").to_list() == ["Day 10", "Baseline", "Week 2"]
    assert bronze.get_column("LBORRES").to_list() == ["1,5", None, None]  # a date is no result
    assert bronze.get_column("LBTEST").to_list() == ["CRP", "CRP", "CRP"]
    dm = "USUBJID;AGE;AGEU\nTL-001;95;YEARS\nTL-002;1100;MONTHS\nTL-001;89;YEARS\n"
    ages, _ = _bronze("dm.csv", dm)
    assert ages.select("AGE", "AGEU").rows() == [("90", "YEARS"), ("90", "YEARS"), ("89", "YEARS")]
