"""Lung and lesion volumetry of one CT series: parameters, segmenter registry, measurement.

Default thresholds (all configurable through ``VolumetryParams``):

- ``lesion_low_hu = -700``: lower bound of opacity. Colombi D. et al., "Well-aerated lung on
  admitting chest CT to predict adverse outcome in COVID-19 pneumonia", Radiology 2020;
  296(2):E86-E96, define well-aerated lung as -950 to -700 HU, so anything denser is lesion.
- ``solid_split_hu = -300``: ground glass below, solid (consolidation) at or above. Published
  splits range from -400 to -200 HU; Zhang et al. / BMC Infectious Diseases 2021;21:756
  ("Quantitative CT for detecting COVID-19 pneumonia in suspected cases",
  doi:10.1186/s12879-021-06556-z) compared eight splits and found -300 HU the most discriminating
  for the ground-glass volume.
- ``lesion_high_hu = 150``: denser voxels (calcification, contrast-filled vessels, bone) are not
  lesion.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from trialake.imaging.lesions import compute_lesion_masks
from trialake.imaging.segment import ClassicalSegmenter, LungMasks, SegmentationParams
from trialake.imaging.series import load_series
from trialake.imaging.volume import CTVolume, NotMeasurable


@dataclass(frozen=True)
class VolumetryParams:
    """Parameters of one volumetry method (hashed into ``params_hash``).

    lesion_low_hu / lesion_high_hu: HU band of lesion voxels inside the lung (see module doc).
    solid_split_hu: ground glass below, solid at or above.
    vessel_max_diameter_mm: dense structures narrower than this in an axial slice are vessels
      (8 mm: up to segmental pulmonary arteries and veins; lesions smaller than this are not counted).
    segmenter: name of the lung segmenter in the registry (``"classical"`` built in).
    segmentation: thresholds of the classical segmenter.
    """

    lesion_low_hu: float = -700.0
    lesion_high_hu: float = 150.0
    solid_split_hu: float = -300.0
    vessel_max_diameter_mm: float = 8.0
    segmenter: str = "classical"
    segmentation: SegmentationParams = field(default_factory=SegmentationParams)

    def __post_init__(self) -> None:
        if not self.lesion_low_hu < self.solid_split_hu < self.lesion_high_hu:
            raise ValueError("VolumetryParams: need lesion_low_hu < solid_split_hu < lesion_high_hu, got "
                             f"{self.lesion_low_hu}, {self.solid_split_hu}, {self.lesion_high_hu}")
        if self.vessel_max_diameter_mm <= 0:
            raise ValueError(f"VolumetryParams.vessel_max_diameter_mm must be > 0, got {self.vessel_max_diameter_mm}")


class Segmenter(Protocol):
    """Anything that segments the lungs (dense disease included) of a CT volume."""

    name: str
    version: str

    def segment_lungs(self, volume: CTVolume) -> LungMasks: ...


SegmenterFactory = Callable[[VolumetryParams], Segmenter]

_SEGMENTERS: dict[str, SegmenterFactory] = {
    "classical": lambda p: ClassicalSegmenter(),
}


def register_segmenter(name: str, factory: SegmenterFactory) -> None:
    """Make a segmenter selectable by ``VolumetryParams.segmenter``.

    A model-based segmenter (lungmask, TotalSegmentator) is a class with ``name``, ``version``
    (include the weights' checksum, so ``params_hash`` changes with the weights) and
    ``segment_lungs`` that loads its weights from a local path given in its own configuration,
    never from the network, and returns ``LungMasks`` in the volume's (z, y, x) order, e.g.::

        class LungmaskSegmenter:
            name, version = "lungmask-R231CovidWeb", "0.2.20+<sha256 of the weights>[:12]"
            def __init__(self, weights: Path): self._inferer = LMInferer(modelpath=str(weights), tqdm_disable=True)
            def segment_lungs(self, volume):
                labels = self._inferer.apply(volume.hu)           # 1 right, 2 left
                return LungMasks(lung=labels > 0, left=labels == 2, right=labels == 1,
                                 airway=np.zeros_like(labels, bool))

        register_segmenter("lungmask", lambda params: LungmaskSegmenter(Path("/models/R231CovidWeb.pth")))

    Lesions are then measured inside its lung mask exactly as for the classical one.
    """
    _SEGMENTERS[name] = factory


def get_segmenter(params: VolumetryParams) -> Segmenter:
    """The segmenter named by ``params.segmenter``."""
    try:
        return _SEGMENTERS[params.segmenter](params)
    except KeyError:
        raise ValueError(
            f"VolumetryParams.segmenter: unknown {params.segmenter!r}; known: {sorted(_SEGMENTERS)}") from None


def compute_params_hash(params: VolumetryParams, segmenter: Segmenter) -> str:
    """Stable 16-hex-digit hash of the parameters and the method (name, version)."""
    blob = json.dumps({"params": dataclasses.asdict(params), "method": segmenter.name, "version": segmenter.version},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class VolumetryResult:
    """Measurements of one series (the fields of silver/ct_volumetry) plus masks for QC."""

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
    method: str
    method_version: str
    params_hash: str
    lungs: LungMasks = field(repr=False, compare=False)
    ggo: np.ndarray = field(repr=False, compare=False)
    solid: np.ndarray = field(repr=False, compare=False)

    def to_record(self) -> dict[str, float | str]:
        """The scalar fields, as for one silver/ct_volumetry row or the CLI's JSON."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.compare}


def measure_volume(volume: CTVolume, params: VolumetryParams = VolumetryParams(),
                   segmenter: Segmenter | None = None) -> VolumetryResult:
    """Lung, lesion, ground-glass and solid volumes of one CT volume.

    Raises NotMeasurable (with a reason) when no lungs are found or the field of view cuts them.
    """
    segmenter = segmenter or get_segmenter(params)
    lungs = segmenter.segment_lungs(volume)
    ggo, solid = compute_lesion_masks(volume.hu, lungs.lung, volume.spacing_mm, low_hu=params.lesion_low_hu,
                                      high_hu=params.lesion_high_hu, split_hu=params.solid_split_hu,
                                      vessel_max_diameter_mm=params.vessel_max_diameter_mm)
    voxel_ml = volume.voxel_ml
    n_lung = int(np.count_nonzero(lungs.lung))
    if n_lung * voxel_ml < params.segmentation.min_lung_ml:
        raise NotMeasurable(f"no lungs found ({n_lung * voxel_ml:.0f} mL segmented)")
    n_ggo, n_solid = int(np.count_nonzero(ggo)), int(np.count_nonzero(solid))
    return VolumetryResult(
        lung_volume_ml=n_lung * voxel_ml,
        lesion_volume_ml=(n_ggo + n_solid) * voxel_ml,
        ggo_volume_ml=n_ggo * voxel_ml,
        solid_volume_ml=n_solid * voxel_ml,
        lesion_pct=100.0 * (n_ggo + n_solid) / n_lung,
        ggo_pct=100.0 * n_ggo / n_lung,
        solid_pct=100.0 * n_solid / n_lung,
        left_lung_volume_ml=int(np.count_nonzero(lungs.left)) * voxel_ml,
        right_lung_volume_ml=int(np.count_nonzero(lungs.right)) * voxel_ml,
        mean_lung_density_hu=float(volume.hu[lungs.lung].mean(dtype=np.float64)),
        method=segmenter.name,
        method_version=segmenter.version,
        params_hash=compute_params_hash(params, segmenter),
        lungs=lungs, ggo=ggo, solid=solid,
    )


def measure_series_dir(path: str | os.PathLike, params: VolumetryParams = VolumetryParams()) -> VolumetryResult:
    """Measure the one series whose DICOM files are in ``path`` (recursively; DICOMDIR and hidden files skipped)."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"measure_series_dir: {root} is not a directory")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "DICOMDIR" and not p.name.startswith("."))
    if not files:
        raise ValueError(f"measure_series_dir: no files in {root}")
    return measure_volume(load_series(files), params)
