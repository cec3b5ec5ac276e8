"""Volumetry results as DICOM, for viewers: a Segmentation (lung, ground glass, solid) and a
Comprehensive 3D SR measurement report (TID 1500), both built with highdicom over the
de-identified source instances of bronze/dicom.

Both are de-identified like the images they derive from: every patient and study attribute is
copied from the (already de-identified) source, the PatientIdentityRemoved / De-identification
Method attributes are carried over, the new UIDs are derived from pseudonymous ids only, and the
content date and time are the source series' (shifted) ones, never the time of processing (which
next to shifted dates would give the shift away).

Masks come in the canonical orientation of ``trialake.imaging.CTVolume`` (z head to feet, y towards
posterior, x towards the patient's left; ``origin_mm`` the LPS position of voxel (0, 0, 0)) and are
mapped back onto each source instance's own pixel grid by geometry (:func:`compute_source_frames`).
"""
from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import highdicom as hd
import numpy as np
from pydicom import Dataset, dcmread
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

import trialake
from trialake.pseudonym import compute_pseudo_uid

MANUFACTURER = "Trialake"
MODEL = "Trialake CT volumetry"
SEG_SERIES_NUMBER, SR_SERIES_NUMBER = 9901, 9902
_ML = hd.sr.CodedConcept("mL", "UCUM", "milliliter")
_PERCENT = hd.sr.CodedConcept("%", "UCUM", "percent")
_VOLUME = codes.SCT.Volume
_VOLUME_RATIO = codes.DCM.VolumeRatio  # of the finding to the whole lung (the finding site), in %
_LUNG = codes.SCT.Lung
_GGO = codes.DCM.GroundGlassOpacity
_CONSOLIDATION = hd.sr.CodedConcept("95436008", "SCT", "Lung consolidation")
_LESION = codes.SCT.Lesion
_CT_CHEST = hd.sr.CodedConcept("24627-2", "LN", "CT Chest")
#: (label, property category, property type, CIELab display colour) of the segments, numbered from 1.
SEGMENTS = (
    ("lung", codes.cid7150.AnatomicalStructure, _LUNG, (80.0, -20.0, -30.0)),
    ("ground glass", codes.cid7150.MorphologicallyAbnormalStructure, _GGO, (90.0, -5.0, 80.0)),
    ("solid", codes.cid7150.MorphologicallyAbnormalStructure, _CONSOLIDATION, (55.0, 75.0, 55.0)),
)
#: Attributes carried over from the source so that SEG and SR say how they were de-identified.
_DEID_ATTRIBUTES = ("PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
                    "LongitudinalTemporalInformationModified")


#: What the SR reports: these fields of a volumetry record (``VolumetryResult.to_record()``).
MEASUREMENT_FIELDS = ("lung_volume_ml", "lesion_volume_ml", "ggo_volume_ml", "solid_volume_ml", "lesion_pct",
                      "ggo_pct", "solid_pct", "method", "method_version", "params_hash")


@dataclass(frozen=True)
class ResultObjects:
    """The encoded SEG and SR (Part 10 bytes) and their UIDs."""

    seg: bytes
    sr: bytes
    seg_series_uid: str
    seg_sop_uid: str
    sr_series_uid: str
    sr_sop_uid: str
    n_seg_frames: int


def read_sources(files: Sequence[bytes]) -> list[Dataset]:
    """The source instances as pydicom datasets (highdicom needs their headers and geometry)."""
    return [dcmread(io.BytesIO(f), stop_before_pixels=True) for f in files]


class SliceStack(Protocol):
    """A (z, y, x[, segment]) stack read one slice at a time (a numpy array is one)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, k: int) -> np.ndarray: ...


def compute_source_frames(sources: Sequence[Dataset], masks: SliceStack, origin_mm: Sequence[float],
                          spacing_mm: Sequence[float]) -> np.ndarray:
    """The canonical-orientation ``masks`` (z, y, x[, segment]) on each source's pixel grid:
    shape (len(sources), Rows, Columns[, segment]), in the order of ``sources`` (``masks`` is read
    one slice at a time).

    Each source's slice index is its rank along the feet-ward slice normal; its row and column
    axes map onto the volume's y and x axes with the signs its ImageOrientationPatient gives.
    Raises ValueError when a source does not sit on the volume's grid.
    """
    if len(sources) != masks.shape[0]:
        raise ValueError(f"compute_source_frames: {len(sources)} sources for {masks.shape[0]} mask slices")
    origin = np.asarray(origin_mm, float)
    dz, dy, dx = (float(s) for s in spacing_mm)
    frames = []
    geometry = [_geometry(ds) for ds in sources]
    normal = np.cross(geometry[0][1], geometry[0][2])
    feetward = normal if normal[2] < 0 else -normal
    order = np.argsort([float(p @ feetward) for p, _, _, _ in geometry], kind="stable")
    rank = np.empty(len(sources), int)
    rank[order] = np.arange(len(sources))
    for index, (position, row_dir, col_dir, (rows, cols)) in enumerate(geometry):
        k = int(rank[index])
        offset = position - origin
        if abs(float(offset @ feetward) / dz - k) > 0.5:
            raise ValueError(f"source #{index}: slice position does not match volume slice {k}")
        ex = row_dir if row_dir[0] > 0 else -row_dir
        ey = col_dir if col_dir[1] > 0 else -col_dir
        x0, y0 = float(offset @ ex) / dx, float(offset @ ey) / dy
        sx, sy = (1 if row_dir[0] > 0 else -1), (1 if col_dir[1] > 0 else -1)
        xs, ys = np.rint(x0).astype(int) + sx * np.arange(cols), np.rint(y0).astype(int) + sy * np.arange(rows)
        if max(abs(x0 - round(x0)), abs(y0 - round(y0))) > 0.01 or xs.min() < 0 or ys.min() < 0 \
                or xs.max() >= masks.shape[2] or ys.max() >= masks.shape[1]:
            raise ValueError(f"source #{index}: pixel grid does not match the volume's")
        frames.append(masks[k][np.ix_(ys, xs)])
    return np.stack(frames)


def _geometry(ds: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    orientation = np.asarray(ds.ImageOrientationPatient, float)
    return np.asarray(ds.ImagePositionPatient, float), orientation[:3], orientation[3:], (int(ds.Rows), int(ds.Columns))


def build_result_objects(sources: Sequence[Dataset], frames: np.ndarray, measurements: Mapping[str, object], *,
                         uid_seed: str) -> ResultObjects:
    """SEG and SR of one measured series.

    frames: (len(sources), Rows, Columns, 3) booleans, segments lung, ground glass, solid, in the
    order of ``sources`` (see :func:`compute_source_frames`). measurements: a volumetry record
    with at least MEASUREMENT_FIELDS. uid_seed: a pseudonymous,
    deterministic seed (series id and parameters hash), so a re-run writes the same objects.
    """
    if frames.ndim != 4 or frames.shape[3] != len(SEGMENTS):
        raise ValueError(f"build_result_objects: frames must be (n, rows, cols, {len(SEGMENTS)}), got {frames.shape}")
    missing = [name for name in MEASUREMENT_FIELDS if measurements.get(name) is None]
    if missing:
        raise ValueError(f"build_result_objects: measurements lack {', '.join(missing)}")
    uids = {name: _uid(uid_seed, name) for name in ("seg series", "seg", "sr series", "sr")}
    algorithm = hd.AlgorithmIdentificationSequence(
        name=str(measurements["method"]), family=_algorithm_family(str(measurements["method"])),
        version=str(measurements["method_version"]), parameters={"params_hash": str(measurements["params_hash"])})
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number, segment_label=label, segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm, tracking_uid=_uid(uid_seed, label),
            tracking_id=label, display_color=hd.color.CIELabColor(*lab))
        for number, (label, category, kind, lab) in enumerate(SEGMENTS, start=1)
    ]
    with warnings.catch_warnings():  # a pseudonym in PatientName has one component, as it should
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name", category=UserWarning)
        seg, sr = _build(sources, frames, measurements, uid_seed, uids, descriptions)
    return ResultObjects(_encode(seg), _encode(sr), uids["seg series"], uids["seg"], uids["sr series"], uids["sr"],
                         int(seg.NumberOfFrames))


def _build(sources: Sequence[Dataset], frames: np.ndarray, measurements: Mapping[str, object], uid_seed: str,
           uids: Mapping[str, str], descriptions: list) -> tuple[Dataset, Dataset]:
    seg = hd.seg.Segmentation(
        source_images=list(sources), pixel_array=frames.astype(bool, copy=False),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=uids["seg series"], series_number=SEG_SERIES_NUMBER, sop_instance_uid=uids["seg"],
        instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name=MODEL,
        software_versions=trialake.__version__, device_serial_number="none",
        content_label="VOLUMETRY", content_description="lung, ground glass and solid masks",
        transfer_syntax_uid=ExplicitVRLittleEndian, omit_empty_frames=True,
    )
    _deidentify_like(seg, sources[0])
    for element in seg.iterall():  # highdicom draws this one at random
        if element.keyword == "DimensionOrganizationUID":
            element.value = _uid(uid_seed, "dimension organization")
    report = _measurement_report(seg, str(sources[0].SeriesInstanceUID), measurements, uid_seed)
    sr = hd.sr.Comprehensive3DSR(
        evidence=[*sources, seg], content=report, series_instance_uid=uids["sr series"],
        series_number=SR_SERIES_NUMBER, sop_instance_uid=uids["sr"], instance_number=1, manufacturer=MANUFACTURER,
        is_complete=True, is_final=False, is_verified=False,
    )
    _deidentify_like(sr, sources[0])
    return seg, sr


def _algorithm_family(method: str) -> object:
    """CID 7162: the built-in classical segmenter is thresholds and morphology; a plugged-in one is
    taken for a model."""
    return codes.cid7162.MorphologicalOperations if method == "classical" else codes.cid7162.ArtificialIntelligence


def _measurement_report(seg: hd.seg.Segmentation, source_series_uid: str, m: Mapping[str, object],
                        uid_seed: str) -> hd.sr.MeasurementReport:
    algorithm = hd.sr.AlgorithmIdentification(name=str(m["method"]), version=str(m["method_version"]),
                                              parameters=[f"params_hash={m['params_hash']}"])
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=_uid("trialake volumetry device"), name=MODEL,
            manufacturer_name=MANUFACTURER, model_name=str(m["method"])))

    def measurement(name: object, value: object, unit: hd.sr.CodedConcept) -> hd.sr.Measurement:
        return hd.sr.Measurement(name=name, value=float(value), unit=unit, algorithm_id=algorithm)  # type: ignore[arg-type]

    def tracking(label: str) -> hd.sr.TrackingIdentifier:
        return hd.sr.TrackingIdentifier(uid=_uid(uid_seed, label), identifier=label)

    lung_site = [hd.sr.FindingSite(anatomic_location=_LUNG)]
    groups: list = []
    per_segment = {
        1: (_LUNG, [measurement(_VOLUME, m["lung_volume_ml"], _ML)]),
        2: (_GGO, [measurement(_VOLUME, m["ggo_volume_ml"], _ML), measurement(_VOLUME_RATIO, m["ggo_pct"], _PERCENT)]),
        3: (_CONSOLIDATION, [measurement(_VOLUME, m["solid_volume_ml"], _ML), measurement(_VOLUME_RATIO, m["solid_pct"], _PERCENT)]),
    }
    for number, (finding, values) in per_segment.items():
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking(SEGMENTS[number - 1][0]),
            referenced_segment=hd.sr.ReferencedSegment(  # the whole segment (an empty one has no frames to list)
                sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=number,
                source_series=hd.sr.SourceSeriesForSegmentation(source_series_uid)),
            finding_type=finding, finding_sites=lung_site, algorithm_id=algorithm, measurements=values))
    groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(  # lesion = ground glass + solid: no segment of its own
        tracking_identifier=tracking("lesion"), finding_type=_LESION, finding_sites=lung_site, algorithm_id=algorithm,
        measurements=[measurement(_VOLUME, m["lesion_volume_ml"], _ML), measurement(_VOLUME_RATIO, m["lesion_pct"], _PERCENT)]))
    return hd.sr.MeasurementReport(observation_context=hd.sr.ObservationContext(observer_device_context=observer),
                                   procedure_reported=_CT_CHEST, imaging_measurements=groups)


def _uid(*parts: str) -> str:
    """A deterministic 2.25 UID from pseudonymous parts (a re-run writes the same objects)."""
    return compute_pseudo_uid(b"trialake-dicom-results", "/".join(parts))


def _deidentify_like(ds: Dataset, source: Dataset) -> None:
    """Dates and times of the source series (already shifted), de-identification attributes of the
    source; nothing from the time of processing: every date, time or date-time (at any depth) that
    is not one of the source's is replaced by the source series' date and time."""
    date = str(source.get("SeriesDate") or source.get("StudyDate") or source.get("ContentDate") or "")
    time = str(source.get("SeriesTime") or source.get("StudyTime") or source.get("ContentTime") or "")
    ds.ContentDate, ds.ContentTime = date, time
    known = {str(el.value) for el in source.iterall() if el.VR in ("DA", "DT", "TM") and el.value}
    replacement = {"DA": date, "TM": time, "DT": date + time}
    for element in ds.iterall():
        if element.VR in replacement and element.value and str(element.value) not in known:
            element.value = replacement[element.VR]
    for keyword in _DEID_ATTRIBUTES:
        if keyword in source:
            setattr(ds, keyword, source.data_element(keyword).value)
    if "PatientIdentityRemoved" not in ds:
        ds.PatientIdentityRemoved = "YES"


def _encode(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def decode_measurements(sr: Dataset) -> Mapping[str, float]:
    """{"<finding> <concept> (<unit>)": value} of every numeric measurement in an SR built here
    (for checks and tests: read back with highdicom's own parser)."""
    out: dict[str, float] = {}
    report = hd.sr.Comprehensive3DSR.from_dataset(sr)
    content = report.content
    groups = (content.get_volumetric_roi_measurement_groups() + content.get_planar_roi_measurement_groups()
              + content.get_image_measurement_groups())
    for group in groups:
        finding = group.finding_type.meaning
        for item in group.get_measurements():
            out[f"{finding} {item.name.meaning} ({item.unit.value})"] = float(item.value)
    return out
