"""Boolean (z, y, x) masks: their bounding box, and binary morphology faster than scipy's generic
filters for the shapes the volumetry uses (boxes and crosses): whole-array shifts combined with
logical and / or. The tests compare each to scipy."""
from __future__ import annotations

import numpy as np


def compute_cross_dilation(mask: np.ndarray, axes: tuple[int, ...] = (1, 2)) -> np.ndarray:
    """Dilation by the cross of the face neighbours along ``axes`` (default: within each slice, which
    restores the edge pixels an opening took off); outside the array counts as False."""
    out = mask.copy()
    for axis in axes:
        lead = (slice(None),) * axis
        out[lead + (slice(1, None),)] |= mask[lead + (slice(None, -1),)]
        out[lead + (slice(None, -1),)] |= mask[lead + (slice(1, None),)]
    return out


def _window_reduce(mask: np.ndarray, size: int, axis: int, offset: int, reduce: np.ufunc) -> np.ndarray:
    """``reduce`` (logical and / or) of ``mask[i + offset : i + offset + size]`` along ``axis`` for every
    i, outside the array False; by doubling, so log2(size) + 1 whole-array passes (-size < offset <= 0)."""
    def along(a: np.ndarray, start: int, stop: int | None) -> np.ndarray:
        return a[(slice(None),) * axis + (slice(start, stop),)]

    n = mask.shape[axis]
    padded = np.zeros(mask.shape[:axis] + (n + size - 1,) + mask.shape[axis + 1:], bool)
    along(padded, -offset, n - offset)[...] = mask
    span = 1
    while 2 * span <= size:  # each element now reduces ``span`` elements, then twice as many
        padded = reduce(along(padded, 0, -span), along(padded, span, None))
        span *= 2
    return reduce(along(padded, 0, n), along(padded, size - span, size - span + n))


def compute_rect_opening(mask: np.ndarray, sides: tuple[int, int, int]) -> np.ndarray:
    """Opening by a box of ``sides`` voxels (z, y, x), separable erosions and dilations; a side of 1
    leaves that axis alone.

    The result is the union of all such boxes that fit inside the mask (outside the array counts as
    False). The erosion's window of an even side runs from ``side // 2`` before a voxel; the
    dilation's is shifted by one to mirror it (scipy's ``minimum_filter1d`` and ``maximum_filter1d``
    with origins 0 and -1, which the tests compare it to).
    """
    m = mask
    for axis, size in enumerate(sides):
        if size > 1:
            m = _window_reduce(m, size, axis, -(size // 2), np.logical_and)
    for axis, size in enumerate(sides):
        if size > 1:
            m = _window_reduce(m, size, axis, -(size // 2) + (1 - size % 2), np.logical_or)
    return m


def compute_bounding_box(mask: np.ndarray, pad: tuple[int | None, int | None, int | None]) -> tuple[slice, ...]:
    """The slices around the True voxels of ``mask``, ``pad`` voxels wider per axis (None: 0), inside the array."""
    out = []
    for axis, p in enumerate(pad):
        idx = np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))[0]
        p = p or 0
        out.append(slice(max(0, idx[0] - p), min(mask.shape[axis], idx[-1] + p + 1)))
    return tuple(out)
