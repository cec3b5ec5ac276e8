"""Synthetic chest CT phantom with analytic ground truth.

The anatomy is defined analytically in millimetres (x to the patient's left, y posterior, z from
the head end of the scan) and scaled to the field of view and the scanned length. Every tissue
class is rasterised by testing voxel centres, and the truth volumes are the voxel counts of those
masks times the voxel volume; the image is then made from the masks (HU per class and per
lesion), blurred with a Gaussian point-spread function and given Gaussian noise.

Mask conventions (all boolean, shape (z, y, x), acquisition order like ``hu``):

- ``lung``: both lungs' parenchyma *including* intrapulmonary vessels and lesions, *excluding* the
  trachea and main bronchi (which run in the mediastinum);
- ``lung_right`` (low x index, patient right) and ``lung_left``: the two halves of ``lung``;
- ``vessels``: visible vessel voxels inside the lung (vessels hidden by a lesion count as lesion);
- ``ggo`` and ``solid``: lesion components, disjoint, both inside ``lung``;
- ``airway``: trachea and main bronchi outside the lung (air, -1000 HU);
- ``effusion`` and ``pneumothorax``: pleural fluid and pleural air, never part of ``lung``.

Realistic variants (``PhantomSpec`` fields after ``seed``, all off by default) change the
anatomy, add dense disease where the lung meets the chest wall, heart or diaphragm, add pleural
fluid or air, or change the acquisition. Their random draws (which lung, sizes, positions) come
from a stream of their own, so a spec without variants gives the same image as before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage

HU_AIR = -1000.0
HU_LUNG = -850.0
HU_FAT = -100.0
HU_SOFT = 40.0
HU_BONE = 600.0
HU_TABLE = 150.0
GGO_HU_RANGE = (-600.0, -450.0)
SOLID_HU_RANGE = (-50.0, 50.0)


@dataclass(frozen=True)
class PhantomSpec:
    """Acquisition and disease settings of one phantom scan.

    matrix: in-plane voxels (square); slices: number of axial slices; fov_mm: in-plane field of
    view (pixel spacing = fov_mm / matrix); slice_spacing_mm: distance between slice centres;
    body_scale: subject size (0.85..1.15); lesion_pct: target lesion volume as % of lung volume
    (0 = healthy; the reached value is in ``Phantom.truth``); solid_share: target fraction of the
    lesion volume that is solid (rest ground glass); chest_wall_consolidation: add one solid
    lesion touching the chest wall of the right lung; feet_first: slices ordered feet to head;
    noise_hu: standard deviation of the Gaussian noise; blur_mm: sigma of the Gaussian blur;
    seed: random seed (lesion and vessel layout, noise).

    Variants: fov_y_mm: in-plane field of view along y (rows), for non-square pixels (None = fov_mm);
    heart_scale: heart size (1.3 = cardiomegaly); contrast: iodinated contrast in the heart and the
    pulmonary vessels; dome_shift: moves each diaphragm dome laterally by this fraction of the lung's
    half width, so the top of the liver or spleen shows as an island inside the lung on axial
    slices; mediastinal_shift_mm: trachea, carina, heart and mediastinum moved off the midline
    (+ towards the patient's left); lungs_touch: the lungs meet in front of the heart (anterior
    junction) over the middle of their height;
    absent_lung: "left" or "right" lung removed (pneumonectomy; the space holds fluid);
    arms_down: arms beside the torso (0-8 mm away); basal_consolidation: a solid consolidation in
    the posterior base of one lung, on the diaphragm; lobar_consolidation: the lateral part of one
    lung solid over part of its height; paracardiac_consolidation: a solid consolidation against
    the heart; effusion_mm: pleural fluid of this depth in the dependent (posterior) part of one
    pleural space with a band of collapsed lung (solid) lying on the fluid level;
    pneumothorax_mm: pleural air of this depth in front of one lung; dependent_density_mm: a
    posterior band of this depth in both lungs at -400 to -300 HU (ground glass by HU);
    emphysema_pct: that share of the lung at -990 to -960 HU (lung, not lesion); lung_hu: HU of the
    aerated lung (-850; about -750 on a scan in poor inspiration, -800 to -900 on most others);
    fov_circle_mm: reconstruction circle of this diameter, centred fov_circle_shift_mm to the
    patient's left of the image centre, padding (-3024 HU) outside; variant_side: -1 right, +1
    left, 0 drawn from the seed, for the one-sided variants.

    The anatomy spans the scanned length (lung apex at 5 %, lung base at 95 % of
    slices x slice_spacing_mm, the trachea from the first slice), so about 250-300 mm gives
    adult proportions; the body is 300 x 210 mm at body_scale 1 and must fit the field of view.
    """

    matrix: int = 96
    slices: int = 48
    fov_mm: float = 360.0
    slice_spacing_mm: float = 5.0
    body_scale: float = 1.0
    lesion_pct: float = 10.0
    solid_share: float = 0.3
    chest_wall_consolidation: bool = True
    feet_first: bool = False
    noise_hu: float = 15.0
    blur_mm: float = 1.0
    seed: int = 0
    fov_y_mm: float | None = None
    heart_scale: float = 1.0
    contrast: bool = False
    dome_shift: float = 0.0
    mediastinal_shift_mm: float = 0.0
    lungs_touch: bool = False
    absent_lung: str = ""
    arms_down: bool = False
    basal_consolidation: bool = False
    lobar_consolidation: bool = False
    paracardiac_consolidation: bool = False
    effusion_mm: float = 0.0
    pneumothorax_mm: float = 0.0
    dependent_density_mm: float = 0.0
    emphysema_pct: float = 0.0
    lung_hu: float = HU_LUNG
    fov_circle_mm: float = 0.0
    fov_circle_shift_mm: float = 0.0
    variant_side: int = 0


@dataclass(frozen=True)
class Phantom:
    """A phantom image with its masks and analytic truth (see the module docstring)."""

    hu: np.ndarray
    spacing_mm: tuple[float, float, float]
    masks: dict[str, np.ndarray]
    truth: dict[str, float]


@dataclass(frozen=True)
class _Anatomy:
    """Analytic chest geometry in mm for one spec (all lengths already scaled)."""

    s: float
    length_z: float
    body_cy: float
    body_ax: float
    body_ay: float
    fat_mm: float
    cav_ax: float
    cav_ay: float
    rib_mm: float
    rib_period: float
    med_x: float
    z_apex: float
    z_base: float
    heart_scale: float = 1.0
    dome_shift: float = 0.0
    shift_x: float = 0.0
    lungs_touch: bool = False
    arm_gap_mm: float | None = None

    @property
    def lung_height(self) -> float:
        return self.z_base - self.z_apex

    def t(self, z: np.ndarray) -> np.ndarray:
        """Fraction of the lung height, 0 at the apex, 1 at the base."""
        return (z - self.z_apex) / self.lung_height

    def z_at(self, t: float) -> float:
        return self.z_apex + t * self.lung_height


def _anatomy(spec: PhantomSpec, arm_gap_mm: float | None = None) -> _Anatomy:
    s = spec.body_scale
    length_z = spec.slices * spec.slice_spacing_mm
    body_ax, body_ay = 150.0 * s, 105.0 * s
    wall = 24.0 * s
    cav_ax = body_ax - wall
    return _Anatomy(
        s=s, length_z=length_z, body_cy=-5.0 * s, body_ax=body_ax, body_ay=body_ay,
        fat_mm=12.0 * s, cav_ax=cav_ax, cav_ay=body_ay - wall, rib_mm=7.0 * s,
        rib_period=24.0 * s, med_x=0.17 * cav_ax, z_apex=0.05 * length_z, z_base=0.95 * length_z,
        heart_scale=spec.heart_scale, dome_shift=spec.dome_shift, shift_x=spec.mediastinal_shift_mm,
        lungs_touch=spec.lungs_touch,
        arm_gap_mm=arm_gap_mm,
    )


#: Arms beside the torso (variant ``arms_down``): semi-axes (mm at body_scale 1) and margin.
ARM_RADII_MM = (42.0, 48.0)


def _validate(spec: PhantomSpec) -> None:
    checks = {
        "matrix": 32 <= spec.matrix <= 1024,
        "slices": 8 <= spec.slices <= 2000,
        "slice_spacing_mm": 0.3 <= spec.slice_spacing_mm <= 20.0,
        "body_scale": 0.7 <= spec.body_scale <= 1.3,
        "lesion_pct": 0.0 <= spec.lesion_pct <= 80.0,
        "solid_share": 0.0 <= spec.solid_share <= 1.0,
        "noise_hu": spec.noise_hu >= 0.0,
        "blur_mm": spec.blur_mm >= 0.0,
        "heart_scale": 0.8 <= spec.heart_scale <= 1.5,
        "dome_shift": 0.0 <= spec.dome_shift <= 1.0,
        "absent_lung": spec.absent_lung in ("", "left", "right"),
        "effusion_mm": 0.0 <= spec.effusion_mm <= 80.0,
        "pneumothorax_mm": 0.0 <= spec.pneumothorax_mm <= 60.0,
        "dependent_density_mm": 0.0 <= spec.dependent_density_mm <= 60.0,
        "emphysema_pct": 0.0 <= spec.emphysema_pct <= 40.0,
        "lung_hu": -950.0 <= spec.lung_hu <= -700.0,
        "fov_circle_mm": spec.fov_circle_mm >= 0.0,
        "variant_side": spec.variant_side in (-1, 0, 1),
        "mediastinal_shift_mm": abs(spec.mediastinal_shift_mm) <= 40.0 * spec.body_scale,
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"PhantomSpec: out of range: {', '.join(f'{n}={getattr(spec, n)!r}' for n in bad)}")
    half_width = 150.0 * spec.body_scale + (8.0 + 2 * ARM_RADII_MM[0] * spec.body_scale if spec.arms_down else 0.0)
    needed = 2 * (half_width + 5.0)
    if spec.fov_mm < needed:
        raise ValueError(f"PhantomSpec.fov_mm={spec.fov_mm} cuts the body; needs >= {needed:.0f} mm")
    needed_y = 2 * (105.0 * spec.body_scale + 25.0)
    if (spec.fov_y_mm if spec.fov_y_mm is not None else spec.fov_mm) < needed_y:
        raise ValueError(f"PhantomSpec.fov_y_mm={spec.fov_y_mm} cuts the body or the table; needs >= {needed_y:.0f} mm")


def _ellipse(x, y, cx, cy, ax, ay):
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0


def _lung_profile(t: np.ndarray) -> np.ndarray:
    """Radius factor along the lung: an elliptic dome over the top quarter, 1 below, 0 outside."""
    top = np.sqrt(np.clip(1.0 - ((0.25 - t) / 0.25) ** 2, 0.0, 1.0))
    return np.where((t < 0) | (t > 1), 0.0, np.where(t < 0.25, top, 1.0))


@dataclass(frozen=True)
class _LungPlanar:
    """The z-independent parts of one lung's analytic shape, evaluated at (y, x) points."""

    allowed: np.ndarray   # inside the rib cage, lateral to the mediastinum, outside the spine
    qx: np.ndarray        # squared normalised x distance from the lung axis
    qy: np.ndarray        # squared normalised y distance from the lung axis
    dome: np.ndarray      # diaphragm dome height (mm) above the lung base
    heart: np.ndarray     # in-plane part of the heart ellipsoid's quadratic form


def _lung_planar(a: _Anatomy, y, x, side: int) -> _LungPlanar:
    """Planar terms of the lung (side -1 = right, +1 = left) at broadcastable mm coordinates."""
    half = (a.cav_ax - a.med_x) / 2.0
    cy = a.body_cy + 0.05 * a.cav_ay
    spine = _ellipse(x, y, 0.0, a.body_cy + a.cav_ay - 10.0 * a.s, 20.0 * a.s, 20.0 * a.s)
    medial = side * (x - a.shift_x) > a.med_x
    if a.lungs_touch:  # the anterior junction: both lungs reach the (shifted) midline in front of the heart
        medial = medial | ((side * (x - a.shift_x) >= 0) & (y < a.body_cy - 0.55 * a.cav_ay))
    allowed = _ellipse(x, y, 0.0, a.body_cy, a.cav_ax, a.cav_ay) & medial & ~spine
    dome = 1.0 - ((x - side * (a.med_x + (0.3 + a.dome_shift) * half)) / (1.6 * half)) ** 2 - (
        (y - (a.body_cy - 0.2 * a.cav_ay)) / (0.9 * a.cav_ay)) ** 2
    dome_h = (0.30 if side < 0 else 0.25) * a.lung_height
    hs = a.heart_scale
    heart = ((x - a.med_x - a.shift_x) / (0.55 * hs * a.cav_ax)) ** 2 + ((y - (a.body_cy - 0.3 * a.cav_ay)) / (0.5 * hs * a.cav_ay)) ** 2
    return _LungPlanar(allowed=allowed, qx=((x - side * (a.cav_ax + a.med_x) / 2.0) / (1.15 * half)) ** 2,
                       qy=((y - cy) / (0.97 * a.cav_ay)) ** 2, dome=dome_h * np.clip(dome, 0.0, None), heart=heart)


def _lung_at(a: _Anatomy, planar: _LungPlanar, z) -> np.ndarray:
    """One lung at depth z (mm) given its planar terms."""
    t = a.t(z)
    f2 = np.maximum(_lung_profile(t), 1e-6) ** 2
    return (planar.allowed & (planar.qx + planar.qy <= f2) & (z < a.z_base - planar.dome)
            & (planar.heart + ((t - 0.72) / (0.3 * a.heart_scale)) ** 2 > 1.0) & (t >= 0) & (t <= 1))


def _lung_points(a: _Anatomy, z, y, x) -> np.ndarray:
    """True where points (mm, any matching shapes) lie in either lung."""
    return _lung_at(a, _lung_planar(a, y, x, -1), z) | _lung_at(a, _lung_planar(a, y, x, 1), z)


def _static_slice(a: _Anatomy, z: float, y2: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """HU of the body, ribs, spine and table (no lungs) in one axial slice."""
    hu = np.full(np.broadcast_shapes(y2.shape, x2.shape), HU_AIR, dtype=np.float32)
    table = (y2 >= a.body_cy + a.body_ay + 8.0) & (y2 <= a.body_cy + a.body_ay + 20.0) & (np.abs(x2) <= 160.0)
    hu[table] = HU_TABLE
    body = _ellipse(x2, y2, 0.0, a.body_cy, a.body_ax, a.body_ay)
    hu[body] = HU_FAT
    hu[_ellipse(x2, y2, 0.0, a.body_cy, a.body_ax - a.fat_mm, a.body_ay - a.fat_mm)] = HU_SOFT
    if (z % a.rib_period) < 0.5 * a.rib_period:
        ring = _ellipse(x2, y2, 0.0, a.body_cy, a.cav_ax + a.rib_mm, a.cav_ay + a.rib_mm) & ~_ellipse(
            x2, y2, 0.0, a.body_cy, a.cav_ax, a.cav_ay)
        hu[ring] = HU_BONE
    hu[_ellipse(x2, y2, 0.0, a.body_cy + a.cav_ay - 10.0 * a.s, 18.0 * a.s, 18.0 * a.s)] = HU_BONE * 0.6
    if a.arm_gap_mm is not None:
        rx, ry = ARM_RADII_MM[0] * a.s, ARM_RADII_MM[1] * a.s
        for side in (-1, 1):
            cx, cy = side * (a.body_ax + a.arm_gap_mm + rx), a.body_cy + 0.1 * a.body_ay
            hu[_ellipse(x2, y2, cx, cy, rx, ry)] = HU_FAT
            hu[_ellipse(x2, y2, cx, cy, rx - 8.0 * a.s, ry - 8.0 * a.s)] = HU_SOFT
            hu[_ellipse(x2, y2, cx, cy, 12.0 * a.s, 12.0 * a.s)] = HU_BONE
    return hu


def _tube(z, y, x, p0, p1, r0, r1) -> np.ndarray:
    """Voxels within a tapered tube (radius r0 at p0 to r1 at p1) around segment p0-p1 (mm, zyx)."""
    d = np.subtract(p1, p0)
    u = ((z - p0[0]) * d[0] + (y - p0[1]) * d[1] + (x - p0[2]) * d[2]) / float(np.dot(d, d))
    u = np.clip(u, 0.0, 1.0)
    dist2 = (z - p0[0] - u * d[0]) ** 2 + (y - p0[1] - u * d[1]) ** 2 + (x - p0[2] - u * d[2]) ** 2
    return dist2 <= (r0 + (r1 - r0) * u) ** 2


@dataclass(frozen=True)
class _Grid:
    """Voxel-centre coordinates (mm) of the volume in head-to-feet order."""

    z: np.ndarray
    y: np.ndarray
    x: np.ndarray
    spacing: tuple[float, float, float]

    def box(self, lo, hi) -> tuple[slice, slice, slice]:
        """Index slices of the voxels whose centres may lie within [lo, hi] (mm, zyx)."""
        out = []
        for axis, (a, b) in zip((self.z, self.y, self.x), zip(lo, hi)):
            i0 = int(np.searchsorted(axis, a, side="left"))
            i1 = int(np.searchsorted(axis, b, side="right"))
            out.append(slice(i0, max(i0, i1)))
        return tuple(out)

    def coords(self, box):
        return (self.z[box[0]][:, None, None], self.y[box[1]][None, :, None], self.x[box[2]][None, None, :])


def _grid(spec: PhantomSpec) -> _Grid:
    px = spec.fov_mm / spec.matrix
    py = (spec.fov_y_mm if spec.fov_y_mm is not None else spec.fov_mm) / spec.matrix
    centred = np.arange(spec.matrix) + 0.5 - spec.matrix / 2.0
    z = (np.arange(spec.slices) + 0.5) * spec.slice_spacing_mm
    return _Grid(z=z, y=centred * py, x=centred * px, spacing=(spec.slice_spacing_mm, py, px))


def _paint(region: np.ndarray, box, fn: Callable, grid: _Grid) -> np.ndarray:
    """Evaluate fn on the box's coordinates; returns the boolean sub-mask (already & region)."""
    return fn(*grid.coords(box)) & region[box]


def _vessel_segments(a: _Anatomy, rng: np.random.Generator):
    """Two tapering trees (artery and vein) per lung, as (p0, p1, r0, r1) in mm (zyx)."""
    segs = []
    half = a.cav_ax - a.med_x
    for side in (-1, 1):
        for t_root, r_root in ((0.42, 3.0), (0.62, 2.6)):
            root = np.array([a.z_at(t_root), a.body_cy + 0.05 * a.cav_ay, a.shift_x + side * (a.med_x - 2.0)])
            stack = [(root, np.array([0.0, 0.0, float(side)]), 0.35 * half, r_root * a.s, 0)]
            while stack:
                p0, direction, length, r0, gen = stack.pop()
                p1 = p0 + direction * length
                r1 = r0 * 0.75
                segs.append((p0, p1, r0, r1))
                if gen == 3:
                    continue
                for _ in range(2 if gen else 3):
                    jitter = rng.normal(0.0, 0.6, 3) * np.array([1.6, 1.0, 0.5])
                    child = direction + jitter
                    child[2] = side * abs(child[2]) + side * 0.2
                    child /= np.linalg.norm(child)
                    stack.append((p1, child, length * 0.8, r1, gen + 1))
    return segs


@dataclass
class _Lesion:
    center: np.ndarray
    radii: np.ndarray
    kind: str  # "ggo", "solid", "mixed", "wall"
    hu_halo: float
    hu_core: float


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    polar, azimuth = np.arccos(1.0 - 2.0 * i / n), np.pi * (1.0 + 5.0 ** 0.5) * i
    return np.stack([np.cos(polar), np.sin(polar) * np.sin(azimuth), np.sin(polar) * np.cos(azimuth)], axis=1)


_SPHERE = _fibonacci_sphere(100)


def _inside_with_margin(a: _Anatomy, center, radii, margin) -> bool:
    """True when 100 points spread over the lesion's enlarged surface all lie inside the lung."""
    pts = center + _SPHERE * (radii + margin)
    return bool(np.all(_lung_points(a, pts[:, 0], pts[:, 1], pts[:, 2])))


def _ellipsoid_fn(center, radii):
    def fn(z, y, x):
        return (((z - center[0]) / radii[0]) ** 2 + ((y - center[1]) / radii[1]) ** 2
                + ((x - center[2]) / radii[2]) ** 2 <= 1.0)
    return fn


def _wall_lesion(a: _Anatomy, rng: np.random.Generator) -> _Lesion:
    """A solid consolidation centred on the posterolateral chest wall of the right lung."""
    angle = np.deg2rad(35.0)  # from posterior towards lateral
    wx = -a.cav_ax * np.sin(angle)
    wy = a.body_cy + a.cav_ay * np.cos(angle)
    r = 24.0 * a.s
    return _Lesion(np.array([a.z_at(0.62), wy, wx]), np.array([1.3 * r, r, r]), "wall", 0.0,
                   float(rng.uniform(*SOLID_HU_RANGE)))


def _next_lesion(a: _Anatomy, rng, deficit_ml: float, want_solid: bool, margin_mm: float) -> _Lesion | None:
    """Draw one lesion (up to 200 tries) whose size fits the remaining lesion volume.

    Solid and mixed lesions keep ``margin_mm`` from the lung's border; ground glass may touch it.
    """
    kind = ("mixed" if rng.random() < 0.7 else "solid") if want_solid else "ggo"
    r_min = (14.0 if kind == "mixed" else 10.0) * a.s
    r_fit = (3.0 * max(deficit_ml, 0.5) * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    r_max = max(r_min, min(32.0 * a.s, r_fit * 1.2))
    for _ in range(200):
        side = rng.choice((-1, 1))
        center = np.array([
            a.z_at(rng.uniform(0.15, 0.95)),
            a.body_cy + rng.uniform(-0.7, 0.9) * a.cav_ay,
            side * rng.uniform(a.med_x, a.cav_ax),
        ])
        radii = rng.uniform(r_min, r_max) * rng.uniform(0.85, 1.15, 3)
        if not _lung_points(a, *center):
            continue
        if kind != "ggo" and not _inside_with_margin(a, center, radii, margin_mm):
            continue
        return _Lesion(center, radii, kind, float(rng.uniform(*GGO_HU_RANGE)), float(rng.uniform(*SOLID_HU_RANGE)))
    return None


def _add_lesion(les: _Lesion, grid: _Grid, lung, ggo, solid, hu) -> None:
    """Rasterise one lesion into the masks and the HU image (solid always wins over ground glass)."""
    box = grid.box(les.center - les.radii, les.center + les.radii)
    outer = _paint(lung, box, _ellipsoid_fn(les.center, les.radii), grid)
    if les.kind == "mixed":
        core = _paint(lung, box, _ellipsoid_fn(les.center, les.radii * 0.55), grid)
    elif les.kind == "ggo":
        core = np.zeros_like(outer)
    else:
        core = outer
    halo = outer & ~core & ~solid[box]
    ggo[box] |= halo
    hu[box][halo] = les.hu_halo
    solid[box] |= core
    hu[box][core] = les.hu_core


def _place_lesions(spec: PhantomSpec, a: _Anatomy, grid: _Grid, lung, hu, rng):
    """Add lesions until the lesion volume reaches the target; returns the ggo and solid masks."""
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    target_ml = spec.lesion_pct / 100.0 * np.count_nonzero(lung) * voxel_ml
    ggo = np.zeros_like(lung)
    solid = np.zeros_like(lung)
    if spec.chest_wall_consolidation:
        _add_lesion(_wall_lesion(a, rng), grid, lung, ggo, solid, hu)
    lesion_n, solid_n = np.count_nonzero(ggo | solid), np.count_nonzero(solid)
    while lesion_n * voxel_ml < target_ml:
        want_solid = solid_n * voxel_ml < spec.solid_share * target_ml
        les = _next_lesion(a, rng, target_ml - lesion_n * voxel_ml, want_solid, 3.0 * a.s + max(grid.spacing))
        if les is None:
            break
        box = grid.box(les.center - les.radii, les.center + les.radii)
        before = np.count_nonzero(ggo[box] | solid[box]), np.count_nonzero(solid[box])
        _add_lesion(les, grid, lung, ggo, solid, hu)
        lesion_n += np.count_nonzero(ggo[box] | solid[box]) - before[0]
        solid_n += np.count_nonzero(solid[box]) - before[1]
    ggo &= ~solid
    return ggo, solid


def _airway(a: _Anatomy, grid: _Grid, lung) -> np.ndarray:
    """Trachea from the top of the scan to the carina, then the two main bronchi to the hila."""
    out = np.zeros_like(lung)
    z_car = a.z_at(0.3)
    top = np.array([0.0, a.body_cy - 0.25 * a.cav_ay, a.shift_x])
    carina = np.array([z_car, top[1], a.shift_x])
    tubes = [(top - np.array([20.0, 0, 0]), carina, 8.0 * a.s, 8.0 * a.s)]
    for side, r in ((-1, 6.0), (1, 5.5)):
        hilum = np.array([a.z_at(0.42), a.body_cy + 0.05 * a.cav_ay, a.shift_x + side * (a.med_x + 4.0 * a.s)])
        tubes.append((carina, hilum, r * a.s, r * a.s))
    for p0, p1, r0, r1 in tubes:
        rmax = max(r0, r1)
        box = grid.box(np.minimum(p0, p1) - rmax, np.maximum(p0, p1) + rmax)
        out[box] |= _tube(*grid.coords(box), p0, p1, r0, r1)
    return out & ~lung


def _blur_and_noise(hu: np.ndarray, spec: PhantomSpec, spacing, rng) -> np.ndarray:
    """Gaussian point-spread function (in place, truncated at 2 sigma) then white Gaussian noise.

    Noise comes from a bank of at most 16 independent slices, each used with a random 2-D shift,
    which keeps the per-voxel distribution exact at a fraction of the cost of fresh noise.
    """
    for axis, sp in enumerate(spacing):
        if spec.blur_mm / sp >= 0.25:
            ndimage.gaussian_filter1d(hu, spec.blur_mm / sp, axis=axis, truncate=2.0, output=hu)
    if spec.noise_hu > 0:
        bank = rng.standard_normal((min(16, hu.shape[0]),) + hu.shape[1:], dtype=np.float32)
        bank *= np.float32(spec.noise_hu)
        shifts = rng.integers(0, hu.shape[1], size=(hu.shape[0], 2))
        for k in range(hu.shape[0]):
            hu[k] += np.roll(bank[k % bank.shape[0]], tuple(shifts[k]), axis=(0, 1))
    np.rint(hu, out=hu)
    np.clip(hu, -1024, 3071, out=hu)
    return hu.astype(np.int16)


#: HU of the variants' tissues.
HU_FLUID_RANGE = (0.0, 15.0)          # pleural fluid (transudate)
HU_COLLAPSED_RANGE = (35.0, 55.0)     # airless (collapsed) lung lying on pleural fluid
HU_LIVER = 55.0
HU_MYOCARDIUM = 110.0                 # with contrast
HU_BLOOD_CONTRAST_RANGE = (250.0, 320.0)
HU_VESSEL_CONTRAST = 220.0
HU_EMPHYSEMA_RANGE = (-990.0, -960.0)
HU_PADDING = -3024.0                  # outside the reconstruction circle
DEPENDENT_HU = (-400.0, -300.0)       # front and back of the dependent density band


def _variant_side(spec: PhantomSpec, vrng: np.random.Generator) -> int:
    return spec.variant_side or int(vrng.choice((-1, 1)))


def _region(grid: _Grid, fn: Callable, within: np.ndarray) -> np.ndarray:
    """fn(z, y, x) evaluated on every voxel centre (one slice at a time), & within."""
    out = np.zeros_like(within)
    for k in np.nonzero(within.any(axis=(1, 2)))[0]:
        out[k] = fn(grid.z[k], grid.y[:, None], grid.x[None, :]) & within[k]
    return out


def _pleural_changes(spec: PhantomSpec, a: _Anatomy, grid: _Grid, sides: dict[int, np.ndarray], hu: np.ndarray,
                     vrng: np.random.Generator) -> dict[str, np.ndarray]:
    """Remove lung for a pneumonectomy, pleural air and pleural fluid; returns their masks.

    Pleural fluid fills the dependent (posterior) pleural space behind its level, which deepens
    towards the base; the lung it displaced lies on the level as a band of collapsed (airless)
    lung, returned as "collapsed".
    Pleural air fills the front of the pleural space.
    """
    shape = hu.shape
    out = {name: np.zeros(shape, bool) for name in ("effusion", "pneumothorax", "collapsed")}
    if spec.absent_lung:
        gone = sides[-1 if spec.absent_lung == "right" else 1]
        hu[gone] = float(vrng.uniform(*HU_FLUID_RANGE))
        gone[:] = False
    if spec.pneumothorax_mm > 0:
        side = sides[_variant_side(spec, vrng)]
        front = grid.y[np.nonzero(side.any(axis=(0, 2)))[0][0]]
        air = _region(grid, lambda z, y, x: y < front + spec.pneumothorax_mm, side)
        hu[air] = HU_AIR
        side &= ~air
        out["pneumothorax"] = air
    if spec.effusion_mm > 0:
        side = sides[_variant_side(spec, vrng)]
        back = grid.y[np.nonzero(side.any(axis=(0, 2)))[0][-1]]
        t_top, band_mm = float(vrng.uniform(0.3, 0.55)), float(vrng.uniform(4.0, 9.0))

        def level(z):  # the patient lies half-raised: the fluid is deepest at the base
            return back - spec.effusion_mm * np.clip((a.t(z) - t_top) / (1.0 - t_top), 0.0, 1.0)
        fluid = _region(grid, lambda z, y, x: y > level(z), side)
        hu[fluid] = float(vrng.uniform(*HU_FLUID_RANGE))
        side &= ~fluid
        out["effusion"] = fluid
        out["collapsed"] = _region(grid, lambda z, y, x: (y > level(z) - band_mm) & (a.t(z) > t_top), side)
    return out


def _consolidation_regions(spec: PhantomSpec, a: _Anatomy, grid: _Grid, sides: dict[int, np.ndarray],
                           vrng: np.random.Generator) -> list[np.ndarray]:
    """Solid regions of the basal, lobar and paracardiac variants (each inside one lung)."""
    s, half = a.s, (a.cav_ax - a.med_x) / 2.0
    regions = []
    if spec.basal_consolidation:
        side = _variant_side(spec, vrng)
        center = np.array([a.z_at(vrng.uniform(0.85, 1.0)), a.body_cy + vrng.uniform(0.4, 0.8) * a.cav_ay,
                           side * (a.med_x + vrng.uniform(0.6, 1.4) * half)])
        radii = np.array([vrng.uniform(35, 55), vrng.uniform(25, 40), vrng.uniform(30, 50)]) * s
        regions.append(_region(grid, _ellipsoid_fn(center, radii), sides[side]))
    if spec.lobar_consolidation:
        side = _variant_side(spec, vrng)
        t0, t1 = vrng.uniform(0.35, 0.55), vrng.uniform(0.8, 1.0)
        split = side * (a.med_x + vrng.uniform(0.85, 1.15) * half)
        lean = vrng.uniform(-0.3, 0.3)

        def lateral(z, y, x):
            return (side * (x - split - lean * (y - a.body_cy)) > 0) & (a.t(z) >= t0) & (a.t(z) <= t1)
        regions.append(_region(grid, lateral, sides[side]))
    if spec.paracardiac_consolidation:
        side = _variant_side(spec, vrng)
        hs, tc = a.heart_scale, vrng.uniform(0.6, 0.85)
        k = np.sqrt(max(0.0, 1.0 - ((tc - 0.72) / (0.3 * hs)) ** 2))
        phi = (0.0 if side > 0 else np.pi) + vrng.uniform(-0.5, 0.5)
        center = np.array([a.z_at(tc), a.body_cy - 0.3 * a.cav_ay + 0.5 * hs * a.cav_ay * k * np.sin(phi),
                           a.shift_x + a.med_x + 0.55 * hs * a.cav_ax * k * np.cos(phi)])
        radii = vrng.uniform(16, 26) * s * vrng.uniform(0.85, 1.15, 3)
        regions.append(_region(grid, _ellipsoid_fn(center, radii), sides[side]))
    return regions


def _emphysema(spec: PhantomSpec, grid: _Grid, lung: np.ndarray, hu: np.ndarray, vrng: np.random.Generator) -> None:
    """Low-attenuation clusters (spheres of 4-12 mm) covering emphysema_pct of the lung."""
    target = spec.emphysema_pct / 100.0 * np.count_nonzero(lung)
    done = np.zeros_like(lung)
    points = np.argwhere(lung)
    while np.count_nonzero(done) < target:
        k, j, i = points[vrng.integers(len(points))]
        center = np.array([grid.z[k], grid.y[j], grid.x[i]])
        r = vrng.uniform(4.0, 12.0)
        box = grid.box(center - r, center + r)
        blob = _paint(lung, box, _ellipsoid_fn(center, np.array([r, r, r])), grid)
        hu[box][blob] = float(vrng.uniform(*HU_EMPHYSEMA_RANGE))
        done[box] |= blob


def _heart_with_contrast(a: _Anatomy, grid: _Grid, free: np.ndarray, hu: np.ndarray, vrng) -> None:
    """Myocardium and contrast-filled chambers where the heart ellipsoid is not lung."""
    hs = a.heart_scale
    c = (a.z_at(0.72), a.body_cy - 0.3 * a.cav_ay, a.shift_x + a.med_x)
    radii = np.array([0.3 * hs * a.lung_height, 0.5 * hs * a.cav_ay, 0.55 * hs * a.cav_ax])
    heart = _region(grid, lambda z, y, x: _ellipsoid_fn(np.array(c), radii)(z, y, x) & (a.t(z) <= 0.95), free)
    hu[heart] = HU_MYOCARDIUM
    hu[_region(grid, _ellipsoid_fn(np.array(c), 0.75 * radii), heart)] = float(vrng.uniform(*HU_BLOOD_CONTRAST_RANGE))


def _organ_domes(a: _Anatomy, grid: _Grid, free: np.ndarray, hu: np.ndarray) -> None:
    """Liver (right) and spleen (left) under the diaphragm domes."""
    for side in (-1, 1):
        planar = _lung_planar(a, grid.y[:, None], grid.x[None, :], side)
        for k, z in enumerate(grid.z):
            under = free[k] & (planar.dome > 0) & (z >= a.z_base - planar.dome) & planar.allowed
            hu[k][under] = HU_LIVER if side < 0 else HU_LIVER - 10.0


def _dependent_density(spec: PhantomSpec, a: _Anatomy, grid: _Grid, lung: np.ndarray, hu: np.ndarray) -> np.ndarray:
    """A posterior band of both lungs at -400 (front) to -300 HU (back); returns its mask."""
    back = grid.y[np.nonzero(lung.any(axis=(0, 2)))[0][-1]]
    front = back - spec.dependent_density_mm
    band = _region(grid, lambda z, y, x: (y > front) & (a.t(z) >= 0.2), lung)
    ramp = np.clip((grid.y - front) / spec.dependent_density_mm, 0.0, 1.0)
    density = (DEPENDENT_HU[0] + (DEPENDENT_HU[1] - DEPENDENT_HU[0]) * ramp).astype(np.float32)
    level = np.broadcast_to(density[None, :, None], hu.shape)
    denser = band & (level > hu)
    hu[denser] = level[denser]
    return denser


def _fov_circle(spec: PhantomSpec, grid: _Grid) -> np.ndarray:
    """True outside the reconstruction circle (in-plane)."""
    r = spec.fov_circle_mm / 2.0
    return (grid.y[:, None] ** 2 + (grid.x[None, :] - spec.fov_circle_shift_mm) ** 2) > r * r


def make_chest_phantom(spec: PhantomSpec) -> Phantom:
    """Build the phantom image, its masks and the truth volumes (voxel counts x voxel volume)."""
    _validate(spec)
    rng = np.random.default_rng(spec.seed)
    vrng = np.random.default_rng([spec.seed, 16])  # the variants' own stream
    a = _anatomy(spec, float(vrng.uniform(0.0, 8.0)) if spec.arms_down else None)
    grid = _grid(spec)
    y2, x2 = grid.y[:, None], grid.x[None, :]
    shape = (spec.slices, spec.matrix, spec.matrix)
    hu = np.empty(shape, dtype=np.float32)
    right = np.zeros(shape, dtype=bool)
    left = np.zeros(shape, dtype=bool)
    planes = {-1: _lung_planar(a, y2, x2, -1), 1: _lung_planar(a, y2, x2, 1)}
    t = a.t(grid.z)
    for k, z in enumerate(grid.z):
        hu[k] = _static_slice(a, float(z), y2, x2)
        if 0.0 <= t[k] <= 1.0:
            right[k] = _lung_at(a, planes[-1], z)
            left[k] = _lung_at(a, planes[1], z)
    pleural = _pleural_changes(spec, a, grid, {-1: right, 1: left}, hu, vrng)
    lung = right | left
    if spec.dome_shift > 0:
        _organ_domes(a, grid, ~lung & (hu == HU_SOFT), hu)
    np.copyto(hu, np.float32(spec.lung_hu), where=lung)
    if spec.emphysema_pct > 0:
        _emphysema(spec, grid, lung, hu, vrng)
    airway = _airway(a, grid, lung)
    np.copyto(hu, np.float32(HU_AIR), where=airway)
    if spec.contrast:
        _heart_with_contrast(a, grid, ~lung & ~airway & (hu == HU_SOFT), hu, vrng)
    vessels = np.zeros(shape, dtype=bool)
    for p0, p1, r0, r1 in _vessel_segments(a, rng):
        rmax = max(r0, r1)
        box = grid.box(np.minimum(p0, p1) - rmax, np.maximum(p0, p1) + rmax)
        vessels[box] |= _paint(lung, box, lambda z, y, x: _tube(z, y, x, p0, p1, r0, r1), grid)
    np.copyto(hu, np.float32(HU_VESSEL_CONTRAST if spec.contrast else HU_SOFT), where=vessels)
    ggo, solid = _place_lesions(spec, a, grid, lung, hu, rng)
    if spec.dependent_density_mm > 0:
        ggo |= _dependent_density(spec, a, grid, lung, hu) & ~vessels & ~solid
    for region in _consolidation_regions(spec, a, grid, {-1: right, 1: left}, vrng):
        hu[region] = float(vrng.uniform(*SOLID_HU_RANGE))
        solid |= region
    if pleural["collapsed"].any():
        hu[pleural["collapsed"]] = float(vrng.uniform(*HU_COLLAPSED_RANGE))
        solid |= pleural["collapsed"]
    ggo &= ~solid
    vessels &= ~(ggo | solid)
    masks = {"lung": lung, "lung_left": left, "lung_right": right, "ggo": ggo, "solid": solid,
             "vessels": vessels, "airway": airway, "effusion": pleural["effusion"],
             "pneumothorax": pleural["pneumothorax"]}
    image = _blur_and_noise(hu, spec, grid.spacing, rng)
    if spec.fov_circle_mm > 0:
        image[:, _fov_circle(spec, grid)] = HU_PADDING
    if spec.feet_first:
        image = image[::-1].copy()
        masks = {name: m[::-1].copy() for name, m in masks.items()}
    return Phantom(hu=image, spacing_mm=grid.spacing, masks=masks, truth=compute_truth(masks, grid.spacing))


def compute_truth(masks: dict[str, np.ndarray], spacing_mm) -> dict[str, float]:
    """Truth volumes (mL) and percentages of lung volume from the phantom's masks."""
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    ml = {name: float(np.count_nonzero(masks[name])) * voxel_ml if name in masks else 0.0
          for name in ("lung", "ggo", "solid", "lung_left", "lung_right", "effusion", "pneumothorax")}
    lesion_ml = ml["ggo"] + ml["solid"]
    lung_ml = ml["lung"]

    def pct(v: float) -> float:
        return 100.0 * v / lung_ml if lung_ml else 0.0

    return {
        "lung_volume_ml": lung_ml, "lesion_volume_ml": lesion_ml, "ggo_volume_ml": ml["ggo"],
        "solid_volume_ml": ml["solid"], "lesion_pct": pct(lesion_ml), "ggo_pct": pct(ml["ggo"]),
        "solid_pct": pct(ml["solid"]), "left_lung_volume_ml": ml["lung_left"],
        "right_lung_volume_ml": ml["lung_right"], "effusion_volume_ml": ml["effusion"],
        "pneumothorax_volume_ml": ml["pneumothorax"],
    }


def render_phantom_dicom(phantom: Phantom, *, feet_first: bool, slope: float = 1.0, intercept: float = -1024.0,
                         padding_value: int | None = None, kernel: str | None = None,
                         tilt_deg: float = 0.0) -> list[bytes]:
    """Minimal CT Image Storage files (one per slice, acquisition order) of a phantom, no PHI.

    ``phantom.hu`` must be in acquisition order as ``feet_first`` says. Orientation is standard
    axial, the head is +z; stored = round((HU - intercept) / slope) as uint16 (so HU below the
    intercept are stored as 0); the 3x3 corner of every image holds ``padding_value``
    (PixelPaddingValue) when one is given. ``kernel`` fills ConvolutionKernel. ``tilt_deg``
    writes the slices as a gantry-tilted acquisition: the image planes are tilted about the x axis
    and the table moves along z, with the same distance between planes along their normal (the
    stored voxels are then a sheared image of the phantom, of the same volumes).
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    nz, ny, nx = phantom.hu.shape
    dz, dy, dx = phantom.spacing_mm
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    files = []
    for k in range(nz):
        depth = (nz - 1 - k) if feet_first else k  # slices from the head end
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = "CT", study, series, frame
        ds.InstanceNumber = k + 1
        tilt = np.deg2rad(tilt_deg)
        ds.ImageOrientationPatient = [1, 0, 0, 0, float(np.cos(tilt)), float(np.sin(tilt))]
        ds.ImagePositionPatient = [-dx * (nx - 1) / 2.0, -dy * (ny - 1) / 2.0, -dz * depth / float(np.cos(tilt))]
        if tilt_deg:
            ds.GantryDetectorTilt = tilt_deg
        if kernel is not None:
            ds.ConvolutionKernel = kernel
        ds.PixelSpacing, ds.SliceThickness = [dy, dx], dz
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = ny, nx, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        stored = np.clip(np.rint((phantom.hu[k].astype(np.float64) - intercept) / slope), 0, 65535).astype(np.uint16)
        if padding_value is not None:
            ds.PixelPaddingValue = padding_value
            stored[:3, :3] = padding_value
        ds.PixelData = stored.tobytes()
        out = DicomBytesIO()
        ds.save_as(out, enforce_file_format=True)
        files.append(out.getvalue())
    return files
