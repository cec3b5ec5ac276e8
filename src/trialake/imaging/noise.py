"""Image noise measured in the series itself, and the smoothing that brings it down to a target.

Noise is the standard deviation of HU in air outside the body (away from the skin, inside the
field of view). Scanners clip air at -1024 HU, which cuts off the lower tail of its noise, so the
spread is taken from the upper half only: 1.4826 x the median distance above the median (the MAD
of a normal distribution).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Fewer outside-air voxels than this give no estimate.
MIN_AIR_VOXELS = 2000
#: Air outside the body is taken at least this far from the skin (blur, streaks at the surface).
AIR_MARGIN_MM = 10.0
#: The smoothing's Gaussian is cut this many sigmas from its centre.
SMOOTHING_TRUNCATE = 3.0


def compute_noise_hu(hu: np.ndarray, body: np.ndarray, outside_fov: np.ndarray, spacing, *,
                     air_below_hu: float = -500.0, step: int = 1) -> float:
    """Noise SD (HU) in outside air of every ``step``-th slice; NaN when there is too little air."""
    hu, body, outside_fov = hu[::step], body[::step], outside_fov[::step]
    margin = [max(1, int(round(AIR_MARGIN_MM / s))) for s in spacing[1:]]
    near = ndimage.maximum_filter(body, size=(1, 2 * margin[0] + 1, 2 * margin[1] + 1))
    air = ~near & ~outside_fov & (hu < air_below_hu)
    if np.count_nonzero(air) < MIN_AIR_VOXELS:
        return float("nan")
    values = hu[air].astype(np.float32)
    median = float(np.median(values))
    upper = values[values > median] - median
    return float(1.4826 * np.median(upper)) if upper.size else float("nan")


def compute_smoothing_px(noise_hu: float, target_hu: float, spacing) -> tuple[float, float]:
    """In-plane Gaussian sigma (pixels, per axis y, x) that lowers white noise of ``noise_hu`` to ``target_hu``.

    A 2-D Gaussian of sigma s pixels divides the SD of white noise by 2 s sqrt(pi); nothing is
    smoothed when the noise is unknown or already at or below the target.
    """
    if not np.isfinite(noise_hu) or noise_hu <= target_hu or target_hu <= 0:
        return 0.0, 0.0
    s = noise_hu / (target_hu * 2.0 * np.sqrt(np.pi))
    return s, s * spacing[1] / spacing[2]


def compute_residual_noise_hu(noise_hu: float, smoothing_px: tuple[float, float]) -> float:
    """Noise SD (HU) left after the in-plane smoothing of ``compute_smoothing_px``; 0 when the noise is unknown."""
    if not np.isfinite(noise_hu):
        return 0.0
    return noise_hu / (2.0 * smoothing_px[0] * np.sqrt(np.pi)) if smoothing_px[0] > 0 else noise_hu


def compute_smoothing_margin_px(sigma_px: tuple[float, float]) -> int:
    """Pixels around a region that ``compute_smoothed`` reads to smooth it (its kernel's radius, plus one)."""
    return int(np.ceil(SMOOTHING_TRUNCATE * max(sigma_px))) + 1


def compute_smoothed(hu: np.ndarray, sigma_px: tuple[float, float]) -> np.ndarray:
    """float32 copy of ``hu`` smoothed in-plane (slices stay independent); the input when sigma is 0."""
    if sigma_px[0] <= 0:
        return hu
    return ndimage.gaussian_filter(hu.astype(np.float32), (0.0, *sigma_px), truncate=SMOOTHING_TRUNCATE)


def compute_local_median(hu: np.ndarray, where: np.ndarray, base: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """float32 copy of ``base`` holding, at the voxels of ``where``, the median of ``hu`` over their
    3x3x3 neighbourhood (edge voxels repeated at the array's border).

    Against a sharp kernel's noise a median keeps a thin layer of pleural air at -1000 HU, where an
    in-plane Gaussian mixes it with the chest wall a few millimetres away.
    """
    out = base.astype(np.float32, copy=True)
    points = np.nonzero(where)
    if points[0].size == 0:
        return out
    padded = np.pad(hu, 1, mode="edge")
    offsets = [(dz, dy, dx) for dz in range(3) for dy in range(3) for dx in range(3)]
    for start in range(0, points[0].size, chunk):
        z, y, x = (p[start:start + chunk] for p in points)
        values = np.stack([padded[z + dz, y + dy, x + dx] for dz, dy, dx in offsets])
        out[z, y, x] = np.median(values, axis=0)
    return out
