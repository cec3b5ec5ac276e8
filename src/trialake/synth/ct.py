"""CT series as DICOM CT Image Storage files, with fake PHI where real exports carry it."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_ROOT_UID, generate_uid

from trialake.synth.identity import SITES, Identity, PhiLedger, compute_ascii
from trialake.synth.model import STREAM_FILES, Scan, SubjectPlan
from trialake.synth.phantom import Phantom

PRIVATE_GROUP = 0x0029
PRIVATE_CREATOR = "NIMBUS CT PATIENT INFO 1.0"


@dataclass(frozen=True)
class PixelStorage:
    """How a site stores HU: stored = (HU - intercept) / slope in the given integer type."""

    dtype: type
    intercept: float
    slope: float = 1.0


# Site 1 stores unsigned (HU below -1024 clip to -1024, as on many scanners); site 2 signed with
# intercept -1024; site 3 signed HU with intercept 0.
SITE_STORAGE = (PixelStorage(np.uint16, -1024.0), PixelStorage(np.int16, -1024.0), PixelStorage(np.int16, 0.0))
SITE_SCANNER = (  # manufacturer, model, convolution kernel
    ("NIMBUS MEDICAL", "Aurora 64", "B45f"), ("NIMBUS MEDICAL", "Aurora 128", "LUNG"), ("HALCYON CT", "H-16", "YC"),
)


@dataclass(frozen=True)
class SeriesUids:
    """Original (identifying) UIDs of one scan."""

    study: str
    series: str
    frame_of_reference: str

    def sop(self, instance: int) -> str:
        """SOP Instance UID of instance ``instance`` (1-based)."""
        return generate_uid(PYDICOM_ROOT_UID, entropy_srcs=[self.series, str(instance)])


def compute_series_uids(seed: int, usubjid: str, scan_index: int) -> SeriesUids:
    """Deterministic, real-looking UIDs for a subject's ``scan_index``-th scan."""
    key = [str(seed), usubjid, str(scan_index)]
    kinds = ("study", "series", "frame-of-reference")
    return SeriesUids(*(generate_uid(PYDICOM_ROOT_UID, entropy_srcs=[*key, kind]) for kind in kinds))


def compute_stored_pixels(hu: np.ndarray, storage: PixelStorage) -> np.ndarray:
    """HU volume -> stored integers (clipped to the type's range)."""
    info = np.iinfo(storage.dtype)
    stored = np.rint((hu.astype(np.float64) - storage.intercept) / storage.slope)
    return np.clip(stored, info.min, info.max).astype(storage.dtype)


def compute_series_folder(subject: SubjectPlan, identity: Identity, scan_index: int) -> str:
    """Landing folder of a series: site / FAMILY_GIVEN_MRN / date_accession / series (PHI in names)."""
    scan = subject.scans[scan_index]
    patient = f"{compute_ascii(identity.family).upper()}_{compute_ascii(identity.given).upper()}_{identity.mrn}"
    study = f"{scan.date:%Y%m%d}_{identity.accessions[scan_index]}"
    return f"dicom/site{subject.site_index + 1}/{patient}/{study}/SE002_LUNG"


def compute_study_id(accession: str) -> str:
    """The scanner's StudyID (exam number), derived from the accession number."""
    return f"EX{accession[-6:]}"


def compute_step_id(accession: str) -> str:
    """The RIS scheduled procedure step ID, derived from the accession number."""
    return f"SPS{accession[3:]}"


def _record_patient_phi(ledger: PhiLedger, identity: Identity, accession: str, folder: str) -> None:
    name = identity.dicom_name
    family, given = name.split("^")
    ledger.add(name, "patient_name", "dicom:PatientName")
    ledger.add(f"{family}, {given}", "patient_name", f"dicom:private {PRIVATE_CREATOR}")
    ledger.add(f"{given} {family}", "patient_name", "dicom:StudyDescription; dicom:private comment")
    ledger.add(family, "patient_family_name", "dicom:SeriesDescription; RequestAttributesSequence; folder name")
    ledger.add(given, "patient_given_name", "folder name")
    ledger.add(identity.mrn, "mrn", "dicom:PatientID; dicom:private; folder name")
    ledger.add(identity.other_id, "other_patient_id", "dicom:OtherPatientIDsSequence")
    ledger.add(f"{identity.birth_date:%Y%m%d}", "birth_date", "dicom:PatientBirthDate")
    ledger.add(accession, "accession_number", "dicom:AccessionNumber; RequestAttributesSequence; folder name")
    ledger.add(compute_study_id(accession), "study_id", "dicom:StudyID")
    ledger.add(compute_step_id(accession), "step_id", "dicom:RequestAttributesSequence ScheduledProcedureStepID")
    ledger.add(identity.referring, "physician_name", "dicom:ReferringPhysicianName; dicom:private comment")
    ledger.add(folder.split("/")[2], "folder_name", "dicom folder name")


def _record_site_phi(ledger: PhiLedger, site_index: int) -> None:
    site = SITES[site_index]
    ledger.add(site.institution, "institution", "dicom:InstitutionName")
    ledger.add(site.address, "institution_address", "dicom:InstitutionAddress")
    ledger.add(site.department, "institution_department", "dicom:InstitutionalDepartmentName")
    for operator in site.operators:
        ledger.add(operator, "operator_name", "dicom:OperatorsName; dicom:PerformingPhysicianName")


def _record_uids(ledger: PhiLedger, uids: SeriesUids, n_instances: int) -> None:
    ledger.add(uids.study, "uid", "dicom:StudyInstanceUID")
    ledger.add(uids.series, "uid", "dicom:SeriesInstanceUID")
    ledger.add(uids.frame_of_reference, "uid", "dicom:FrameOfReferenceUID")
    for instance in range(1, n_instances + 1):
        ledger.add(uids.sop(instance), "uid", "dicom:SOPInstanceUID; file meta MediaStorageSOPInstanceUID")


def record_series_phi(
    ledger: PhiLedger, subject: SubjectPlan, identity: Identity, scan_index: int, seed: int, n_instances: int
) -> None:
    """Record every identifying value ``render_series`` writes for this scan."""
    folder = compute_series_folder(subject, identity, scan_index)
    _record_patient_phi(ledger, identity, identity.accessions[scan_index], folder)
    _record_site_phi(ledger, subject.site_index)
    _record_uids(ledger, compute_series_uids(seed, subject.usubjid, scan_index), n_instances)


def _add_patient(ds: Dataset, subject: SubjectPlan, identity: Identity) -> None:
    ds.PatientName = identity.dicom_name
    ds.PatientID = identity.mrn
    ds.PatientBirthDate = f"{identity.birth_date:%Y%m%d}"
    ds.PatientSex = subject.sex
    ds.PatientAge = f"{subject.age:03d}Y"
    other = Dataset()
    other.PatientID = identity.other_id
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])


def _add_study(ds: Dataset, subject: SubjectPlan, identity: Identity, scan: Scan, accession: str) -> None:
    """Study, series and equipment: dates, institution and staff, descriptions with the name."""
    site = SITES[subject.site_index]
    manufacturer, model_name, kernel = SITE_SCANNER[subject.site_index]
    family, given = identity.dicom_name.split("^")
    acquired = f"{8 + subject.index % 9:02d}{(7 * subject.index) % 60:02d}{(13 * subject.index) % 60:02d}"
    for prefix in ("Study", "Series", "Acquisition", "Content"):
        setattr(ds, f"{prefix}Date", f"{scan.date:%Y%m%d}")
        setattr(ds, f"{prefix}Time", acquired)
    ds.AccessionNumber = accession
    ds.Modality = "CT"
    ds.Manufacturer, ds.ManufacturerModelName, ds.ConvolutionKernel = manufacturer, model_name, kernel
    ds.InstitutionName = site.institution
    ds.InstitutionAddress = site.address
    ds.InstitutionalDepartmentName = site.department
    ds.ReferringPhysicianName = identity.referring
    ds.PerformingPhysicianName = site.operators[1]
    ds.OperatorsName = site.operators[0]
    ds.StationName = f"CT{subject.site_index + 1:02d}"
    ds.StudyDescription = f"CT CHEST NONCONTRAST {given} {family}"
    ds.SeriesDescription = f"LUNG 1.0 {family}"
    ds.StudyID = compute_study_id(accession)
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.BodyPartExamined = "CHEST"
    ds.KVP = "120"
    ds.GantryDetectorTilt = "0"
    ds.PatientPosition = "FFS" if subject.feet_first else "HFS"


def _add_image(ds: Dataset, phantom: Phantom, storage: PixelStorage) -> None:
    """Geometry shared by all slices and the pixel encoding."""
    ds.SliceThickness = f"{phantom.spacing_mm[0]:.10g}"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(phantom.hu.shape[1]), int(phantom.hu.shape[2])
    ds.PixelSpacing = [f"{phantom.spacing_mm[1]:.10g}", f"{phantom.spacing_mm[2]:.10g}"]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if storage.dtype == np.int16 else 0
    ds.WindowCenter, ds.WindowWidth = "-600", "1500"
    ds.RescaleIntercept = f"{storage.intercept:g}"
    ds.RescaleSlope = f"{storage.slope:g}"
    ds.RescaleType = "HU"


def _add_hidden_phi(ds: Dataset, identity: Identity, accession: str) -> None:
    """PHI where naive de-identification misses it: a nested sequence and a private block."""
    family, given = identity.dicom_name.split("^")
    request = Dataset()
    request.RequestedProcedureID = accession
    request.ScheduledProcedureStepID = compute_step_id(accession)
    request.RequestedProcedureDescription = f"CT CHEST {family}"
    ds.RequestAttributesSequence = Sequence([request])
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", f"{family}, {given}")
    block.add_new(0x11, "LO", identity.mrn)
    block.add_new(0x12, "LT", f"Scheduled by {identity.referring} for {given} {family}")


def _header(
    subject: SubjectPlan, identity: Identity, scan: Scan, uids: SeriesUids, accession: str, phantom: Phantom
) -> Dataset:
    """Everything that is the same for all slices of the series (file meta included)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids.study, uids.series
    ds.FrameOfReferenceUID = uids.frame_of_reference
    _add_patient(ds, subject, identity)
    _add_study(ds, subject, identity, scan, accession)
    _add_image(ds, phantom, SITE_STORAGE[subject.site_index])
    _add_hidden_phi(ds, identity, accession)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_ROOT_UID + "1"
    return ds


def compute_slice_positions(phantom: Phantom, feet_first: bool) -> np.ndarray:
    """(z, 3) ImagePositionPatient (LPS, mm) per slice index of ``phantom.hu``.

    The phantom's columns run to the patient's left (+x) and rows posterior (+y), so the
    orientation is the standard axial [1,0,0,0,1,0]; the volume is centred in x/y. Slices are in
    acquisition order: head to feet (z decreasing), or feet to head when ``feet_first``.
    """
    dz, dy, dx = phantom.spacing_mm
    nz, ny, nx = phantom.hu.shape
    positions = np.zeros((nz, 3))
    positions[:, 0] = -dx * (nx - 1) / 2.0
    positions[:, 1] = -dy * (ny - 1) / 2.0
    head_to_feet = -dz * np.arange(nz)
    positions[:, 2] = head_to_feet[::-1] if feet_first else head_to_feet
    return positions


def render_series(
    subject: SubjectPlan, identity: Identity, scan_index: int, phantom: Phantom, seed: int
) -> Iterator[tuple[str, bytes]]:
    """(landing path, file bytes) of every instance of one scan; file names shuffled."""
    scan = subject.scans[scan_index]
    accession = identity.accessions[scan_index]
    uids = compute_series_uids(seed, subject.usubjid, scan_index)
    folder = compute_series_folder(subject, identity, scan_index)
    ds = _header(subject, identity, scan, uids, accession, phantom)
    stored = compute_stored_pixels(phantom.hu, SITE_STORAGE[subject.site_index])
    rng = np.random.default_rng([seed, subject.index, STREAM_FILES, scan_index])
    names = _file_names(subject.site_index, stored.shape[0], rng)
    return _instances(ds, stored, compute_slice_positions(phantom, subject.feet_first), uids, folder, names)


def _file_names(site_index: int, n: int, rng: np.random.Generator) -> list[str]:
    if site_index == 2:
        return [f"IMG{k + 1:05d}" for k in rng.permutation(n)]
    suffix = ".dcm" if site_index == 0 else ""
    return [f"{rng.bytes(6).hex().upper()}{suffix}" for _ in range(n)]


VARYING_TAGS = (Tag("SOPInstanceUID"), Tag("InstanceNumber"), Tag("ImagePositionPatient"), Tag("SliceLocation"),
                Tag("PixelData"))
PREAMBLE = b"\0" * 128 + b"DICM"


def _stream() -> DicomBytesIO:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    return fp


def _encode_elements(elements: list[DataElement]) -> bytes:
    """Explicit VR little endian bytes of elements (in tag order)."""
    fp = _stream()
    subset = Dataset()
    for elem in elements:
        subset.add(elem)
    write_dataset(fp, subset)
    return fp.getvalue()


def _encode_meta(meta: FileMetaDataset) -> bytes:
    fp = _stream()
    write_file_meta_info(fp, meta, enforce_standard=True)
    return fp.getvalue()


def _fixed_segments(ds: Dataset) -> list[bytes]:
    """The header's bytes cut at the per-instance elements: len(VARYING_TAGS) + 1 segments."""
    segments: list[list[DataElement]] = [[] for _ in range(len(VARYING_TAGS) + 1)]
    for elem in ds:
        segments[sum(elem.tag > tag for tag in VARYING_TAGS)].append(elem)
    return [_encode_elements(elements) for elements in segments]


def _instances(
    ds: Dataset, stored: np.ndarray, positions: np.ndarray, uids: SeriesUids, folder: str, names: list[str]
) -> Iterator[tuple[str, bytes]]:
    """Encode the shared header once and splice in the per-instance elements (a 64x64x40 series
    takes milliseconds instead of a full pydicom write per file); bytes equal pydicom's dcmwrite."""
    fixed = _fixed_segments(ds)
    for k in range(stored.shape[0]):
        instance = k + 1  # acquisition order
        sop = uids.sop(instance)
        varying = [
            DataElement(VARYING_TAGS[0], "UI", sop),
            DataElement(VARYING_TAGS[1], "IS", str(instance)),
            DataElement(VARYING_TAGS[2], "DS", [f"{v:.10g}" for v in positions[k]]),
            DataElement(VARYING_TAGS[3], "DS", f"{positions[k, 2]:.10g}"),
            DataElement(VARYING_TAGS[4], "OW", np.ascontiguousarray(stored[k]).tobytes()),
        ]
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        parts = [PREAMBLE, _encode_meta(ds.file_meta)]
        for segment, elem in zip(fixed, varying, strict=False):
            parts += [segment, _encode_elements([elem])]
        parts.append(fixed[-1])
        yield f"{folder}/{names[k]}", b"".join(parts)
