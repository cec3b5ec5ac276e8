"""Classical lung segmentation: body, aerated lung, airway, left/right, dense disease, pleural spaces.

Pipeline (numpy/scipy on a block-averaged copy with voxels of about 3 mm; x towards the patient's
left, y posterior, z from head to feet once the trachea has said where the head is):

1. field of view: padding (HU at or below -1024 in large regions touching the image edge, i.e.
   outside the reconstruction circle) is an edge of the image like the image border;
2. body: per slice the largest connected region above ``body_hu``, holes filled; a stretch where
   the body is cut by the image border is closed, so lungs cut by it stay inside and are reported;
   where the reconstruction circle cuts into the chest (air inside the body's convex hull that
   runs out into the padding) the series is refused;
3. aerated lung: air inside the body, 3-D components of at least ``min_lung_fraction`` of the
   largest; smaller ones are dropped and those not under the lungs (so not bowel gas) reported;
4. trachea and main bronchi: tracked slice by slice from either end of the scan, from every small
   air tube in the central part of the body; the longest track wins (so a trachea off the midline
   is found), and the end it starts from is the head;
5. pleural air: air darker than ``pleural_air_hu`` lying against the chest wall (not a bulla inside
   the lung) is pneumothorax, never lung; on a smoothed (sharp-kernel) series the darkness and the
   wall are also read on a 3x3x3 median of the unsmoothed HU;
6. left/right: the two largest components; lungs that touch are split by eroding them until they
   part and giving every voxel to the nearer core; one lung alone is named by its side of the body;
7. dense disease back into each lung (``trialake.imaging.putback``): holes with 3-D evidence, the
   chest-wall fill, the enclosed fill (within the rib cage, above the diaphragm), the
   diaphragm-floor fill and the dent fill, never from the tissue around pleural air; then pleural
   fluid is taken out, and dense tissue still left out next to the lung is measured for a flag.

``ClassicalSegmenter`` then cuts the aerated lung edge again at full resolution, within the box of
the lungs and pleural spaces (its masks stay in that box: ``LungMasks.box``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from trialake.imaging.morphology import compute_bounding_box, compute_rect_opening
from trialake.imaging.noise import compute_local_median, compute_noise_hu, compute_smoothed, compute_smoothing_px
from trialake.imaging.putback import (
    ChestGeometry,
    WallMap,
    compute_chest_geometry,
    compute_diaphragm,
    compute_dent_fill,
    compute_effusion,
    compute_filled_holes,
    compute_gap_rays,
    compute_hidden_border_cm2,
    compute_left_out,
    compute_enclosed_fill,
    compute_floor_fill,
    compute_notch_rays,
    compute_open_border_cm2,
    compute_pleural_air,
    compute_wall_fill,
    compute_wall_map,
)
from trialake.imaging.volume import PADDING_HU, CTVolume, NotMeasurable, compute_mapped_zeros

_PLANE = np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]],
                   [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                   [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], bool)  # 4-connectivity within each slice


@dataclass(frozen=True)
class SegmentationParams:
    """Documented constants of the classical segmenter (HU, mm, mL, fractions).

    They belong to the method, not to a trial: changing one changes the method's version.

    body_hu: tissue vs air for the body outline (-500, halfway between air and fat).
    lung_air_hu: aerated lung vs soft tissue (-400; halfway between lung parenchyma at about -850
      and soft tissue at about +40, so a partial-volume edge is cut at its middle). Denser voxels
      are "dense" and enter the lung only through the put-back rules.
    dense_max_hu: denser voxels (bone, contrast-filled heart and vessels, enhancing myocardium)
      are never put back (consolidation enhances to 50-90 HU).
    min_lung_ml: less aerated lung than this means no lungs were found.
    min_lung_fraction: a 3-D air component is lung when at least this fraction of the largest.
    report_dropped_ml: dropped air components (not under the lungs) from this size on are reported.
    airway_max_area_mm2: largest cross-section of the trachea or a main bronchus in one slice.
    airway_central_fraction: the trachea starts within this fraction of the body width from the
      body's centre (0.25: a trachea pushed aside by a shifted mediastinum is still found).
    airway_min_length_mm: a tracked tube shorter than this is not called a trachea.
    close_radius_mm: radius of the per-slice closing before the holes are filled.
    wall_tol_mm: the lung touches the chest wall when it reaches within this of the wall estimate.
    wall_smooth_deg, wall_smooth_mm: smoothing of the chest wall thickness around and along the chest.
    gap_contact_share: a region where the lung keeps away from the wall is filled when at least
      this share of its border in the (z, angle) map touches the wall.
    gap_open_head_share: ... and at most this share of its head-side border has no lung (the apex).
    floor_tol_mm: where the lung rests on dense tissue at least this much above the modelled
      diaphragm, disease hides the diaphragm.
    diaphragm_max_rise: the diaphragm's dome rises at most this fraction of the lung's height above
      the lung's deepest point (higher floor points are the heart, not the diaphragm).
    floor_min_band_mm: a lung whose recess line has a notch is put back down to the diaphragm only
      where it ends abruptly, at least this thick in its last slice.
    pleura_margin_vox: the enclosed fill's fence (the pleura) lies this many in-plane voxels outside the chest
      wall estimate, which is measured at the centres of the lung's outermost voxels (so lies inside the
      pleura); without it a layer of consolidation against the wall is left out. Not applied next to
      pleural fluid (there that layer is the fluid's edge).
    dent_radius_mm: radius of the ball of the 3-D closing (disease against the heart).
    left_out_core_mm: dense tissue left out of the lung is measured only where it is at least this
      thick (an opening with a ball of this radius), so partial-volume layers do not count.
    bone_hu: bone (ribs) for the rib cage's depth; cortical bone is 700-1000 HU, marrow 200-400.
    rib_window_mm: ribs and intercostal spaces alternate along z; each ray takes the deepest rib within
      this distance.
    pleural_air_hu, pleural_air_min_ml, pleural_air_wall_share: pleural air is darker than this,
      at least this large, and has at least this share of its border (read past its first layer of
      air) on chest-wall tissue. Below 15 mL a dark pocket against the wall is as likely a subpleural
      cluster of emphysema and stays lung (at most half a percent of a lung).
    fluid_hu: HU range of pleural fluid (transudates and exudates).
    effusion_min_ml: smaller water-dense regions are not called an effusion.
    max_edge_fraction: the lungs count as cut along z when an end slice holds more than this
      fraction of the largest lung cross-section.
    """

    body_hu: float = -500.0
    lung_air_hu: float = -400.0
    dense_max_hu: float = 100.0
    min_lung_ml: float = 200.0
    min_lung_fraction: float = 0.1
    report_dropped_ml: float = 5.0
    airway_max_area_mm2: float = 700.0
    airway_central_fraction: float = 0.25
    airway_min_length_mm: float = 30.0
    close_radius_mm: float = 5.0
    wall_tol_mm: float = 6.0
    wall_smooth_deg: float = 20.0
    wall_smooth_mm: float = 20.0
    gap_contact_share: float = 0.3
    gap_open_head_share: float = 0.5
    floor_tol_mm: float = 8.0
    diaphragm_max_rise: float = 0.4
    floor_min_band_mm: float = 12.0
    pleura_margin_vox: float = 0.75
    dent_radius_mm: float = 25.0
    left_out_core_mm: float = 5.0
    bone_hu: float = 300.0
    rib_window_mm: float = 20.0
    pleural_air_hu: float = -975.0
    pleural_air_min_ml: float = 15.0
    pleural_air_wall_share: float = 0.3
    fluid_hu: tuple[float, float] = (-20.0, 25.0)
    effusion_min_ml: float = 5.0
    max_edge_fraction: float = 0.1


@dataclass(frozen=True)
class Finding:
    """Something the segmenter noticed that a reviewer may need to see.

    code: short and stable (``dropped_air``, ``hidden_border``); text: one PHI-free sentence;
    value: the size it is about (mL, cm2), so the volumetry can apply the trial's threshold.
    """

    code: str
    text: str
    value: float = 0.0


def compute_expanded(mask: np.ndarray | None, box: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray | None:
    """A mask of ``box`` put on a volume of ``shape`` (False outside the box); None stays None."""
    if mask is None:
        return None
    out = compute_mapped_zeros(shape)
    out[box] = mask
    return out


#: Fine slices refined at a time (``compute_refined_masks``).
REFINE_SLAB_SLICES = 8
#: On a smoothed (sharp-kernel) series, voxels below this smoothed HU, and two voxels around them, are
#: read again on a 3x3x3 median for pleural air: a 15 mm layer of air smooths to -950..-930 HU
#: against the chest wall, and the wall beside it to lung-like HU.
PLEURAL_CANDIDATE_HU = -900.0
#: The mask fields of ``LungMasks``.
MASK_FIELDS = ("lung", "left", "right", "airway", "effusion", "pneumothorax", "put_back")


@dataclass(frozen=True)
class LungMasks:
    """Boolean (z, y, x) masks of a lung segmentation; ``lung`` = ``left`` | ``right``.

    Optional outputs (a plug-in segmenter may leave them None): ``effusion`` and ``pneumothorax``
    (pleural fluid and air, never lung), ``put_back`` (lung voxels that were dense tissue added by
    the put-back rules), ``airway_found`` and ``findings``.

    With ``box`` set, every mask covers only ``volume[box]`` of a volume of ``shape`` and is False
    outside it (the classical segmenter's output: full-size masks would cost more memory than the
    whole measurement); ``expanded()`` gives the masks on the whole volume, ``boxed()`` crops them.
    """

    lung: np.ndarray
    left: np.ndarray
    right: np.ndarray
    airway: np.ndarray
    effusion: np.ndarray | None = None
    pneumothorax: np.ndarray | None = None
    put_back: np.ndarray | None = None
    airway_found: bool | None = None
    findings: tuple[Finding, ...] = ()
    box: tuple[slice, slice, slice] | None = None
    shape: tuple[int, int, int] | None = None

    def expanded(self) -> LungMasks:
        """The masks on the whole volume (itself when they already are)."""
        if self.box is None:
            return self
        return dataclasses.replace(self, **{f: compute_expanded(getattr(self, f), self.box, self.shape)
                                            for f in MASK_FIELDS}, box=None, shape=None)

    def boxed(self) -> LungMasks:
        """The masks cropped (views) to the box of every voxel in any of them, one voxel wider; itself when boxed."""
        if self.box is not None:
            return self
        union = self.lung.copy()
        for mask in (self.effusion, self.pneumothorax):
            if mask is not None:
                union |= mask
        if not union.any():
            box = tuple(slice(0, n) for n in union.shape)
        else:
            box = compute_bounding_box(union, pad=(1, 1, 1))
        return dataclasses.replace(self, **{f: None if getattr(self, f) is None else getattr(self, f)[box]
                                            for f in MASK_FIELDS}, box=box, shape=self.lung.shape)


def compute_label_sizes(labels: np.ndarray, n: int) -> np.ndarray:
    """Voxels of each label 0..n, counted one slice at a time: ``np.bincount`` casts its input to
    int64, and a whole full-resolution volume cast is a large fresh allocation."""
    sizes = np.zeros(n + 1, np.int64)
    for plane in labels:
        sizes += np.bincount(plane.ravel(), minlength=n + 1)
    return sizes


def compute_padding_mask(outside: np.ndarray, spacing, min_area_mm2: float = 200.0) -> np.ndarray:
    """Padding regions (outside the reconstruction circle): in each slice, components of ``outside``
    (voxels at or below -1024 HU) that survive a 3x3 opening, touch the image border and cover at
    least ``min_area_mm2``. Isolated air voxels clipped at -1024 HU are not padding."""
    opened = compute_rect_opening(outside, (1, 3, 3))
    labels, n = ndimage.label(opened, structure=_PLANE)
    if n == 0:
        return opened
    border = np.zeros_like(opened)
    border[:, [0, -1], :] = True
    border[:, :, [0, -1]] = True
    keep = np.zeros(n + 1, bool)
    keep[np.unique(labels[border & opened])] = True
    sizes = compute_label_sizes(labels, n) * spacing[1] * spacing[2]
    keep &= sizes >= min_area_mm2
    keep[0] = False
    return keep[labels]


def compute_body_mask(hu: np.ndarray, body_hu: float, padding: np.ndarray | None = None) -> np.ndarray:
    """Per slice: the largest connected region above ``body_hu``, holes filled (see ``_fill_closed_at_border``)."""
    tissue = hu > body_hu
    if padding is not None:
        tissue &= ~padding
    labels, n = ndimage.label(tissue, structure=_PLANE)
    if n == 0:
        return tissue
    sizes = compute_label_sizes(labels, n)[1:]
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


def check_chest_cut(hu: np.ndarray, body: np.ndarray, padding: np.ndarray, slices: np.ndarray, spacing,
                    p: SegmentationParams) -> None:
    """Raise NotMeasurable when the reconstruction circle cuts into the chest on a lung slice.

    There, air inside the body's convex hull is not enclosed by the body and runs out into the
    padding (the lung opened by the cut); padding outside a whole chest never touches such air.
    """
    if not padding[slices].any():
        return
    rim = ndimage.binary_dilation(padding, structure=_PLANE)
    px_area, px_len = spacing[1] * spacing[2], min(spacing[1:])
    for k in slices:
        if not (rim[k] & body[k]).any():
            continue
        inside_hull = _hull_mask(body[k]) & ~body[k] & (hu[k] < p.lung_air_hu) & ~padding[k]
        labels, n = ndimage.label(inside_hull)
        for i in np.unique(labels[rim[k] & inside_hull]):
            region = labels == i
            if i and region.sum() * px_area >= 500.0 and (region & rim[k]).sum() * px_len >= 15.0:
                raise NotMeasurable(
                    "the reconstruction circle (field of view) cuts into the chest and the lungs; "
                    "ask the site for a reconstruction with a field of view that holds the whole chest")


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


def compute_aerated_lung(hu: np.ndarray, body: np.ndarray, padding: np.ndarray, spacing,
                         p: SegmentationParams) -> tuple[np.ndarray, np.ndarray]:
    """(kept, dropped): air inside the body in 3-D components of at least ``min_lung_fraction`` of the largest."""
    air = (hu < p.lung_air_hu) & body & ~padding
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
    kept = keep[labels]
    return kept, air & ~kept


def _trachea_starts(air: np.ndarray, body: np.ndarray, k: int, px_area: float,
                    p: SegmentationParams) -> list[np.ndarray]:
    """The small air components of slice k in the central part of the body."""
    labels, n = ndimage.label(air[k])
    cols = np.nonzero(body[k].any(axis=0))[0]
    if n == 0 or cols.size == 0:
        return []
    mid, width = (cols[0] + cols[-1]) / 2.0, cols[-1] - cols[0] + 1
    starts = []
    for i, (sl, area) in enumerate(zip(ndimage.find_objects(labels), np.bincount(labels.ravel())[1:]), start=1):
        comp = labels[sl] == i
        cx = sl[1].start + np.nonzero(comp)[1].mean()
        if area * px_area <= p.airway_max_area_mm2 and abs(cx - mid) <= p.airway_central_fraction * width:
            out = np.zeros_like(air[k])
            out[sl] |= comp
            starts.append(out)
    return starts


def _track_airway(air: np.ndarray, start: np.ndarray, k0: int, step: int, px_area: float,
                  reach_px: int, p: SegmentationParams) -> tuple[np.ndarray, int]:
    """Follow the airway from slice k0 in direction step while its components stay small.

    Returns the airway and the number of slices it stayed a small tube. Where a tracked tube
    merges with a lung, its previous cross-section projected onto the merge slice is still airway
    (the bronchus enters the hilum there); tracking stops on that branch.
    """
    airway = np.zeros_like(air)
    airway[k0] = start
    current = start
    k, tube = k0 + step, 1
    footprint = np.ones((2 * reach_px + 1,) * 2, bool)
    while 0 <= k < air.shape[0] and current.any():
        labels, n = ndimage.label(air[k])
        near = np.unique(labels[ndimage.binary_dilation(current, footprint) & (labels > 0)])
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        small = [i for i in near if sizes[i] * px_area <= p.airway_max_area_mm2]
        merged = current & (labels > 0) & ~np.isin(labels, small)
        current = np.isin(labels, small) if small else np.zeros_like(current)
        tube += bool(small)
        airway[k] = current | merged
        k += step
    return airway, tube


def compute_airway(air: np.ndarray, body: np.ndarray, spacing, p: SegmentationParams) -> tuple[np.ndarray, int]:
    """(trachea and main bronchi, direction): tracked from every candidate tube at either end of the
    scan; the longest track wins. Direction is +1 when it starts at slice 0 (the head is there), -1
    when it starts at the last slice, 0 when no tube of ``airway_min_length_mm`` was found."""
    px_area = spacing[1] * spacing[2]
    reach_px = max(1, int(np.ceil(spacing[0] / min(spacing[1:]))))
    occupied = np.nonzero(air.any(axis=(1, 2)))[0]
    best, best_tube, direction = np.zeros_like(air), 0, 0
    for k0, step in ((occupied[0], 1), (occupied[-1], -1)):
        for start in _trachea_starts(air, body, k0, px_area, p):
            found, tube = _track_airway(air, start, k0, step, px_area, reach_px, p)
            if tube > best_tube or (tube == best_tube and found.sum() > best.sum()):
                best, best_tube, direction = found, tube, step
    if best_tube * spacing[0] < p.airway_min_length_mm:
        return np.zeros_like(air), 0
    return best, direction


def compute_left_right(lung: np.ndarray, body: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) lungs; low x index is the patient's right.

    The two largest components when the second holds at least 10% of the lung; otherwise the
    lung is eroded (up to 15 mm) until two such cores part and every voxel goes to the nearer
    core; a single lung is named by the side of the body its centre lies on.
    """
    total = np.count_nonzero(lung)
    labels, n = ndimage.label(lung)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    if n >= 2 and np.sort(sizes)[-2] >= 0.1 * total:
        cores = np.isin(labels, np.argsort(sizes)[-2:])
        core_labels, _ = ndimage.label(cores)
    else:
        core_labels = _eroded_cores(lung, total, spacing)
    if core_labels is None:
        cols = np.nonzero(body.any(axis=(0, 1)))[0]
        is_left = np.nonzero(lung)[2].mean() > (cols[0] + cols[-1]) / 2.0
        return (lung, np.zeros_like(lung)) if is_left else (np.zeros_like(lung), lung)
    _, nearest = ndimage.distance_transform_edt(core_labels == 0, sampling=spacing, return_indices=True)
    owner = core_labels[tuple(nearest)]
    x_mean = ndimage.mean(np.nonzero(np.ones_like(lung))[2].reshape(lung.shape), owner, [1, 2])
    left_label = 1 if x_mean[0] > x_mean[1] else 2
    left = lung & (owner == left_label)
    return left, lung & ~left


def _eroded_cores(lung: np.ndarray, total: int, spacing) -> np.ndarray | None:
    """Labels 1, 2 of two cores left by eroding the lung until it parts; None when it does not."""
    mask = lung
    for _ in range(max(1, int(np.ceil(15.0 / min(spacing[1:]))))):
        mask = ndimage.binary_erosion(mask, structure=_PLANE)
        labels, n = ndimage.label(mask)
        if n < 2:
            continue
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        big = np.argsort(sizes)[-2:]
        if sizes[big[0]] >= 0.1 * total * (np.count_nonzero(mask) / total):
            out = np.zeros_like(labels)
            out[labels == big[1]] = 1
            out[labels == big[0]] = 2
            return out
    return None


def check_field_of_view(lung: np.ndarray, padding: np.ndarray, p: SegmentationParams) -> None:
    """Raise NotMeasurable when the lungs are cut by the field of view (in-plane or along z)."""
    edge = ndimage.binary_dilation(padding, structure=_PLANE)
    if (lung[:, 0, :].any() or lung[:, -1, :].any() or lung[:, :, 0].any() or lung[:, :, -1].any()
            or (lung & edge).any()):
        raise NotMeasurable("field of view cuts the lungs in-plane (lung touches the image border or the "
                            "edge of the reconstruction circle)")
    areas = lung.sum(axis=(1, 2))
    if max(areas[0], areas[-1]) > p.max_edge_fraction * areas.max():
        raise NotMeasurable("field of view cuts the lungs along z (scan does not cover apex to base)")


def compute_pool_factors(spacing, coarse_voxel_mm: float) -> tuple[int, int, int]:
    """Integer block sizes (z, y, x) that bring each spacing up to about ``coarse_voxel_mm``."""
    return tuple(max(1, int(round(coarse_voxel_mm / s))) for s in spacing)


def compute_block_mean(hu: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Mean HU (float32) over whole blocks of ``factors`` voxels; a partial block at the far edges is dropped.

    One slab of ``factors[0]`` slices at a time (its temporaries stay small and are reused), summed
    along z, then y, then x from strided views.
    """
    shape = tuple(n // f for n, f in zip(hu.shape, factors))
    out = np.empty(shape, np.float32)
    for k in range(shape[0]):
        slab = hu[k * factors[0]:(k + 1) * factors[0]]
        acc = slab[0].astype(np.float32)
        for c in range(1, factors[0]):
            acc += slab[c]
        for axis, (n, f) in enumerate(zip(shape[1:], factors[1:])):  # rows, then columns of the slice
            lead = (slice(None),) * axis
            total = acc[lead + (slice(0, n * f, f),)].copy()
            for c in range(1, f):
                total += acc[lead + (slice(c, c + n * f, f),)]
            acc = total
        out[k] = acc
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


def _bit(code: np.ndarray, k: int) -> np.ndarray:
    """Where bit ``k`` of ``code`` is set."""
    return (code & (1 << k)) > 0


def compute_refined_masks(coarse: LungMasks, coarse_hu: np.ndarray, hu: np.ndarray, factors,
                          p: SegmentationParams) -> LungMasks:
    """Full-resolution masks from a coarse segmentation, in the box of the coarse lung, pleural
    fluid and air grown by one coarse voxel and one fine voxel (``LungMasks.box``).

    A fine voxel is lung when its coarse voxel is inside the coarse lung (eroded by one voxel),
    or is a dense coarse lung voxel (put back), or when it is aerated, its coarse voxel is within
    one voxel of the coarse lung, and neither next to the airway nor pleural air: the aerated edge
    is thus cut at full resolution. Left and right follow the nearer coarse lung; pleural fluid and
    air and the put-back voxels follow their coarse voxels.
    """
    found = coarse.lung | coarse.effusion | coarse.pneumothorax
    zs, ys, xs = (np.nonzero(found.any(axis=axes))[0] for axes in ((1, 2), (0, 2), (0, 1)))
    box = tuple(slice(max(0, (a[0] - 1) * f - 1), min(n, (a[-1] + 2) * f + 1))
                for a, f, n in zip((zs, ys, xs), factors, hu.shape))
    code = (ndimage.binary_erosion(coarse.lung) | (coarse.lung & (coarse_hu >= p.lung_air_hu))).astype(np.uint8)
    code |= (ndimage.binary_dilation(coarse.lung) & ~ndimage.binary_dilation(coarse.airway)
             & ~coarse.pneumothorax).astype(np.uint8) << 1
    code |= ndimage.binary_dilation(coarse.right).astype(np.uint8) << 2
    code |= coarse.left.astype(np.uint8) << 3
    code |= coarse.airway.astype(np.uint8) << 4
    code |= coarse.put_back.astype(np.uint8) << 5
    code |= coarse.effusion.astype(np.uint8) << 6
    code |= coarse.pneumothorax.astype(np.uint8) << 7
    masks = {name: compute_mapped_zeros(tuple(b.stop - b.start for b in box)) for name in MASK_FIELDS}
    pleural = [(name, k) for name, k in (("effusion", 6), ("pneumothorax", 7)) if getattr(coarse, name).any()]
    for start in range(box[0].start, box[0].stop, REFINE_SLAB_SLICES):  # small temporaries, reused
        part = (slice(start, min(start + REFINE_SLAB_SLICES, box[0].stop)),) + box[1:]
        fine = _upsample(code, factors, part)
        aerated = hu[part] < p.lung_air_hu
        out = {name: mask[start - box[0].start:part[0].stop - box[0].start] for name, mask in masks.items()}
        lung = out["lung"]
        np.logical_or(_bit(fine, 0), _bit(fine, 1) & aerated, out=lung)
        np.logical_and(lung & _bit(fine, 2), ~_bit(fine, 3), out=out["right"])
        np.logical_and(lung, ~out["right"], out=out["left"])
        np.logical_and(_bit(fine, 4), aerated, out=out["airway"])
        np.logical_and(lung & _bit(fine, 5), ~aerated, out=out["put_back"])
        for name, k in pleural:  # an empty one stays untouched zeros
            np.logical_and(_bit(fine, k), ~lung, out=out[name])
    return LungMasks(**masks, airway_found=coarse.airway_found, findings=coarse.findings, box=box, shape=hu.shape)


@dataclass(frozen=True)
class ClassicalSegmenter:
    """Threshold-and-morphology lung segmentation (see the module docstring).

    Runs on a block-averaged copy with voxels of about ``coarse_voxel_mm`` (smoothed in-plane when
    its noise is above ``coarse_noise_hu``) and refines the aerated lung edge at full resolution
    (``compute_refined_masks``).
    """

    params: SegmentationParams = SegmentationParams()
    coarse_voxel_mm: float = 3.0
    coarse_noise_hu: float = 20.0
    name: str = "classical"
    version: str = "2.5.0"

    def segment_lungs(self, volume: CTVolume) -> LungMasks:
        factors = compute_pool_factors(volume.spacing_mm, self.coarse_voxel_mm)
        spacing = tuple(s * f for s, f in zip(volume.spacing_mm, factors))
        if factors == (1, 1, 1):
            coarse_hu, outside = volume.hu, volume.hu <= PADDING_HU
        else:
            coarse_hu = compute_block_mean(volume.hu, factors)
            outside = coarse_hu <= PADDING_HU  # HU are clipped at PADDING_HU: every voxel of the block is
        padding = compute_padding_mask(outside, spacing)
        noise = compute_noise_hu(coarse_hu, compute_body_mask(coarse_hu, self.params.body_hu, padding), padding, spacing)
        bone = coarse_hu >= self.params.bone_hu  # before smoothing, which thins the ribs
        sigma = compute_smoothing_px(noise, self.coarse_noise_hu, spacing)
        smoothed = compute_smoothed(coarse_hu, sigma)
        dark = None
        if sigma[0] > 0:  # pleural air is read on a median, which keeps a thin layer dark (see compute_local_median)
            near = ndimage.binary_dilation(smoothed < PLEURAL_CANDIDATE_HU, iterations=2)  # and the wall beside it
            dark = compute_local_median(coarse_hu, near, smoothed)
        coarse = self.segment_array(smoothed, spacing, outside, bone, dark)
        return compute_refined_masks(coarse, coarse_hu, volume.hu, factors, self.params)

    def segment_array(self, hu: np.ndarray, spacing, outside: np.ndarray | None = None,
                      bone: np.ndarray | None = None, dark: np.ndarray | None = None) -> LungMasks:
        """The pipeline of the module docstring at the array's own resolution (no smoothing, no refinement).

        ``outside``: voxels at or below -1024 HU; ``bone``: voxels at or above ``bone_hu`` (both by
        default computed from ``hu``); ``dark``: a second reading of the HU (default ``hu``) in which
        pleural air may be darker than ``pleural_air_hu`` instead, and whose tissue is not air.
        """
        p = self.params
        bone = hu >= p.bone_hu if bone is None else bone
        dark = hu if dark is None else dark
        padding = compute_padding_mask(hu <= PADDING_HU if outside is None else outside, spacing)
        body = compute_body_mask(hu, p.body_hu, padding)
        air, dropped = compute_aerated_lung(hu, body, padding, spacing, p)
        check_chest_cut(hu, body, padding, np.nonzero(air.any(axis=(1, 2)))[0], spacing, p)
        airway, direction = compute_airway(air, body, spacing, p)
        if direction < 0:  # the head is at the last slice: work head first, give the masks back as given
            flipped = self._segment_head_first(hu[::-1], body[::-1], padding[::-1], air[::-1], dropped[::-1],
                                               airway[::-1], bone[::-1], spacing, dark[::-1])
            return LungMasks(**{f: (getattr(flipped, f)[::-1] if isinstance(getattr(flipped, f), np.ndarray)
                                    else getattr(flipped, f)) for f in flipped.__dataclass_fields__})
        return self._segment_head_first(hu, body, padding, air, dropped, airway, bone, spacing, dark,
                                        found=direction != 0)

    def _segment_head_first(self, hu, body, padding, air, dropped, airway, bone, spacing, dark,
                            found: bool = True) -> LungMasks:
        p = self.params
        # dark on either image; where the median (``dark``) says tissue, the smoothing blurred the wall into the air
        pleural_air = compute_pleural_air(air & ~airway & (dark < p.lung_air_hu), np.minimum(hu, dark), body,
                                          spacing, air_hu=p.pleural_air_hu,
                                          min_ml=p.pleural_air_min_ml, min_wall_share=p.pleural_air_wall_share)
        aerated = air & ~airway & ~pleural_air
        left, right = compute_left_right(aerated, body, spacing)
        dense = (hu >= p.lung_air_hu) & (hu < p.dense_max_hu) & body & ~padding
        if pleural_air.any():  # the chest wall and mediastinum around pleural air are not lung: the air parts them
            dense &= ~ndimage.binary_dilation(pleural_air, iterations=2)
        geo = compute_chest_geometry(body, bone & body, spacing, p.rib_window_mm)
        filled, walls, sides = {}, {}, {"left": left, "right": right}
        for name, side in sides.items():
            lung = compute_filled_holes(side, dense, spacing, p.close_radius_mm) & ~airway
            walls[name] = compute_wall_map(lung, geo, tol_mm=p.wall_tol_mm, smooth_deg=p.wall_smooth_deg,
                                           smooth_mm=p.wall_smooth_mm)
            gaps = compute_gap_rays(walls[name], tol_mm=p.wall_tol_mm, min_contact_share=p.gap_contact_share,
                                    max_open_head_share=p.gap_open_head_share)
            filled[name] = lung | compute_wall_fill(lung, dense, geo, walls[name], gaps)
        chest = _Chest(body=body, dense=dense, geo=geo, airway=airway, spacing=spacing,
                       deepest=max(_deepest_floor(filled[n]) for n in filled),
                       fluid_hu_mean=ndimage.uniform_filter(hu.astype(np.float32), size=3))  # water vs tissue: ~5 HU
        effusion = np.zeros_like(air)
        candidates = {}
        for name, other in (("left", "right"), ("right", "left")):
            filled[name], fluid, candidates[name] = _put_back_lung(filled[name], sides[name], filled[other],
                                                                   walls[name], chest, p)
            effusion |= fluid
        left_f = filled["left"]
        right_f = filled["right"] & ~left_f
        both = left_f | right_f
        check_field_of_view(both, padding, p)
        findings = _dropped_findings(dropped, both, geo.skin_mm, spacing, p)
        findings += _not_put_back_findings({"left": left_f, "right": right_f}, candidates, both | effusion, geo,
                                           chest.deepest, p)
        return LungMasks(lung=both, left=left_f, right=right_f, airway=airway, effusion=effusion & ~both,
                         pneumothorax=pleural_air, put_back=both & (hu >= p.lung_air_hu), airway_found=found,
                         findings=findings)


@dataclass(frozen=True)
class _Chest:
    """What the put-back of either lung reads: the body, the dense tissue it may take, the chest's
    geometry, the airway, the deepest lung floor (slice) and a 3x3x3 mean of HU (for pleural fluid)."""

    body: np.ndarray
    dense: np.ndarray
    geo: ChestGeometry
    airway: np.ndarray
    spacing: tuple[float, float, float]
    deepest: int
    fluid_hu_mean: np.ndarray


def _put_back_lung(lung: np.ndarray, aerated: np.ndarray, other: np.ndarray, wall: WallMap, chest: _Chest,
                   p: SegmentationParams) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """One lung (its holes and chest-wall fill done) with the enclosed, floor and dent fills, its pleural
    fluid taken out (see the module doc); ``aerated``: its aerated part, ``other``: the other lung.

    Returns (lung, pleural fluid, (dense tissue it could have taken, the region inside its ribs)).
    """
    body, dense, geo, spacing = chest.body, chest.dense, chest.geo, chest.spacing
    inside = _inside_wall(wall, geo)
    diaphragm = compute_diaphragm(lung, other, dense, inside, spacing, tol_mm=p.floor_tol_mm,
                                  deepest=chest.deepest, max_rise=p.diaphragm_max_rise)
    within_ribs = _inside_wall(wall, geo, ribs=True)
    reachable = dense & within_ribs & ~other
    below = np.zeros_like(lung)
    if diaphragm is not None:
        z = np.arange(lung.shape[0])[:, None, None]
        below = (z > diaphragm[None]) & lung.any(axis=0)[None] & body
    allowed = reachable & ~below
    sector = wall.has_lung.any(axis=0)
    # the wall estimate lies about half a voxel inside the pleura (it is measured at the centres of the
    # lung's outermost voxels): the enclosed fill's fence is moved out to the pleura
    pleura = _inside_wall(wall, geo, p.pleura_margin_vox * min(spacing[1:]), ribs=True)
    fence = (body & ~pleura & sector[geo.angle]) | below
    enclosed = compute_enclosed_fill(lung, fence, dense & pleura & ~other & ~below, min_planes=2)
    lung = lung | enclosed
    if diaphragm is not None:
        floor_wall = compute_wall_map(lung, geo, tol_mm=p.wall_tol_mm, smooth_deg=p.wall_smooth_deg,
                                      smooth_mm=p.wall_smooth_mm)
        notch, band = compute_notch_rays(floor_wall, tol_vox=p.floor_tol_mm / spacing[0],
                                         smooth_deg=p.wall_smooth_deg, min_band_mm=p.floor_min_band_mm)
        lung = lung | compute_floor_fill(lung, allowed, geo, floor_wall, notch, band, diaphragm)
    lung = lung | compute_dent_fill(lung, allowed, spacing, p.dent_radius_mm)
    fluid = compute_effusion(lung, aerated, chest.fluid_hu_mean, body & inside & ~other, inside, spacing,
                             fluid_hu=p.fluid_hu, min_ml=p.effusion_min_ml)
    if fluid.any():  # against pleural fluid that outer layer is the fluid's edge, not lung
        lung &= ~(enclosed & ~inside)
    return lung & ~fluid & ~chest.airway, fluid, (reachable, within_ribs)


def _not_put_back_findings(sides: dict[str, np.ndarray], candidates: dict[str, tuple[np.ndarray, np.ndarray]],
                           taken: np.ndarray, geo, deepest: int, p: SegmentationParams) -> tuple[Finding, ...]:
    """Findings on dense tissue seen but not put back: ``hidden_border`` (cm2 of chest wall the lung is
    kept from), ``left_out`` (mL of thick dense tissue next to a lung, inside its rib cage) and
    ``open_border`` (cm2 where thick disease put back meets thick dense tissue left out, above the
    deepest floor and away from the other lung and pleural fluid).

    ``candidates``: per side, the dense tissue it could have taken and the region inside its ribs;
    ``taken``: the lungs and pleural fluid.
    """
    hidden, open_border, left_out = 0.0, 0.0, np.zeros_like(taken)
    for name, side in sides.items():
        wall = compute_wall_map(side, geo, tol_mm=p.wall_tol_mm, smooth_deg=p.wall_smooth_deg, smooth_mm=p.wall_smooth_mm)
        hidden += compute_hidden_border_cm2(wall, geo)
        dense, inside = candidates[name]
        left_out |= compute_left_out(side, dense & ~taken, geo, wall, inside, p.left_out_core_mm,
                                     1 if name == "left" else -1, deepest)
        above_floor = dense & ~(taken & ~side)
        above_floor[deepest + 1:] = False
        open_border += compute_open_border_cm2(side, above_floor, p.left_out_core_mm, geo.spacing)
    left_out_ml = float(np.count_nonzero(left_out)) * float(np.prod(geo.spacing)) / 1000.0
    findings: tuple[Finding, ...] = ()
    if left_out_ml > 0:
        findings += (Finding("left_out", f"{left_out_ml:.0f} mL of dense tissue next to the lung, inside the chest "
                                         "wall, was not counted as lung (consolidation there?)", left_out_ml),)
    if open_border > 0:
        findings += (Finding("open_border", f"dense disease put back as lung meets dense tissue outside it (mediastinum, "
                                            f"heart or diaphragm) over {open_border:.0f} cm2 with no edge between them: "
                                            "the lung's border there is estimated", open_border),)
    if hidden > 0:
        findings += (Finding("hidden_border", f"dense tissue keeps the lung from the chest wall over {hidden:.0f} cm2 "
                                              "and was not counted as lung (consolidation or fluid there?)", hidden),)
    return findings


def _deepest_floor(lung: np.ndarray) -> int:
    """The deepest slice where this lung rests on dense tissue (its lowest point)."""
    zs = np.nonzero(lung.any(axis=(1, 2)))[0]
    return int(zs[-1]) if zs.size else 0


def _inside_wall(wall, geo, margin_mm: float = 0.0, ribs: bool = False) -> np.ndarray:
    """Voxels deeper than the estimated chest wall less ``margin_mm`` (where there is no estimate: deeper than
    the thinnest wall seen); with ``ribs``, no deeper than the rib cage's inner surface (the pleura)."""
    z = np.arange(geo.skin_mm.shape[0])[:, None, None]
    thickness = wall.wall_mm - margin_mm
    if ribs:  # thinner where the ribs say so; no estimate stays none
        thickness = np.where(np.isfinite(geo.rib_mm), np.minimum(thickness, geo.rib_mm), thickness)
    fallback = np.nanmin(thickness) if np.isfinite(thickness).any() else 0.0
    flat = np.nan_to_num(thickness, nan=fallback).ravel()
    return geo.skin_mm >= flat[z * thickness.shape[1] + geo.angle]


def _dropped_findings(dropped: np.ndarray, lung: np.ndarray, skin_mm: np.ndarray, spacing,
                      p: SegmentationParams) -> tuple[Finding, ...]:
    """A finding when air components dropped by the size rule lie inside the chest, not under the
    lungs (bowel gas is) and not in the skin's folds (reaching at least 10 mm below the skin)."""
    dropped = dropped & (skin_mm >= 10.0)
    if not dropped.any():
        return ()
    under_lung = np.logical_or.accumulate(lung, axis=0)
    labels, n = ndimage.label(dropped)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    under = np.bincount(labels[under_lung & dropped], minlength=n + 1)
    lost = [i for i in range(1, n + 1) if sizes[i] * voxel_ml >= p.report_dropped_ml and under[i] < 0.5 * sizes[i]]
    if not lost:
        return ()
    ml = sum(sizes[i] for i in lost) * voxel_ml
    return (Finding("dropped_air", f"{len(lost)} air region(s) of {ml:.0f} mL inside the body were not counted as "
                                   f"lung (each smaller than {p.min_lung_fraction:.0%} of the largest lung region)", ml),)
