"""DICOM SEG and SR of a measured series: geometry back onto the source instances, content read
back with highdicom, de-identification (no date, UID or value from outside the de-identified
source), determinism."""
from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import polars as pl
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import config as pydicom_config

from dicom_factory import add_phi, encode, phi_values, synthesize_ct_series
from trialake.dicom import SubjectKey, ingest_dicom_batch
from trialake.dicom.results import (
    SEGMENTS,
    build_result_objects,
    compute_source_frames,
    decode_measurements,
    read_sources,
)
from trialake.imaging import load_series
from trialake.dicom import DeidParams

KEY = SubjectKey.from_frame(pl.DataFrame({"SITEID": ["S1"], "PATIENT_ID": ["MRN-RESULTS-1"], "USUBJID": ["TRIAL-001"]}))
SECRET = b"r" * 32


def _series(*, n: int = 6, rows: int = 12, columns: int = 10, flip_rows: bool = False, flip_cols: bool = False,
            descending: bool = False, seed: int = 0) -> list[pydicom.Dataset]:
    """A small axial series with random HU, orientation flips and either slice order."""
    rng = np.random.default_rng(seed)
    zs = [float(-3.0 * i) if descending else float(3.0 * i) for i in range(n)]
    datasets = synthesize_ct_series(patient_id="MRN-RESULTS-1", n_slices=n, rows=rows, columns=columns,
                                    slice_spacing_mm=3.0, pixel_spacing_mm=1.5, positions_z=zs, seed=f"results-{seed}")
    row_dir = [-1.0, 0.0, 0.0] if flip_rows else [1.0, 0.0, 0.0]
    col_dir = [0.0, -1.0, 0.0] if flip_cols else [0.0, 1.0, 0.0]
    for ds in datasets:
        ds.ImageOrientationPatient = row_dir + col_dir
        ds.PixelData = rng.integers(0, 2000, size=(rows, columns), dtype=np.uint16).tobytes()
    return datasets


def _hu(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


@settings(max_examples=25, deadline=None)
@given(flip_rows=st.booleans(), flip_cols=st.booleans(), descending=st.booleans(), n=st.integers(2, 7),
       shuffle_seed=st.integers(0, 10_000))
def test_masks_map_back_onto_each_source_grid(flip_rows: bool, flip_cols: bool, descending: bool, n: int,
                                              shuffle_seed: int) -> None:
    """A mask computed on the canonical volume (HU > 0) and mapped back equals the same threshold
    applied to each source file's own pixels: the mapping is checked against the sources, not
    against the volume loader."""
    datasets = _series(n=n, flip_rows=flip_rows, flip_cols=flip_cols, descending=descending, seed=shuffle_seed)
    order = np.random.default_rng(shuffle_seed).permutation(n)
    files = [encode(datasets[i]) for i in order]
    volume = load_series(files)
    sources = [pydicom.dcmread(io.BytesIO(f)) for f in files]
    frames = compute_source_frames(sources, volume.hu > 0, volume.origin_mm, volume.spacing_mm)
    for source, frame in zip(sources, frames):
        assert np.array_equal(frame, _hu(source) > 0)


def test_a_source_off_the_volume_grid_is_refused() -> None:
    datasets = _series(n=4)
    files = [encode(ds) for ds in datasets]
    volume = load_series(files)
    shifted = [pydicom.dcmread(io.BytesIO(f)) for f in files]
    shifted[2].ImagePositionPatient = [shifted[2].ImagePositionPatient[0] + 0.4, *shifted[2].ImagePositionPatient[1:]]
    with pytest.raises(ValueError, match="pixel grid"):
        compute_source_frames(shifted, volume.hu > 0, volume.origin_mm, volume.spacing_mm)


MEASUREMENTS = {"lung_volume_ml": 4321.5, "lesion_volume_ml": 654.25, "ggo_volume_ml": 400.125,
                "solid_volume_ml": 254.125, "lesion_pct": 15.139, "ggo_pct": 9.259, "solid_pct": 5.881,
                "method": "classical", "method_version": "1.2.3", "params_hash": "abcdef0123456789"}


@pytest.fixture(scope="module")
def deidentified() -> tuple[list[bytes], list[str]]:
    """A series with fake PHI everywhere, de-identified by the lake's own ingest (as in bronze/dicom)."""
    datasets = _series(n=5, flip_cols=True)
    for ds in datasets:
        add_phi(ds, referenced_sop_uid=datasets[0].SOPInstanceUID)
    batch = ingest_dicom_batch([(f"f{i}", encode(ds)) for i, ds in enumerate(datasets)], key=KEY, secret=SECRET,
                               run_id="r", params=DeidParams())
    assert len(batch.accepted) == len(datasets)
    return [a.data for a in batch.accepted], phi_values(datasets)


def _segments(shape: tuple[int, ...]) -> np.ndarray:
    """Lung everywhere but the border; ground glass and solid in two disjoint corners of it."""
    masks = np.zeros((*shape, 3), bool)
    masks[:, 1:-1, 1:-1, 0] = True
    masks[:, 2:5, 2:5, 1] = True
    masks[1:3, 6:9, 5:8, 2] = True
    return masks


@pytest.fixture(scope="module")
def built(deidentified: tuple[list[bytes], list[str]]):
    files, _ = deidentified
    volume = load_series(files)
    sources = read_sources(files)
    frames = compute_source_frames(sources, _segments(volume.hu.shape), volume.origin_mm, volume.spacing_mm)
    return sources, frames, build_result_objects(sources, frames, MEASUREMENTS, uid_seed="series-x/abcdef")


def _strict_read(data: bytes) -> pydicom.Dataset:
    """pydicom read with value validation raising (bad VR values fail the test)."""
    previous = pydicom_config.settings.reading_validation_mode
    pydicom_config.settings.reading_validation_mode = pydicom_config.RAISE
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        for element in ds.iterall():
            _ = element.value
        return ds
    finally:
        pydicom_config.settings.reading_validation_mode = previous


def test_segmentation_reads_back_per_source_instance(built) -> None:
    sources, frames, objects = built
    seg = hd.seg.Segmentation.from_dataset(_strict_read(objects.seg))
    assert seg.SegmentationType == "BINARY" and seg.Modality == "SEG"
    assert [seg.get_segment_description(n).segment_label for n in (1, 2, 3)] == [label for label, *_ in SEGMENTS]
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    for source, expected in zip(sources, frames):
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[source.SOPInstanceUID], segment_numbers=[1, 2, 3],
            combine_segments=False, skip_overlap_checks=True)
        assert np.array_equal(pixels[0].astype(bool), expected)
    assert objects.n_seg_frames == int(np.count_nonzero(frames.any(axis=(1, 2))))  # empty frames omitted


def test_report_holds_every_measurement_with_its_method(built) -> None:
    _, _, objects = built
    sr = _strict_read(objects.sr)
    values = decode_measurements(sr)
    expected = {
        "Lung Volume (mL)": MEASUREMENTS["lung_volume_ml"],
        "Ground glass opacity Volume (mL)": MEASUREMENTS["ggo_volume_ml"],
        "Ground glass opacity Volume Ratio (%)": MEASUREMENTS["ggo_pct"],
        "Lung consolidation Volume (mL)": MEASUREMENTS["solid_volume_ml"],
        "Lung consolidation Volume Ratio (%)": MEASUREMENTS["solid_pct"],
        "Lesion Volume (mL)": MEASUREMENTS["lesion_volume_ml"],
        "Lesion Volume Ratio (%)": MEASUREMENTS["lesion_pct"],
    }
    assert values.keys() == expected.keys()
    assert all(values[k] == pytest.approx(v, rel=1e-9) for k, v in expected.items())
    report = hd.sr.Comprehensive3DSR.from_dataset(sr)
    assert report.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    groups = report.content.get_volumetric_roi_measurement_groups()
    assert sorted(n for g in groups for n in g.referenced_segment.referenced_segment_numbers) == [1, 2, 3]
    assert all(g.referenced_segment.referenced_sop_instance_uid == objects.seg_sop_uid for g in groups)
    texts = _text_items(sr)
    assert {value for code, value in texts if code == "111001"} == {"classical"}  # Algorithm Name
    assert {value for code, value in texts if code == "111003"} == {"1.2.3"}  # Algorithm Version


def _text_items(ds: pydicom.Dataset) -> list[tuple[str, str]]:
    """(concept code, text) of every TEXT content item, at any depth."""
    out = []
    for item in ds.get("ContentSequence", []):
        if item.get("ValueType") == "TEXT":
            out.append((item.ConceptNameCodeSequence[0].CodeValue, item.TextValue))
        out.extend(_text_items(item))
    return out


def test_seg_and_sr_are_deidentified_like_their_source(built, deidentified) -> None:
    sources, _, objects = built
    _, phi = deidentified
    source_dates = {str(e.value) for s in sources for e in s.iterall() if e.VR in ("DA", "DT", "TM") and e.value}
    for data in (objects.seg, objects.sr):
        ds = pydicom.dcmread(io.BytesIO(data))
        assert all(value.encode() not in data for value in phi), "a source PHI value is in the SEG or SR"
        assert ds.PatientID == "TRIAL-001" and ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethod == sources[0].DeidentificationMethod
        dates = {str(e.value) for e in ds.iterall() if e.VR in ("DA", "TM") and e.value}
        assert dates <= source_dates
        date_times = {str(e.value) for e in ds.iterall() if e.VR == "DT" and e.value}
        assert all(value[:8] in source_dates for value in date_times)


def test_building_twice_gives_the_same_bytes(built) -> None:
    sources, frames, objects = built
    again = build_result_objects(sources, frames, MEASUREMENTS, uid_seed="series-x/abcdef")
    assert (again.seg, again.sr) == (objects.seg, objects.sr)
    other = build_result_objects(sources, frames, MEASUREMENTS, uid_seed="series-x/other-params")
    assert other.seg_sop_uid != objects.seg_sop_uid


def test_a_segment_without_voxels_is_described_and_measured_as_zero(built) -> None:
    """Healthy lungs: no ground glass, no solid. The SEG keeps the empty segments' descriptions,
    the SR reports 0 mL for them."""
    sources, frames, _ = built
    healthy = frames.copy()
    healthy[..., 1:] = False
    zero = dict(MEASUREMENTS, **{"ggo_volume_ml": 0.0, "solid_volume_ml": 0.0,
                                 "lesion_volume_ml": 0.0, "ggo_pct": 0.0, "solid_pct": 0.0, "lesion_pct": 0.0})
    objects = build_result_objects(sources, healthy, zero, uid_seed="healthy")
    seg = hd.seg.Segmentation.from_dataset(_strict_read(objects.seg))
    assert seg.number_of_segments == 3
    values = decode_measurements(_strict_read(objects.sr))
    assert values["Ground glass opacity Volume (mL)"] == 0.0 and values["Lesion Volume Ratio (%)"] == 0.0


def test_frames_of_the_wrong_shape_or_missing_numbers_are_refused(built) -> None:
    sources, frames, _ = built
    with pytest.raises(ValueError, match="frames must be"):
        build_result_objects(sources, frames[..., :2], MEASUREMENTS, uid_seed="x")
    with pytest.raises(ValueError, match="lack solid_pct"):
        build_result_objects(sources, frames, dict(MEASUREMENTS, solid_pct=None), uid_seed="x")
