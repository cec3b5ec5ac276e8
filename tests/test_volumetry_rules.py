"""The rules behind the volumetry's safety nets, on arrays whose answer is known by construction:
the diaphragm as the floor's lower envelope, the rib cage's depth, the expected volume of lesion on
the wrong side of the ground-glass/solid split, and the accuracy targets themselves."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

import trialake.imaging.putback as putback
from trialake.imaging.lesions import compute_lesion_masks
from trialake.imaging.putback import compute_diaphragm, compute_rib_depth
from trialake.imaging.targets import TARGETS
from trialake.imaging.volumetry import compute_tissue_border

SPACING = (5.0, 5.0, 5.0)


def _lung_on_a_dome(rise: np.ndarray):
    """A 60x40x40 block: lung from slice 5 down to a dome floor, abdomen (dense) under it.

    The true floor (last lung slice) of column (y, x) is 40 - 0.02 * ((y-20)^2 + (x-20)^2) rounded;
    the lung ends ``rise`` (per column) slices higher, dense tissue (disease) filling the gap.
    """
    shape = (60, 40, 40)
    y, x = np.mgrid[0:40, 0:40]
    floor = np.rint(40 - 0.02 * ((y - 20) ** 2 + (x - 20) ** 2)).astype(int)
    lung_floor = floor - rise
    z = np.arange(shape[0])[:, None, None]
    lung = (z >= 5) & (z <= lung_floor[None])
    dense = ~lung & (z > 5)
    return lung, dense, floor


def _patch(radius: float, height: int = 6) -> np.ndarray:
    """Rise (slices) of the floor under a round mound of disease beside the dome's top: ``height`` at
    its centre, falling off linearly to 0 at ``radius`` columns."""
    y, x = np.mgrid[0:40, 0:40]
    d = np.hypot(y - 20, x - 13)
    return np.where(d <= radius, np.rint(height * (1.0 - d / radius)), 0).astype(int)


@pytest.mark.parametrize("radius", [8.0, 14.0])
def test_disease_on_the_diaphragm_does_not_lift_the_fitted_dome(radius: float) -> None:
    """Disease raises the floor it lies on, never lowers it: the dome under a mound of it (up to 30 mm
    high, covering up to about a third of the floor) stays where the true floor is, within one slice."""
    rise = _patch(radius)
    lung, dense, floor = _lung_on_a_dome(rise)
    fitted = compute_diaphragm(lung, np.zeros_like(lung), dense, np.ones_like(lung), SPACING, tol_mm=8.0,
                               deepest=int(floor.max()), max_rise=0.6)
    assert fitted is not None
    under = (rise > 0) & (floor < floor.max())  # the disease's columns, off the flat cap
    assert np.abs(fitted[under] - floor[under]).max() <= 1.0


def test_a_symmetric_fit_would_be_lifted_by_that_disease(monkeypatch) -> None:
    """The same case with points above the dome weighing as much as those below it (the rule before):
    the dome under the disease is lifted by more than a slice, so the test above can fail."""
    rise = _patch(14.0)
    lung, dense, floor = _lung_on_a_dome(rise)
    monkeypatch.setattr(putback, "DEEP_WEIGHT", 1.0)
    fitted = compute_diaphragm(lung, np.zeros_like(lung), dense, np.ones_like(lung), SPACING, tol_mm=8.0,
                               deepest=int(floor.max()), max_rise=0.6)
    under = (rise > 0) & (floor < floor.max())
    assert np.abs(fitted[under] - floor[under]).max() > 1.0


def test_rib_depth_is_the_inner_surface_of_the_ribs_carried_between_them() -> None:
    """A round body of radius 100 mm (2 mm pixels) with a bone ring from 80 to 86 mm from the centre on
    every other 10 mm of z: the deepest bone voxel lies about 20 mm under the skin, so the rib's inner
    surface is one pixel deeper; slices between ribs take it from the ribs within the window; a
    body without bone has no value."""
    spacing = (5.0, 2.0, 2.0)
    n = 111
    yy, xx = np.mgrid[0:n, 0:n]
    r = np.hypot(yy - 55, xx - 55) * 2.0
    body2 = r <= 100.0
    ring2 = (r >= 80.0) & (r <= 86.0)
    nz = 12
    body = np.broadcast_to(body2, (nz, n, n)).copy()
    bone = np.zeros_like(body)
    for k in range(nz):
        if (k * 5.0) % 20.0 < 10.0:  # ribs on slices 0, 1, 4, 5, 8, 9
            bone[k] = ring2
    skin = np.stack([ndimage.distance_transform_edt(b, sampling=spacing[1:]) for b in body]).astype(np.float32)
    angle = np.broadcast_to(((np.arctan2(yy - 55, xx - 55) + np.pi) / (2 * np.pi) * putback.N_ANGLES).astype(np.int16)
                            % putback.N_ANGLES, (nz, n, n))
    depth = compute_rib_depth(bone, skin, angle, spacing, window_mm=10.0)
    assert depth.shape == (nz, putback.N_ANGLES)
    # 100 - 80 = 20 mm to the ring's inner edge, +/- one pixel of discretisation, plus the one pixel added
    assert np.all(np.abs(depth - 22.0) <= 2.5)
    assert np.isnan(compute_rib_depth(np.zeros_like(bone), skin, angle, spacing, 10.0)).all()


@pytest.mark.parametrize("offset_hu, noise_hu", [(20.0, 15.0), (0.0, 30.0), (60.0, 15.0), (-45.0, 40.0)])
def test_split_doubt_is_the_normal_tail_beyond_the_split(offset_hu: float, noise_hu: float) -> None:
    """A lesion block at one HU (split + offset): each voxel is on the wrong side of the split with
    probability Phi(-|offset| / noise), so the expected count is that times the lesion voxels."""
    hu = np.full((12, 40, 40), -850.0, np.float32)
    lung = np.zeros(hu.shape, bool)
    lung[1:11, 5:35, 5:35] = True
    hu[2:10, 10:30, 10:30] = -300.0 + offset_hu
    ggo, solid, doubt, _ = compute_lesion_masks(hu, lung, (5.0, 2.0, 2.0), low_hu=-700.0, high_hu=150.0,
                                                split_hu=-300.0, vessel_max_diameter_mm=8.0, noise_hu=noise_hu)
    n = int(np.count_nonzero(ggo | solid))
    assert n == 8 * 20 * 20
    tail = 0.5 * math.erfc(abs(offset_hu) / noise_hu / math.sqrt(2.0))
    assert doubt == pytest.approx(n * tail, rel=1e-4)
    assert compute_lesion_masks(hu, lung, (5.0, 2.0, 2.0), low_hu=-700.0, high_hu=150.0, split_hu=-300.0,
                                vessel_max_diameter_mm=8.0).split_doubt == 0.0  # noise unknown: no doubt claimed



@pytest.mark.parametrize("band_hu", [50.0, 150.0])
def test_near_low_counts_the_lesion_voxels_within_the_band_above_the_threshold(band_hu: float) -> None:
    """Two 8x20x20 lesion blocks, at -680 HU (20 HU above the -700 threshold) and at -580 HU (120
    above): a 50 HU band holds the first block only, a 150 HU band both."""
    hu = np.full((12, 60, 40), -850.0, np.float32)
    lung = np.zeros(hu.shape, bool)
    lung[1:11, 2:58, 5:35] = True
    hu[2:10, 5:25, 10:30] = -680.0
    hu[2:10, 35:55, 10:30] = -580.0
    masks = compute_lesion_masks(hu, lung, (5.0, 2.0, 2.0), low_hu=-700.0, high_hu=150.0, split_hu=-300.0,
                                 vessel_max_diameter_mm=8.0, edge_band_hu=band_hu)
    block = 8 * 20 * 20
    assert int(np.count_nonzero(masks.ggo)) == 2 * block
    assert masks.near_low == (block if band_hu == 50.0 else 2 * block)


def test_tissue_border_is_the_lungs_outer_layer_against_tissue_not_air() -> None:
    """A 10x20x20 lung in soft tissue, one of its x faces against air: its 1408 surface voxels (4000 less
    the 8x18x18 inside) less the 8x18 middle of the face on air (their only outside neighbour is air)."""
    hu = np.full((20, 30, 30), 40.0, np.float32)
    lung = np.zeros(hu.shape, bool)
    lung[5:15, 5:25, 5:25] = True
    hu[lung] = -850.0
    hu[5:15, 5:25, 25:28] = -1000.0
    border = compute_tissue_border(lung, hu >= -400.0)
    assert not (border & ~lung).any()
    assert int(border.sum()) == 10 * 20 * 20 - 8 * 18 * 18 - 8 * 18


def _two_blocks(put_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense tissue in z 2-11, y 5-24: x 15-24 left out, and the ``put_width`` columns before x 15
    put back into the lung (aerated lung beyond them)."""
    lung = np.zeros((14, 30, 30), bool)
    dense = np.zeros_like(lung)
    lung[2:12, 5:25, 2:15] = True
    dense[2:12, 5:25, 15 - put_width:25] = True
    return lung, dense


def test_open_border_is_the_face_where_thick_put_back_meets_thick_left_out_tissue() -> None:
    """Spacing (2, 1, 1) mm and a 2 mm core: a ball of radius 1 voxel in z and 2 in y and x. The opening
    of each block keeps, on the shared face, the rows the eroded block's centres span: z 3-10 and
    y 7-22 (8 x 16 = 128 faces) of 2 x 1 mm2 each: 2.56 cm2. A put-back layer 3 voxels thick is thinner
    than the ball (5 voxels across) and has no core: 0."""
    lung, dense = _two_blocks(put_width=10)
    assert putback.compute_open_border_cm2(lung, dense, 2.0, (2.0, 1.0, 1.0)) == pytest.approx(2.56)
    thin_lung, thin_dense = _two_blocks(put_width=3)
    assert putback.compute_open_border_cm2(thin_lung, thin_dense, 2.0, (2.0, 1.0, 1.0)) == 0.0
    # a core finer than the voxels still reaches one voxel along each axis (a 3-D cross): the eroded
    # blocks span z 3-10 and y 6-23 (8 x 18 = 144 faces, 2.88 cm2), and a layer 3 voxels thick has a core
    assert putback.compute_open_border_cm2(lung, dense, 0.5, (2.0, 1.0, 1.0)) == pytest.approx(2.88)
    assert putback.compute_open_border_cm2(thin_lung, thin_dense, 0.5, (2.0, 1.0, 1.0)) == pytest.approx(2.88)


def test_accuracy_targets_by_hand():
    truth = {"lung_volume_ml": 1000.0, "lesion_pct": 10.0, "ggo_volume_ml": 100.0, "solid_volume_ml": 20.0}
    # lung 3 % = 30 mL; 1 point; ggo max(10, 15) = 15 mL; solid max(10, 6) = 10 mL: each just inside
    inside = {"lung_volume_ml": 1029.9, "lesion_pct": 10.99, "ggo_volume_ml": 85.1, "solid_volume_ml": 29.9}
    assert TARGETS.compute_misses(truth, inside) == ()
    outside = {"lung_volume_ml": 969.9, "lesion_pct": 8.9, "ggo_volume_ml": 115.2, "solid_volume_ml": 9.8}
    assert TARGETS.compute_misses(truth, outside) == ("lung", "lesion_pct", "ggo", "solid")
    assert TARGETS.ggo_tolerance_ml(1000.0) == pytest.approx(150.0)
    assert TARGETS.solid_tolerance_ml(1000.0) == pytest.approx(300.0)
