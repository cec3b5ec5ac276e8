"""The CT settings: one definition (the ct: section is VolumetryParams), validated wherever they are
built, and each of them changes the output."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from trialake.config import ConfigError, TrialConfig, load_trial_config
from trialake.imaging import CTVolume, NotMeasurable, VolumetryParams, measure_volume, register_segmenter
from trialake.pipeline.params import volumetry_params, volumetry_params_hash
from trialake.synth.phantom import PhantomSpec, make_chest_phantom
from tests.test_model_segmenter import TinyConvSegmenter, write_tiny_weights

SMALL = dict(matrix=72, slices=30, fov_mm=380.0, slice_spacing_mm=9.0)
PHANTOMS = {
    "mixed": PhantomSpec(**SMALL, lesion_pct=15.0, solid_share=0.4, seed=401),
    "healthy": PhantomSpec(**SMALL, lesion_pct=0.0, chest_wall_consolidation=False, seed=402),
    "sharp": PhantomSpec(**SMALL, lesion_pct=15.0, noise_hu=80.0, blur_mm=0.4, seed=403),
    "severe": PhantomSpec(**SMALL, lesion_pct=45.0, solid_share=0.5, seed=404),
    "effusion": PhantomSpec(**SMALL, lesion_pct=3.0, effusion_mm=35.0, seed=405),
    "pneumothorax": PhantomSpec(**SMALL, lesion_pct=3.0, pneumothorax_mm=25.0, seed=406),
    "lobar": PhantomSpec(lesion_pct=3.0, chest_wall_consolidation=False, lobar_consolidation=True, seed=53),
    "dependent": PhantomSpec(lesion_pct=3.0, chest_wall_consolidation=False, dependent_density_mm=25.0, seed=216),
}


@lru_cache(maxsize=None)
def _volume(name: str) -> CTVolume:
    ph = make_chest_phantom(PHANTOMS[name])
    return CTVolume(ph.hu, ph.spacing_mm)


def _weights(tmp_path: Path) -> dict[str, str]:
    register_segmenter("tiny", lambda p: TinyConvSegmenter(Path(p.model_weights["tiny"])))
    return {"tiny": str(write_tiny_weights(tmp_path / "tiny.npz", -820.0))}


# setting -> (phantom, changes against the default, what must differ)
CHANGES = {
    "lesion_low_hu": ("mixed", {"lesion_low_hu": -600.0}, lambda a, b: b.lesion_volume_ml < a.lesion_volume_ml),
    "lesion_high_hu": ("mixed", {"lesion_high_hu": -100.0}, lambda a, b: b.solid_volume_ml < a.solid_volume_ml),
    "solid_split_hu": ("mixed", {"solid_split_hu": -550.0}, lambda a, b: b.solid_volume_ml > a.solid_volume_ml),
    # at 5.3 mm pixels an 8 mm limit is a 2-pixel square; 25 mm takes small lesions for vessels too
    "vessel_max_diameter_mm": ("mixed", {"vessel_max_diameter_mm": 25.0},
                               lambda a, b: b.lesion_volume_ml < a.lesion_volume_ml - 5.0),
    "noise_target_hu": ("sharp", {"noise_target_hu": 0.0},
                        lambda a, b: a.smoothing_mm > 0 == b.smoothing_mm and a.lesion_volume_ml != b.lesion_volume_ml),
    "max_noise_hu": ("sharp", {"max_noise_hu": 60.0, "noise_target_hu": 30.0}, None),  # refused
    "segmenter": ("healthy", {"segmenter": "tiny"}, lambda a, b: b.method == "tiny" != a.method),
    "check_segmenter": ("healthy", {"check_segmenter": "tiny"},
                        lambda a, b: a.check_method is None and b.check_method == "tiny"),
    "max_disagreement_pct": ("healthy", {"check_segmenter": "tiny", "max_disagreement_pct": 90.0},
                             lambda a, b: "segmenter_disagreement" not in (b.qc_flags or "")),
    "model_weights": ("healthy", {"segmenter": "tiny"}, lambda a, b: b.params_hash != a.params_hash),
    "max_put_back_pct": ("severe", {"max_put_back_pct": 1.0}, lambda a, b: "put_back" in b.qc_flags),
    "right_lung_share": ("healthy", {"right_lung_share": (0.6, 0.9)}, lambda a, b: "lr_balance" in b.qc_flags),
    "effusion_flag_ml": ("effusion", {"effusion_flag_ml": 1e6},
                         lambda a, b: "effusion" in a.qc_flags and "effusion" not in (b.qc_flags or "")),
    "pneumothorax_flag_ml": ("pneumothorax", {"pneumothorax_flag_ml": 1e6},
                             lambda a, b: "pneumothorax" in a.qc_flags and "pneumothorax" not in (b.qc_flags or "")),
    "hidden_border_flag_cm2": ("lobar", {"hidden_border_flag_cm2": 1e6},
                               lambda a, b: "hidden_border" in a.qc_flags and "hidden_border" not in (b.qc_flags or "")),
    "left_out_flag_ml": ("lobar", {"left_out_flag_ml": 1e6},
                         lambda a, b: "left_out" in a.qc_flags and "left_out" not in (b.qc_flags or "")),
    "open_border_flag_cm2": ("lobar", {"open_border_flag_cm2": 1e6},
                             lambda a, b: "open_border" in a.qc_flags and "open_border" not in (b.qc_flags or "")),
    "lung_density_margin_sd": ("healthy", {"lung_density_margin_sd": 1e3},
                               lambda a, b: "lung_density" not in (a.qc_flags or "") and "lung_density" in b.qc_flags),
    "lesion_edge_flag_pct": ("sharp", {"lesion_edge_flag_pct": 0.1},
                             lambda a, b: "lesion_edge" not in a.qc_flags and "lesion_edge" in b.qc_flags),
    "solid_split_flag_ml": ("dependent", {"solid_split_flag_ml": 1e6},
                            lambda a, b: "solid_split" in a.qc_flags and "solid_split" not in (b.qc_flags or "")),
}


def test_every_setting_has_a_test_that_it_changes_the_output() -> None:
    assert set(CHANGES) == set(VolumetryParams.model_fields)


@pytest.mark.parametrize("setting", sorted(CHANGES))
def test_each_setting_changes_the_output(setting: str, tmp_path: Path) -> None:
    phantom, changes, differs = CHANGES[setting]
    weights = _weights(tmp_path)
    base_changes = {"model_weights": weights} if setting == "max_disagreement_pct" else {}
    base = VolumetryParams(**base_changes, **({"check_segmenter": "tiny"} if setting == "max_disagreement_pct" else {}))
    changed = volumetry_params(base, model_weights=weights, **changes)
    a = measure_volume(_volume(phantom), base)
    if differs is None:
        with pytest.raises(NotMeasurable, match="noise"):
            measure_volume(_volume(phantom), changed)
        return
    b = measure_volume(_volume(phantom), changed)
    assert differs(a, b), (setting, a.to_record(), b.to_record())
    assert volumetry_params_hash(changed) != volumetry_params_hash(base)


def test_the_ct_section_is_volumetry_params_with_its_defaults() -> None:
    trial = load_trial_config()
    assert isinstance(trial.ct, VolumetryParams)
    assert trial.ct == VolumetryParams()  # the reference trial states the defaults, nothing else
    assert TrialConfig.model_fields["ct"].annotation is VolumetryParams


@pytest.mark.parametrize("line, key", [
    ("  lesion_low_hu: -200", "ct"),  # above the split
    ("  vessel_max_diameter_mm: 0", "ct.vessel_max_diameter_mm"),
    ("  dense_hu: -500", "ct.dense_hu"),  # not a setting: the segmenter's thresholds are constants
    ("  right_lung_share: [0.8, 0.2]", "ct"),
])
def test_bad_ct_settings_are_refused_naming_file_and_key(tmp_path: Path, line: str, key: str) -> None:
    trial = Path(__file__).parents[1] / "src/trialake/config/reference_trial.yaml"
    text = trial.read_text().replace("  lesion_low_hu: -700", line if "lesion_low_hu" in line else f"  lesion_low_hu: -700\n{line}")
    config = tmp_path / "trial.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=rf"trial.yaml: {key}"):
        load_trial_config(config)


def test_changed_parameters_are_validated_like_the_yaml() -> None:
    """The remeasure flow builds its parameters through volumetry_params: no unchecked copy."""
    ct = load_trial_config().ct
    assert volumetry_params(ct, lesion_low_hu=-650.0).lesion_low_hu == -650.0
    with pytest.raises(ValueError, match="lesion_low_hu < solid_split_hu"):
        volumetry_params(ct, lesion_low_hu=-100.0)
    with pytest.raises(ValueError, match="unknown segmenter 'nosuch'"):
        volumetry_params(ct, segmenter="nosuch")
    assert np.isclose(volumetry_params(ct).lesion_high_hu, 150.0)


def test_remeasure_flow_uses_the_validated_builder() -> None:
    source = (Path(__file__).parents[1] / "flows/adhoc.py").read_text()
    assert "model_copy" not in source and "volumetry_params(settings.trial.ct, lesion_low_hu=" in source
