"""CT volumetry against phantoms with analytic truth, DICOM series loading, QC outputs."""
from __future__ import annotations

import gzip
import io
import os
import random
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from trialake.imaging.lesions import compute_square_opening
from trialake.imaging.noise import compute_local_median
from trialake.imaging.qc import LABELS, render_qc_png, write_masks_nifti
from trialake.imaging.segment import (
    ClassicalSegmenter,
    LungMasks,
    compute_block_mean,
    compute_left_right,
    compute_pool_factors,
)
from trialake.imaging.series import load_series
from trialake.imaging.targets import TARGETS
from trialake.imaging.volume import CTVolume, NotMeasurable, compute_hu
from trialake.imaging.volumetry import (
    VolumetryParams,
    compute_lung_mode_hu,
    compute_params_hash,
    measure_series_dir,
    measure_volume,
    register_segmenter,
)
from trialake.synth.phantom import PhantomSpec, make_chest_phantom, render_phantom_dicom

# Accuracy targets from the volumetry issue.
LUNG_REL = TARGETS.lung_pct / 100.0
LESION_PCT_POINTS = TARGETS.lesion_points

CASES = {
    "healthy_with_vessels": PhantomSpec(lesion_pct=0.0, chest_wall_consolidation=False, seed=1),
    "mild_ggo": PhantomSpec(lesion_pct=4.0, solid_share=0.0, chest_wall_consolidation=False, seed=2),
    "mixed_lesions": PhantomSpec(lesion_pct=15.0, solid_share=0.4, chest_wall_consolidation=False, seed=3),
    "chest_wall_consolidation": PhantomSpec(lesion_pct=2.0, solid_share=1.0, chest_wall_consolidation=True, seed=4),
    "severe_bilateral": PhantomSpec(lesion_pct=45.0, solid_share=0.35, seed=5),
    "anisotropic": PhantomSpec(matrix=90, fov_mm=405.0, slices=56, slice_spacing_mm=3.0, lesion_pct=15.0, seed=6),
    "thick_5mm": PhantomSpec(matrix=112, slices=40, slice_spacing_mm=5.0, lesion_pct=20.0, body_scale=1.1, seed=7),
    "thin_1_25mm": PhantomSpec(matrix=96, slices=144, slice_spacing_mm=1.25, lesion_pct=12.0, body_scale=0.9, seed=8),
    "feet_first": PhantomSpec(lesion_pct=15.0, feet_first=True, seed=9),
    "fine_pixels_refined": PhantomSpec(matrix=192, slices=40, lesion_pct=10.0, seed=10),
    # what `trialake generate` makes by default: 64x64 at 380 mm, 40 slices over 300 mm
    "generator_default_64x40": PhantomSpec(matrix=64, slices=40, fov_mm=380.0, slice_spacing_mm=7.5, lesion_pct=10.0,
                                           noise_hu=18.0, blur_mm=1.2, seed=12),
}


def _measure(spec: PhantomSpec):
    ph = make_chest_phantom(spec)
    return ph, measure_volume(CTVolume(ph.hu, ph.spacing_mm))


@pytest.fixture(scope="module", params=sorted(CASES))
def measured(request):
    return request.param, *_measure(CASES[request.param])


def test_accuracy_targets(measured):
    name, ph, r = measured
    t = ph.truth
    assert r.lung_volume_ml == pytest.approx(t["lung_volume_ml"], rel=LUNG_REL)
    assert r.lesion_pct == pytest.approx(t["lesion_pct"], abs=LESION_PCT_POINTS)
    assert abs(r.ggo_volume_ml - t["ggo_volume_ml"]) <= TARGETS.ggo_tolerance_ml(t["ggo_volume_ml"])
    assert abs(r.solid_volume_ml - t["solid_volume_ml"]) <= TARGETS.solid_tolerance_ml(t["solid_volume_ml"])
    assert r.left_lung_volume_ml == pytest.approx(t["left_lung_volume_ml"], rel=LUNG_REL)
    assert r.right_lung_volume_ml == pytest.approx(t["right_lung_volume_ml"], rel=LUNG_REL)
    if name == "healthy_with_vessels":
        assert r.lesion_pct < 0.5


def test_no_border_is_called_open_without_disease_against_the_mediastinum(measured):
    """None of these phantoms has dense disease running into the mediastinum, the heart or the
    diaphragm (the chest-wall consolidation lies against the ribs): ``open_border`` must stay quiet,
    on the generator's coarse 64x40 grid too, where a 5 mm core is under one voxel."""
    _, _, r = measured
    assert "open_border" not in (r.qc_flags or "").split(","), r.reason


def test_result_fields_are_consistent(measured):
    _, ph, r = measured
    voxel_ml = float(np.prod(ph.spacing_mm)) / 1000.0
    assert r.lung_volume_ml == pytest.approx(r.lungs.lung.sum() * voxel_ml)
    assert r.lesion_volume_ml == pytest.approx(r.ggo_volume_ml + r.solid_volume_ml)
    assert r.lesion_pct == pytest.approx(100.0 * r.lesion_volume_ml / r.lung_volume_ml)
    assert r.left_lung_volume_ml + r.right_lung_volume_ml == pytest.approx(r.lung_volume_ml)
    assert not (r.ggo & r.solid).any() and not ((r.ggo | r.solid) & ~r.lungs.lung).any()
    assert np.mean(ph.hu[r.lungs.lung]) == pytest.approx(r.mean_lung_density_hu)
    assert r.method == "classical" and r.method_version


def test_airway_and_vessels_are_excluded():
    ph, r = _measure(CASES["healthy_with_vessels"])
    airway = ph.masks["airway"]
    # the trachea is removed entirely (no lung above the apex); at most the ends of the main
    # bronchi, where they enter the hila, stay in the lung
    no_lung = ~ph.masks["lung"].any(axis=(1, 2))
    assert airway[no_lung].any() and not r.lungs.lung[no_lung].any()
    assert (r.lungs.lung & airway).sum() <= 0.15 * airway.sum()
    assert (r.lungs.airway & airway).sum() >= 0.8 * airway.sum()
    vessels = ph.masks["vessels"]
    assert vessels.sum() > 100
    # only vessel voxels next to the hilum, where the trees are thickest, may survive the opening
    assert ((r.ggo | r.solid) & vessels).sum() <= 0.05 * vessels.sum()


def test_chest_wall_consolidation_is_inside_the_lung():
    ph, r = _measure(CASES["chest_wall_consolidation"])
    wall = ph.masks["solid"]
    assert (r.lungs.lung & wall).sum() >= 0.85 * wall.sum()
    # a plain air-threshold lung (no hull fill) would miss it: the phantom makes it dense
    assert np.median(ph.hu[wall]) > -100


def test_split_threshold_moves_voxels_between_ggo_and_solid():
    ph = make_chest_phantom(CASES["mixed_lesions"])
    vol = CTVolume(ph.hu, ph.spacing_mm)
    low = measure_volume(vol, VolumetryParams(solid_split_hu=-550.0))
    high = measure_volume(vol, VolumetryParams(solid_split_hu=-100.0))
    # the split moves voxels between the classes; the lesion volume moves only by the thin solid
    # sheets the vessel filter keeps (it keeps sheets of solid density only)
    assert low.lesion_volume_ml == pytest.approx(high.lesion_volume_ml, rel=0.02)
    # GGO lesions are -600..-450 HU, so a -550 split turns part of them solid
    assert low.solid_volume_ml > high.solid_volume_ml + 0.2 * ph.truth["ggo_volume_ml"]
    assert low.params_hash != high.params_hash


def test_params_hash_is_stable_and_names_the_method():
    seg = ClassicalSegmenter()
    assert compute_params_hash(VolumetryParams(), seg) == compute_params_hash(VolumetryParams(), seg)
    changed = VolumetryParams(lesion_low_hu=-650.0)
    assert compute_params_hash(VolumetryParams(), seg) != compute_params_hash(changed, seg)
    assert len(compute_params_hash(VolumetryParams(), seg)) == 16


def test_bad_params_are_refused():
    with pytest.raises(ValueError, match="solid_split_hu"):
        VolumetryParams(solid_split_hu=-800.0)
    with pytest.raises(ValueError, match="unknown segmenter 'nosuch'"):
        measure_volume(CTVolume(np.zeros((4, 8, 8), np.int16), (1.0, 1.0, 1.0)), VolumetryParams(segmenter="nosuch"))


def test_a_registered_segmenter_replaces_the_classical_one():
    ph = make_chest_phantom(CASES["mixed_lesions"])

    class Truth:
        name, version = "truth", "0"

        def segment_lungs(self, volume: CTVolume) -> LungMasks:
            m = ph.masks
            return LungMasks(lung=m["lung"], left=m["lung_left"], right=m["lung_right"], airway=m["airway"])

    register_segmenter("truth", lambda params: Truth())
    r = measure_volume(CTVolume(ph.hu, ph.spacing_mm), VolumetryParams(segmenter="truth"))
    assert r.method == "truth"
    assert r.lung_volume_ml == pytest.approx(ph.truth["lung_volume_ml"])


def test_touching_lungs_are_both_kept_and_split():
    lung = np.zeros((3, 20, 30), bool)
    lung[:, 5:15, 3:13] = True
    lung[:, 5:15, 17:27] = True
    lung[:, 8:10, 13:17] = True  # the lungs touch
    body = np.zeros_like(lung)
    body[:, 2:18, 1:29] = True
    left, right = compute_left_right(lung, body, (5.0, 1.0, 1.0))
    assert right[:, 5:15, 3:13].all() and right[:, :, :15].sum() == right.sum()
    assert left[:, 5:15, 17:27].all()
    assert not (left & right).any() and np.array_equal(left | right, lung)


def test_square_opening_removes_thin_tubes_keeps_blobs():
    mask = np.zeros((1, 40, 40), bool)
    mask[0, 5:7, 2:38] = True          # a 2-pixel vessel
    mask[0, 20:32, 10:22] = True       # a 12-pixel lesion
    opened = compute_square_opening(mask, 3, 3)
    assert not opened[0, 5:7].any()
    assert opened[0, 20:32, 10:22].all()


def test_no_lungs_is_not_measurable():
    hu = np.full((20, 64, 64), -1000, np.int16)
    hu[:, 10:54, 8:56] = 40  # a body without lungs
    with pytest.raises(NotMeasurable, match="no"):
        measure_volume(CTVolume(hu, (5.0, 5.0, 5.0)))


@pytest.mark.parametrize("cut, reason", [(np.s_[:, :, 20:], "in-plane"), (np.s_[20:], "along z")])
def test_field_of_view_cut_is_not_measurable(cut, reason):
    ph = make_chest_phantom(PhantomSpec(lesion_pct=5.0, seed=2))
    with pytest.raises(NotMeasurable, match=reason):
        measure_volume(CTVolume(np.ascontiguousarray(ph.hu[cut]), ph.spacing_mm))


def test_compute_hu_applies_rescale_and_masks_padding():
    stored = np.array([[0, 1000, 4000, 65535]], np.uint16)
    hu = compute_hu(stored, slope=0.5, intercept=-1024.0, padding_value=65535)
    assert hu.tolist() == [[-1024.0, -524.0, 976.0, -1024.0]]
    assert compute_hu(np.array([[-3000]], np.int16)).tolist() == [[-1024.0]]
    with pytest.raises(ValueError, match="slope"):
        compute_hu(stored, slope=0.0)


# ---------------------------------------------------------------- DICOM series
SLOPE, INTERCEPT, PADDING = 0.5, -1024.0, 65535  # stored = (HU + 1024) * 2; unmasked padding would read +31743 HU


def _write_series(ph, folder: Path, *, feet_first: bool, seed: int = 0) -> list[Path]:
    """The phantom's slices as files named at random (the listing order says nothing)."""
    rng = random.Random(seed)
    paths = []
    files = render_phantom_dicom(ph, feet_first=feet_first, slope=SLOPE, intercept=INTERCEPT, padding_value=PADDING)
    for data in files:
        path = folder / f"{rng.getrandbits(64):016x}.dcm"
        path.write_bytes(data)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def feet_first_series(tmp_path_factory):
    ph = make_chest_phantom(PhantomSpec(lesion_pct=12.0, seed=21, feet_first=True))
    folder = tmp_path_factory.mktemp("series")
    _write_series(ph, folder, feet_first=True)
    return ph, folder


def test_load_series_restores_head_first_volume(feet_first_series):
    ph, folder = feet_first_series
    files = [str(p) for p in folder.iterdir()]
    vol = load_series(files)
    expected = ph.hu[::-1].astype(np.float32)  # acquired feet first, loaded head first
    expected[:, :3, :3] = -1024.0  # padding
    assert vol.spacing_mm == pytest.approx(ph.spacing_mm)
    np.testing.assert_array_equal(vol.hu, expected)
    assert vol.origin_mm[2] == pytest.approx(0.0)  # the most superior slice


def test_measure_series_dir_equals_measuring_the_array(feet_first_series):
    ph, folder = feet_first_series
    from_dir = measure_series_dir(folder)
    hu = ph.hu[::-1].astype(np.float32)
    hu[:, :3, :3] = -1024.0
    direct = measure_volume(CTVolume(hu, ph.spacing_mm))
    assert from_dir.to_record() == direct.to_record()
    assert from_dir.lesion_pct == pytest.approx(ph.truth["lesion_pct"], abs=LESION_PCT_POINTS)


def test_load_series_mirrors_rows_and_columns_stored_backwards(feet_first_series, tmp_path):
    # the same slices stored with rows running right to left and columns from back to front: the
    # first stored pixel is then the opposite corner, and the volume must come out the same
    _, folder = feet_first_series
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        rows_mm, cols_mm = (float(v) for v in ds.PixelSpacing)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImageOrientationPatient = [-1, 0, 0, 0, -1, 0]
        ds.ImagePositionPatient = [x + (ds.Columns - 1) * cols_mm, y + (ds.Rows - 1) * rows_mm, z]
        ds.PixelData = np.ascontiguousarray(ds.pixel_array[::-1, ::-1]).tobytes()
        ds.save_as(tmp_path / path.name)
    mirrored, plain = load_series(sorted(tmp_path.iterdir())), load_series(sorted(folder.iterdir()))
    np.testing.assert_array_equal(mirrored.hu, plain.hu)
    assert mirrored.origin_mm == pytest.approx(plain.origin_mm)
    assert mirrored.spacing_mm == plain.spacing_mm


def test_load_series_accepts_bytes(feet_first_series):
    _, folder = feet_first_series
    files = sorted(folder.iterdir())
    from_bytes, from_paths = load_series([f.read_bytes() for f in files]), load_series(files)
    np.testing.assert_array_equal(from_bytes.hu, from_paths.hu)
    assert from_bytes.spacing_mm == from_paths.spacing_mm


def test_load_series_keeps_int16_for_integral_rescale_and_decodes_12_bit(tmp_path):
    ph = make_chest_phantom(PhantomSpec(matrix=48, slices=12, fov_mm=320.0, body_scale=0.9, seed=4))
    for k, data in enumerate(render_phantom_dicom(ph, feet_first=False, slope=1.0, intercept=-1024.0)):
        path = tmp_path / f"{(k * 5) % 12:02d}"
        path.write_bytes(data)
        if k % 2:  # 12 bits stored: decoded by pydicom instead of viewed directly
            ds = pydicom.dcmread(path)
            ds.BitsStored, ds.HighBit = 12, 11
            ds.save_as(path)
    vol = load_series(sorted(tmp_path.iterdir()))
    assert vol.hu.dtype == np.int16
    np.testing.assert_array_equal(vol.hu, ph.hu)


def test_block_mean_and_pool_factors():
    hu = np.arange(7 * 9 * 10, dtype=np.int16).reshape(7, 9, 10)
    expected = hu[:6, :9, :8].reshape(3, 2, 3, 3, 2, 4).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(compute_block_mean(hu, (2, 3, 4)), expected)
    assert compute_pool_factors((1.0, 0.7, 0.7), 3.0) == (3, 4, 4)
    assert compute_pool_factors((5.0, 3.75, 3.75), 3.0) == (1, 1, 1)


def test_load_series_reports_bad_input(tmp_path):
    ph = make_chest_phantom(PhantomSpec(matrix=32, slices=8, fov_mm=320.0, body_scale=0.9))
    paths = _write_series(ph, tmp_path, feet_first=False)
    by_z = sorted(paths, key=lambda p: pydicom.dcmread(p).ImagePositionPatient[2])
    with pytest.raises(ValueError, match="uneven slice spacing"):
        load_series([p for p in by_z if p != by_z[2]])
    with pytest.raises(ValueError, match="duplicate slice"):
        load_series(paths + [paths[0]])
    junk = tmp_path / "notes.txt"
    junk.write_text("not dicom")
    with pytest.raises(ValueError, match="notes.txt"):
        load_series(paths + [junk])
    with pytest.raises(ValueError, match="no files"):
        load_series([])
    with pytest.raises(ValueError, match="not a directory"):
        measure_series_dir(tmp_path / "missing")


# ---------------------------------------------------------------- QC outputs
@pytest.fixture(scope="module")
def qc_case():
    ph = make_chest_phantom(PhantomSpec(lesion_pct=15.0, seed=30))
    vol = CTVolume(ph.hu, ph.spacing_mm, origin_mm=(-180.0, -180.0, 0.0))
    return vol, measure_volume(vol)


def test_qc_png_is_a_picture_without_text_chunks(qc_case):
    vol, r = qc_case
    png = render_qc_png(vol, r)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"tEXt" not in png and b"iTXt" not in png and b"zTXt" not in png
    import matplotlib.image as mpimg

    image = mpimg.imread(io.BytesIO(png), format="png")
    assert image.shape[0] > 200 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # not blank


def test_nifti_labels_and_affine(qc_case):
    vol, r = qc_case
    data = write_masks_nifti(vol, r)
    assert data[:2] == b"\x1f\x8b"
    img = nib.Nifti1Image.from_bytes(gzip.decompress(data))
    labels = np.asarray(img.dataobj).transpose(2, 1, 0)  # back to (z, y, x)
    assert (labels == LABELS["solid"]).sum() == r.solid.sum()
    assert (labels == LABELS["ggo"]).sum() == r.ggo.sum()
    assert np.isin(labels, [LABELS["lung"], LABELS["ggo"], LABELS["solid"]]).sum() == r.lungs.lung.sum()
    # voxel (x=0, y=0, z=0) is at LPS (-180, -180, 0) -> RAS (180, 180, 0); +x index goes to patient left (R decreases)
    assert img.affine @ np.array([0, 0, 0, 1]) == pytest.approx([180.0, 180.0, 0.0, 1.0])
    step = img.affine @ np.array([1, 1, 1, 1]) - img.affine @ np.array([0, 0, 0, 1])
    assert step[:3] == pytest.approx([-vol.spacing_mm[2], -vol.spacing_mm[1], -vol.spacing_mm[0]])
    assert nib.aff2axcodes(img.affine) == ("L", "P", "I")


def test_measure_series_dir_skips_nothing_silently(tmp_path):
    assert not os.listdir(tmp_path)
    with pytest.raises(ValueError, match="no files"):
        measure_series_dir(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("spec", [
    PhantomSpec(matrix=256, slices=200, slice_spacing_mm=1.25, lesion_pct=45.0, solid_share=0.35, feet_first=True,
                seed=40),
    PhantomSpec(matrix=384, slices=120, slice_spacing_mm=2.5, lesion_pct=0.0, chest_wall_consolidation=False, seed=41),
], ids=["severe_feet_first_256", "healthy_384"])
def test_accuracy_targets_at_larger_size(spec):
    ph, r = _measure(spec)
    t = ph.truth
    assert r.lung_volume_ml == pytest.approx(t["lung_volume_ml"], rel=LUNG_REL)
    assert r.lesion_pct == pytest.approx(t["lesion_pct"], abs=LESION_PCT_POINTS)
    assert abs(r.ggo_volume_ml - t["ggo_volume_ml"]) <= TARGETS.ggo_tolerance_ml(t["ggo_volume_ml"])
    assert abs(r.solid_volume_ml - t["solid_volume_ml"]) <= TARGETS.solid_tolerance_ml(t["solid_volume_ml"])


@pytest.mark.parametrize("peak_hu", [-861.5, -756.5, -451.5])
@pytest.mark.parametrize("spread_hu", [0.0, 25.0])
def test_lung_mode_is_the_fullest_bin_of_aerated_lung(peak_hu: float, spread_hu: float) -> None:
    """A lung of two HU populations, 60 % about ``peak_hu`` (a bin's centre: -1024 + 5 k + 2.5) and
    40 % spread evenly over -1000..-400, plus dense voxels (ignored): the mode is the peak's bin, or
    within a bin of it when the peak has the spread of image noise."""
    rng = np.random.default_rng(3)
    n = 20_000
    values = np.concatenate([peak_hu + spread_hu * rng.standard_normal(int(0.6 * n)),
                             rng.uniform(-1000.0, -400.0, int(0.4 * n)), np.full(n, 40.0)])
    hu = rng.permutation(values).reshape(20, 40, -1).astype(np.float32)
    lung = np.ones(hu.shape, bool)
    assert compute_lung_mode_hu(hu, lung) == pytest.approx(peak_hu, abs=0.0 if spread_hu == 0 else 5.0)
    assert np.isnan(compute_lung_mode_hu(hu, np.zeros_like(lung)))


@pytest.mark.parametrize("seed", range(4))
def test_local_median_equals_scipy_s_median_filter_where_asked(seed: int) -> None:
    """Differential test: at the voxels asked for, the 3x3x3 median of ``hu`` with edge voxels repeated
    (scipy's ``median_filter`` in ``nearest`` mode); elsewhere the base image, untouched."""
    rng = np.random.default_rng(seed)
    hu = rng.normal(-800.0, 120.0, (7, 9, 11)).astype(np.float32)
    base = rng.normal(0.0, 1.0, hu.shape).astype(np.float32)
    where = rng.random(hu.shape) < 0.3
    out = compute_local_median(hu, where, base, chunk=17)  # several chunks
    expected = ndimage.median_filter(hu, size=3, mode="nearest")
    assert np.array_equal(out[where], expected[where])
    assert np.array_equal(out[~where], base[~where])
    assert np.array_equal(compute_local_median(hu, np.zeros_like(where), base), base)
