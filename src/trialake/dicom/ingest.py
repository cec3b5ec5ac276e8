"""Ingest landing DICOM files: hash, parse once, check, de-identify, serialize, index.

Pure: bytes and parameters in, de-identified bytes and rows out. The caller does the I/O and may
run :func:`ingest_dicom_batch` on chunks in parallel processes, then combine the chunk results
with :func:`merge_ingest_results`, which applies the duplicate and UID-conflict rules across chunks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import polars as pl

from trialake.dicom.checks import (
    SOP_CLASS_FAMILIES,
    Part10File,
    Rejected,
    check_burned_in,
    check_dates_not_modified,
    check_part10,
    check_pixel_data,
    check_sop_class,
    parse_part10,
)
from trialake.dicom.deid import deidentify, encode_part10
from trialake.dicom.elements import RawView, tag_of
from trialake.dicom.pixels import NativeLayout, PixelTextError, compute_clean_encapsulated, compute_clean_native
from trialake.dicom.profile import DeidParams
from trialake.dicom.subject_key import SubjectKey
from trialake.lake.landing import compute_sha256
from trialake.lineage import REJECTION_SCHEMA

STAGE_INGEST, STAGE_DEID = "ingest_dicom", "deid"

#: Schema of bronze/dicom_instances (one row per accepted instance). Values are read from the
#: de-identified copy, so dates are shifted and *_id columns hold pseudonymous UIDs.
INSTANCE_SCHEMA: dict[str, pl.DataType] = {
    "source_sha256": pl.String(), "source_row": pl.Int64(), "run_id": pl.String(),
    "USUBJID": pl.String(), "object_name": pl.String(), "n_bytes": pl.Int64(),
    "study_id": pl.String(), "series_id": pl.String(), "sop_id": pl.String(),
    "frame_of_reference_id": pl.String(), "sop_class_uid": pl.String(), "modality_family": pl.String(),
    "modality": pl.String(), "transfer_syntax_uid": pl.String(), "image_type": pl.String(),
    "series_number": pl.Int64(), "instance_number": pl.Int64(), "series_description": pl.String(),
    "body_part_examined": pl.String(), "number_of_frames": pl.Int64(),
    "rows": pl.Int64(), "columns": pl.Int64(), "bits_allocated": pl.Int64(), "bits_stored": pl.Int64(),
    "pixel_representation": pl.Int64(), "samples_per_pixel": pl.Int64(),
    "photometric_interpretation": pl.String(),
    "position_x": pl.Float64(), "position_y": pl.Float64(), "position_z": pl.Float64(),
    "orientation_row_x": pl.Float64(), "orientation_row_y": pl.Float64(), "orientation_row_z": pl.Float64(),
    "orientation_col_x": pl.Float64(), "orientation_col_y": pl.Float64(), "orientation_col_z": pl.Float64(),
    "pixel_spacing_row_mm": pl.Float64(), "pixel_spacing_col_mm": pl.Float64(),
    "slice_thickness_mm": pl.Float64(), "spacing_between_slices_mm": pl.Float64(),
    "rescale_slope": pl.Float64(), "rescale_intercept": pl.Float64(), "rescale_type": pl.String(),
    "kvp": pl.Float64(), "tube_current_ma": pl.Float64(), "exposure_mas": pl.Float64(),
    "convolution_kernel": pl.String(), "gantry_tilt_deg": pl.Float64(),
    "reconstruction_diameter_mm": pl.Float64(), "manufacturer": pl.String(),
    "manufacturer_model_name": pl.String(), "patient_position": pl.String(),
    "study_date": pl.Date(), "series_date": pl.Date(), "acquisition_date": pl.Date(),
    "content_date": pl.Date(), "acquisition_time": pl.String(),
    "burned_in_annotation": pl.String(), "lossy_compression": pl.String(),
}
#: restricted/ only: the landing path may itself carry PHI.
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source_sha256": pl.String(), "landing_path": pl.String(), "stage": pl.String(), "reason": pl.String(),
    "retry_on_key_change": pl.Boolean(), "run_id": pl.String(),
}
#: restricted/ only.
UID_MAP_SCHEMA: dict[str, pl.DataType] = {
    "original_uid": pl.String(), "pseudo_uid": pl.String(), "USUBJID": pl.String(), "run_id": pl.String(),
}
_DUPLICATE = ("exact duplicate of another landing file (same bytes): ingested once, nothing to do "
              "(delete the extra copy to keep the landing area tidy)")
_UNEXPECTED = ("unexpected error while reading the file ({}): report it to the platform engineer with this "
               "source_sha256; the file stays in quarantine")
_SOP_CONFLICT = ("another file with the same SOP Instance UID but different content was already ingested: "
                 "ask the site which version is correct; a corrected image must be sent with a new SOP "
                 "Instance UID")


@dataclass(frozen=True)
class AcceptedInstance:
    """A de-identified copy to write to ``bronze/dicom/<object_name>`` and its index row.

    The copy is ``parts`` one after the other: the rewritten header, then the unchanged pixel data
    element as a view of the landing bytes (joining them would copy the image once more).
    """

    object_name: str
    parts: tuple[bytes | memoryview, ...]
    row: dict[str, object]
    landing_path: str  # restricted: never written outside restricted/

    @property
    def data(self) -> bytes:
        """The whole de-identified copy."""
        return b"".join(self.parts)


@dataclass(frozen=True)
class IngestBatchResult:
    """Outcome of one batch. ``rejections`` go to silver/rejections; ``quarantine`` and ``uid_map``
    to restricted/ only; ``stale_objects`` are copies written by a chunk but overruled by a merge."""

    accepted: tuple[AcceptedInstance, ...]
    rejections: tuple[dict[str, object], ...]
    quarantine: tuple[dict[str, object], ...]
    uid_map: tuple[dict[str, object], ...]
    n_known_skipped: int = 0
    stale_objects: tuple[str, ...] = ()
    hashed: tuple[tuple[str, str], ...] = ()  # (landing path, sha256) of every input file; restricted

    def instances_frame(self) -> pl.DataFrame:
        """bronze/dicom_instances rows, typed by INSTANCE_SCHEMA."""
        return pl.DataFrame([a.row for a in self.accepted], schema=INSTANCE_SCHEMA, orient="row")

    def rejections_frame(self) -> pl.DataFrame:
        """silver/rejections rows."""
        return pl.DataFrame(list(self.rejections), schema=REJECTION_SCHEMA, orient="row")

    def quarantine_frame(self) -> pl.DataFrame:
        """restricted/dicom_quarantine rows (with landing paths)."""
        return pl.DataFrame(list(self.quarantine), schema=QUARANTINE_SCHEMA, orient="row")

    def uid_map_frame(self) -> pl.DataFrame:
        """restricted/uid_map rows (original UID -> pseudonymous UID)."""
        return pl.DataFrame(list(self.uid_map), schema=UID_MAP_SCHEMA, orient="row")


def ingest_dicom_batch(
    files: Iterable[tuple[str, bytes]],
    *,
    key: SubjectKey,
    secret: bytes,
    run_id: str,
    params: DeidParams,
    known_sha256: frozenset[str] = frozenset(),
    known_sop_ids: Mapping[str, str] | None = None,
) -> IngestBatchResult:
    """Ingest ``(landing path, bytes)`` pairs, in order.

    known_sha256: files already ingested or rejected in earlier runs; skipped (counted only).
    known_sop_ids: {sop_id (pseudonymous): source_sha256} of bronze/dicom_instances, so a file
        that reuses an ingested SOP Instance UID with different content is rejected.
    The landing path is used only in quarantine rows (restricted/), never in a reason or name.
    """
    accepted: list[AcceptedInstance] = []
    rejections: list[dict[str, object]] = []
    quarantine: list[dict[str, object]] = []
    uid_map: dict[str, dict[str, object]] = {}
    hashed: list[tuple[str, str]] = []
    seen: set[str] = set()
    skipped = 0
    for path, data in files:
        sha = compute_sha256(data)
        hashed.append((path, sha))
        if sha in known_sha256:
            skipped += 1
            continue
        if sha in seen:
            rejections.append(_rejection_row(sha, STAGE_INGEST, _DUPLICATE, run_id))
            continue
        seen.add(sha)
        try:
            instance, uids = _ingest_file(path, data, sha, key=key, secret=secret, params=params, run_id=run_id)
        except Exception as exc:  # noqa: BLE001 - one unreadable file must not stop the batch
            rej = exc if isinstance(exc, Rejected) else Rejected(STAGE_INGEST, _UNEXPECTED.format(type(exc).__name__))
            rejections.append(_rejection_row(sha, rej.stage, rej.reason, run_id))
            quarantine.append(_quarantine_row(sha, path, rej, run_id))
            continue
        accepted.append(instance)
        for original, pseudo in uids.items():
            uid_map.setdefault(original, {"original_uid": original, "pseudo_uid": pseudo,
                                          "USUBJID": instance.row["USUBJID"], "run_id": run_id})
    batch = IngestBatchResult(tuple(accepted), tuple(rejections), tuple(quarantine), tuple(uid_map.values()),
                              skipped, hashed=tuple(hashed))
    return _resolve_sop_conflicts(batch, known_sop_ids or {}, run_id)


def merge_ingest_results(results: Sequence[IngestBatchResult], *, run_id: str) -> IngestBatchResult:
    """Combine chunk results (in chunk order) as if they were one batch: a file accepted by two
    chunks (same bytes) is kept once and recorded as a duplicate; a SOP Instance UID accepted
    with different content by two chunks keeps the first, and the later copy's object name is
    listed in ``stale_objects`` for the caller to delete."""
    accepted: list[AcceptedInstance] = []
    rejections = [r for res in results for r in res.rejections]
    seen: set[str] = set()
    for instance in (a for res in results for a in res.accepted):
        sha = str(instance.row["source_sha256"])
        if sha in seen:
            rejections.append(_rejection_row(sha, STAGE_INGEST, _DUPLICATE, run_id))
        else:
            seen.add(sha)
            accepted.append(instance)
    uid_map = {str(r["original_uid"]): r for res in results for r in res.uid_map}
    merged = IngestBatchResult(
        tuple(accepted), tuple(rejections), tuple(q for res in results for q in res.quarantine),
        tuple(uid_map.values()), sum(r.n_known_skipped for r in results),
        tuple(s for res in results for s in res.stale_objects), tuple(h for res in results for h in res.hashed),
    )
    return _resolve_sop_conflicts(merged, {}, run_id, stale=True)


def _resolve_sop_conflicts(batch: IngestBatchResult, known: Mapping[str, str], run_id: str,
                           *, stale: bool = False) -> IngestBatchResult:
    owners = dict(known)
    kept: list[AcceptedInstance] = []
    rejections, quarantine, stale_objects = list(batch.rejections), list(batch.quarantine), list(batch.stale_objects)
    for instance in batch.accepted:
        sop, sha = str(instance.row["sop_id"]), str(instance.row["source_sha256"])
        if owners.setdefault(sop, sha) == sha:
            kept.append(instance)
            continue
        rej = Rejected(STAGE_INGEST, _SOP_CONFLICT)
        rejections.append(_rejection_row(sha, rej.stage, rej.reason, run_id))
        quarantine.append(_quarantine_row(sha, instance.landing_path, rej, run_id))
        if stale:
            stale_objects.append(instance.object_name)
    if len(kept) == len(batch.accepted):
        return batch
    return replace(batch, accepted=tuple(kept), rejections=tuple(rejections),
                               quarantine=tuple(quarantine), stale_objects=tuple(stale_objects))


def _rejection_row(sha: str, stage: str, reason: str, run_id: str) -> dict[str, object]:
    return {"source_sha256": sha, "source_row": None, "stage": stage, "reason": reason, "run_id": run_id}


def _quarantine_row(sha: str, path: str, rej: Rejected, run_id: str) -> dict[str, object]:
    return {"source_sha256": sha, "landing_path": path, "stage": rej.stage, "reason": rej.reason,
            "retry_on_key_change": rej.retry_on_key_change,
            "run_id": run_id}


def _ingest_file(path: str, data: bytes, sha: str, *, key: SubjectKey, secret: bytes, params: DeidParams,
                 run_id: str) -> tuple[AcceptedInstance, dict[str, str]]:
    _fail_if(STAGE_INGEST, check_part10(data))
    part10 = parse_part10(data)
    view = part10.view
    _fail_if(STAGE_INGEST, check_sop_class(view))
    _fail_if(STAGE_INGEST, check_pixel_data(part10, data, decode=params.verify_pixel_data,
                                            high_bits=params.guards("pixel-high-bits")))
    try:
        usubjid = key.lookup(view)
    except LookupError as exc:
        raise Rejected(STAGE_INGEST, str(exc), retry_on_key_change=True) from None
    _fail_if(STAGE_DEID, check_burned_in(view))
    _fail_if(STAGE_DEID, check_dates_not_modified(view))
    return _deidentified_instance(part10, data, sha, path, usubjid=usubjid, secret=secret, params=params,
                                  run_id=run_id)


def reclean_copy(name: str, data: bytes, *, usubjid: str, source_sha256: str, secret: bytes, params: DeidParams,
                 pseudonyms: frozenset[str], run_id: str) -> tuple[AcceptedInstance, dict[str, str]]:
    """A de-identified copy (``bronze/dicom/<name>``) cleaned again under the current rules, for a
    copy whose landing file is gone: its pseudonymous UIDs (``pseudonyms``) and moved dates stay
    as they are; UIDs an older version kept are replaced now, as a fresh ingest would."""
    part10 = parse_part10(data)
    return _deidentified_instance(part10, data, source_sha256, name, usubjid=usubjid, secret=secret, params=params,
                                  run_id=run_id, pseudonyms=pseudonyms)


def _deidentified_instance(part10: Part10File, data: bytes, sha: str, path: str, *, usubjid: str, secret: bytes,
                           params: DeidParams, run_id: str, pseudonyms: frozenset[str] | None = None,
                           ) -> tuple[AcceptedInstance, dict[str, str]]:
    """The de-identified copy of an accepted file: pixel text removed, header de-identified."""
    syntax = part10.transfer_syntax
    try:
        pixel_element = _clean_pixel_element(part10, data, params)
    except PixelTextError as exc:
        raise Rejected(STAGE_DEID, f"pixel data: {exc}, so text embedded in it cannot be removed; ask the site "
                       "to re-send the images uncompressed") from None
    try:
        deid_view, uids = deidentify(part10.view, usubjid=usubjid, secret=secret, params=params, pseudonyms=pseudonyms)
        if pixel_element is not None and part10.encapsulated:  # frames moved: the extended offsets are stale
            for tag in _EXTENDED_OFFSETS:
                deid_view.elements.pop(tag, None)
        original = memoryview(data)[part10.pixel_start:part10.pixel_end]
        parts = encode_part10(deid_view, transfer_syntax=syntax,
                              pixel_element=original if pixel_element is None else pixel_element)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, EOFError, NotImplementedError,
            UnicodeError) as exc:
        raise Rejected(STAGE_DEID, f"could not be de-identified safely ({type(exc).__name__} while rewriting "
                       "the header): a malformed attribute; ask the site to re-export the file") from None
    row = _instance_row(deid_view, sha=sha, usubjid=usubjid, run_id=run_id, n_bytes=sum(len(p) for p in parts),
                        transfer_syntax=syntax)
    name = f"{usubjid}/{row['study_id']}/{row['series_id']}/{row['sop_id']}_{sha[:16]}.dcm"
    row["object_name"] = name
    return AcceptedInstance(name, parts, row, path), uids


_EXTENDED_OFFSETS = (tag_of("ExtendedOffsetTable"), tag_of("ExtendedOffsetTableLengths"))
_BITS_ALLOCATED, _BITS_STORED, _HIGH_BIT, _PIXEL_REPRESENTATION, _FRAMES = map(tag_of, (
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "NumberOfFrames"))


def _clean_pixel_element(part10: Part10File, data: bytes, params: DeidParams) -> bytes | None:
    """The pixel data element without embedded text (comment segments of compressed frames, bits
    outside the stored range of native pixels), or None when there was none to remove."""
    view, header = part10.view, data[part10.pixel_start:part10.value_start]
    value = memoryview(data)[part10.value_start:part10.pixel_end]
    if part10.encapsulated:
        if not params.guards("pixel-comments"):
            return None
        cleaned = compute_clean_encapsulated(value, part10.transfer_syntax,
                                             number_of_frames=view.integer(_FRAMES) or 1)
        return None if cleaned is None else header + cleaned
    allocated = view.integer(_BITS_ALLOCATED) or 0
    if not params.guards("pixel-high-bits") or not allocated:
        return None
    stored = view.integer(_BITS_STORED) or allocated
    high_bit = view.integer(_HIGH_BIT)
    layout = NativeLayout(allocated, stored, stored - 1 if high_bit is None else high_bit,
                          bool(view.integer(_PIXEL_REPRESENTATION)), view.little)
    cleaned = compute_clean_native(value, layout)
    return None if cleaned is None else header + cleaned


def _fail_if(stage: str, reason: str | None) -> None:
    if reason is not None:
        raise Rejected(stage, reason)


def _date(value: str | None) -> dt.date | None:
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8])) if value and len(value) >= 8 else None
    except ValueError:
        return None


#: column -> (reader, keyword, value index) for the header fields of INSTANCE_SCHEMA.
_ROW_FIELDS: dict[str, tuple[str, int, int]] = {
    column: (kind, tag_of(keyword), index) for column, (kind, keyword, index) in {
        "study_id": ("text", "StudyInstanceUID", 0), "series_id": ("text", "SeriesInstanceUID", 0),
        "sop_id": ("text", "SOPInstanceUID", 0), "frame_of_reference_id": ("text", "FrameOfReferenceUID", 0),
        "modality": ("text", "Modality", 0), "image_type": ("text", "ImageType", 0),
        "series_number": ("integer", "SeriesNumber", 0), "instance_number": ("integer", "InstanceNumber", 0),
        "series_description": ("text", "SeriesDescription", 0), "body_part_examined": ("text", "BodyPartExamined", 0),
        "number_of_frames": ("integer", "NumberOfFrames", 0), "rows": ("integer", "Rows", 0),
        "columns": ("integer", "Columns", 0), "bits_allocated": ("integer", "BitsAllocated", 0),
        "bits_stored": ("integer", "BitsStored", 0), "pixel_representation": ("integer", "PixelRepresentation", 0),
        "samples_per_pixel": ("integer", "SamplesPerPixel", 0),
        "photometric_interpretation": ("text", "PhotometricInterpretation", 0),
        "position_x": ("number", "ImagePositionPatient", 0), "position_y": ("number", "ImagePositionPatient", 1),
        "position_z": ("number", "ImagePositionPatient", 2),
        "orientation_row_x": ("number", "ImageOrientationPatient", 0),
        "orientation_row_y": ("number", "ImageOrientationPatient", 1),
        "orientation_row_z": ("number", "ImageOrientationPatient", 2),
        "orientation_col_x": ("number", "ImageOrientationPatient", 3),
        "orientation_col_y": ("number", "ImageOrientationPatient", 4),
        "orientation_col_z": ("number", "ImageOrientationPatient", 5),
        "pixel_spacing_row_mm": ("number", "PixelSpacing", 0), "pixel_spacing_col_mm": ("number", "PixelSpacing", 1),
        "slice_thickness_mm": ("number", "SliceThickness", 0),
        "spacing_between_slices_mm": ("number", "SpacingBetweenSlices", 0),
        "rescale_slope": ("number", "RescaleSlope", 0), "rescale_intercept": ("number", "RescaleIntercept", 0),
        "rescale_type": ("text", "RescaleType", 0), "kvp": ("number", "KVP", 0),
        "tube_current_ma": ("number", "XRayTubeCurrent", 0), "exposure_mas": ("number", "Exposure", 0),
        "convolution_kernel": ("text", "ConvolutionKernel", 0), "gantry_tilt_deg": ("number", "GantryDetectorTilt", 0),
        "reconstruction_diameter_mm": ("number", "ReconstructionDiameter", 0),
        "manufacturer": ("text", "Manufacturer", 0), "manufacturer_model_name": ("text", "ManufacturerModelName", 0),
        "patient_position": ("text", "PatientPosition", 0), "study_date": ("date", "StudyDate", 0),
        "series_date": ("date", "SeriesDate", 0), "acquisition_date": ("date", "AcquisitionDate", 0),
        "content_date": ("date", "ContentDate", 0), "acquisition_time": ("text", "AcquisitionTime", 0),
        "burned_in_annotation": ("text", "BurnedInAnnotation", 0),
        "lossy_compression": ("text", "LossyImageCompression", 0),
    }.items()
}
_ACQUISITION_DATETIME, _SOP_CLASS = tag_of("AcquisitionDateTime"), tag_of("SOPClassUID")


def _instance_row(view: RawView, *, sha: str, usubjid: str, run_id: str, n_bytes: int,
                  transfer_syntax: str) -> dict[str, object]:
    sop_class = view.text(_SOP_CLASS) or ""
    row: dict[str, object] = {
        "source_sha256": sha, "source_row": None, "run_id": run_id, "USUBJID": usubjid,
        "object_name": None, "n_bytes": n_bytes,
        "sop_class_uid": sop_class, "modality_family": SOP_CLASS_FAMILIES[sop_class],
        "transfer_syntax_uid": transfer_syntax,
    }
    numbers: dict[int, list[float | None]] = {}
    for column, (kind, tag, index) in _ROW_FIELDS.items():
        if kind == "number":
            values = numbers.get(tag)
            if values is None:
                values = numbers[tag] = view.numbers(tag)
            row[column] = values[index] if len(values) > index else None
        elif kind == "integer":
            row[column] = view.integer(tag)
        elif kind == "date":
            row[column] = _date(view.text(tag))
        else:
            row[column] = view.text(tag)
    row["number_of_frames"] = row["number_of_frames"] or 1
    row["acquisition_date"] = row["acquisition_date"] or _date(view.text(_ACQUISITION_DATETIME))
    return row
