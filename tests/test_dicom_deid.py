"""De-identification of every PHI location (PS3.15 Annex E profile with the chosen options)."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import polars as pl
import pydicom
import pytest
from dicom_factory import NESTED_PHI, PHI, add_phi, encode, synthesize_ct_series
from pydicom.uid import CTImageStorage, ImplicitVRLittleEndian

from trialake.dicom import DeidParams, PrivateTag, SubjectKey, ingest_dicom_batch

SECRET = b"trialake-test-secret-0123456789ab"
USUBJID = "UCMSC-01-007"
SAFE_PRIVATE = PrivateTag("ACME SAFE", 0x0013, 0x02)
PARAMS = DeidParams(private_tag_allowlist=frozenset({SAFE_PRIVATE}))
KEY = SubjectKey.from_frame(pl.DataFrame({"SITEID": ["01"], "PATIENT_ID": ["MRN0042"], "USUBJID": [USUBJID]}))
DATE_KEYWORDS = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate")


def _phi_series(n: int = 3, **kwargs) -> list[pydicom.Dataset]:
    series = synthesize_ct_series(patient_id="MRN0042", n_slices=n, **kwargs)
    for i, ds in enumerate(series):
        add_phi(ds, referenced_sop_uid=series[(i + 1) % n].SOPInstanceUID)
    return series


def _ingest(series: list[pydicom.Dataset], params: DeidParams = PARAMS, secret: bytes = SECRET):
    files = [(f"dicom/Quixwell_Zebulon/{i}.dcm", encode(ds)) for i, ds in enumerate(series)]
    return ingest_dicom_batch(files, key=KEY, secret=secret, run_id="run-1", params=params)


@pytest.fixture(scope="module")
def originals() -> list[pydicom.Dataset]:
    return _phi_series()


@pytest.fixture(scope="module")
def outputs(originals) -> list[pydicom.Dataset]:
    result = _ingest(originals)
    assert not result.rejections
    return [pydicom.dcmread(io.BytesIO(a.data)) for a in result.accepted]


def test_identifying_attributes_are_replaced_or_emptied(outputs) -> None:
    for ds in outputs:
        assert ds.PatientID == USUBJID and str(ds.PatientName) == USUBJID
        for keyword in ("PatientBirthDate", "AccessionNumber", "StudyID", "ReferringPhysicianName"):
            assert ds[keyword].value in ("", None), keyword
        for keyword in ("InstitutionName", "InstitutionAddress", "OtherPatientIDs", "OtherPatientNames",
                        "PatientAddress", "PerformingPhysicianName", "OperatorsName", "StationName",
                        "DeviceSerialNumber", "PatientTelephoneNumbers", "PatientMotherBirthName", "MilitaryRank",
                        "InstitutionalDepartmentName", "OtherPatientIDsSequence", "RequestAttributesSequence"):
            assert keyword not in ds, keyword


def test_patient_characteristics_are_retained(outputs) -> None:
    ds = outputs[0]
    assert (ds.PatientSex, ds.PatientAge, float(ds.PatientWeight), float(ds.PatientSize)) == ("F", "059Y", 71.5, 1.68)


def test_descriptors_keep_only_vocabulary_words(outputs) -> None:
    ds = outputs[0]
    assert ds.SeriesDescription == "AXIAL 1.0 B70f"
    assert ds.StudyDescription == "CT CHEST"
    assert ds.ProtocolName == "lung LOW DOSE"  # the surname before it is dropped
    assert "ImageComments" not in ds  # no allowed word left


def test_private_tags_removed_except_the_allow_listed_one(outputs) -> None:
    ds = outputs[0]
    safe = ds.private_block(0x0013, "ACME SAFE")
    assert float(safe[0x02].value) == 7.25
    assert 0x03 not in [e.tag.element & 0xFF for e in ds.group_dataset(0x0013) if e.tag.element >= 0x1000]
    assert not ds.group_dataset(0x0011) and not ds.group_dataset(0x0009)
    reference = ds.ReferencedImageSequence[0]
    assert not reference.group_dataset(0x0009), "private tag nested in a kept sequence"
    assert "OperatorsName" not in reference
    purpose = reference.PurposeOfReferenceCodeSequence[0]
    assert (purpose.CodeValue, purpose.CodeMeaning) == ("121311", "Localizer")
    assert "PatientName" not in purpose, "PN two sequence levels down"


def test_dates_are_shifted_by_one_subject_offset(originals, outputs) -> None:
    shifts = set()
    for before, after in zip(originals, outputs):
        for keyword in DATE_KEYWORDS:
            old = dt.datetime.strptime(before[keyword].value, "%Y%m%d")
            shifts.add((dt.datetime.strptime(after[keyword].value, "%Y%m%d") - old).days)
        assert after.AcquisitionDateTime[8:] == before.AcquisitionDateTime[8:]  # time of day kept
        assert after.StudyTime == before.StudyTime
    assert len(shifts) == 1
    assert -365 <= shifts.pop() <= -1
    assert outputs[0].LongitudinalTemporalInformationModified == "MODIFIED"


def test_dates_of_later_scans_keep_their_interval() -> None:
    early = _ingest(_phi_series(n=2, study_date=dt.date(2020, 3, 1), seed="a"))
    late = _ingest(_phi_series(n=2, study_date=dt.date(2020, 3, 29), seed="b"))
    days = early.instances_frame()["study_date"][0], late.instances_frame()["study_date"][0]
    assert (days[1] - days[0]).days == 28


def test_uids_are_remapped_consistently_including_references(originals, outputs) -> None:
    originals_uids = {ds.SOPInstanceUID for ds in originals}
    for i, ds in enumerate(outputs):
        assert ds.SOPInstanceUID.startswith("2.25.") and ds.SOPInstanceUID not in originals_uids
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == outputs[(i + 1) % 3].SOPInstanceUID
        assert ds.ReferencedImageSequence[0].ReferencedSOPClassUID == CTImageStorage  # DICOM UIDs are not remapped
    assert len({ds.SeriesInstanceUID for ds in outputs}) == 1
    assert len({ds.FrameOfReferenceUID for ds in outputs}) == 1
    assert outputs[0].SeriesInstanceUID != originals[0].SeriesInstanceUID


def test_deidentification_is_deterministic_across_runs_and_keyed(originals) -> None:
    first, second = _ingest(originals), _ingest(originals)
    assert [a.data for a in first.accepted] == [a.data for a in second.accepted]
    other = _ingest(originals, secret=b"another-secret-0123456789abcdefgh")
    assert {a.row["sop_id"] for a in other.accepted}.isdisjoint({a.row["sop_id"] for a in first.accepted})


def test_uid_map_records_every_original_uid(originals) -> None:
    result = _ingest(originals)
    uid_map = result.uid_map_frame()
    expected = {ds.SOPInstanceUID for ds in originals} | {originals[0].SeriesInstanceUID,
                                                          originals[0].StudyInstanceUID, originals[0].FrameOfReferenceUID}
    assert set(uid_map["original_uid"]) == expected
    assert uid_map["original_uid"].is_unique().all() and set(uid_map["USUBJID"]) == {USUBJID}
    pseudo = dict(zip(uid_map["original_uid"], uid_map["pseudo_uid"]))
    assert {a.row["sop_id"] for a in result.accepted} == {pseudo[ds.SOPInstanceUID] for ds in originals}


def test_identity_removed_flag_and_method_codes(outputs, originals) -> None:
    ds = outputs[0]
    assert ds.PatientIdentityRemoved == "YES"
    codes = {(item.CodeValue, item.CodingSchemeDesignator) for item in ds.DeidentificationMethodCodeSequence}
    assert codes == {(c, "DCM") for c in ("113100", "113105", "113107", "113108", "113111")}
    plain = pydicom.dcmread(io.BytesIO(_ingest(originals, params=DeidParams()).accepted[0].data))
    assert {item.CodeValue for item in plain.DeidentificationMethodCodeSequence} == {"113100", "113105", "113107", "113108"}


def test_pixel_data_is_copied_unchanged(originals, outputs) -> None:
    for before, after in zip(originals, outputs):
        np.testing.assert_array_equal(after.pixel_array, before.pixel_array)


def test_implicit_vr_input_stays_implicit_and_is_cleaned() -> None:
    series = _phi_series(n=2)
    for ds in series:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    result = _ingest(series)
    assert not result.rejections
    out = pydicom.dcmread(io.BytesIO(result.accepted[0].data))
    assert out.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert "InstitutionName" not in out and out.PatientID == USUBJID


def test_implicit_vr_keeps_pixel_values_whose_vr_depends_on_pixel_representation() -> None:
    """In implicit VR these attributes read as 'US or SS'; they are numbers and must survive."""
    series = _phi_series(n=1)
    for ds in series:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.PixelRepresentation = 1
        ds.PixelPaddingValue, ds.SmallestImagePixelValue = -2000, -1024
    out = pydicom.dcmread(io.BytesIO(_ingest(series).accepted[0].data))
    assert (out.PixelPaddingValue, out.SmallestImagePixelValue) == (-2000, -1024)
    assert out.SeriesDescription == "AXIAL 1.0 B70f"
    assert float(out.private_block(0x0013, "ACME SAFE")[0x02].value) == 7.25
    np.testing.assert_array_equal(out.pixel_array, series[0].pixel_array)


def test_params_reject_unknown_keywords_and_bad_private_tags() -> None:
    with pytest.raises(ValueError, match="keep_keywords: not DICOM keywords: NotAKeyword"):
        DeidParams(keep_keywords=frozenset({"NotAKeyword"}))
    with pytest.raises(ValueError, match="private_tag_allowlist"):
        DeidParams(private_tag_allowlist=frozenset({PrivateTag("X", 0x0010, 0x01)}))


def test_nested_phi_values_are_what_the_fixture_placed(originals) -> None:
    # guards the fixture itself: the PHI really is where the tests above expect it to be removed from
    ds = originals[0]
    assert ds.OtherPatientIDsSequence[0].PatientID == NESTED_PHI["sequence_mrn"]
    assert ds.ReferencedImageSequence[0].PurposeOfReferenceCodeSequence[0].PatientName == PHI["PatientName"]
    assert ds.private_block(0x0011, "ACME PHI")[0x01].value == NESTED_PHI["private_top"]


def test_undefined_length_sequences_and_items_are_walked_too() -> None:
    series = _phi_series(n=2)
    for ds in series:
        for keyword in ("ReferencedImageSequence", "OtherPatientIDsSequence"):
            ds[keyword].is_undefined_length = True
            for item in ds[keyword].value:
                item.is_undefined_length_sequence_item = True
    result = _ingest(series)
    out = [pydicom.dcmread(io.BytesIO(a.data)) for a in result.accepted]
    reference = out[0].ReferencedImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == out[1].SOPInstanceUID
    assert not reference.group_dataset(0x0009) and "OperatorsName" not in reference
    assert "PatientName" not in reference.PurposeOfReferenceCodeSequence[0]
    assert "OtherPatientIDsSequence" not in out[0]
