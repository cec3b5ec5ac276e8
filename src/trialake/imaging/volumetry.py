"""Lung and lesion volumetry of one CT series: segmenter registry, measurement, QC and flags.

A series is either refused (``NotMeasurable`` with a reason: no lungs, the field of view cuts
them, far too much noise) or measured, with status ``measured`` or ``measured-with-flags``; a
flag says in one sentence what a reviewer should look at (pleural fluid or air, lung parts
dropped, dense tissue not put back, left/right imbalance, much of the lung from put-back dense
tissue, no trachea found, disagreement with a second segmenter, a solid volume that image noise
makes uncertain, dense ground glass against the chest wall, a lesion volume that hangs on its
threshold, a sharp kernel's smoothing on pixels too coarse for the vessel filter). The settings are
``trialake.imaging.params.VolumetryParams``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy import ndimage

from trialake.imaging.lesions import LesionMasks, compute_lesion_masks, compute_opening_side_px
from trialake.imaging.morphology import compute_cross_dilation
from trialake.imaging.noise import (
    compute_noise_hu,
    compute_residual_noise_hu,
    compute_smoothing_margin_px,
    compute_smoothing_px,
)
from trialake.imaging.params import VolumetryParams
from trialake.imaging.segment import (
    ClassicalSegmenter,
    Finding,
    LungMasks,
    SegmentationParams,
    compute_body_mask,
    compute_expanded,
    compute_padding_mask,
)
from trialake.imaging.series import load_series
from trialake.imaging.targets import TARGETS
from trialake.imaging.volume import PADDING_HU, CTVolume, NotMeasurable, compute_kernel_class, compute_mapped_zeros

#: Less lung than this (mL) means no lungs were found, whatever the segmenter.
MIN_LUNG_ML = 200.0
#: Noise is measured on every n-th slice (enough air voxels, a fraction of the cost).
NOISE_SLICE_STEP = 8
MEASURED, FLAGGED, FAILED = "measured", "measured-with-flags", "failed"
#: Flag the solid volume when noise may have put more than this share of it on the wrong side of the
#: ground-glass/solid split: half the solid target (30%), because the expected count assumes a flat
#: HU distribution around the split and underestimates tissue piled up just below it.
SPLIT_DOUBT_SHARE = 0.15
#: Lesion voxels less than this above ``lesion_low_hu`` (after smoothing) would leave the lesion if the
#: threshold were that much higher: their share of the lung is how much the lesion percentage hangs on
#: the threshold, through partial volume and noise at the lesions' border (flag ``lesion_edge``).
EDGE_BAND_HU = 50.0


class Segmenter(Protocol):
    """Anything that segments the lungs (dense disease included) of a CT volume."""

    name: str
    version: str

    def segment_lungs(self, volume: CTVolume) -> LungMasks: ...


SegmenterFactory = Callable[[VolumetryParams], Segmenter]

def _model(name: str) -> SegmenterFactory:
    def build(params: VolumetryParams) -> Segmenter:
        from trialake.imaging import models  # PyTorch-based packages are imported only when configured

        return getattr(models, f"build_{name}")(params)
    return build


_SEGMENTERS: dict[str, SegmenterFactory] = {
    "classical": lambda p: ClassicalSegmenter(),
    "lungmask": _model("lungmask"),
    "totalsegmentator": _model("totalsegmentator"),
}


def register_segmenter(name: str, factory: SegmenterFactory) -> None:
    """Make a segmenter selectable by ``VolumetryParams.segmenter`` (or ``check_segmenter``).

    A model-based segmenter (lungmask, TotalSegmentator) is a class with ``name``, ``version``
    (include the weights' checksum, so ``params_hash`` changes with the weights) and
    ``segment_lungs``; its factory takes the weights from ``params.model_weights[name]`` (a local
    path: nothing is downloaded) and it returns ``LungMasks`` in the volume's (z, y, x) order,
    e.g. with lungmask::

        class LungmaskSegmenter:
            name = "lungmask"
            def __init__(self, weights: Path):
                self.version = "R231+" + sha256(weights.read_bytes()).hexdigest()[:12]
                self._inferer = LMInferer(modelpath=str(weights), force_cpu=True, tqdm_disable=True)
            def segment_lungs(self, volume):
                labels = self._inferer.apply(volume.hu)           # 1 right, 2 left
                return LungMasks(lung=labels > 0, left=labels == 2, right=labels == 1,
                                 airway=np.zeros_like(labels, bool))

        register_segmenter("lungmask", lambda p: LungmaskSegmenter(Path(p.model_weights["lungmask"])))

    Lesions are then measured inside its lung mask exactly as for the classical one.
    """
    _SEGMENTERS[name] = factory


def get_segmenter(params: VolumetryParams, name: str | None = None) -> Segmenter:
    """The segmenter named ``name`` (default ``params.segmenter``), built from ``params``."""
    name = name or params.segmenter
    try:
        factory = _SEGMENTERS[name]
    except KeyError:
        raise ValueError(f"ct.segmenter: unknown segmenter {name!r}; known: {sorted(_SEGMENTERS)}") from None
    return factory(params)


def compute_params_hash(params: VolumetryParams, segmenter: Segmenter, check: Segmenter | None = None) -> str:
    """Stable 16-hex-digit hash of the parameters and the method(s) (name, version)."""
    methods = [[segmenter.name, segmenter.version]] + ([[check.name, check.version]] if check else [])
    blob = json.dumps({"params": params.model_dump(mode="json"), "methods": methods}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class VolumetryResult:
    """Measurements and QC of one series (the fields of silver/ct_volumetry) plus masks for QC.

    status: "measured" or "measured-with-flags"; reason: the flags' sentences joined with "; "
    (None without flags); qc_flags: their codes joined with ",". QC: noise_hu (SD of outside air),
    smoothing_mm (in-plane Gaussian sigma applied before the HU bands), convolution_kernel and
    kernel_class, right_lung_share, airway_found, put_back_pct (share of the lung volume that was
    dense tissue put back), fov_margin_mm (closest lung to the in-plane edge of the image or the
    reconstruction circle), scan_margin_mm (closest lung end to the first or last slice),
    gantry_tilt_deg, check_method and check_lung_volume_ml / disagreement_pct (second segmenter).
    Masks: ``boxed_lungs``, ``boxed_ggo`` and ``boxed_solid`` in the lungs' box (``LungMasks.box``);
    ``lungs``, ``ggo`` and ``solid`` put them on the whole volume when first read.
    """

    lung_volume_ml: float
    lesion_volume_ml: float
    ggo_volume_ml: float
    solid_volume_ml: float
    lesion_pct: float
    ggo_pct: float
    solid_pct: float
    left_lung_volume_ml: float
    right_lung_volume_ml: float
    mean_lung_density_hu: float
    effusion_volume_ml: float
    pneumothorax_volume_ml: float
    status: str
    reason: str | None
    qc_flags: str | None
    noise_hu: float | None
    smoothing_mm: float
    convolution_kernel: str | None
    kernel_class: str
    right_lung_share: float
    airway_found: bool | None
    put_back_pct: float | None
    fov_margin_mm: float
    scan_margin_mm: float
    gantry_tilt_deg: float
    check_method: str | None
    check_lung_volume_ml: float | None
    disagreement_pct: float | None
    method: str
    method_version: str
    params_hash: str
    boxed_lungs: LungMasks = field(repr=False, compare=False)
    boxed_ggo: np.ndarray = field(repr=False, compare=False)
    boxed_solid: np.ndarray = field(repr=False, compare=False)

    @functools.cached_property
    def lungs(self) -> LungMasks:
        """The segmentation on the whole volume (built on first use from ``boxed_lungs``, the lungs' box)."""
        return self.boxed_lungs.expanded()

    @functools.cached_property
    def ggo(self) -> np.ndarray:
        """Ground-glass voxels on the whole volume (built on first use from ``boxed_ggo``)."""
        return compute_expanded(self.boxed_ggo, self.boxed_lungs.box, self.boxed_lungs.shape)

    @functools.cached_property
    def solid(self) -> np.ndarray:
        """Solid voxels on the whole volume (built on first use from ``boxed_solid``)."""
        return compute_expanded(self.boxed_solid, self.boxed_lungs.box, self.boxed_lungs.shape)

    @functools.cached_property
    def boxed_masks(self) -> dict[str, np.ndarray]:
        """The lung, ground-glass, solid, pleural fluid and pleural air masks of the lungs' box
        (``boxed_lungs.box``; a mask the segmenter did not make is all False)."""
        lungs = self.boxed_lungs
        masks = {"lung": lungs.lung, "ggo": self.boxed_ggo, "solid": self.boxed_solid,
                 "effusion": lungs.effusion, "pneumothorax": lungs.pneumothorax}
        return {name: np.zeros_like(lungs.lung) if m is None else m for name, m in masks.items()}

    def mask_slice(self, name: str, axis: int, index: int) -> np.ndarray:
        """Slice ``index`` along ``axis`` of the whole-volume mask ``name`` (a key of ``boxed_masks``),
        built from the boxed mask without a whole-volume array."""
        box, shape = self.boxed_lungs.box, self.boxed_lungs.shape
        rest = [a for a in range(3) if a != axis]
        out = np.zeros([shape[a] for a in rest], bool)
        if box[axis].start <= index < box[axis].stop:
            out[box[rest[0]], box[rest[1]]] = np.take(self.boxed_masks[name], index - box[axis].start, axis=axis)
        return out

    def to_record(self) -> dict[str, float | str | bool | None]:
        """The scalar fields, as for one silver/ct_volumetry row or the CLI's JSON."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.compare}


@dataclass(frozen=True)
class SliceSample:
    """Every ``NOISE_SLICE_STEP``-th slice at full resolution (HU) and its padding (outside the
    reconstruction circle): what the noise estimate and the field-of-view margin read."""

    hu: np.ndarray
    padding: np.ndarray
    spacing_mm: tuple[float, float, float]


def compute_slice_sample(volume: CTVolume) -> SliceSample:
    """The slice sample of ``volume`` (its padding mask built once, for both readers)."""
    hu = volume.hu[::NOISE_SLICE_STEP]
    return SliceSample(hu, compute_padding_mask(hu <= PADDING_HU, volume.spacing_mm), volume.spacing_mm)


def compute_series_noise(sample: SliceSample) -> float:
    """Noise SD (HU) of outside air on the sampled slices (NaN without enough air)."""
    body = compute_body_mask(sample.hu, -500.0, sample.padding)
    return compute_noise_hu(sample.hu, body, sample.padding, sample.spacing_mm)


def compute_fov_margin_mm(sample: SliceSample, lungs: LungMasks) -> float:
    """Smallest in-plane distance (mm) from the lung (``lungs`` boxed) to the image border or the
    reconstruction circle (padding on every sampled slice)."""
    footprint = np.zeros(lungs.shape[1:], bool)
    footprint[lungs.box[1:]] = lungs.lung.any(axis=0)
    if not footprint.any():
        return 0.0
    inside = np.pad(~sample.padding.all(axis=0), 1)  # the image border is an edge too
    distance = ndimage.distance_transform_edt(inside, sampling=sample.spacing_mm[1:])[1:-1, 1:-1]
    return float(distance[footprint].min())


def compute_scan_margin_mm(volume: CTVolume, lungs: LungMasks) -> float:
    """Distance (mm) from the lung's (``lungs`` boxed) first and last slice to the scan's ends, the smaller one."""
    zs = np.nonzero(lungs.lung.any(axis=(1, 2)))[0] + lungs.box[0].start
    if zs.size == 0:
        return 0.0
    return float(min(zs[0], lungs.shape[0] - 1 - zs[-1]) * volume.spacing_mm[0])


def compute_flags(params: VolumetryParams, lungs: LungMasks, record: dict) -> list[Finding]:
    """The flags of one measurement (see the module doc) from the segmenter's findings and the QC values."""
    thresholds = {"hidden_border": params.hidden_border_flag_cm2, "left_out": params.left_out_flag_ml,
                  "open_border": params.open_border_flag_cm2}
    flags = [f for f in lungs.findings if f.value >= thresholds.get(f.code, 0.0)]
    lung_ml = record["lung_volume_ml"]
    low, high = params.right_lung_share
    share = record["right_lung_share"]
    if not low <= share <= high:
        flags.append(Finding("lr_balance", f"the right lung holds {share:.0%} of the lung volume "
                                           f"(expected {low:.0%}-{high:.0%}): a lung or part of one may be missing"))
    if record["put_back_pct"] is not None and record["put_back_pct"] > params.max_put_back_pct:
        flags.append(Finding("put_back", f"{record['put_back_pct']:.0f}% of the lung volume is dense tissue put back "
                                         "into the lung: check its border"))
    if record["effusion_volume_ml"] >= max(params.effusion_flag_ml, 1e-9):
        flags.append(Finding("effusion", f"pleural effusion of {record['effusion_volume_ml']:.0f} mL (not lung): "
                                         "check the border between fluid and collapsed lung"))
    if record["pneumothorax_volume_ml"] >= max(params.pneumothorax_flag_ml, 1e-9):
        flags.append(Finding("pneumothorax", f"pleural air of {record['pneumothorax_volume_ml']:.0f} mL (not lung)"))
    if lungs.airway_found is False:
        flags.append(Finding("airway", "no trachea found: airways may be counted as lung and left/right unchecked"))
    if record["disagreement_pct"] is not None and record["disagreement_pct"] > params.max_disagreement_pct:
        flags.append(Finding("segmenter_disagreement",
                             f"{record['check_method']} finds {record['check_lung_volume_ml']:.0f} mL of lung against "
                             f"{lung_ml:.0f} mL ({record['disagreement_pct']:.1f}% apart)"))
    doubt, solid = record["split_doubt_ml"], record["solid_volume_ml"]
    if doubt > max(params.solid_split_flag_ml, SPLIT_DOUBT_SHARE * solid):
        flags.append(Finding("solid_split", f"much of the lesion lies within the image noise of the ground-glass/solid "
                                            f"split ({params.solid_split_hu:.0f} HU): about {doubt:.0f} mL of it may be "
                                            f"on the wrong side (solid {solid:.0f} mL)"))
    at_wall, ggo_ml = record["ggo_at_wall_ml"], record["ggo_volume_ml"]
    # more dense ground glass against tissue than the ground-glass or the lesion-percentage target allows
    if at_wall > max(TARGETS.ggo_ml, min(TARGETS.ggo_share * ggo_ml, TARGETS.lesion_points / 100.0 * lung_ml)):
        flags.append(Finding("ggo_at_wall", f"{at_wall:.0f} mL of dense ground glass (of {ggo_ml:.0f} mL) lies in the lung's "
                                            "outermost voxels against the chest wall or mediastinum, where it cannot be told "
                                            "from the wall's partial-volume layer: the ground glass is uncertain by about "
                                            "that much"))
    mode, noise, low = record["lung_mode_hu"], record["residual_noise_hu"], params.lesion_low_hu
    if np.isfinite(mode) and low - mode < params.lung_density_margin_sd * noise:
        flags.append(Finding("lung_density", f"the aerated lung is at {mode:.0f} HU, within "
                                             f"{params.lung_density_margin_sd:g} noise SDs ({noise:.0f} HU after smoothing) "
                                             f"of the ground-glass threshold ({low:.0f} HU): noise and the lung's own "
                                             "density widen the ground glass (poor inspiration, or a sharp kernel?)"))
    edge = record["lesion_edge_pct"]
    if edge > params.lesion_edge_flag_pct:
        flags.append(Finding("lesion_edge", f"{edge:.1f}% of the lung is lesion within {EDGE_BAND_HU:.0f} HU of the "
                                            f"ground-glass threshold ({low:.0f} HU): partial volume and noise at the "
                                            "lesions' border move the lesion percentage by about that much (thick "
                                            "slices, a sharp kernel, dense lung?)"))
    if record["smoothing_mm"] > 0 and record["opening_side_px"] <= 2:
        flags.append(Finding("vessel_filter", f"smoothing against the image noise (sigma {record['smoothing_mm']:.1f} mm) on "
                                              "pixels coarser than half the widest vessel: the vessel filter is at its "
                                              "smallest square (2 pixels) and blurred vessels may count as lesion; "
                                              "prefer a soft-kernel or a finer reconstruction"))
    return flags


def compute_tissue_border(lung: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """Lung voxels face to face with ``dense`` tissue outside the lung (chest wall, mediastinum, diaphragm)."""
    return lung & compute_cross_dilation(dense & ~lung, axes=(0, 1, 2))


def compute_ggo_at_wall_ml(hu: np.ndarray, lung: np.ndarray, ggo: np.ndarray, voxel_ml: float) -> float:
    """Dense ground glass (mL: at or above the segmenter's aerated-lung threshold, -400 HU) in the lung's
    voxels face to face with dense tissue (``compute_tissue_border``): there the lung's end cannot be
    told by HU from the partial-volume layer of the wall. Ground glass of -600 to -450 HU (most
    pneumonia) against the wall does not count: the wall's edge is sharp against it.

    The arrays are the lungs' box (``LungMasks.box``: a voxel wider than the lung, or at the
    volume's edge)."""
    dense = hu >= SegmentationParams.lung_air_hu
    return int(np.count_nonzero(ggo & dense & compute_tissue_border(lung, dense))) * voxel_ml


def compute_lung_mode_hu(hu: np.ndarray, lung: np.ndarray, bin_hu: float = 5.0) -> float:
    """Most common HU of the aerated lung (below -400 HU): the centre of the fullest ``bin_hu`` bin
    after a triangular 5-bin moving average (NaN when no lung voxel is aerated)."""
    edges = np.arange(PADDING_HU, SegmentationParams.lung_air_hu + bin_hu, bin_hu)
    counts = np.zeros(edges.size - 1, np.int64)
    for start in range(0, hu.shape[0], 16):  # a slab at a time: no copy of every lung voxel
        counts += np.histogram(hu[start:start + 16][lung[start:start + 16]], bins=edges)[0]
    if not counts.any():
        return float("nan")
    smooth = np.convolve(counts, [1, 2, 3, 2, 1], mode="same")
    return float(edges[np.argmax(smooth)] + bin_hu / 2)


def measure_volume(volume: CTVolume, params: VolumetryParams = VolumetryParams(),
                   segmenter: Segmenter | None = None, check: Segmenter | None = None) -> VolumetryResult:
    """Lung, lesion, ground-glass, solid, pleural fluid and air volumes of one CT volume, with QC.

    Raises NotMeasurable (with a reason) when no lungs are found, the field of view cuts them or
    the series is too noisy.
    """
    segmenter = segmenter or get_segmenter(params)
    if check is None and params.check_segmenter:
        check = get_segmenter(params, params.check_segmenter)
    sample = compute_slice_sample(volume)
    noise = compute_series_noise(sample)
    if np.isfinite(noise) and noise > params.max_noise_hu:
        raise NotMeasurable(f"image noise {noise:.0f} HU is above {params.max_noise_hu:.0f} HU: "
                            "ask the site for a reconstruction with a softer kernel or thicker slices")
    lungs = segmenter.segment_lungs(volume).boxed()
    hu = volume.hu[lungs.box]
    voxel_ml = volume.voxel_ml
    n_lung = int(np.count_nonzero(lungs.lung))
    if n_lung * voxel_ml < MIN_LUNG_ML:
        raise NotMeasurable(f"no lungs found ({n_lung * voxel_ml:.0f} mL segmented)")
    smoothing = compute_smoothing_px(noise, params.noise_target_hu, volume.spacing_mm)
    residual_noise = compute_residual_noise_hu(noise, smoothing)
    ggo, solid, split_doubt, near_low = _measure_lesions(volume, lungs, params, smoothing, residual_noise)
    n_ggo, n_solid = int(np.count_nonzero(ggo)), int(np.count_nonzero(solid))
    lung_ml = n_lung * voxel_ml
    lung_mode = compute_lung_mode_hu(hu, lungs.lung)
    check_ml = None
    if check is not None:
        check_ml = int(np.count_nonzero(check.segment_lungs(volume).lung)) * voxel_ml
    record = {
        "lung_volume_ml": lung_ml,
        "right_lung_share": int(np.count_nonzero(lungs.right)) / n_lung,
        "put_back_pct": None if lungs.put_back is None else 100.0 * int(np.count_nonzero(lungs.put_back)) / n_lung,
        "effusion_volume_ml": 0.0 if lungs.effusion is None else int(np.count_nonzero(lungs.effusion)) * voxel_ml,
        "pneumothorax_volume_ml": (0.0 if lungs.pneumothorax is None
                                   else int(np.count_nonzero(lungs.pneumothorax)) * voxel_ml),
        "check_method": None if check is None else check.name,
        "check_lung_volume_ml": check_ml,
        "disagreement_pct": None if check_ml is None else 100.0 * abs(check_ml - lung_ml) / lung_ml,
        "solid_volume_ml": n_solid * voxel_ml,
        "split_doubt_ml": split_doubt * voxel_ml,
        "smoothing_mm": float(smoothing[0] * volume.spacing_mm[1]),
        "ggo_volume_ml": n_ggo * voxel_ml,
        "ggo_at_wall_ml": compute_ggo_at_wall_ml(hu, lungs.lung, ggo, voxel_ml),
        "lung_mode_hu": lung_mode,
        "residual_noise_hu": residual_noise,
        "lesion_edge_pct": 100.0 * near_low / n_lung,
        "opening_side_px": min(compute_opening_side_px(params.vessel_max_diameter_mm, px) for px in volume.spacing_mm[1:]),
    }
    flags = compute_flags(params, lungs, record)
    return VolumetryResult(
        lung_volume_ml=lung_ml,
        lesion_volume_ml=(n_ggo + n_solid) * voxel_ml,
        ggo_volume_ml=n_ggo * voxel_ml,
        solid_volume_ml=n_solid * voxel_ml,
        lesion_pct=100.0 * (n_ggo + n_solid) / n_lung,
        ggo_pct=100.0 * n_ggo / n_lung,
        solid_pct=100.0 * n_solid / n_lung,
        left_lung_volume_ml=int(np.count_nonzero(lungs.left)) * voxel_ml,
        right_lung_volume_ml=int(np.count_nonzero(lungs.right)) * voxel_ml,
        mean_lung_density_hu=float(hu[lungs.lung].mean(dtype=np.float64)),
        effusion_volume_ml=record["effusion_volume_ml"],
        pneumothorax_volume_ml=record["pneumothorax_volume_ml"],
        status=FLAGGED if flags else MEASURED,
        reason="; ".join(f.text for f in flags) or None,
        qc_flags=",".join(f.code for f in flags) or None,
        noise_hu=None if not np.isfinite(noise) else noise,
        smoothing_mm=record["smoothing_mm"],
        convolution_kernel=volume.kernel,
        kernel_class=compute_kernel_class(volume.kernel),
        right_lung_share=record["right_lung_share"],
        airway_found=lungs.airway_found,
        put_back_pct=record["put_back_pct"],
        fov_margin_mm=compute_fov_margin_mm(sample, lungs),
        scan_margin_mm=compute_scan_margin_mm(volume, lungs),
        gantry_tilt_deg=volume.tilt_deg,
        check_method=record["check_method"],
        check_lung_volume_ml=check_ml,
        disagreement_pct=record["disagreement_pct"],
        method=segmenter.name,
        method_version=segmenter.version,
        params_hash=compute_params_hash(params, segmenter, check),
        boxed_lungs=lungs, boxed_ggo=ggo, boxed_solid=solid,
    )


def _measure_lesions(volume: CTVolume, lungs: LungMasks, params: VolumetryParams, smoothing: tuple[float, float],
                     residual_noise: float) -> LesionMasks:
    """``compute_lesion_masks`` in the box of ``lungs`` (boxed): the HU it smooths are read from a box
    wider by the smoothing's margin in-plane, so the result is the same as on the whole volume."""
    margin = compute_smoothing_margin_px(smoothing)
    outer = (lungs.box[0],) + tuple(slice(max(0, b.start - margin), min(n, b.stop + margin))
                                    for b, n in zip(lungs.box[1:], lungs.shape[1:]))
    inner = tuple(slice(b.start - o.start, b.stop - o.start) for b, o in zip(lungs.box, outer))
    lung = compute_mapped_zeros(tuple(o.stop - o.start for o in outer))
    lung[inner] = lungs.lung
    masks = compute_lesion_masks(
        volume.hu[outer], lung, volume.spacing_mm, low_hu=params.lesion_low_hu, high_hu=params.lesion_high_hu,
        split_hu=params.solid_split_hu, vessel_max_diameter_mm=params.vessel_max_diameter_mm, smoothing_px=smoothing,
        noise_hu=residual_noise, edge_band_hu=EDGE_BAND_HU)
    return masks._replace(ggo=masks.ggo[inner], solid=masks.solid[inner])


def measure_series_dir(path: str | os.PathLike, params: VolumetryParams = VolumetryParams()) -> VolumetryResult:
    """Measure the one series whose DICOM files are in ``path`` (recursively; DICOMDIR and hidden files skipped)."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"measure_series_dir: {root} is not a directory")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "DICOMDIR" and not p.name.startswith("."))
    if not files:
        raise ValueError(f"measure_series_dir: no files in {root}")
    return measure_volume(load_series(files), params)
