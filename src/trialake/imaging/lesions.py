"""Lesion voxels inside a lung mask: HU band after noise smoothing, vessels removed, ground glass vs solid.

Noise: a sharp (lung) reconstruction kernel gives noise of 60-100 HU, enough to move a voxel of
ground glass (-600 to -450 HU) out of the lesion band or a voxel of aerated lung (-850 HU) into
it. The HU bands are therefore applied to an in-plane Gaussian smoothing of the image whose
strength comes from the noise measured in the series (``trialake.imaging.noise``); a soft-kernel
series, already below the target, is left as it is.

Vessels: a structure counts as a vessel when it is a tube narrower than
``vessel_max_diameter_mm``. A tube is narrow in two directions, so it vanishes under an opening
with a rectangle slightly wider than that in the axial and in the coronal plane; a lesion (a blob)
survives the axial one, and a horizontal sheet of solid disease (collapsed lung lying on pleural
fluid, in a supine patient) survives the coronal one. Only solid voxels (at or above the
ground-glass/solid split) are kept as sheets: a thin layer of ground-glass density along the lung's
border is its partial-volume edge, not disease. Lesions smaller than the rectangle are not counted
either.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special

from trialake.imaging.morphology import compute_cross_dilation, compute_rect_opening
from trialake.imaging.noise import compute_smoothed, compute_smoothing_margin_px
from trialake.imaging.volume import compute_mapped_zeros

SLAB_SLICES = 16
#: In the coronal and sagittal planes a sheet must reach this multiple of the vessel diameter
#: along z (so a vessel lying in a thick slice's plane, spread over two slices, is still a tube).
SHEET_Z_FACTOR = 2.0


def compute_opening_side_px(vessel_max_diameter_mm: float, pixel_mm: float) -> int:
    """Side (pixels, >= 2) of the smallest square wider than a vessel of the given diameter."""
    return max(2, int(np.floor(vessel_max_diameter_mm / pixel_mm)) + 1)


def compute_square_opening(mask: np.ndarray, side_y: int, side_x: int) -> np.ndarray:
    """Per-slice opening by a side_y x side_x rectangle (see ``compute_rect_opening``)."""
    return compute_rect_opening(mask, (1, side_y, side_x))


class LesionMasks(NamedTuple):
    """Ground glass and solid, the expected lesion voxels on the wrong side of the ground-glass/solid
    split because of noise, and the lesion voxels within the edge band above the lesion threshold."""

    ggo: np.ndarray
    solid: np.ndarray
    split_doubt: float
    near_low: int


def compute_lesion_masks(hu: np.ndarray, lung: np.ndarray, spacing, *, low_hu: float, high_hu: float,
                         split_hu: float, vessel_max_diameter_mm: float,
                         smoothing_px: tuple[float, float] = (0.0, 0.0),
                         noise_hu: float = 0.0, edge_band_hu: float = 0.0) -> LesionMasks:
    """Lung voxels with low_hu <= HU <= high_hu (after smoothing) that are not tubes, split into
    ground glass and solid; the expected number of lesion voxels on the wrong side of ``split_hu``
    because of image noise of ``noise_hu`` (left after the smoothing); and the number of lesion
    voxels below ``low_hu + edge_band_hu`` (how much the lesion volume hangs on its threshold).

    See the module docstring. One cross dilation within the dense voxels puts back the edge
    pixels the openings' corners took off. Solid = smoothed HU >= split_hu, ground glass below.
    A voxel measured at h lies on the other side of the split with probability
    Phi(-|h - split_hu| / noise_hu) (its noise-free value is about normal around h).
    """
    ggo = compute_mapped_zeros(lung.shape)  # pages outside the lung's rows and slices are never written
    solid = compute_mapped_zeros(lung.shape)
    split_doubt, near_low = 0.0, 0
    zs = np.nonzero(lung.any(axis=(1, 2)))[0]
    if zs.size == 0:
        return LesionMasks(ggo, solid, split_doubt, near_low)
    ys = np.nonzero(lung.any(axis=(0, 2)))[0]
    xs = np.nonzero(lung.any(axis=(0, 1)))[0]
    pad = compute_smoothing_margin_px(smoothing_px)
    rows = slice(max(0, ys[0] - pad), min(lung.shape[1], ys[-1] + pad + 1))
    cols = slice(max(0, xs[0] - pad), min(lung.shape[2], xs[-1] + pad + 1))
    side_y = compute_opening_side_px(vessel_max_diameter_mm, spacing[1])
    side_x = compute_opening_side_px(vessel_max_diameter_mm, spacing[2])
    side_z = compute_opening_side_px(SHEET_Z_FACTOR * vessel_max_diameter_mm, spacing[0])
    axial, coronal = (1, side_y, side_x), (side_z, 1, side_x)
    halo = side_z
    for start in range(zs[0], zs[-1] + 1, SLAB_SLICES):
        stop = min(start + SLAB_SLICES, zs[-1] + 1)
        lo, hi = max(zs[0], start - halo), min(zs[-1] + 1, stop + halo)
        h = compute_smoothed(hu[lo:hi, rows, cols], smoothing_px)
        dense = lung[lo:hi, rows, cols] & (h >= low_hu) & (h <= high_hu)
        sheets = dense & (h >= split_hu)
        kept = compute_rect_opening(dense, axial) | compute_rect_opening(sheets, coronal)
        core = slice(start - lo, stop - lo)
        lesion = dense[core] & compute_cross_dilation(kept[core])
        is_solid = h[core] >= split_hu
        solid[start:stop, rows, cols] = lesion & is_solid
        ggo[start:stop, rows, cols] = lesion & ~is_solid
        near_low += int(np.count_nonzero(lesion & (h[core] < low_hu + edge_band_hu)))
        if noise_hu > 0:
            split_doubt += float(special.ndtr(-np.abs(h[core][lesion] - split_hu) / noise_hu).sum())
    return LesionMasks(ggo, solid, split_doubt, near_low)
