"""Classical lung segmentation: body, aerated lung, airway removal, left/right split, dense disease.

Pipeline (all on numpy arrays with their spacing; x towards patient left, y posterior):

1. body: per slice the largest connected region above ``body_hu`` (drops the table, arms cut off
   by the field of view and outside air), holes filled;
2. aerated lung: voxels below ``lung_air_hu`` inside the body, 3-D components of at least
   ``min_lung_fraction`` of the largest (drops bowel gas); both lungs are kept whether or not
   they touch;
3. trachea and main bronchi: tracked slice by slice from the end of the scan where a small air
   tube sits in the middle of the body, until the tube merges with a lung (cross-section larger
   than ``airway_max_area_mm2``);
4. left/right: the two largest components, or, when the lungs touch, a split per slice at the
   column of least lung between them;
5. dense disease back into each lung, per slice: holes filled (lesions and vessels surrounded
   by aerated lung), a closing of radius ``close_radius_mm`` (vessels entering at the hilum), and
   a convex-hull fill for dense regions between the lung and the chest wall: a component of
   hull-minus-lung is added when it is at least ``hull_min_depth_mm`` deep and its hull chord
   runs along the body outline (roughly constant distance from the skin), which a consolidation
   against the ribs does and the concavities of the heart notch, the mediastinum and the
   diaphragm dome (chords deep inside the body) do not. The chord misses the thin cap between
   it and a curved chest wall; dense tissue in that cap, up to 10% of the chord length outside
   the hull and no nearer the skin than the chord's ends, is added too.

``ClassicalSegmenter`` runs these steps on a block-averaged copy with voxels of about 3 mm and
then cuts the aerated lung edge again at full resolution, so the morphology works on a few
million voxels even for 512x512x300 series.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from trialake.imaging.volume import CTVolume, NotMeasurable

_PLANE = np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]],
                   [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                   [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], bool)  # 4-connectivity within each slice


@dataclass(frozen=True)
class SegmentationParams:
    """Thresholds of the classical lung segmentation (HU, mm, fractions).

    body_hu: tissue vs air for the body outline (-500, halfway between air and fat).
    lung_air_hu: aerated lung vs soft tissue (-400; halfway between lung parenchyma at about -850
      and soft tissue at about +40, so a partial-volume edge is cut at its middle).
    min_lung_ml: less aerated lung than this means no lungs were found.
    min_lung_fraction: a 3-D air component is lung when at least this fraction of the largest.
    airway_max_area_mm2: largest cross-section of the trachea or a main bronchus in one slice.
    airway_central_fraction: the trachea's centroid lies within this fraction of the body width
      from the body's centre.
    close_radius_mm: radius of the per-slice closing of each lung.
    hull_min_depth_mm: smallest depth of a hull-fill region (thinner ones are edge slivers).
    hull_enclosed_fraction: a hull-fill region needs at least this fraction of its pixels with
      aerated lung both above and below in the same column (a consolidation inside the lung's
      height; the diaphragm dome and the heart have none below). A consolidation at the very
      base of the lung is therefore not filled.
    hull_wall_margin_mm, hull_wall_bulge: a hull-fill region lies against the chest wall when the
      median distance of its hull chord from the body outline exceeds the chord's smallest
      distance by at most max(hull_wall_margin_mm, hull_wall_bulge x chord length) and lies at
      most hull_wall_depth_mm deeper than the lung's closest approach to the skin; a chord
      across the mediastinum, the heart or the diaphragm dome runs deep inside the body.
    max_edge_fraction: the lungs count as cut by the field of view when an end slice holds more
      than this fraction of the largest lung cross-section, or any lung voxel touches the image
      border in-plane.
    """

    body_hu: float = -500.0
    lung_air_hu: float = -400.0
    min_lung_ml: float = 200.0
    min_lung_fraction: float = 0.1
    airway_max_area_mm2: float = 700.0
    airway_central_fraction: float = 0.1
    close_radius_mm: float = 5.0
    hull_min_depth_mm: float = 6.0
    hull_enclosed_fraction: float = 0.5
    hull_wall_margin_mm: float = 12.0
    hull_wall_depth_mm: float = 30.0
    hull_wall_bulge: float = 0.2
    max_edge_fraction: float = 0.1


@dataclass(frozen=True)
class LungMasks:
    """Boolean (z, y, x) masks of a lung segmentation; ``lung`` = ``left`` | ``right``."""

    lung: np.ndarray
    left: np.ndarray
    right: np.ndarray
    airway: np.ndarray


def compute_body_mask(hu: np.ndarray, body_hu: float) -> np.ndarray:
    """Per slice: the largest connected region above ``body_hu``, holes filled (see ``_fill_closed_at_border``)."""
    tissue = hu > body_hu
    labels, n = ndimage.label(tissue, structure=_PLANE)
    if n == 0:
        return tissue
    sizes = np.bincount(labels.ravel())[1:]
    z_of = np.array([sl[0].start for sl in ndimage.find_objects(labels)])
    order = np.lexsort((-sizes, z_of))  # by slice, largest first
    first = np.r_[True, z_of[order][1:] != z_of[order][:-1]]
    keep = np.zeros(n + 1, bool)
    keep[order[first] + 1] = True
    return _fill_closed_at_border(keep[labels])


def _border_span(line: np.ndarray) -> np.ndarray:
    """(z, n) -> (z, n): True between the first and last True of each row."""
    idx = np.arange(line.shape[1])
    first = np.argmax(line, axis=1)
    last = line.shape[1] - 1 - np.argmax(line[:, ::-1], axis=1)
    return line.any(axis=1)[:, None] & (idx >= first[:, None]) & (idx <= last[:, None])


def _fill_closed_at_border(body: np.ndarray) -> np.ndarray:
    """Fill holes per slice, treating the stretch where the body is cut by the field of view as closed.

    Lungs cut by the field of view thus stay inside the body, and the cut is reported later.
    """
    padded = np.pad(body, ((0, 0), (1, 1), (1, 1)))
    padded[:, 0, 1:-1] = _border_span(body[:, 0, :])
    padded[:, -1, 1:-1] = _border_span(body[:, -1, :])
    padded[:, 1:-1, 0] = _border_span(body[:, :, 0])
    padded[:, 1:-1, -1] = _border_span(body[:, :, -1])
    return ndimage.binary_fill_holes(padded, structure=_PLANE)[:, 1:-1, 1:-1]


def compute_aerated_lung(hu: np.ndarray, body: np.ndarray, spacing, p: SegmentationParams) -> np.ndarray:
    """Air inside the body, restricted to large 3-D components (lungs with airways)."""
    air = (hu < p.lung_air_hu) & body
    labels, n = ndimage.label(air)
    if n == 0:
        raise NotMeasurable("no aerated lung found inside the body")
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if sizes.max() * voxel_ml < p.min_lung_ml:
        raise NotMeasurable(
            f"no lungs found (largest air region {sizes.max() * voxel_ml:.0f} mL < {p.min_lung_ml:.0f} mL)")
    keep = sizes >= p.min_lung_fraction * sizes.max()
    keep[0] = False
    return keep[labels]


def _trachea_start(air: np.ndarray, body: np.ndarray, k: int, px_area: float,
                   p: SegmentationParams) -> np.ndarray | None:
    """The small central air component of slice k, if there is one."""
    labels, n = ndimage.label(air[k])
    if n == 0:
        return None
    cols = np.nonzero(body[k].any(axis=0))[0]
    if cols.size == 0:
        return None
    mid, width = (cols[0] + cols[-1]) / 2.0, cols[-1] - cols[0] + 1
    for i, (sl, area) in enumerate(zip(ndimage.find_objects(labels), np.bincount(labels.ravel())[1:]), start=1):
        comp = labels[sl] == i
        cx = sl[1].start + np.nonzero(comp)[1].mean()
        if area * px_area <= p.airway_max_area_mm2 and abs(cx - mid) <= p.airway_central_fraction * width:
            out = np.zeros_like(air[k])
            out[sl] |= comp
            return out
    return None


def _track_airway(air: np.ndarray, start: np.ndarray, k0: int, step: int, px_area: float,
                  reach_px: int, p: SegmentationParams) -> np.ndarray:
    """Follow the airway from slice k0 in direction step while its components stay small.

    Where a tracked tube merges with a lung, its previous cross-section projected onto the merge
    slice is still airway (the bronchus enters the hilum there); tracking stops on that branch.
    """
    airway = np.zeros_like(air)
    airway[k0] = start
    current = start
    k = k0 + step
    footprint = np.ones((2 * reach_px + 1,) * 2, bool)
    while 0 <= k < air.shape[0] and current.any():
        labels, n = ndimage.label(air[k])
        near = np.unique(labels[ndimage.binary_dilation(current, footprint) & (labels > 0)])
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        small = [i for i in near if sizes[i] * px_area <= p.airway_max_area_mm2]
        merged = current & (labels > 0) & ~np.isin(labels, small)
        current = np.isin(labels, small) if small else np.zeros_like(current)
        airway[k] = current | merged
        k += step
    return airway


def compute_airway(air: np.ndarray, body: np.ndarray, spacing, p: SegmentationParams) -> np.ndarray:
    """Trachea and main bronchi: tracked from whichever end of the scan starts with a central tube."""
    px_area = spacing[1] * spacing[2]
    reach_px = max(1, int(np.ceil(spacing[0] / min(spacing[1:]))))
    occupied = np.nonzero(air.any(axis=(1, 2)))[0]
    best = np.zeros_like(air)
    for k0, step in ((occupied[0], 1), (occupied[-1], -1)):
        start = _trachea_start(air, body, k0, px_area, p)
        if start is not None:
            found = _track_airway(air, start, k0, step, px_area, reach_px, p)
            if found.sum() > best.sum():
                best = found
    return best


def _split_touching(lung: np.ndarray, body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split one connected lung mask per slice at the column of least lung near the body's centre."""
    cols = np.nonzero(body.any(axis=(0, 1)))[0]
    mid = (cols[0] + cols[-1]) // 2
    half = max(2, (cols[-1] - cols[0]) // 6)
    right = np.zeros_like(lung)
    for k in np.nonzero(lung.any(axis=(1, 2)))[0]:
        profile = lung[k, :, mid - half:mid + half + 1].sum(axis=0)
        split = mid - half + int(np.argmin(profile))
        right[k, :, :split] = lung[k, :, :split]
    return lung & ~right, right


def compute_left_right(lung: np.ndarray, body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) lungs; low x index is the patient's right."""
    labels, n = ndimage.label(lung)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    if n < 2 or sizes[np.argsort(sizes)[-2]] < 0.1 * sizes.max():
        return _split_touching(lung, body)
    big = np.argsort(sizes)[-2:]
    centres = ndimage.center_of_mass(lung, labels, range(1, n + 1))
    x_big = [centres[i - 1][2] for i in big]
    mid = sum(x_big) / 2.0
    is_left = np.zeros(n + 1, bool)
    is_left[1:] = [c[2] > mid for c in centres]
    left = is_left[labels] & lung
    return left, lung & ~left


def _hull_mask(mask: np.ndarray) -> np.ndarray:
    """Pixels whose centres lie inside the convex hull of the mask's pixel centres (2-D)."""
    pts = np.argwhere(mask & ~ndimage.binary_erosion(mask)).astype(float)
    out = mask.copy()
    try:
        hull = ConvexHull(pts) if len(pts) >= 3 else None
    except QhullError:
        hull = None
    if hull is None:
        return out
    ring = pts[hull.vertices]
    (r0, c0), (r1, c1) = ring.T, np.roll(ring, -1, axis=0).T
    rows = np.arange(int(pts[:, 0].min()), int(pts[:, 0].max()) + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (rows[:, None] - r0) / (r1 - r0)
        c = np.where((t >= 0) & (t <= 1) & (r1 != r0), c0 + t * (c1 - c0), np.nan)
    lo, hi = np.ceil(np.nanmin(c, axis=1) - 1e-6), np.floor(np.nanmax(c, axis=1) + 1e-6)
    cols = np.arange(mask.shape[1])
    out[rows] |= (cols >= lo[:, None]) & (cols <= hi[:, None])
    return out


def _surface_distance_mm(body2d: np.ndarray, px: tuple[float, float]) -> np.ndarray:
    """Distance (mm) to the body outline, computed on a grid of at least 2 mm and repeated back."""
    f = max(1, int(2.0 // min(px)))
    coarse = ndimage.distance_transform_edt(body2d[::f, ::f], sampling=(px[0] * f, px[1] * f))
    return np.repeat(np.repeat(coarse, f, axis=0), f, axis=1)[: body2d.shape[0], : body2d.shape[1]]


def _wall_cap(comp: np.ndarray, hull: np.ndarray, hu2d: np.ndarray, surface: np.ndarray, wall_mm: float,
              chord_mm: float, px: tuple[float, float], dense_hu: float) -> np.ndarray:
    """The component plus the dense cap between its hull chord and the curved chest wall.

    The cap is the dense tissue outside the hull, within 10% of the chord length (plus a pixel)
    of the component, and no closer to the skin than the chord's ends, where the lung meets the
    inner surface of the chest wall.
    """
    reach = int(np.ceil(0.1 * chord_mm / min(px))) + 1
    near = ndimage.binary_dilation(comp, iterations=reach)
    return comp | (near & ~hull & (surface >= wall_mm) & (hu2d >= dense_hu))


def _hull_fill(lung2d: np.ndarray, hu2d: np.ndarray, body2d: np.ndarray, enclosed2d: np.ndarray,
               px: tuple[float, float], p: SegmentationParams, dense_hu: float) -> np.ndarray:
    """Dense regions inside the lung's convex hull that lie against the chest wall (see module doc).

    ``enclosed2d`` marks pixels with aerated lung both above and below them in the same column.
    """
    hull = _hull_mask(lung2d)
    extra = hull & ~lung2d
    labels, n = ndimage.label(extra)
    if n == 0:
        return lung2d
    depth = ndimage.distance_transform_edt(extra)
    min_depth_px = max(1.4, p.hull_min_depth_mm / min(px))  # an edge sliver one pixel thick has depth 1
    chord = extra & ndimage.binary_dilation(~hull)
    surface = None
    out = lung2d.copy()
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        comp = labels[sl] == i
        if (depth[sl][comp].max() < min_depth_px or hu2d[sl][comp].mean() < dense_hu
                or enclosed2d[sl][comp].mean() < p.hull_enclosed_fraction):
            continue
        surface = _surface_distance_mm(body2d, px) if surface is None else surface
        on_chord = comp & chord[sl]
        d = surface[sl][on_chord]
        if d.size == 0:
            continue
        rows, cols = np.nonzero(on_chord)
        length = float(np.hypot((rows.max() - rows.min()) * px[0], (cols.max() - cols.min()) * px[1]))
        along_wall = np.median(d) - d.min() <= max(p.hull_wall_margin_mm, p.hull_wall_bulge * length)
        if along_wall and np.median(d) <= surface[lung2d].min() + p.hull_wall_depth_mm:
            out |= _wall_cap(labels == i, hull | lung2d, hu2d, surface, d.min(), length, px, dense_hu)
    return out


def compute_filled_lung(side: np.ndarray, hu: np.ndarray, body: np.ndarray, spacing, p: SegmentationParams,
                        dense_hu: float) -> np.ndarray:
    """One lung with dense disease put back: holes, closing, chest-wall hull fill (per slice)."""
    zs = np.nonzero(side.any(axis=(1, 2)))[0]
    ys = np.nonzero(side.any(axis=(0, 2)))[0]
    xs = np.nonzero(side.any(axis=(0, 1)))[0]
    if zs.size == 0:
        return side
    pad = max(1, int(np.ceil(p.close_radius_mm / min(spacing[1:])))) + 1
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, side.shape[1])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, side.shape[2])
    box = (slice(zs.min(), zs.max() + 1), slice(y0, y1), slice(x0, x1))
    crop = ndimage.binary_fill_holes(side[box], structure=_PLANE)
    r = p.close_radius_mm / np.array(spacing[1:])
    yy, xx = np.ogrid[-int(r[0]):int(r[0]) + 1, -int(r[1]):int(r[1]) + 1]
    disk = ((yy / max(r[0], 1e-6)) ** 2 + (xx / max(r[1], 1e-6)) ** 2 <= 1.0)[None]
    padded = np.pad(crop, ((0, 0), (pad, pad), (pad, pad)))
    crop = ndimage.binary_closing(padded, structure=disk)[:, pad:-pad, pad:-pad] | crop
    crop = ndimage.binary_fill_holes(crop, structure=_PLANE)
    hu_box, body_box = hu[box], body[box]
    seen = np.logical_or.accumulate(side[box], axis=0)
    seen_back = np.logical_or.accumulate(side[box][::-1], axis=0)[::-1]
    enclosed = np.zeros_like(seen)
    enclosed[1:-1] = seen[:-2] & seen_back[2:]
    for k in range(crop.shape[0]):
        if crop[k].any():
            crop[k] = _hull_fill(crop[k], hu_box[k], body_box[k], enclosed[k], spacing[1:], p, dense_hu)
    out = np.zeros_like(side)
    out[box] = crop
    return out


def check_field_of_view(lung: np.ndarray, p: SegmentationParams) -> None:
    """Raise NotMeasurable when the lungs are cut by the field of view (in-plane or along z)."""
    if lung[:, 0, :].any() or lung[:, -1, :].any() or lung[:, :, 0].any() or lung[:, :, -1].any():
        raise NotMeasurable("field of view cuts the lungs in-plane (lung touches the image border)")
    areas = lung.sum(axis=(1, 2))
    if max(areas[0], areas[-1]) > p.max_edge_fraction * areas.max():
        raise NotMeasurable("field of view cuts the lungs along z (scan does not cover apex to base)")


def compute_pool_factors(spacing, coarse_voxel_mm: float) -> tuple[int, int, int]:
    """Integer block sizes (z, y, x) that bring each spacing up to about ``coarse_voxel_mm``."""
    return tuple(max(1, int(round(coarse_voxel_mm / s))) for s in spacing)


def compute_block_mean(hu: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Mean HU (float32) over whole blocks of ``factors`` voxels; a partial block at the far edges is dropped.

    Sums strided views one axis at a time, so each stage reads its input once.
    """
    shape = tuple(n // f for n, f in zip(hu.shape, factors))
    out = hu
    for axis, f in enumerate(factors):
        lead = (slice(None),) * axis
        acc = out[lead + (slice(0, shape[axis] * f, f),)].astype(np.float32)
        for c in range(1, f):
            acc += out[lead + (slice(c, c + shape[axis] * f, f),)]
        out = acc
    out *= np.float32(1.0 / (factors[0] * factors[1] * factors[2]))
    return out


def _upsample(coarse: np.ndarray, factors, box: tuple[slice, slice, slice]) -> np.ndarray:
    """Nearest-neighbour values of a coarse array on the fine voxels of ``box`` (edges clamped)."""
    lo = [sl.start // f for sl, f in zip(box, factors)]
    hi = [min(-(-sl.stop // f), n) for sl, f, n in zip(box, factors, coarse.shape)]
    fine = coarse[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    for axis, f in enumerate(factors):
        fine = np.repeat(fine, f, axis=axis)
    pad = [(0, max(0, (sl.stop - sl.start) - (fine.shape[i] - (sl.start - lo[i] * f))))
           for i, (sl, f) in enumerate(zip(box, factors))]
    if any(p for _, p in pad):
        fine = np.pad(fine, pad, mode="edge")
    return fine[tuple(slice(sl.start - l * f, sl.start - l * f + sl.stop - sl.start)
                      for sl, l, f in zip(box, lo, factors))]


def compute_refined_masks(coarse: LungMasks, coarse_hu: np.ndarray, hu: np.ndarray, factors,
                          p: SegmentationParams) -> LungMasks:
    """Full-resolution masks from a coarse segmentation.

    A fine voxel is lung when its coarse voxel is inside the coarse lung (eroded by one voxel),
    or is a dense coarse lung voxel (filled disease), or when it is aerated and its coarse voxel
    is within one voxel of the coarse lung and not next to the airway: the aerated edge is thus
    cut at full resolution. Left and right follow the nearer coarse lung.
    """
    zs, ys, xs = (np.nonzero(coarse.lung.any(axis=axes))[0] for axes in ((1, 2), (0, 2), (0, 1)))
    box = tuple(slice(max(0, (a[0] - 1) * f), min(n, (a[-1] + 2) * f))
                for a, f, n in zip((zs, ys, xs), factors, hu.shape))
    code = (ndimage.binary_erosion(coarse.lung) | (coarse.lung & (coarse_hu >= p.lung_air_hu))).astype(np.uint8)
    code |= (ndimage.binary_dilation(coarse.lung) & ~ndimage.binary_dilation(coarse.airway)).astype(np.uint8) << 1
    code |= ndimage.binary_dilation(coarse.right).astype(np.uint8) << 2
    code |= coarse.left.astype(np.uint8) << 3
    code |= coarse.airway.astype(np.uint8) << 4
    fine = _upsample(code, factors, box)
    aerated = hu[box] < p.lung_air_hu

    def bit(k: int) -> np.ndarray:
        return (fine & (1 << k)) > 0

    lung, right, airway = (np.zeros(hu.shape, bool) for _ in range(3))
    lung[box] = bit(0) | (bit(1) & aerated)
    right[box] = lung[box] & bit(2) & ~bit(3)
    airway[box] = bit(4) & aerated
    return LungMasks(lung=lung, left=lung & ~right, right=right, airway=airway)


@dataclass(frozen=True)
class ClassicalSegmenter:
    """Threshold-and-morphology lung segmentation (see the module docstring).

    Runs on a block-averaged copy with voxels of about ``coarse_voxel_mm`` and refines the
    aerated lung edge at full resolution (``compute_refined_masks``).
    """

    params: SegmentationParams = SegmentationParams()
    dense_hu: float = -700.0
    coarse_voxel_mm: float = 3.0
    name: str = "classical"
    version: str = "1.0.0"

    def segment_lungs(self, volume: CTVolume) -> LungMasks:
        factors = compute_pool_factors(volume.spacing_mm, self.coarse_voxel_mm)
        if factors == (1, 1, 1):
            return self.segment_array(volume.hu, volume.spacing_mm)
        coarse_hu = compute_block_mean(volume.hu, factors)
        coarse = self.segment_array(coarse_hu, tuple(s * f for s, f in zip(volume.spacing_mm, factors)))
        return compute_refined_masks(coarse, coarse_hu, volume.hu, factors, self.params)

    def segment_array(self, hu: np.ndarray, spacing) -> LungMasks:
        """The pipeline of the module docstring at the array's own resolution."""
        p = self.params
        body = compute_body_mask(hu, p.body_hu)
        air = compute_aerated_lung(hu, body, spacing, p)
        airway = compute_airway(air, body, spacing, p)
        lung = air & ~airway
        left, right = compute_left_right(lung, body)
        left_f = compute_filled_lung(left, hu, body, spacing, p, self.dense_hu) & ~airway & ~right
        right_f = compute_filled_lung(right, hu, body, spacing, p, self.dense_hu) & ~airway & ~left_f
        both = left_f | right_f
        check_field_of_view(both, p)
        return LungMasks(lung=both, left=left_f, right=right_f, airway=airway)
