"""Test helpers: small synthetic CT series as pydicom datasets, and Part 10 encoding."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

RESCALE_INTERCEPT = -1024.0


def compute_phantom_slice(rows: int, columns: int, *, lung_hu: float = -850.0) -> np.ndarray:
    """Stored values (HU - RescaleIntercept, uint16) of one axial slice: air, soft tissue, lungs."""
    yy, xx = np.mgrid[0:rows, 0:columns]
    y, x = (yy - rows / 2) / (rows / 2), (xx - columns / 2) / (columns / 2)
    hu = np.full((rows, columns), -1000.0)
    hu[(x / 0.9) ** 2 + (y / 0.7) ** 2 <= 1] = 40.0
    for cx in (-0.4, 0.4):
        hu[((x - cx) / 0.3) ** 2 + (y / 0.5) ** 2 <= 1] = lung_hu
    return (hu - RESCALE_INTERCEPT).astype(np.uint16)


def synthesize_ct_series(
    *,
    patient_id: str,
    n_slices: int = 8,
    rows: int = 16,
    columns: int = 16,
    slice_spacing_mm: float = 2.0,
    pixel_spacing_mm: float = 0.7,
    study_date: dt.date = dt.date(2020, 3, 1),
    seed: str = "trialake",
    positions_z: Sequence[float] | None = None,
) -> list[Dataset]:
    """One axial CT series as Part 10-ready datasets (file meta set), z ascending by default.

    ``positions_z`` overrides the slice positions (e.g. to leave out a slice); UIDs derive from
    ``seed`` and ``patient_id`` so two calls with the same arguments give the same series.
    """
    zs = list(positions_z) if positions_z is not None else [i * slice_spacing_mm for i in range(n_slices)]
    study_uid = generate_uid(entropy_srcs=[seed, patient_id, "study"])
    series_uid = generate_uid(entropy_srcs=[seed, patient_id, "series"])
    frame_uid = generate_uid(entropy_srcs=[seed, patient_id, "frame"])
    pixels = compute_phantom_slice(rows, columns).tobytes()
    return [
        _ct_slice(patient_id, study_uid, series_uid, frame_uid,
                  generate_uid(entropy_srcs=[seed, patient_id, "sop", str(i)]), i + 1, z,
                  rows, columns, pixel_spacing_mm, slice_spacing_mm, study_date, pixels)
        for i, z in enumerate(zs)
    ]


def _ct_slice(patient_id: str, study_uid: str, series_uid: str, frame_uid: str, sop_uid: str,
              number: int, z: float, rows: int, columns: int, pixel_spacing: float,
              thickness: float, study_date: dt.date, pixels: bytes) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    day = study_date.strftime("%Y%m%d")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = day
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = "101500"
    ds.Modality, ds.Manufacturer, ds.ManufacturerModelName = "CT", "Synthetic", "Phantom 1"
    ds.PatientName, ds.PatientID, ds.PatientSex, ds.PatientAge = "Phantom^Test", patient_id, "O", "050Y"
    ds.PatientBirthDate = ""
    ds.BodyPartExamined, ds.SliceThickness, ds.KVP = "CHEST", thickness, 120
    ds.ConvolutionKernel, ds.PatientPosition, ds.GantryDetectorTilt = "B70f", "HFS", 0
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber, ds.AccessionNumber = "1", 2, number, ""
    ds.ReferringPhysicianName = ""
    ds.ImagePositionPatient = [-columns * pixel_spacing / 2, -rows * pixel_spacing / 2, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns, ds.PixelSpacing = rows, columns, [pixel_spacing, pixel_spacing]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = RESCALE_INTERCEPT, 1, "HU"
    ds.PixelData = pixels
    return ds


def encode(ds: Dataset, *, preamble: bool = True) -> bytes:
    """Part 10 bytes of ``ds`` (``preamble=False``: the bare dataset, no preamble or file meta)."""
    buffer = io.BytesIO()
    if preamble:
        dcmwrite(buffer, ds, enforce_file_format=True)
    else:
        dcmwrite(buffer, ds, implicit_vr=False, little_endian=True)
    return buffer.getvalue()


#: Fake PHI placed by ``add_phi``: distinctive strings no de-identified output could contain by chance.
PHI = {
    "PatientName": "Quixwell^Zebulon", "OtherPatientNames": "Quixwell-Marr^Zeb", "PatientBirthDate": "19610412",
    "OtherPatientIDs": "OTHERID778899", "PatientAddress": "12 Elmbrook Terrace Wexcombe",
    "InstitutionName": "St Yolanthe Infirmary", "InstitutionAddress": "4 Larkspur Row Wexcombe",
    "ReferringPhysicianName": "Hargreave^Ottoline", "PerformingPhysicianName": "Brankovic^Imre",
    "OperatorsName": "Pellingham^Rue", "AccessionNumber": "ACC99887766", "StudyID": "STUDYX4455",
    "StationName": "CTSTATION7Q", "DeviceSerialNumber": "SN-123987Q", "PatientTelephoneNumbers": "555-0199-321",
    "PatientMotherBirthName": "Vantongeren^Ysolde", "MilitaryRank": "Brigadier Quell",
    "InstitutionalDepartmentName": "Wexcombe Chest Unit",
}
NESTED_PHI = {"sequence_mrn": "SEQMRN5566", "request_id": "RPIDQ3344", "private_nested": "Zebulon private note",
              "nested_operator": "Deepnest^Oswin", "private_top": "Quixwell MRN private"}


def add_phi(ds: Dataset, *, referenced_sop_uid: str) -> None:
    """Put fake PHI everywhere real exports carry it: identifying attributes, descriptors, nested
    sequences (allowed and not), private tags (top level and nested), plus a safe private number
    (ACME SAFE, group 0x0013, element byte 0x02) and a reference to another instance."""
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    ds.PatientSex, ds.PatientAge, ds.PatientWeight, ds.PatientSize = "F", "059Y", 71.5, 1.68
    ds.StudyDescription = "CT CHEST Zebulon Quixwell ACC99887766"
    ds.SeriesDescription = "AXIAL 1.0 B70f Quixwell"
    ds.ProtocolName = "Quixwell lung LOW DOSE"
    ds.ImageComments = "patient Zebulon called OTHERID778899"
    ds.AcquisitionDateTime = ds.AcquisitionDate + "101500.000000"
    ds.InstanceCreationDate = ds.StudyDate
    other = Dataset()
    other.PatientID, other.IssuerOfPatientID = NESTED_PHI["sequence_mrn"], "Wexcombe General"
    ds.OtherPatientIDsSequence = [other]
    request = Dataset()
    request.AccessionNumber, request.RequestedProcedureID = PHI["AccessionNumber"], NESTED_PHI["request_id"]
    ds.RequestAttributesSequence = [request]
    reference = Dataset()
    reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = CTImageStorage, referenced_sop_uid
    reference.OperatorsName = NESTED_PHI["nested_operator"]
    reference.private_block(0x0009, "ACME PHI", create=True).add_new(0x01, "LO", NESTED_PHI["private_nested"])
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = "121311", "DCM", "Localizer"
    purpose.PatientName = PHI["PatientName"]
    reference.PurposeOfReferenceCodeSequence = [purpose]
    ds.ReferencedImageSequence = [reference]
    ds.private_block(0x0011, "ACME PHI", create=True).add_new(0x01, "LO", NESTED_PHI["private_top"])
    safe = ds.private_block(0x0013, "ACME SAFE", create=True)
    safe.add_new(0x02, "DS", "7.25")
    safe.add_new(0x03, "LO", "Quixwell unsafe")


def phi_values(datasets: Sequence[Dataset]) -> list[str]:
    """Every PHI value of ``add_phi`` (and each part of the person names) plus the identifying
    values of the series itself: patient ID, original UIDs and original (unshifted) dates."""
    values = set(PHI.values()) | set(NESTED_PHI.values())
    values |= {part for value in PHI.values() if "^" in value for part in value.split("^")}  # name components
    for ds in datasets:
        values |= {ds.PatientID, ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID,
                   ds.FrameOfReferenceUID, ds.StudyDate}
    return sorted(values)
