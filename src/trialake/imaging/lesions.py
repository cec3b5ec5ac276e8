"""Lesion voxels inside a lung mask: HU band, vessels removed, split into ground glass and solid."""
from __future__ import annotations

import numpy as np
from scipy import ndimage


SLAB_SLICES = 16


def compute_cross_dilation(mask: np.ndarray) -> np.ndarray:
    """Per-slice dilation by the 4-neighbour cross (restores edge pixels an opening took off)."""
    out = mask.copy()
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    out[:, :, 1:] |= mask[:, :, :-1]
    out[:, :, :-1] |= mask[:, :, 1:]
    return out


def compute_opening_side_px(vessel_max_diameter_mm: float, pixel_mm: float) -> int:
    """Side (pixels, >= 2) of the smallest square wider than a vessel of the given diameter."""
    return max(2, int(np.floor(vessel_max_diameter_mm / pixel_mm)) + 1)


def compute_square_opening(mask: np.ndarray, side_y: int, side_x: int) -> np.ndarray:
    """Per-slice opening by a side_y x side_x rectangle (separable min/max filters).

    The result is the union of all such rectangles that fit inside the mask; for an even side
    the dilation window is shifted by one (origin -1) to mirror the erosion's.
    """
    m = mask.view(np.uint8)
    for axis, size in ((1, side_y), (2, side_x)):
        m = ndimage.minimum_filter1d(m, size, axis=axis, mode="constant", cval=0)
    for axis, size in ((1, side_y), (2, side_x)):
        m = ndimage.maximum_filter1d(m, size, axis=axis, mode="constant", cval=0, origin=-1 if size % 2 == 0 else 0)
    return m.view(bool)


def compute_lesion_masks(hu: np.ndarray, lung: np.ndarray, spacing, *, low_hu: float, high_hu: float,
                         split_hu: float, vessel_max_diameter_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(ggo, solid) masks: lung voxels with low_hu <= HU <= high_hu that are not thin bright tubes.

    A structure counts as a vessel when it is narrower, within an axial slice, than
    ``vessel_max_diameter_mm``: such structures vanish under a per-slice opening with a square
    slightly wider than that (vessels cut across are dots, vessels in-plane are lines), while
    lesions, which are blobs, survive. Lesions smaller than the square are not counted either.
    The opening's square corners take off lesion edge pixels; one cross dilation within the dense
    voxels puts them back. Solid = HU >= split_hu, ground glass below.
    """
    zs = np.nonzero(lung.any(axis=(1, 2)))[0]
    ys = np.nonzero(lung.any(axis=(0, 2)))[0]
    xs = np.nonzero(lung.any(axis=(0, 1)))[0]
    ggo = np.zeros_like(lung)
    solid = np.zeros_like(lung)
    if zs.size == 0:
        return ggo, solid
    rows, cols = slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1)
    side_y = compute_opening_side_px(vessel_max_diameter_mm, spacing[1])
    side_x = compute_opening_side_px(vessel_max_diameter_mm, spacing[2])
    # Every step works within axial slices, so slabs of slices keep the temporaries small.
    for start in range(zs[0], zs[-1] + 1, SLAB_SLICES):
        box = (slice(start, min(start + SLAB_SLICES, zs[-1] + 1)), rows, cols)
        h = hu[box]
        dense = lung[box] & (h >= low_hu) & (h <= high_hu)
        lesion = dense & compute_cross_dilation(compute_square_opening(dense, side_y, side_x))
        is_solid = h >= split_hu
        solid[box] = lesion & is_solid
        ggo[box] = lesion & ~is_solid
    return ggo, solid
