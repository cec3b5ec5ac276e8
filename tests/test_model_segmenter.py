"""Model-based segmenters through the plug-in: a small model whose weights the test makes, used end
to end (configuration file -> CLI JSON) and as a second opinion that flags disagreement; and the
lungmask / TotalSegmentator adapters' wiring.

lungmask and TotalSegmentator need PyTorch and weights that cannot be installed or downloaded
here, so their adapters are exercised against stand-in modules that record how they were called
(the only mocks in this file); the real packages are never imported by the tests.
"""
from __future__ import annotations

import importlib.metadata
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from trialake.cli import main
from trialake.imaging import CTVolume, LungMasks, VolumetryParams, get_segmenter, measure_volume, register_segmenter
from trialake.imaging.volumetry import compute_params_hash
from trialake.pipeline.params import volumetry_params
from trialake.synth.phantom import PhantomSpec, make_chest_phantom, render_phantom_dicom


class TinyConvSegmenter:
    """A one-layer model: sigmoid(mean of a 3x3x3 box of HU/1000 x weight + bias) > 0.5 is air;
    air inside the body in components of at least a tenth of the largest is lung, split at the
    body's middle. Its weights (weight, bias) are an .npz file."""

    name = "tiny"

    def __init__(self, weights: Path) -> None:
        data = np.load(weights)
        self.weight, self.bias = float(data["weight"]), float(data["bias"])
        self.version = f"1+{weights.stat().st_size}-{self.bias:.4f}"

    def segment_lungs(self, volume: CTVolume) -> LungMasks:
        box = ndimage.uniform_filter(volume.hu.astype(np.float32) / 1000.0, size=3)
        air = 1.0 / (1.0 + np.exp(-(self.weight * box + self.bias))) > 0.5
        body = np.stack([ndimage.binary_fill_holes(s) for s in volume.hu > -500])
        labels, n = ndimage.label(air & body)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        lung = sizes[labels] >= 0.1 * sizes.max()
        middle = volume.hu.shape[2] // 2
        left = lung.copy()
        left[:, :, :middle] = False
        return LungMasks(lung=lung, left=left, right=lung & ~left, airway=np.zeros_like(lung))


def write_tiny_weights(path: Path, threshold_hu: float) -> Path:
    """Weights that call a voxel air below ``threshold_hu`` (the decision boundary of the sigmoid)."""
    weight = -40.0
    np.savez(path, weight=weight, bias=-weight * threshold_hu / 1000.0)
    return path


@pytest.fixture(autouse=True)
def tiny_registered():
    register_segmenter("tiny", lambda p: TinyConvSegmenter(Path(p.model_weights["tiny"])))


@pytest.fixture(scope="module")
def healthy():
    return make_chest_phantom(PhantomSpec(lesion_pct=0.0, chest_wall_consolidation=False, seed=301))


def test_test_made_model_runs_end_to_end_from_the_trial_configuration(healthy, tmp_path, capsys) -> None:
    series = tmp_path / "series"
    series.mkdir()
    for k, data in enumerate(render_phantom_dicom(healthy, feet_first=False)):
        (series / f"{k:03d}.dcm").write_bytes(data)
    weights = write_tiny_weights(tmp_path / "tiny.npz", -400.0)
    trial = Path(__file__).parents[1] / "src/trialake/config/reference_trial.yaml"
    config = tmp_path / "trial.yaml"
    config.write_text(trial.read_text().replace("  segmenter: classical",
                                                f"  segmenter: tiny\n  model_weights: {{tiny: {weights}}}"))
    assert main(["volumetry", str(series), "--json", "--config", str(config)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["method"] == "tiny" and record["method_version"].startswith("1+")
    assert record["lung_volume_ml"] == pytest.approx(healthy.truth["lung_volume_ml"], rel=0.03)
    assert record["lesion_pct"] < 0.5


@pytest.mark.parametrize("threshold_hu, flagged", [(-400.0, False), (-860.0, True)])
def test_a_second_segmenter_flags_disagreement(healthy, tmp_path, threshold_hu, flagged) -> None:
    weights = write_tiny_weights(tmp_path / "tiny.npz", threshold_hu)
    params = VolumetryParams(check_segmenter="tiny", model_weights={"tiny": str(weights)})
    r = measure_volume(CTVolume(healthy.hu, healthy.spacing_mm), params)
    assert r.method == "classical" and r.check_method == "tiny"
    expected = 100.0 * abs(r.check_lung_volume_ml - r.lung_volume_ml) / r.lung_volume_ml
    assert r.disagreement_pct == pytest.approx(expected)
    assert (r.disagreement_pct > 3.0) is flagged
    assert ("segmenter_disagreement" in (r.qc_flags or "")) is flagged
    assert (r.status == "measured-with-flags") is flagged


def test_new_weights_give_a_new_params_hash(tmp_path) -> None:
    a = VolumetryParams(segmenter="tiny", model_weights={"tiny": str(write_tiny_weights(tmp_path / "a.npz", -400.0))})
    b = VolumetryParams(segmenter="tiny", model_weights={"tiny": str(write_tiny_weights(tmp_path / "b.npz", -500.0))})
    assert compute_params_hash(a, get_segmenter(a)) != compute_params_hash(b, get_segmenter(b))


def test_missing_weights_or_package_stop_before_any_series(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"ct.model_weights.lungmask: the path"):
        volumetry_params(VolumetryParams(), check_segmenter="lungmask")
    with pytest.raises(ValueError, match=r"ct.model_weights.totalsegmentator: .* is not a folder"):
        volumetry_params(VolumetryParams(), segmenter="totalsegmentator",
                         model_weights={"totalsegmentator": str(tmp_path / "absent")})


def _stand_in(monkeypatch, name: str, module: types.ModuleType, version: str) -> None:
    monkeypatch.setitem(sys.modules, name, module)
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda dist: version if dist.lower() == name.split(".")[0].lower()
                        else real(dist))


def test_lungmask_adapter_loads_local_weights_and_maps_labels(monkeypatch, tmp_path, healthy) -> None:
    calls = {}

    class LMInferer:
        def __init__(self, **kwargs):
            calls.update(kwargs)

        def apply(self, image):
            calls["shape"] = image.shape
            labels = np.zeros(image.shape, np.uint8)
            labels[:, :, : image.shape[2] // 2][image[:, :, : image.shape[2] // 2] < -400] = 1  # right half
            labels[:, :, image.shape[2] // 2:][image[:, :, image.shape[2] // 2:] < -400] = 2
            return labels

    _stand_in(monkeypatch, "lungmask", types.SimpleNamespace(LMInferer=LMInferer), "0.2.22")
    weights = tmp_path / "unet_r231.pth"
    weights.write_bytes(b"state dict")
    seg = get_segmenter(VolumetryParams(segmenter="lungmask", model_weights={"lungmask": str(weights)}))
    masks = seg.segment_lungs(CTVolume(healthy.hu, healthy.spacing_mm))
    assert calls["modelpath"] == str(weights) and calls["force_cpu"] is True and calls["shape"] == healthy.hu.shape
    assert seg.version.startswith("0.2.22+")
    assert masks.right[:, :, : healthy.hu.shape[2] // 2].any() and not masks.right[:, :, healthy.hu.shape[2] // 2:].any()
    assert np.array_equal(masks.lung, masks.left | masks.right)


def test_totalsegmentator_adapter_reads_the_lobes(monkeypatch, tmp_path, healthy) -> None:
    import nibabel as nib

    calls = {}

    def totalsegmentator(image, output, **kwargs):
        calls.update(kwargs, home=__import__("os").environ["TOTALSEG_HOME_DIR"])
        data = np.asarray(image.dataobj)
        for lobe in kwargs["roi_subset"]:
            mask = (data < -400).astype(np.uint8) if lobe == "lung_lower_lobe_left" else np.zeros(data.shape, np.uint8)
            nib.save(nib.Nifti1Image(mask, image.affine), Path(output) / f"{lobe}.nii.gz")

    _stand_in(monkeypatch, "totalsegmentator.python_api", types.SimpleNamespace(totalsegmentator=totalsegmentator),
              "2.18.0")
    folder = tmp_path / "totalseg"
    (folder / "nnunet").mkdir(parents=True)
    (folder / "nnunet" / "checkpoint_final.pth").write_bytes(b"weights")
    seg = get_segmenter(VolumetryParams(segmenter="totalsegmentator", model_weights={"totalsegmentator": str(folder)}))
    masks = seg.segment_lungs(CTVolume(healthy.hu, healthy.spacing_mm))
    assert calls["home"] == str(folder) and calls["task"] == "total" and calls["device"] == "cpu"
    assert np.array_equal(masks.left, healthy.hu < -400) and not masks.right.any()
