"""The synthetic chest phantom: truth = mask voxel counts, mask consistency, HU of each tissue."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from trialake.synth.phantom import Phantom, PhantomSpec, make_chest_phantom

SPECS = {
    "default": PhantomSpec(),
    "healthy": PhantomSpec(lesion_pct=0.0, chest_wall_consolidation=False, seed=3),
    "severe_aniso": PhantomSpec(matrix=72, fov_mm=400.0, slices=60, slice_spacing_mm=2.5, lesion_pct=45.0,
                                solid_share=0.4, body_scale=1.15, seed=5),
    "small_thin_feet_first": PhantomSpec(matrix=64, slices=96, slice_spacing_mm=1.25, body_scale=0.85,
                                         lesion_pct=10.0, feet_first=True, seed=9),
}


@pytest.fixture(scope="module", params=sorted(SPECS))
def case(request) -> tuple[PhantomSpec, Phantom]:
    spec = SPECS[request.param]
    return spec, make_chest_phantom(spec)


def test_geometry_and_dtype(case):
    spec, ph = case
    assert ph.hu.dtype == np.int16
    assert ph.hu.shape == (spec.slices, spec.matrix, spec.matrix)
    px = spec.fov_mm / spec.matrix
    assert ph.spacing_mm == pytest.approx((spec.slice_spacing_mm, px, px))
    assert all(m.shape == ph.hu.shape and m.dtype == bool for m in ph.masks.values())


def test_truth_is_voxel_count_times_voxel_volume(case):
    spec, ph = case
    voxel_ml = spec.slice_spacing_mm * (spec.fov_mm / spec.matrix) ** 2 / 1000.0
    m, t = ph.masks, ph.truth
    assert t["lung_volume_ml"] == pytest.approx(m["lung"].sum() * voxel_ml)
    assert t["ggo_volume_ml"] == pytest.approx(m["ggo"].sum() * voxel_ml)
    assert t["solid_volume_ml"] == pytest.approx(m["solid"].sum() * voxel_ml)
    assert t["lesion_volume_ml"] == pytest.approx((m["ggo"] | m["solid"]).sum() * voxel_ml)
    assert t["left_lung_volume_ml"] == pytest.approx(m["lung_left"].sum() * voxel_ml)
    assert t["right_lung_volume_ml"] == pytest.approx(m["lung_right"].sum() * voxel_ml)
    assert t["lesion_pct"] == pytest.approx(100.0 * (m["ggo"] | m["solid"]).sum() / m["lung"].sum())
    assert t["ggo_pct"] + t["solid_pct"] == pytest.approx(t["lesion_pct"])


def test_masks_are_consistent(case):
    _, ph = case
    m = ph.masks
    assert not (m["lung_left"] & m["lung_right"]).any()
    assert np.array_equal(m["lung_left"] | m["lung_right"], m["lung"])
    assert not (m["ggo"] & m["solid"]).any()
    for name in ("ggo", "solid", "vessels"):
        assert not (m[name] & ~m["lung"]).any(), name
    assert not (m["vessels"] & (m["ggo"] | m["solid"])).any()
    assert not (m["airway"] & m["lung"]).any()
    # patient right is the low x index
    xs = np.arange(ph.hu.shape[2])
    assert (m["lung_right"].sum(axis=(0, 1)) * xs).sum() / m["lung_right"].sum() < ph.hu.shape[2] / 2
    assert (m["lung_left"].sum(axis=(0, 1)) * xs).sum() / m["lung_left"].sum() > ph.hu.shape[2] / 2


def test_lesion_volume_reaches_the_target(case):
    spec, ph = case
    assert spec.lesion_pct <= ph.truth["lesion_pct"] <= spec.lesion_pct + 4.0


def test_tissue_hu(case):
    """Interior voxels (away from edges, so blur does not matter) have each tissue's HU."""
    _, ph = case
    m = ph.masks

    def interior(mask):
        return ndimage.binary_erosion(mask, iterations=2)

    aerated = interior(m["lung"] & ~m["ggo"] & ~m["solid"] & ~ndimage.binary_dilation(m["vessels"], iterations=2))
    assert np.median(ph.hu[aerated]) == pytest.approx(-850, abs=10)
    assert np.median(ph.hu[ndimage.binary_erosion(m["airway"])]) == pytest.approx(-1000, abs=15)
    for name, (lo, hi) in {"ggo": (-600, -450), "solid": (-50, 50)}.items():
        core = ndimage.binary_erosion(m[name])
        if core.any():
            assert lo - 30 <= np.median(ph.hu[core]) <= hi + 30, name


def test_healthy_phantom_has_vessels_airway_and_no_lesions():
    ph = make_chest_phantom(SPECS["healthy"])
    assert not ph.masks["ggo"].any() and not ph.masks["solid"].any()
    assert ph.truth["lesion_pct"] == 0.0
    assert ph.masks["vessels"].sum() > 50
    assert ph.masks["airway"].sum() > 50
    # the trachea starts in the first (head) slice; the lungs do not
    assert ph.masks["airway"][0].any() and not ph.masks["lung"][0].any()


def test_table_is_separated_from_the_body_by_air():
    ph = make_chest_phantom(PhantomSpec(noise_hu=0.0, blur_mm=0.0, lesion_pct=0.0))
    column = ph.hu[ph.hu.shape[0] // 2, :, ph.hu.shape[2] // 2]
    dense = np.nonzero(column > -500)[0]
    gaps = np.nonzero(np.diff(dense) > 1)[0]
    assert len(gaps) == 1  # body above, one air gap, then the table


def test_chest_wall_consolidation_touches_the_wall():
    """Solid voxels on the lung border that face chest wall tissue exist only with the consolidation."""
    def wall_contact(ph: Phantom) -> int:
        border = ndimage.binary_dilation(ph.masks["solid"]) & ~ph.masks["lung"] & ~ph.masks["airway"]
        return int(border.sum())

    with_wall = make_chest_phantom(PhantomSpec(lesion_pct=10.0, solid_share=0.5, chest_wall_consolidation=True, seed=4))
    without = make_chest_phantom(PhantomSpec(lesion_pct=10.0, solid_share=0.5, chest_wall_consolidation=False, seed=4))
    assert wall_contact(with_wall) > 20
    assert wall_contact(without) == 0


def test_noise_level_matches_the_spec():
    ph = make_chest_phantom(PhantomSpec(lesion_pct=0.0, noise_hu=20.0, blur_mm=0.0, chest_wall_consolidation=False))
    m = ph.masks
    aerated = ndimage.binary_erosion(m["lung"] & ~ndimage.binary_dilation(m["vessels"], iterations=2), iterations=2)
    assert np.std(ph.hu[aerated]) == pytest.approx(20.0, rel=0.05)


def test_seed_is_reproducible_and_feet_first_is_the_reversed_scan():
    spec = PhantomSpec(matrix=64, slices=40, seed=11)
    a, b = make_chest_phantom(spec), make_chest_phantom(spec)
    assert np.array_equal(a.hu, b.hu)
    other = make_chest_phantom(PhantomSpec(matrix=64, slices=40, seed=12))
    assert not np.array_equal(a.masks["ggo"], other.masks["ggo"])
    feet = make_chest_phantom(PhantomSpec(matrix=64, slices=40, seed=11, feet_first=True))
    assert np.array_equal(feet.hu, a.hu[::-1])
    assert np.array_equal(feet.masks["solid"], a.masks["solid"][::-1])
    assert feet.truth == a.truth


@pytest.mark.parametrize("field, value",
                         [("matrix", 16), ("lesion_pct", -1.0), ("solid_share", 1.5), ("fov_mm", 200.0)])
def test_bad_spec_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        make_chest_phantom(PhantomSpec(**{field: value}))
