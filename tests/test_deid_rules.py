"""The rule table at work: dictionary VRs, strict values, registered UIDs, code items, ages,
descriptors, and the negative control of each safeguard (switched off, the leak comes back)."""

from __future__ import annotations

import datetime as dt
import io

import polars as pl
import pydicom
import pytest
from dicom_factory import encode, synthesize_ct_series
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ImplicitVRLittleEndian

from trialake.dicom import DeidParams, SubjectKey, ingest_dicom_batch
from trialake.dicom.deid import compute_capped_age, compute_shifted_date
from trialake.dicom.profile import SAFEGUARDS, Action, build_rule_table, rule_for
from trialake.freetext import DESCRIPTOR_VOCABULARY, compute_clean_text
from trialake.pseudonym import compute_date_shift_days

SECRET = b"trialake-test-secret-0123456789ab"
USUBJID = "UCMSC-01-007"
KEY = SubjectKey.from_frame(pl.DataFrame({"SITEID": ["01"], "PATIENT_ID": ["MRN0042"], "USUBJID": [USUBJID]}))
SHIFT = compute_date_shift_days(SECRET, USUBJID)


def _slice(*, implicit: bool = False) -> Dataset:
    ds = synthesize_ct_series(patient_id="MRN0042", n_slices=1)[0]
    ds.PatientName = "Quixwell^Zebulon"
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


def _ingest(ds: Dataset, params: DeidParams = DeidParams()):
    result = ingest_dicom_batch([("dicom/x.dcm", encode(ds))], key=KEY, secret=SECRET, run_id="r", params=params)
    copies = [pydicom.dcmread(io.BytesIO(a.data)) for a in result.accepted]
    return result, copies[0] if copies else None


def _without(safeguard: str) -> DeidParams:
    return DeidParams(safeguards=SAFEGUARDS - {safeguard})


def _values(ds: Dataset) -> str:
    """Every value of the copy at every depth, as one text (for "does X appear anywhere")."""
    return " ".join(str(e.value) for e in ds.iterall() if e.VR != "SQ" and e.tag != 0x7FE00010)


# -- the rule table ------------------------------------------------------------------------------

def test_every_standard_attribute_has_a_rule_with_its_dictionary_vr() -> None:
    table = build_rule_table(DeidParams())
    assert len(table) > 4000
    assert table[0x00080080].vr == "LO" and table[0x00080080].action == Action.REMOVE  # InstitutionName
    assert table[0x00100010].action == Action.SUBJECT and table[0x00101010].action == Action.AGE
    assert table[0x0020000D].action == Action.UID and table[0x00080020].action == Action.SHIFT
    assert table[0x00080104].action == Action.CODE  # CodeMeaning
    assert table[0x00102160].action == Action.REMOVE  # EthnicGroup: free text
    assert all(rule.option for rule in table.values())
    # Annex E removes these although their VR (CS, DS, US) would let them through.
    for keyword in ("GPSLatitude", "InstanceOriginStatus", "ModifyingDeviceID"):
        assert table[pydicom.datadict.tag_for_keyword(keyword)].action == Action.REMOVE, keyword


def test_a_tag_outside_the_dictionary_is_removed() -> None:
    assert rule_for(0x00091234, DeidParams()).action == Action.REMOVE
    assert rule_for(0x00080000, DeidParams()).action == Action.REMOVE  # group length


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_identifying_attributes_written_with_another_vr_are_still_removed(implicit: bool) -> None:
    ds = _slice(implicit=implicit)
    ds.add_new(0x00080080, "CS", "ST YOLANTHE")  # InstitutionName (LO) written as a code string
    ds.add_new(0x00101000, "IS", "778899")  # OtherPatientIDs (LO) as an integer string
    ds.add_new(0x00081070, "TM", "101500")  # OperatorsName (PN) as a time
    ds.add_new(0x00101010, "LO", "095Y")  # PatientAge (AS) as text: kept as AS, and capped
    ds.add_new(0x00180050, "LO", "Quixwell")  # SliceThickness (DS) holding a name: not a DS, removed
    _, out = _ingest(ds)
    for keyword in ("InstitutionName", "OtherPatientIDs", "OperatorsName", "SliceThickness"):
        assert keyword not in out, keyword
    assert out["PatientAge"].VR == "AS" and out.PatientAge == "090Y"


def test_without_the_dictionary_vr_safeguard_the_file_vr_would_decide() -> None:
    ds = _slice()
    ds.add_new(0x00080080, "CS", "ST YOLANTHE")
    _, out = _ingest(ds, _without("dictionary-vr"))
    assert out.InstitutionName == "ST YOLANTHE"


# -- strict values -------------------------------------------------------------------------------

def _shifted(day: str) -> str:
    return compute_shifted_date(day, SHIFT)


def test_dates_keep_only_their_strictly_valid_shifted_part() -> None:
    ds = _slice()
    ds.StudyDate = "20200301 Quixwell"
    ds.AcquisitionDateTime = "20200301101500.5+0100 Zebulon"
    ds.SeriesDate = "2020"  # partial: cannot be shifted
    ds.InstanceCreationTime = "101500 Quixwell"  # TM with text
    ds.ContentTime = "101500.25"
    _, out = _ingest(ds)
    assert out.StudyDate == _shifted("20200301")
    assert out.AcquisitionDateTime == _shifted("20200301") + "101500.5+0100"
    assert "SeriesDate" not in out and "InstanceCreationTime" not in out
    assert out.ContentTime == "101500.25"
    assert "Quixwell" not in _values(out) and "Zebulon" not in _values(out)


def test_without_strict_values_the_trailing_text_would_stay() -> None:
    ds = _slice()
    ds.StudyDate = "20200301 Quixwell"
    _, out = _ingest(ds, _without("strict-values"))
    assert "Quixwell" in out.StudyDate


@settings(max_examples=200, deadline=None)
@given(days=st.integers(-3650, -1), date=st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)), rest=st.text(max_size=12))
def test_a_shifted_date_is_the_date_moved_and_nothing_of_the_trailing_text(days, date, rest) -> None:
    value = date.strftime("%Y%m%d") + rest
    shifted = compute_shifted_date(value, days)
    if shifted is None:  # moved before year 1
        return
    expected = (date + dt.timedelta(days=days)).strftime("%Y%m%d")
    assert shifted[:8] == expected
    tail = shifted[8:]
    assert tail == "" or rest.strip().startswith(tail)
    assert all(c in "0123456789.+-" for c in tail)


@pytest.mark.parametrize(("age", "capped"), [
    ("095Y", "090Y"), ("090Y", "090Y"), ("089Y", "089Y"), ("120Y", "090Y"), ("018M", "018M"),
    ("003W", "003W"), ("095 Y", None), ("95Y", None), ("Zebulon", None),
])
def test_ages_over_89_are_one_category(age: str, capped: str | None) -> None:
    assert compute_capped_age(age) == capped


def test_patient_characteristics_kept_free_text_ethnic_group_removed() -> None:
    ds = _slice()
    ds.PatientAge, ds.EthnicGroup, ds.PatientWeight, ds.PatientSex = "097Y", "Wexcombe Travellers", 71.5, "F"
    _, out = _ingest(ds)
    assert out.PatientAge == "090Y" and "EthnicGroup" not in out
    assert (float(out.PatientWeight), out.PatientSex) == (71.5, "F")


def test_kept_device_text_with_an_identifying_token_or_number_is_removed() -> None:
    ds = _slice()
    ds.Manufacturer = "Quixwell Medical"  # a word of the patient's name
    ds.ManufacturerModelName = "Aurora 20200301"  # a date
    ds.ConvolutionKernel = "B70f"
    _, out = _ingest(ds)
    assert "Manufacturer" not in out and "ManufacturerModelName" not in out and out.ConvolutionKernel == "B70f"


# -- UIDs ----------------------------------------------------------------------------------------

def test_every_unregistered_uid_is_replaced_even_under_the_dicom_root() -> None:
    ds = _slice()
    ds.StudyInstanceUID = "1.2.840.10008.9.99.20200301"
    ds.FrameOfReferenceUID = "1.2.840.10008.1.4.1.1"  # well-known frame of reference (Talairach)
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CTImageStorage, "1.2.840.10008.5.1.4.1.1.2.77"
    ds.ReferencedImageSequence = [ref]
    result, out = _ingest(ds)
    assert out.StudyInstanceUID.startswith("2.25.") and out.FrameOfReferenceUID == "1.2.840.10008.1.4.1.1"
    item = out.ReferencedImageSequence[0]
    assert item.ReferencedSOPClassUID == CTImageStorage and item.ReferencedSOPInstanceUID.startswith("2.25.")
    assert "20200301" not in str(result.accepted[0].object_name)
    assert set(result.uid_map_frame()["original_uid"]) >= {"1.2.840.10008.9.99.20200301", "1.2.840.10008.5.1.4.1.1.2.77"}


def test_without_the_registered_uid_safeguard_the_dicom_root_would_pass() -> None:
    ds = _slice()
    ds.StudyInstanceUID = "1.2.840.10008.9.99.20200301"
    _, out = _ingest(ds, _without("registered-uids"))
    assert out.StudyInstanceUID == "1.2.840.10008.9.99.20200301"


def test_unregistered_transfer_syntax_and_sop_class_are_rejected_without_echoing_them() -> None:
    data = encode(_slice()).replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.9\x00", 1)  # same length
    result = ingest_dicom_batch([("dicom/x.dcm", data)], key=KEY, secret=SECRET, run_id="r", params=DeidParams())
    assert not result.accepted and "unregistered transfer syntax" in result.rejections[0]["reason"]
    assert "1.2.840" not in result.rejections[0]["reason"]
    ds = _slice()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.99"
    result, _ = _ingest(ds)
    assert "unregistered or private SOP class" in result.rejections[0]["reason"]
    assert "1.2.840" not in result.rejections[0]["reason"]


# -- code items ----------------------------------------------------------------------------------

def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def test_code_items_keep_registered_codes_with_the_standard_meaning_only() -> None:
    ds = _slice()
    ds.DerivationCodeSequence = [_code("113072", "DCM", "MPR done by Dr Hargreave")]
    ds.AnatomicRegionSequence = [_code("T-D3000", "SRT", "chest of Zebulon"), _code("MRN0042", "99HOSP", "local")]
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CTImageStorage, "1.2.3.4"
    ref.PurposeOfReferenceCodeSequence = [_code("LOCAL7", "99ACME", "Quixwell's previous scan")]
    ds.ReferencedImageSequence = [ref]
    _, out = _ingest(ds)
    assert [(i.CodeValue, i.CodeMeaning) for i in out.DerivationCodeSequence] == [("113072", "Multiplanar reformatting")]
    assert [(i.CodeValue, i.CodingSchemeDesignator, i.CodeMeaning) for i in out.AnatomicRegionSequence] == [
        ("T-D3000", "SRT", "Thoracic structure (body structure)")]
    assert "PurposeOfReferenceCodeSequence" not in out.ReferencedImageSequence[0]  # its only item was local
    for leaked in ("Hargreave", "Zebulon", "MRN0042", "Quixwell", "99HOSP"):
        assert leaked not in _values(out), leaked


def test_without_the_code_item_safeguard_code_meanings_would_be_copied() -> None:
    ds = _slice()
    ds.DerivationCodeSequence = [_code("113072", "DCM", "MPR done by Dr Hargreave")]
    _, out = _ingest(ds, _without("code-items"))
    assert out.DerivationCodeSequence[0].CodeMeaning == "MPR done by Dr Hargreave"


# -- descriptors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "cleaned"), [
    ("CHEST 03 05", "CHEST"),
    ("CHEST 3 5", "CHEST"),
    ("LUNG 1.20200305991 B70f", "LUNG B70f"),
    ('AXIAL "1.2.840.113619.2.55.3.604688119"', "AXIAL"),
    ("CT 2020-03-05 CHEST", "CT CHEST"),
    ("CT 5.3.2020 CHEST", "CT CHEST"),
    ("AXIAL 1.25 MM", "AXIAL 1.25 MM"),
    ("AXIAL 0.625 5MM", "AXIAL 0.625 5MM"),
    ("THIN 1.0 B70f", "THIN 1.0 B70f"),
    ("Thorax léger Núñez", "Thorax"),
])
def test_descriptor_cleaning(text: str, cleaned: str) -> None:
    assert compute_clean_text(text, vocabulary=DESCRIPTOR_VOCABULARY) == cleaned


_DATE_FORMATS = ("%Y%m%d", "%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d %m %Y", "%m %d")


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.sampled_from(sorted(DESCRIPTOR_VOCABULARY)), max_size=4),
       date=st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)),
       fmt=st.sampled_from(_DATE_FORMATS), number=st.integers(1000, 10**12), position=st.integers(0, 4))
def test_no_date_or_long_number_survives_descriptor_cleaning(words, date, fmt, number, position) -> None:
    tokens = list(words)
    tokens.insert(min(position, len(tokens)), date.strftime(fmt))
    tokens.insert(0, f"1.{number}")
    cleaned = compute_clean_text(" ".join(tokens), vocabulary=DESCRIPTOR_VOCABULARY)
    assert cleaned.split() == [w for w in words]  # every vocabulary word kept, nothing else


def test_the_documented_rule_table_is_the_profile() -> None:
    from pathlib import Path

    from trialake.dicom.profile import render_rule_table

    doc = (Path(__file__).resolve().parents[1] / "docs" / "deidentification.md").read_text(encoding="utf-8")
    assert render_rule_table(DeidParams()) in doc, "regenerate the table in docs/deidentification.md"
