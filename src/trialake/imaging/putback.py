"""Dense disease back into the lungs; pleural fluid and pleural air kept out (classical segmenter).

Every function works on the segmenter's coarse grid (voxels of about 3 mm), z from the head
(index 0) to the feet, y posterior, x towards the patient's left. A lung arrives as its aerated
part; dense tissue (consolidation, collapsed lung, dependent density, vessels, lesions) is put back
by rules that each need 3-D evidence:

1. ``compute_filled_holes``: holes of the lung in an axial slice (vessels and lesions surrounded by
   aerated lung), unless the hole continues into dense tissue outside the lung in the slice above
   or below: a liver or spleen dome seen as an island is joined to the abdomen under it.
2. ``compute_wall_fill``: along rays from the centre of the body, dense tissue between the
   outermost lung and the inner surface of the chest wall. The chest wall's thickness is measured
   where the lung touches it and interpolated (smoothly, around the chest and along z) where dense
   disease hides it; a region where the lung keeps away from the wall is filled only when it is
   mostly bordered, in the (z, angle) map, by places where the lung touches the wall, lies below
   the apex and is not open towards the head.
3. ``compute_enclosed_fill``: dense tissue that the lung, the chest wall beside it and the abdomen
   under its diaphragm enclose in two of the axial, coronal and sagittal planes. The diaphragm
   (``compute_diaphragm``) is a quadratic dome fitted as the lower envelope of where aerated lung
   (not tissue already put back) rests on dense tissue in the lowest part of the lung (disease
   only raises that floor), capped at the lung's deepest point. Here the chest wall is no thicker
   than the rib cage allows (``compute_rib_depth``: the pleura lies no deeper than the ribs' inner
   surface), where an estimate from the lung alone, interpolated across a large consolidation, can
   be a voxel too thick.
4. ``compute_floor_fill``: where the lung's lower end (its recess line around the chest) has a
   notch (``compute_notch_rays``), dense tissue down to the diaphragm within the lung's depth.
5. ``compute_dent_fill``: a 3-D closing of the lung with a ball, restricted to dense tissue, fills
   dents narrower than the ball (disease against the heart or the mediastinum); the heart, much
   wider, keeps the ball out.

Pleural fluid (``compute_effusion``) and pleural air (``compute_pleural_air``) are found in the
pleural space and are never lung; the tissue around pleural air (chest wall, mediastinum) is never
put back. ``compute_hidden_border_cm2`` (dense tissue keeping the lung from the chest wall) and
``compute_left_out`` (thick dense tissue next to the lung, inside its rib cage, lateral to its
medial edge) measure what was seen but not put back, for flags; ``compute_open_border_cm2`` (thick
disease put back meeting thick tissue left out, with no HU edge between them) measures where the
lung's border is a guess.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from trialake.imaging.morphology import compute_bounding_box

_PLANE = np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]],
                   [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                   [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], bool)  # 4-connectivity within each slice
#: Weight, in the diaphragm's fit, of a floor point less than the tolerance above the dome (points
#: more above it weigh nothing): disease only ever raises the floor, so the dome is fitted as the
#: floor's lower envelope.
DEEP_WEIGHT = 0.1
#: Angle bins of the rays around each slice's body centre.
N_ANGLES = 180
#: Rays (2 degrees each) at the lung's angular edge (``_angular_edge``); a region where the lung keeps
#: away from the wall is not filled when at least ``EDGE_SHARE`` of its rays are such.
EDGE_RAYS = 3
EDGE_SHARE = 0.8
#: A layer of dense tissue at least this thick between lung and chest wall is reported when not put back
#: (thinner gaps are the partial-volume and lesion edges of a lung that does touch the wall).
HIDDEN_DEPTH_MM = 12.0


@dataclass(frozen=True)
class ChestGeometry:
    """Per-voxel geometry of the chest (coarse grid).

    skin_mm: distance to the body outline in the axial slice (0 outside the body);
    radius_mm, angle: distance from and angle bin around the slice's body centre;
    rib_mm: per (z, angle) ray, the distance from the skin of the rib cage's inner surface (the
    pleura can lie no deeper), NaN where the ray meets no rib nearby.
    """

    skin_mm: np.ndarray
    radius_mm: np.ndarray
    angle: np.ndarray
    spacing: tuple[float, float, float]
    rib_mm: np.ndarray

    def ray_index(self, mask: np.ndarray) -> np.ndarray:
        """Flat (z, angle) index of every True voxel of ``mask``."""
        z = np.nonzero(mask)[0]
        return z * N_ANGLES + self.angle[mask]


def compute_chest_geometry(body: np.ndarray, bone: np.ndarray, spacing, rib_window_mm: float) -> ChestGeometry:
    """Skin distance, radius and angle around the body centre, slice by slice, and the rib cage's depth."""
    shape = body.shape
    skin = np.zeros(shape, np.float32)
    radius = np.zeros(shape, np.float32)
    angle = np.zeros(shape, np.int16)
    yy = np.arange(shape[1], dtype=np.float32)[:, None]
    xx = np.arange(shape[2], dtype=np.float32)[None, :]
    for k in np.nonzero(body.any(axis=(1, 2)))[0]:
        skin[k] = ndimage.distance_transform_edt(body[k], sampling=spacing[1:])
        cy, cx = ndimage.center_of_mass(body[k])
        dy, dx = (yy - cy) * spacing[1], (xx - cx) * spacing[2]
        radius[k] = np.hypot(dy, dx)
        angle[k] = (np.floor((np.arctan2(dy, dx) + np.pi) / (2 * np.pi) * N_ANGLES).astype(np.int16)) % N_ANGLES
    rib = compute_rib_depth(bone & body, skin, angle, spacing, rib_window_mm)
    return ChestGeometry(skin, radius, angle, tuple(spacing), rib)


def compute_rib_depth(bone: np.ndarray, skin_mm: np.ndarray, angle: np.ndarray, spacing,
                      window_mm: float) -> np.ndarray:
    """(z, angle): skin distance of the deepest bone on each ray plus one voxel (the inner surface of the
    rib, not its centre), the largest within ``window_mm`` along z (ribs and intercostal spaces
    alternate; the pleura runs on smoothly). Bone deeper than a rib (spine, contrast in the heart)
    only makes the value larger, so it never makes the chest wall thinner than it is. NaN without bone.
    """
    nz = bone.shape[0]
    deepest = np.full(nz * N_ANGLES, -np.inf, np.float32)
    z = np.nonzero(bone)[0]
    np.maximum.at(deepest, z * N_ANGLES + angle[bone], skin_mm[bone])
    deepest = deepest.reshape(nz, N_ANGLES)
    half = max(1, int(round(window_mm / spacing[0])))
    widest = ndimage.maximum_filter1d(deepest, 2 * half + 1, axis=0, mode="nearest")
    return np.where(np.isfinite(widest), widest + min(spacing[1:]), np.nan).astype(np.float32)


def compute_filled_holes(side: np.ndarray, dense: np.ndarray, spacing, close_radius_mm: float) -> np.ndarray:
    """The lung with its in-plane holes filled where 3-D evidence allows (see the module doc).

    A per-slice closing of ``close_radius_mm`` first joins vessels that enter at the hilum. A hole
    (3-D component of the per-slice holes of the closed lung) is rejected when, above or below it,
    dense tissue that is neither lung nor hole covers at least half of its largest cross-section:
    an organ dome under the lung, not a lesion or a vessel inside it.
    """
    if not side.any():
        return side
    box = compute_bounding_box(side, pad=(1, int(np.ceil(close_radius_mm / min(spacing[1:]))) + 1, None))
    crop = side[box]
    disk = _ellipsoid(close_radius_mm, (np.inf, *spacing[1:]))  # one slice thick
    closed = ndimage.binary_closing(crop, structure=disk) | crop
    holes = ndimage.binary_fill_holes(closed, structure=_PLANE) & ~crop
    labels, n = ndimage.label(holes)
    if n:
        outside = dense[box] & ~holes & ~crop
        nz = holes.shape[0]
        z = np.nonzero(holes)[0]
        per_slice = np.bincount(labels[holes] * nz + z, minlength=(n + 1) * nz).reshape(n + 1, nz)
        largest = per_slice.max(axis=1)
        worst = np.zeros(n + 1)
        for shift in (1, -1):  # dense tissue outside the lung just below, then just above
            under = np.zeros_like(holes)
            if shift == 1:
                under[:-1] = holes[:-1] & outside[1:]
            else:
                under[1:] = holes[1:] & outside[:-1]
            worst = np.maximum(worst, np.bincount(labels[under], minlength=n + 1))
        keep = worst < 0.5 * largest
        keep[0] = False
        holes = keep[labels]
    out = np.zeros_like(side)
    out[box] = crop | holes
    return out


def _ellipsoid(radius_mm: float, spacing) -> np.ndarray:
    """Structuring element: the voxels within ``radius_mm`` of the centre (an infinite spacing: one voxel thick)."""
    r = radius_mm / np.asarray(spacing, float)
    grid = np.ogrid[tuple(slice(-int(v), int(v) + 1) for v in r)]
    return sum((g / max(v, 1e-6)) ** 2 for g, v in zip(grid, r)) <= 1.0


def _core_ball(core_mm: float, spacing) -> np.ndarray:
    """Structuring element that keeps only tissue thicker than ``2 * core_mm``: the ball of ``core_mm``,
    reaching at least one voxel along each axis (on voxels coarser than ``core_mm`` a one-voxel ball
    would keep everything)."""
    return _ellipsoid(core_mm, np.minimum(np.asarray(spacing, float), core_mm))


@dataclass(frozen=True)
class WallMap:
    """The chest wall as seen from one lung, per (z, angle) ray.

    reach_mm, inner_mm: radius of the outermost and innermost lung voxel (-inf and inf without lung
    on the ray); seen_mm: the outermost one's
    distance from the skin; wall_mm: estimated thickness of the chest wall (NaN where no estimate);
    contact: the lung touches the wall there.
    """

    reach_mm: np.ndarray
    inner_mm: np.ndarray
    seen_mm: np.ndarray
    wall_mm: np.ndarray
    contact: np.ndarray

    @property
    def has_lung(self) -> np.ndarray:
        return np.isfinite(self.reach_mm)


def compute_wall_map(lung: np.ndarray, geo: ChestGeometry, *, tol_mm: float, smooth_deg: float,
                     smooth_mm: float) -> WallMap:
    """Wall thickness per ray: a lower envelope of where the lung reaches, smoothed (see module doc)."""
    nz = lung.shape[0]
    idx = geo.ray_index(lung)
    reach = np.full(nz * N_ANGLES, -np.inf, np.float32)
    inner = np.full(nz * N_ANGLES, np.inf, np.float32)
    seen = np.full(nz * N_ANGLES, np.inf, np.float32)
    np.maximum.at(reach, idx, geo.radius_mm[lung])
    np.minimum.at(inner, idx, geo.radius_mm[lung])
    np.minimum.at(seen, idx, geo.skin_mm[lung])
    reach, inner, seen = (a.reshape(nz, N_ANGLES) for a in (reach, inner, seen))
    valid = np.isfinite(seen)
    sigma = (smooth_mm / geo.spacing[0], smooth_deg / (360.0 / N_ANGLES))
    use = valid.copy()
    wall = np.full(seen.shape, np.nan, np.float32)
    for _ in range(12):
        num = ndimage.gaussian_filter(np.where(use, seen, 0.0).astype(np.float32), sigma, mode=("nearest", "wrap"))
        den = ndimage.gaussian_filter(use.astype(np.float32), sigma, mode=("nearest", "wrap"))
        wall = np.where(den > 0.02, num / np.maximum(den, 1e-6), np.nan).astype(np.float32)
        new = valid & (seen <= wall + tol_mm)
        if np.array_equal(new, use):
            break
        use = new
    return WallMap(reach_mm=reach, inner_mm=inner, seen_mm=seen, wall_mm=wall, contact=use)


def _wrapped_labels(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels of a (z, angle) map whose angle axis wraps around."""
    labels, n = ndimage.label(mask)
    if n:
        parent = np.arange(n + 1)

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i
        for a, b in zip(labels[:, 0], labels[:, -1]):
            if a and b:
                parent[find(a)] = find(b)
        roots = np.array([find(i) for i in range(n + 1)])
        _, labels_flat = np.unique(roots[labels], return_inverse=True)
        labels = labels_flat.reshape(labels.shape)
        n = int(labels.max())
    return labels, n


def compute_gap_rays(wall: WallMap, *, tol_mm: float, min_contact_share: float,
                     max_open_head_share: float) -> np.ndarray:
    """(z, angle) rays where dense disease hides the wall: the lung keeps away from the wall there,
    the region is mostly bordered by rays where it touches the wall, it is not open towards the
    head, and it is not a band of rays grazing the lung's medial tip (``_angular_edge``); above
    the first slice where the lung touches the wall on half of its rays (the apex) nothing is filled."""
    gap = wall.has_lung & np.isfinite(wall.wall_mm) & (wall.seen_mm > wall.wall_mm + tol_mm)
    gap[:compute_apex_end(wall)] = False  # the apex keeps away from the wall by nature
    edge = _angular_edge(wall.has_lung, EDGE_RAYS)
    labels, n = _wrapped_labels(gap)
    if n == 0:
        return gap
    out = np.zeros_like(gap)
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        zs = slice(max(0, sl[0].start - 1), min(gap.shape[0], sl[0].stop + 1))
        comp = labels[zs] == i
        ring = _ring_wrapped(comp) & ~comp
        contact = wall.contact[zs][ring].mean() if ring.any() else 0.0
        above = np.zeros_like(comp)
        above[:-1] = comp[1:] & ~comp[:-1]
        head_open = (~wall.has_lung[zs][above]).mean() if above.any() else 1.0
        grazing = edge[zs][comp].mean() >= EDGE_SHARE  # a band along the lung's medial tip, not disease
        if contact >= min_contact_share and head_open <= max_open_head_share and not grazing:
            out[zs] |= comp
    return out


def _angular_edge(has_lung: np.ndarray, width: int) -> np.ndarray:
    """Rays of a (z, angle) map within ``width`` rays (around the chest) of a ray without lung.

    There a ray grazes the lung's medial tip (beside the spine or the heart): its outermost lung
    voxel is where it leaves the tip, not where the lung meets the chest wall.
    """
    near = np.zeros_like(has_lung)
    for shift in range(1, width + 1):
        near |= np.roll(~has_lung, shift, axis=1) | np.roll(~has_lung, -shift, axis=1)
    return has_lung & near


def compute_apex_end(wall: WallMap) -> int:
    """First slice (from the head) where the lung touches the wall on at least half of its rays."""
    rays = wall.has_lung.sum(axis=1)
    share = wall.contact.sum(axis=1) / np.maximum(rays, 1)
    touching = np.nonzero((rays > 0) & (share >= 0.5))[0]
    return int(touching[0]) if touching.size else wall.has_lung.shape[0]


def _ring_wrapped(comp: np.ndarray) -> np.ndarray:
    """4-neighbours of a (z, angle) mask, the angle axis wrapping."""
    out = comp.copy()
    out[1:] |= comp[:-1]
    out[:-1] |= comp[1:]
    out |= np.roll(comp, 1, axis=1) | np.roll(comp, -1, axis=1)
    return out


def compute_wall_fill(lung: np.ndarray, dense: np.ndarray, geo: ChestGeometry, wall: WallMap,
                      gaps: np.ndarray) -> np.ndarray:
    """Dense voxels between the outermost lung and the inner chest wall on the gap rays, joined to the lung."""
    z = np.arange(lung.shape[0])[:, None, None]
    ray = z * N_ANGLES + geo.angle
    flat_gap, flat_reach = gaps.ravel(), wall.reach_mm.ravel()
    flat_wall = np.nan_to_num(wall.wall_mm, nan=np.inf).ravel()
    candidate = dense & ~lung & flat_gap[ray]
    candidate &= (geo.radius_mm > flat_reach[ray]) & (geo.skin_mm >= flat_wall[ray])
    return _joined_to(candidate, lung)


def _joined_to(candidate: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """Voxels of ``candidate`` connected (26-neighbours) to ``lung``."""
    if not candidate.any():
        return candidate
    labels, n = ndimage.label(candidate | lung, structure=np.ones((3, 3, 3), bool))
    keep = np.zeros(n + 1, bool)
    keep[np.unique(labels[lung])] = True
    keep[0] = False
    return keep[labels] & candidate


def compute_notch_rays(wall: WallMap, *, tol_vox: float, smooth_deg: float,
                       min_band_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(notch, band): (z, angle) rays below the lung's observed lower end where the costophrenic
    recess should still hold lung, and per angle the depth of lung (mm from the wall) to put back.

    The recess line (the deepest lung on each ray) runs smoothly around the chest; dense disease at
    the base cuts a notch into it. The expected line is a smooth deep envelope of the observed one
    (shallower outliers left out, as for the wall); the notch is the rays between the two where the
    lung ends abruptly, at least ``min_band_mm`` thick in its last slice (where the lung thins out
    to nothing above the diaphragm or the heart, it ended there).
    """
    nz = wall.reach_mm.shape[0]
    has = wall.has_lung
    seen = has.any(axis=0)
    last = np.where(seen, nz - 1 - np.argmax(has[::-1], axis=0), 0)
    deep = np.where(seen, last, -1).astype(np.float32)
    cols = np.arange(N_ANGLES)
    band = np.where(seen, wall.reach_mm[last, cols] - wall.inner_mm[last, cols], 0.0)
    sigma = smooth_deg / (360.0 / N_ANGLES)
    use = seen.copy()
    expected = deep
    for _ in range(12):
        num = ndimage.gaussian_filter1d(np.where(use, deep, 0.0).astype(np.float32), sigma, mode="wrap")
        den = ndimage.gaussian_filter1d(use.astype(np.float32), sigma, mode="wrap")
        expected = np.where(den > 0.02, num / np.maximum(den, 1e-6), -1.0)
        new = seen & (deep >= expected - tol_vox)
        if np.array_equal(new, use):
            break
        use = new
    expected = np.minimum(expected, deep[seen].max() if seen.any() else -1)
    notched = seen & (expected - deep >= tol_vox) & (band >= min_band_mm)
    z = np.arange(nz)[:, None]
    return notched[None, :] & (z > deep[None, :]) & (z <= expected[None, :]), np.where(notched, band, 0.0)


def compute_diaphragm(lung: np.ndarray, other: np.ndarray, dense: np.ndarray, inside_wall: np.ndarray, spacing, *,
                      tol_mm: float, deepest: int, max_rise: float) -> np.ndarray | None:
    """Slice index of the diaphragm under every column (y, x), or None when it cannot be modelled.

    A quadratic dome is fitted to where aerated lung rests on dense tissue (a column whose lowest
    lung voxel is dense tissue already put back ends where a put-back rule stopped, not on the
    diaphragm) in the lowest ``max_rise`` of the lung's height, leaving out points on the flat cap
    at ``deepest`` and points shallower
    than the dome (disease on the diaphragm, the flanks of the heart); it is capped at ``deepest``
    and rises at most ``max_rise`` of the lung's height above it.
    """
    nz = lung.shape[0]
    if not lung.any():
        return None
    columns = lung.any(axis=0)
    low = nz - 1 - np.argmax(lung[::-1], axis=0)
    ys, xs = np.nonzero(columns & (low + 1 < nz))
    below = low[ys, xs] + 1
    on_floor = (dense[below, ys, xs] & ~dense[below - 1, ys, xs] & ~other[below, ys, xs]
                & inside_wall[below, ys, xs])
    ys, xs, zl = ys[on_floor], xs[on_floor], low[ys, xs][on_floor].astype(float)
    tol = tol_mm / spacing[0]
    top = deepest - max_rise * (deepest - np.nonzero(lung.any(axis=(1, 2)))[0][0])
    dome = (zl < deepest - tol) & (zl >= top)
    if dome.sum() < 12:
        return None

    def design(y, x):
        y, x = y * spacing[1], x * spacing[2]
        return np.stack([np.ones_like(y), y, x, y * y, x * x, x * y], axis=-1)
    a, b = design(ys[dome].astype(float), xs[dome].astype(float)), zl[dome]
    weight = np.ones(len(b))
    for _ in range(20):
        if np.count_nonzero(weight) < 12:
            return None
        root = np.sqrt(weight)
        coef, *_ = np.linalg.lstsq(a * root[:, None], b * root, rcond=None)
        residual = b - a @ coef  # > 0: the lung reaches deeper than the dome there
        new = np.where(residual >= 0, 1.0, np.where(residual >= -tol, DEEP_WEIGHT, 0.0))
        if np.array_equal(new, weight):
            break
        weight = new
    gy, gx = np.mgrid[0:lung.shape[1], 0:lung.shape[2]].astype(float)
    return np.clip(design(gy, gx) @ coef, top, deepest)


def compute_floor_fill(lung: np.ndarray, dense: np.ndarray, geo: ChestGeometry, wall: WallMap,
                       notch: np.ndarray, band_mm: np.ndarray, diaphragm: np.ndarray) -> np.ndarray:
    """Dense voxels on the notch rays above the diaphragm and within the band's depth from the
    chest wall, joined to the lung."""
    z = np.arange(lung.shape[0])[:, None, None]
    ray = z * N_ANGLES + geo.angle
    depth = geo.skin_mm - np.nan_to_num(wall.wall_mm, nan=np.inf).ravel()[ray]
    candidate = dense & ~lung & notch.ravel()[ray] & (z <= diaphragm[None])
    candidate &= (depth >= 0) & (depth <= band_mm[geo.angle])
    return _joined_to(candidate, lung)


def compute_enclosed_fill(lung: np.ndarray, closed: np.ndarray, allowed: np.ndarray, *, min_planes: int) -> np.ndarray:
    """Voxels of ``allowed`` that the lung together with ``closed`` (the chest wall beside this lung,
    the abdomen under its diaphragm) encloses in at least ``min_planes`` of the axial, coronal and
    sagittal planes, joined to the lung.

    Disease against the wall or on the diaphragm is enclosed in two or three planes; the heart and
    the mediastinum open towards the middle of the chest in the axial and coronal planes.
    """
    fence = lung | closed
    votes = np.zeros(lung.shape, np.uint8)
    for axis in range(3):
        plane = np.zeros((3, 3, 3), bool)
        index = [1, 1, 1]
        for a in range(3):
            if a != axis:
                for d in (0, 2):
                    index[a] = d
                    plane[tuple(index)] = True
                    index[a] = 1
        plane[1, 1, 1] = True
        votes += ndimage.binary_fill_holes(fence, structure=plane) & ~fence
    return _joined_to(allowed & (votes >= min_planes), lung)


def compute_dent_fill(lung: np.ndarray, dense: np.ndarray, spacing, radius_mm: float) -> np.ndarray:
    """Dense voxels that a 3-D closing of the lung with a ball of ``radius_mm`` adds (via distance maps)."""
    if not lung.any():
        return np.zeros_like(lung)
    pad = tuple(int(np.ceil(radius_mm / s)) + 1 for s in spacing)
    box = compute_bounding_box(lung, pad=pad)
    crop = np.pad(lung[box], [(p, p) for p in pad])
    grown = ndimage.distance_transform_edt(~crop, sampling=spacing) <= radius_mm
    closed = ndimage.distance_transform_edt(grown, sampling=spacing) > radius_mm
    closed = closed[tuple(slice(p, -p) for p in pad)]
    out = np.zeros_like(lung)
    out[box] = closed & ~lung[box] & dense[box]
    return out


def compute_pleural_air(air: np.ndarray, hu: np.ndarray, body: np.ndarray, spacing, *, air_hu: float,
                        min_ml: float, min_wall_share: float) -> np.ndarray:
    """Pleural air: components darker than ``air_hu`` (no lung tissue) inside the aerated region
    with at least ``min_wall_share`` of their border on chest-wall tissue (a bulla is surrounded by lung).

    The border is read one voxel out, past the layer of air voxels around the dark core: noise
    leaves voxels of pleural air above ``air_hu``, and the partial-volume layer against the chest
    wall is air but not dark, so the first layer around the core is air on every side. That layer
    is pleural air where it touches tissue (the wall side); the core's enclosed noise holes are too.
    """
    dark = air & (hu < air_hu)
    labels, n = ndimage.label(dark)
    out = np.zeros_like(air)
    if n == 0:
        return out
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sizes = np.bincount(labels.ravel())
    tissue = body & ~air
    ring_structure = _PLANE | _PLANE.transpose(1, 0, 2)
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sizes[i] * voxel_ml < min_ml:
            continue
        box = tuple(slice(max(0, s.start - 2), s.stop + 2) for s in sl)
        comp = labels[box] == i
        layer = ndimage.binary_dilation(comp, structure=ring_structure) & air[box] & ~comp
        ring = ndimage.binary_dilation(comp | layer, structure=ring_structure) & ~(comp | layer)
        if ring.any() and tissue[box][ring].mean() >= min_wall_share:
            wall_layer = layer & ndimage.binary_dilation(tissue[box], structure=ring_structure)
            out[box] |= _filled_pits(comp, layer) | wall_layer
    return out


def _filled_pits(core: np.ndarray, layer: np.ndarray, rounds: int = 2) -> np.ndarray:
    """``core`` with its enclosed holes and the voxels of ``layer`` with at least 3 of their 6 face
    neighbours in it (noise pits in its surface; a voxel beyond a flat or convex surface has 1 or 2),
    twice, so pits two voxels deep fill too."""
    out = ndimage.binary_fill_holes(core)
    faces = ndimage.generate_binary_structure(3, 1).astype(np.uint8)
    faces[1, 1, 1] = 0
    for _ in range(rounds):
        out |= layer & (ndimage.convolve(out.astype(np.uint8), faces, mode="constant") >= 3)
    return out


def compute_effusion(lung: np.ndarray, aerated: np.ndarray, hu: np.ndarray, where: np.ndarray,
                     inside_wall: np.ndarray, spacing, *, fluid_hu: tuple[float, float], min_ml: float) -> np.ndarray:
    """Pleural fluid next to one lung: water-dense components of ``where`` (inside the chest wall,
    not the other lung) that touch the lung and the chest wall and lie free in the dependent part
    of the pleural space. ``hu`` should be smoothed enough to tell water from soft tissue.

    Free fluid runs to the lowest (posterior) part of the pleural space, so no aerated lung of the
    same side lies behind its level: slice by slice, the level is the median front edge of the
    fluid, and aerated lung behind it may amount to at most a tenth of the fluid. A consolidation
    of water-like density in the lung's base, with aerated lung beside it in the recess, fails this.
    """
    out = np.zeros_like(lung)
    if not lung.any():
        return out
    fluid = (hu >= fluid_hu[0]) & (hu <= fluid_hu[1]) & where
    labels, n = ndimage.label(fluid)
    if n == 0:
        return out
    voxel_ml = float(np.prod(spacing)) / 1000.0
    near_lung = ndimage.binary_dilation(lung)
    near_wall = ndimage.binary_dilation(~inside_wall, iterations=2)
    touching = set(np.unique(labels[near_lung & fluid]).tolist()) - {0}
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if i not in touching:
            continue
        comp = labels[sl] == i
        if comp.sum() * voxel_ml < min_ml or not (comp & near_wall[sl]).any():
            continue
        if _free_fluid(comp, aerated[sl[0]], sl[1].start):
            out[sl] |= comp
    return out


def _free_fluid(comp: np.ndarray, aerated: np.ndarray, y0: int) -> bool:
    """True when aerated lung behind the fluid's level (slice by slice) is at most a tenth of the fluid.

    ``comp`` is cropped to its box (starting at row y0 of the full slices); ``aerated`` holds the
    box's slices whole (aerated lung of the same side anywhere behind the level counts).
    """
    behind = 0
    rows = np.arange(aerated.shape[1])[:, None]
    for k in range(comp.shape[0]):
        c = comp[k]
        cols = np.nonzero(c.any(axis=0))[0]
        if cols.size == 0:
            continue
        level = y0 + np.median(np.argmax(c[:, cols], axis=0))
        behind += int(np.count_nonzero(aerated[k] & (rows > level + 1)))
    return behind <= 0.1 * np.count_nonzero(comp)


def compute_hidden_border_cm2(wall: WallMap, geo: ChestGeometry) -> float:
    """Area (cm2) of chest wall, inside this lung's reach, that dense tissue keeps the lung from.

    After every put-back step: (z, angle) rays between the lung's first and last slice, in the
    angles the lung reaches, where the lung keeps at least ``HIDDEN_DEPTH_MM`` from the wall (or is
    absent), in regions mostly bordered by rays where it touches it and not open towards the head.
    Disease there was seen but not put back.
    """
    has = wall.has_lung
    if not has.any():
        return 0.0
    zs = np.nonzero(has.any(axis=1))[0]
    z = np.arange(has.shape[0])[:, None]
    within = has.any(axis=0)[None, :] & (z >= zs[0]) & (z <= zs[-1])
    gap_mm = np.where(has & np.isfinite(wall.wall_mm), wall.seen_mm - np.nan_to_num(wall.wall_mm), 0.0)
    deep = ~has | (gap_mm >= HIDDEN_DEPTH_MM)
    away = within & ~wall.contact & np.isfinite(wall.wall_mm) & deep
    labels, n = _wrapped_labels(away)
    area = 0.0
    radius = np.where(has, wall.reach_mm, np.nan)
    typical = np.nanmedian(radius) if np.isfinite(radius).any() else 0.0
    cell_cm2 = typical * (2 * np.pi / N_ANGLES) * geo.spacing[0] / 100.0
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        zsl = slice(max(0, sl[0].start - 1), min(has.shape[0], sl[0].stop + 1))
        comp = labels[zsl] == i
        ring = _ring_wrapped(comp) & ~comp
        above = np.zeros_like(comp)
        above[:-1] = comp[1:] & ~comp[:-1]
        contact = wall.contact[zsl][ring].mean() if ring.any() else 0.0
        head_open = (~has[zsl][above]).mean() if above.any() else 1.0
        if contact >= 0.5 and head_open <= 0.25:
            area += comp.sum() * cell_cm2
    return float(area)


def compute_left_out(lung: np.ndarray, dense: np.ndarray, geo: ChestGeometry, wall: WallMap, inside: np.ndarray,
                     core_mm: float, side: int, deepest: int) -> np.ndarray:
    """Dense tissue left out of this lung: inside its chest wall, lateral to it, joined to it, thick.

    ``dense`` should already exclude the other lung, pleural fluid, the airway and what lies under
    the diaphragm; ``side`` is -1 for the right lung (low x), +1 for the left. A voxel counts when it
    lies below the apex (``compute_apex_end``) and, in its row (z, y), no nearer the midline than the
    lung's medial edge in that row (in a row without lung, the edge of the nearest slice above with
    lung in that row), so the heart and the mediastinum medial to the lung do not; only the part of
    it at least ``core_mm`` (and a voxel along each axis) from anything else (an opening) counts, so the
    partial-volume layers at the lung's edge do not either.
    """
    nz, ny, nx = lung.shape
    cols = np.arange(nx)
    has_row = lung.any(axis=2)
    medial = np.where(has_row, (cols.max() - np.argmax(lung[:, :, ::-1], axis=2)) if side < 0
                      else np.argmax(lung, axis=2), -1)
    medial, row_known = _carried_down(medial, has_row)
    lateral = row_known[:, :, None] & ((side * (cols[None, None, :] - medial[:, :, None])) >= 0)
    inner, _ = _carried_down(wall.inner_mm, wall.has_lung)
    z = np.arange(nz)[:, None, None]
    outer = geo.radius_mm >= inner.ravel()[z * N_ANGLES + geo.angle]
    candidate = dense & ~lung & inside & lateral & outer
    candidate[:compute_apex_end(wall)] = False
    candidate[deepest + 1:] = False
    if not candidate.any():
        return candidate
    thick = ndimage.binary_opening(candidate, structure=_core_ball(core_mm, geo.spacing))
    return _joined_to(thick, ndimage.binary_dilation(lung) & ~thick) if thick.any() else thick


def compute_open_border_cm2(lung: np.ndarray, dense: np.ndarray, core_mm: float, spacing) -> float:
    """Area (cm2) where thick dense tissue put back into ``lung`` meets thick dense tissue left out.

    ``dense`` is the dense tissue inside this lung's rib cage that the lung could take, lung voxels
    included (the caller removes the other lung, pleural fluid and what lies under the deepest floor).
    Both sides are opened with ``_core_ball(core_mm)`` so vessels, lesion rims and partial-volume
    layers do not count; what is left is consolidation running into the mediastinum, the heart or the
    diaphragm with no HU edge between them, so the lung's border there is a guess. Counted as voxel
    faces between the two, each weighted by its area.
    """
    ball = _core_ball(core_mm, spacing)
    put = ndimage.binary_opening(lung & dense, structure=ball)
    if not put.any():
        return 0.0
    out = ndimage.binary_opening(dense & ~lung, structure=ball)
    area_mm2 = 0.0
    for axis in range(3):
        face = float(np.prod([s for i, s in enumerate(spacing) if i != axis]))
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        faces = np.count_nonzero(put[lo] & out[hi]) + np.count_nonzero(out[lo] & put[hi])
        area_mm2 += faces * face
    return area_mm2 / 100.0


def _carried_down(values: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, known) with each unknown entry of slice k (axis 0) taking the entry of slice k-1 where
    that is known (so the last known value runs down through the slices without one)."""
    values, known = values.copy(), known.copy()
    for k in range(1, values.shape[0]):
        carry = ~known[k] & known[k - 1]
        values[k][carry] = values[k - 1][carry]
        known[k] |= carry
    return values, known
