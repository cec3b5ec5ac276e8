"""Model-based lung segmenters whose weights are already on disk: lungmask (R231) and TotalSegmentator.

Neither package nor any weights ship with Trialake (both need PyTorch). A trial that has them
installed names the weights in its configuration::

    ct:
      check_segmenter: lungmask            # or segmenter: lungmask
      model_weights: {lungmask: /models/unet_r231-d5d2fc3d.pth,
                      totalsegmentator: /models/totalseg}   # TotalSegmentator's weights folder

Nothing is downloaded at run time: a missing file, folder or package stops the run at the start
with a message naming the setting. The version recorded with every result includes the package
version and a checksum of the weights, so new weights give a new ``params_hash``.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import tempfile
from pathlib import Path

import numpy as np

from trialake.imaging.params import VolumetryParams
from trialake.imaging.segment import LungMasks
from trialake.imaging.volume import CTVolume


def _weights(params: VolumetryParams, name: str, *, folder: bool) -> Path:
    raw = params.model_weights.get(name)
    if not raw:
        raise ValueError(f"ct.model_weights.{name}: the path of the {name} weights is required "
                         "(nothing is downloaded at run time)")
    path = Path(raw)
    if not (path.is_dir() if folder else path.is_file()):
        raise ValueError(f"ct.model_weights.{name}: {path} is not a {'folder' if folder else 'file'} on this machine")
    return path


def _module(name: str, package: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ValueError(f"ct.segmenter: {package} is not installed (pip install {package}; it needs PyTorch)") from None


def _checksum(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def _lungs_from_labels(labels: np.ndarray, right: tuple[int, ...], left: tuple[int, ...]) -> LungMasks:
    r, lft = np.isin(labels, right), np.isin(labels, left)
    return LungMasks(lung=r | lft, left=lft, right=r, airway=np.zeros(labels.shape, bool))


class LungmaskSegmenter:
    """lungmask's U-net (R231 or R231CovidWeb weights); labels 1 = right lung, 2 = left lung."""

    name = "lungmask"

    def __init__(self, weights: Path) -> None:
        lungmask = _module("lungmask", "lungmask")
        self.version = f"{importlib.metadata.version('lungmask')}+{_checksum(weights)}"
        self._inferer = lungmask.LMInferer(modelpath=str(weights), force_cpu=True, tqdm_disable=True)

    def segment_lungs(self, volume: CTVolume) -> LungMasks:
        # (z, y, x) with x towards the patient's left and y posterior: the array order lungmask expects
        labels = np.asarray(self._inferer.apply(np.ascontiguousarray(volume.hu, dtype=np.float32)))
        return _lungs_from_labels(labels, right=(1,), left=(2,))


#: TotalSegmentator (task "total") lobe labels, right and left.
TOTALSEG_LOBES = {"right": ("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right"),
                  "left": ("lung_upper_lobe_left", "lung_lower_lobe_left")}


class TotalSegmentatorSegmenter:
    """TotalSegmentator's lung lobes, from weights in a local folder (``TOTALSEG_HOME_DIR``)."""

    name = "totalsegmentator"

    def __init__(self, weights: Path) -> None:
        self._api = _module("totalsegmentator.python_api", "TotalSegmentator")
        self._weights = weights
        self.version = f"{importlib.metadata.version('TotalSegmentator')}+{_checksum(weights)}"

    def segment_lungs(self, volume: CTVolume) -> LungMasks:
        import nibabel as nib

        from trialake.imaging.qc import compute_nifti_affine

        os.environ["TOTALSEG_HOME_DIR"] = str(self._weights)
        image = nib.Nifti1Image(np.ascontiguousarray(volume.hu.transpose(2, 1, 0), dtype=np.float32),
                                compute_nifti_affine(volume))
        with tempfile.TemporaryDirectory() as out:
            self._api.totalsegmentator(image, Path(out), task="total", roi_subset=[*TOTALSEG_LOBES["right"],
                                                                              *TOTALSEG_LOBES["left"]],
                                       quiet=True, device="cpu")
            masks = {side: np.zeros(volume.hu.shape, bool) for side in TOTALSEG_LOBES}
            for side, lobes in TOTALSEG_LOBES.items():
                for lobe in lobes:
                    masks[side] |= np.asarray(nib.load(Path(out) / f"{lobe}.nii.gz").dataobj).transpose(2, 1, 0) > 0
        return LungMasks(lung=masks["right"] | masks["left"], left=masks["left"], right=masks["right"],
                         airway=np.zeros(volume.hu.shape, bool))


def build_lungmask(params: VolumetryParams) -> LungmaskSegmenter:
    return LungmaskSegmenter(_weights(params, "lungmask", folder=False))


def build_totalsegmentator(params: VolumetryParams) -> TotalSegmentatorSegmenter:
    return TotalSegmentatorSegmenter(_weights(params, "totalsegmentator", folder=True))
