"""Ingest checks: every bad input is rejected with an actionable, PHI-free reason; good files pass."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import polars as pl
import pydicom
import pytest
from dicom_factory import encode, synthesize_ct_series
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLosslessSV1,
    RLELossless,
    SecondaryCaptureImageStorage,
)

from trialake.dicom import SubjectKey, ingest_dicom_batch, merge_ingest_results
from trialake.dicom import DeidParams

SECRET = b"trialake-test-secret-0123456789ab"
KEY = SubjectKey.from_frame(pl.DataFrame({
    "SITEID": ["01", "01", "02"], "PATIENT_ID": ["MRN0042", "SHARED7", "SHARED7"],
    "USUBJID": ["T-01-001", "T-01-002", "T-02-001"],
}))
PATH = "dicom/Quixwell_Zebulon_MRN0042/20200301_ACC99887766/1.dcm"  # PHI in the landing path


def _ingest(files, **kwargs):
    return ingest_dicom_batch(files, key=KEY, secret=SECRET, run_id="run-1", **{"params": DeidParams(), **kwargs})


def _one_rejection(data: bytes, path: str = PATH) -> dict:
    result = _ingest([(path, data)])
    assert not result.accepted
    (rejection,) = result.rejections
    assert rejection["source_sha256"] == hashlib.sha256(data).hexdigest() and rejection["source_row"] is None
    assert "MRN0042" not in rejection["reason"] and "Quixwell" not in rejection["reason"]
    return rejection


def _slice(**changes) -> pydicom.Dataset:
    ds = synthesize_ct_series(patient_id="MRN0042", n_slices=1)[0]
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return ds


def test_good_file_is_accepted_with_typed_row() -> None:
    data = encode(_slice())
    result = _ingest([(PATH, data)])
    (instance,) = result.accepted
    row = result.instances_frame().row(0, named=True)
    assert row["source_sha256"] == hashlib.sha256(data).hexdigest()
    assert row["USUBJID"] == "T-01-001" and row["run_id"] == "run-1"
    assert (row["rows"], row["columns"], row["pixel_spacing_row_mm"], row["kvp"]) == (16, 16, 0.7, 120.0)
    assert instance.object_name.startswith("T-01-001/2.25.") and instance.object_name.endswith(".dcm")
    assert "Quixwell" not in instance.object_name and not result.rejections


@pytest.mark.parametrize(("cut", "expected"), [(100, "too short"), (600, "no Pixel Data"), (700, "truncated"),
                                               (-100, "truncated")])
def test_truncated_file(cut: int, expected: str) -> None:
    data = encode(_slice())
    rejection = _one_rejection(data[:cut])
    assert rejection["stage"] == "ingest_dicom" and expected in rejection["reason"]


def test_empty_file() -> None:
    assert "empty file" in _one_rejection(b"")["reason"]


def test_non_dicom_file() -> None:
    assert "not a DICOM file" in _one_rejection(b"%PDF-1.7 scanned consent form " * 20)["reason"]


def test_dicom_without_preamble_is_rejected_not_guessed() -> None:
    reason = _one_rejection(encode(_slice(), preamble=False))["reason"]
    assert "without the Part 10 file header" in reason and "re-export" in reason


def test_unknown_patient_is_quarantined_and_retryable() -> None:
    data = encode(_slice(PatientID="MRN9999"))
    result = _ingest([(PATH, data)])
    assert "patient not in the subject key" in result.rejections[0]["reason"]
    assert "MRN9999" not in result.rejections[0]["reason"]
    (entry,) = result.quarantine
    assert entry["landing_path"] == PATH and entry["retry_on_key_change"] is True


def test_patient_id_shared_by_two_sites_needs_the_site() -> None:
    ambiguous = _ingest([(PATH, encode(_slice(PatientID="SHARED7")))])
    assert "several sites" in ambiguous.rejections[0]["reason"]
    assert ambiguous.quarantine[0]["retry_on_key_change"] is True
    result = _ingest([(PATH, encode(_slice(PatientID="SHARED7", ClinicalTrialSiteID="02")))])
    assert result.accepted[0].row["USUBJID"] == "T-02-001"


def test_empty_patient_id() -> None:
    assert "PatientID (0010,0020) is empty" in _one_rejection(encode(_slice(PatientID="")))["reason"]


def test_format_rejections_are_not_retried_on_key_change() -> None:
    assert _ingest([(PATH, b"")]).quarantine[0]["retry_on_key_change"] is False


def test_attributes_after_the_pixel_data_are_not_copied() -> None:
    ds = _slice()
    ds.DataSetTrailingPadding = b"Quixwell" * 4
    result = _ingest([(PATH, encode(ds))])
    assert b"Quixwell" not in result.accepted[0].data
    out = pydicom.dcmread(io.BytesIO(result.accepted[0].data))
    assert "DataSetTrailingPadding" not in out and out.pixel_array.shape == (16, 16)


def test_secondary_capture_without_proof_of_no_annotation_is_rejected() -> None:
    screenshot = _slice(SOPClassUID=SecondaryCaptureImageStorage, Modality="OT")
    screenshot.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    rejection = _one_rejection(encode(screenshot))
    assert rejection["stage"] == "deid" and "secondary capture" in rejection["reason"]
    screenshot.BurnedInAnnotation = "NO"
    assert _ingest([(PATH, encode(screenshot))]).accepted


def test_burned_in_annotation_yes_is_rejected() -> None:
    rejection = _one_rejection(encode(_slice(BurnedInAnnotation="YES")))
    assert rejection["stage"] == "deid" and "burned-in annotation" in rejection["reason"]


def test_screenshot_image_type_needs_proof() -> None:
    rejection = _one_rejection(encode(_slice(ImageType=["DERIVED", "SECONDARY", "SCREEN SHOT"])))
    assert "screenshot" in rejection["reason"]


def test_unsupported_sop_class() -> None:
    ds = _slice(SOPClassUID="1.2.840.10008.5.1.4.1.1.481.2")  # RT Dose
    assert "unsupported object type RT Dose Storage" in _one_rejection(encode(ds))["reason"]


def test_dates_already_modified_elsewhere_are_rejected() -> None:
    reason = _one_rejection(encode(_slice(LongitudinalTemporalInformationModified="MODIFIED")))["reason"]
    assert "already modified" in reason


def test_duplicate_file_is_ingested_once_and_recorded() -> None:
    data = encode(_slice())
    result = _ingest([(PATH, data), ("dicom/copy/1.dcm", data)])
    assert len(result.accepted) == 1
    (duplicate,) = result.rejections
    assert duplicate["source_sha256"] == result.accepted[0].row["source_sha256"]
    assert "exact duplicate" in duplicate["reason"] and not result.quarantine


def test_same_sop_uid_with_different_content_is_rejected() -> None:
    first, second = encode(_slice()), encode(_slice(KVP=100))
    result = _ingest([(PATH, first), ("dicom/again/1.dcm", second)])
    assert [a.row["source_sha256"] for a in result.accepted] == [hashlib.sha256(first).hexdigest()]
    (conflict,) = result.rejections
    assert conflict["source_sha256"] == hashlib.sha256(second).hexdigest()
    assert "same SOP Instance UID but different content" in conflict["reason"]


def test_sop_conflict_with_an_earlier_run() -> None:
    earlier = _ingest([(PATH, encode(_slice()))]).accepted[0].row
    result = _ingest([(PATH, encode(_slice(KVP=100)))], known_sop_ids={earlier["sop_id"]: earlier["source_sha256"]})
    assert not result.accepted and "same SOP Instance UID" in result.rejections[0]["reason"]


def test_known_files_are_skipped() -> None:
    data = encode(_slice())
    result = _ingest([(PATH, data)], known_sha256=frozenset({hashlib.sha256(data).hexdigest()}))
    assert (result.accepted, result.rejections, result.n_known_skipped) == ((), (), 1)


def test_merge_applies_duplicate_and_conflict_rules_across_chunks() -> None:
    data, conflicting = encode(_slice()), encode(_slice(KVP=100))
    chunks = [_ingest([(PATH, data)]), _ingest([("b/1.dcm", data)]), _ingest([("c/1.dcm", conflicting)])]
    merged = merge_ingest_results(chunks, run_id="run-1")
    assert len(merged.accepted) == 1
    reasons = sorted(r["reason"][:20] for r in merged.rejections)
    assert reasons == ["another file with th", "exact duplicate of a"]
    assert merged.stale_objects == (chunks[2].accepted[0].object_name,)
    assert [q["landing_path"] for q in merged.quarantine] == ["c/1.dcm"]


def test_every_input_is_accepted_or_rejected() -> None:
    good = [encode(ds) for ds in synthesize_ct_series(patient_id="MRN0042", n_slices=4)]
    bad = [b"", b"not dicom" * 40, good[0][:900], encode(_slice(PatientID="X1"))]
    files = [(f"f{i}", d) for i, d in enumerate(good + bad + [good[1]])]
    result = _ingest(files)
    accounted = {a.row["source_sha256"] for a in result.accepted} | {r["source_sha256"] for r in result.rejections}
    assert accounted == {hashlib.sha256(d).hexdigest() for _, d in files}
    assert result.hashed == tuple((p, hashlib.sha256(d).hexdigest()) for p, d in files)
    assert len(result.accepted) == 4 and len(result.rejections) == 5


def _compressed(syntax) -> pydicom.Dataset:
    ds = synthesize_ct_series(patient_id="MRN0042", n_slices=1, rows=32, columns=32)[0]
    ds.compress(syntax)
    return ds


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_pixel_data_is_verified_and_kept(syntax) -> None:
    original = synthesize_ct_series(patient_id="MRN0042", n_slices=1, rows=32, columns=32)[0].pixel_array
    result = _ingest([(PATH, encode(_compressed(syntax)))])
    out = pydicom.dcmread(io.BytesIO(result.accepted[0].data))
    assert out.file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(out.pixel_array, original)


@pytest.mark.parametrize(("compressed", "reference"), [
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),  # JPEG-LS lossless vs uncompressed original
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm"),  # JPEG lossless SV1 vs RLE of the same image
])
def test_jpeg_ls_and_jpeg_lossless_decode_through_plugins(compressed: str, reference: str) -> None:
    source = pydicom.dcmread(get_testdata_file(compressed))
    ds = _slice()
    for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "PixelData"):
        if keyword in source:
            setattr(ds, keyword, source[keyword].value)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = source.file_meta.TransferSyntaxUID
    assert ds.file_meta.TransferSyntaxUID in (JPEGLSLossless, JPEGLosslessSV1)
    result = _ingest([(PATH, encode(ds))])
    out = pydicom.dcmread(io.BytesIO(result.accepted[0].data))
    np.testing.assert_array_equal(out.pixel_array, pydicom.dcmread(get_testdata_file(reference)).pixel_array)


def test_undecodable_compressed_pixel_data_is_rejected() -> None:
    ds = _compressed(RLELossless)
    ds.PixelData = encapsulate([b"\x01\x00\x00\x00" + b"\x00" * 60])  # RLE header: one segment at offset 0
    rejection = _one_rejection(encode(ds))
    assert "RLE Lossless" in rejection["reason"] and "cannot be decoded" in rejection["reason"]


def test_truncated_encapsulated_pixel_data_is_rejected() -> None:
    data = encode(_compressed(RLELossless))
    assert "encapsulated pixel data is truncated" in _one_rejection(data[:-20])["reason"]


def test_subject_key_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="missing column"):
        SubjectKey.from_frame(pl.DataFrame({"PATIENT_ID": ["1"], "USUBJID": ["A"]}))
    with pytest.raises(ValueError, match="row 2: this SITEID/PATIENT_ID already maps"):
        SubjectKey.from_frame(pl.DataFrame({"SITEID": ["1", "1"], "PATIENT_ID": ["P", "P"], "USUBJID": ["A", "B"]}))
    with pytest.raises(ValueError, match="row 1: USUBJID may contain only"):
        SubjectKey.from_frame(pl.DataFrame({"SITEID": ["1"], "PATIENT_ID": ["P"], "USUBJID": ["A/B"]}))
