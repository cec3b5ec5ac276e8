"""Volumetry on the CT hospitals send: dense disease at the bases, noise, fluid, air, odd fields of view.

Each phantom variant (truth from its label masks) must be measured within the targets, or
measured with a flag that says what to review, or refused with a reason, as the case demands. The
seeds and sizes here are not the ones the method was tuned on; the hypothesis test draws more.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trialake.imaging import CTVolume, NotMeasurable, VolumetryParams, load_series, measure_volume
from trialake.imaging.targets import TARGETS
from trialake.synth.phantom import PhantomSpec, make_chest_phantom, render_phantom_dicom

# Targets of the volumetry issue.
LUNG_REL, LESION_POINTS = TARGETS.lung_pct / 100.0, TARGETS.lesion_points


def within_targets(truth: dict, r) -> bool:
    return not TARGETS.compute_misses(truth, r.to_record())


def describe(truth: dict, r) -> str:
    return (f"lung {r.lung_volume_ml:.0f}/{truth['lung_volume_ml']:.0f} lesion% {r.lesion_pct:.2f}/"
            f"{truth['lesion_pct']:.2f} ggo {r.ggo_volume_ml:.0f}/{truth['ggo_volume_ml']:.0f} solid "
            f"{r.solid_volume_ml:.0f}/{truth['solid_volume_ml']:.0f} status {r.status} ({r.qc_flags})")


QUIET = dict(lesion_pct=3.0, solid_share=0.3, chest_wall_consolidation=False)
ACCURATE = {  # measured within the targets (a flag is allowed only where the variant demands one)
    "basal_consolidation": PhantomSpec(**QUIET, basal_consolidation=True, seed=211),
    "liver_dome_island": PhantomSpec(**QUIET, dome_shift=0.8, seed=219),
    "arms_down": PhantomSpec(**QUIET, arms_down=True, fov_mm=500.0, matrix=128, seed=221),
    "thick_10mm": PhantomSpec(lesion_pct=15.0, slices=26, slice_spacing_mm=10.0, seed=222),
    "non_square_pixels": PhantomSpec(lesion_pct=15.0, fov_y_mm=300.0, seed=223),
    "emphysema": PhantomSpec(**QUIET, emphysema_pct=20.0, seed=224),
    "cardiomegaly_with_contrast": PhantomSpec(lesion_pct=10.0, heart_scale=1.3, contrast=True, seed=225),
    "feet_first_severe": PhantomSpec(lesion_pct=35.0, feet_first=True, seed=226),
    "pneumothorax": PhantomSpec(**QUIET, pneumothorax_mm=25.0, seed=218),
}
FLAG_ALLOWED = {  # within the targets, or flagged
    # a consolidation of water-like density filling the posterior recess is taken for pleural fluid: flagged
    "severe_with_basal_consolidation": PhantomSpec(lesion_pct=40.0, solid_share=0.4, basal_consolidation=True,
                                                   seed=212),
    "mediastinal_shift_lungs_touch": PhantomSpec(**QUIET, mediastinal_shift_mm=30.0, lungs_touch=True, seed=220),
    "lobar_consolidation": PhantomSpec(**QUIET, lobar_consolidation=True, seed=213),
    "effusion_with_collapsed_lung": PhantomSpec(**QUIET, effusion_mm=35.0, seed=215),
    "pneumonectomy": PhantomSpec(**QUIET, absent_lung="right", mediastinal_shift_mm=-25.0, seed=227),
}
# a basal consolidation runs into the mediastinum and the diaphragm with no HU edge: its border there is estimated
MUST_FLAG = {"pneumothorax": "pneumothorax", "effusion_with_collapsed_lung": "effusion", "pneumonectomy": "lr_balance",
             "basal_consolidation": "open_border"}


def _measure(spec: PhantomSpec, params: VolumetryParams = VolumetryParams()):
    ph = make_chest_phantom(spec)
    return ph, measure_volume(CTVolume(ph.hu, ph.spacing_mm), params)


@pytest.mark.parametrize("name", sorted(ACCURATE))
def test_variant_is_measured_within_targets(name: str) -> None:
    ph, r = _measure(ACCURATE[name])
    assert within_targets(ph.truth, r), describe(ph.truth, r)
    assert r.left_lung_volume_ml == pytest.approx(ph.truth["left_lung_volume_ml"], rel=0.05)
    assert r.right_lung_volume_ml == pytest.approx(ph.truth["right_lung_volume_ml"], rel=0.05)
    if name in MUST_FLAG:
        assert MUST_FLAG[name] in r.qc_flags.split(",")
    else:
        assert r.status == "measured", r.reason


@pytest.mark.parametrize("name", sorted(FLAG_ALLOWED))
def test_variant_is_measured_or_flagged(name: str) -> None:
    ph, r = _measure(FLAG_ALLOWED[name])
    assert within_targets(ph.truth, r) or r.status == "measured-with-flags", describe(ph.truth, r)
    if name in MUST_FLAG:
        assert MUST_FLAG[name] in (r.qc_flags or "").split(","), r.reason


@pytest.mark.parametrize("seed", [214, 54, 4401])
def test_consolidation_against_the_heart_is_put_back_up_to_the_known_limit(seed: int) -> None:
    """Known limit (README): the dent closing (25 mm ball) puts back consolidation against the heart
    only where it is narrower than about 50 mm; of a larger one up to half of the solid volume is
    missed, without a flag. The lung and the lesion percentage stay within the targets."""
    ph, r = _measure(PhantomSpec(**QUIET, paracardiac_consolidation=True, seed=seed))
    truth = ph.truth
    assert abs(r.lung_volume_ml / truth["lung_volume_ml"] - 1.0) <= LUNG_REL, describe(truth, r)
    assert abs(r.lesion_pct - truth["lesion_pct"]) <= LESION_POINTS, describe(truth, r)
    assert r.solid_volume_ml >= 0.45 * truth["solid_volume_ml"], describe(truth, r)
    assert r.solid_volume_ml <= truth["solid_volume_ml"] + TARGETS.solid_tolerance_ml(truth["solid_volume_ml"]), describe(truth, r)


@pytest.mark.parametrize("seed", [216, 101])
def test_dependent_density_is_measured_or_flagged(seed: int) -> None:
    """A posterior band of -400 to -300 HU (ground glass by its label) reaches the ground-glass/solid
    split at its back, where it also lies against the chest wall: image noise puts part of it on the
    solid side, and partial volume with the wall makes its outer layer uncertain. The lung stays
    within the target, and the series is flagged for both (``solid_split``: the expected volume on
    the wrong side of the split; ``ggo_at_wall``: more ground glass denser than -400 HU in the
    lung's outer layer against the wall than the ground-glass target)."""
    ph, r = _measure(PhantomSpec(**QUIET, dependent_density_mm=25.0, seed=seed))
    truth = ph.truth
    assert abs(r.lung_volume_ml / truth["lung_volume_ml"] - 1.0) <= LUNG_REL, describe(truth, r)
    assert {"solid_split", "ggo_at_wall"} <= set((r.qc_flags or "").split(",")), describe(truth, r)
    assert r.ggo_volume_ml >= 0.7 * truth["ggo_volume_ml"], describe(truth, r)


@pytest.mark.parametrize("seed, side", [(6014, -1), (6014, 1), (6016, 1)])
def test_basal_consolidation_does_not_lift_the_diaphragm(seed: int, side: int) -> None:
    """Consolidation on the diaphragm raises the floor the aerated lung rests on; the diaphragm is
    fitted as the floor's lower envelope, so the consolidation is above it and put back (these seeds
    lost 50-110 mL of it, unflagged, while the dome was fitted through the raised floor)."""
    ph, r = _measure(PhantomSpec(**QUIET, basal_consolidation=True, variant_side=side, seed=seed))
    assert within_targets(ph.truth, r), describe(ph.truth, r)


_COARSE = dict(matrix=80, slices=40, fov_mm=380.0, slice_spacing_mm=6.5, chest_wall_consolidation=False)


def test_thick_means_a_voxel_each_way_on_the_generator_s_coarse_grid() -> None:
    """A severe case as ``trialake generate`` makes it (64x64 at 5.9 mm, 7.5 mm slices). A 5 mm core is
    under one voxel there; taken literally it kept every partial-volume voxel at the mediastinum as
    "thick" and flagged 17 mL ``left_out`` on a series within the targets. The core now reaches a
    voxel along each axis: measured, no flag."""
    ph, r = _measure(PhantomSpec(matrix=64, slices=40, fov_mm=380.0, slice_spacing_mm=7.5, body_scale=1.062,
                                 lesion_pct=55.7, solid_share=0.18, chest_wall_consolidation=False, noise_hu=18.0,
                                 blur_mm=1.2, seed=1808808453))
    assert within_targets(ph.truth, r), describe(ph.truth, r)
    assert r.status == "measured", describe(ph.truth, r)


@pytest.mark.parametrize("spec", [
    PhantomSpec(**QUIET, basal_consolidation=True, variant_side=-1, seed=9208),
    PhantomSpec(**QUIET, **{k: v for k, v in _COARSE.items() if k != "chest_wall_consolidation"},
                basal_consolidation=True, variant_side=1, seed=9211),
], ids=["96_right_9208", "80_left_9211"])
def test_basal_consolidation_cut_short_at_the_mediastinum_is_flagged(spec: PhantomSpec) -> None:
    """The medial end of these basal consolidations runs into the mediastinum and the diaphragm with
    no HU edge; the segmenter stops short there (40-60 mL of solid missed, the lesion percentage more
    than a point low: outside the targets) and says so: ``open_border`` (the border is a guess) or
    ``left_out`` (thick dense tissue next to the lung was left out), not a quiet number."""
    ph, r = _measure(spec)
    assert not within_targets(ph.truth, r), describe(ph.truth, r)
    assert r.status == "measured-with-flags" and {"open_border", "left_out"} & set(r.qc_flags.split(",")), \
        describe(ph.truth, r)


@pytest.mark.parametrize("spec", [
    PhantomSpec(**QUIET, lobar_consolidation=True, variant_side=-1, seed=32190),
    PhantomSpec(**QUIET, lobar_consolidation=True, variant_side=1, seed=49490),
    PhantomSpec(**QUIET, lobar_consolidation=True, variant_side=-1, seed=73192),
    PhantomSpec(**_COARSE, lobar_consolidation=True, body_scale=1.018, lesion_pct=0.86, variant_side=-1, seed=52557),
], ids=["right_32190", "left_49490", "right_73192", "coarse_right_52557"])
def test_lobar_consolidation_is_put_back_or_flagged(spec: PhantomSpec) -> None:
    """Lateral consolidation down to the base: its lowest aerated lung rests on put-back tissue, not on
    the diaphragm, and its outer layer lies against the chest wall; it is measured within the targets,
    or the series is flagged (known limit, README)."""
    ph, r = _measure(spec)
    assert within_targets(ph.truth, r) or r.status == "measured-with-flags", describe(ph.truth, r)
    # what is put back is the consolidation, not the chest wall or the heart next to it
    assert r.lung_volume_ml <= ph.truth["lung_volume_ml"] * (1 + LUNG_REL), describe(ph.truth, r)


def test_pleural_air_and_fluid_are_their_own_outputs_never_lung() -> None:
    ph, r = _measure(ACCURATE["pneumothorax"])
    air = ph.masks["pneumothorax"]
    assert (r.lungs.lung & air).sum() <= 0.1 * air.sum()  # at most partial-volume voxels at the lung's edge
    assert r.pneumothorax_volume_ml == pytest.approx(ph.truth["pneumothorax_volume_ml"], rel=0.25)
    # the chest wall and mediastinum around the air are not put back (they were, up to 45 mL, as solid)
    voxel_ml = float(np.prod(ph.spacing_mm)) / 1000.0
    assert (r.lungs.lung & ~ph.masks["lung"] & (ph.hu > -400)).sum() * voxel_ml <= 10.0
    assert abs(r.solid_volume_ml - ph.truth["solid_volume_ml"]) <= 5.0
    ph, r = _measure(FLAG_ALLOWED["effusion_with_collapsed_lung"])
    fluid = ph.masks["effusion"]
    assert (r.lungs.lung & fluid).sum() <= 0.3 * fluid.sum()  # the fluid's edge on the collapsed lung is estimated
    assert not ((r.ggo | r.solid) & ~r.lungs.lung).any()
    assert r.effusion_volume_ml == pytest.approx(ph.truth["effusion_volume_ml"], rel=0.5)
    assert r.effusion_volume_ml > 0 and r.lungs.effusion is not None


@pytest.mark.parametrize("acquisition", [
    dict(noise_hu=26.0, blur_mm=1.35),  # noise leaves pleural-air voxels above the air threshold
    dict(matrix=128, slices=90, fov_mm=400.0, slice_spacing_mm=3.0, noise_hu=6.0, blur_mm=1.25),  # blur: a
    # partial-volume layer of air, not dark, lies between the pleural air and the chest wall
    dict(noise_hu=80.0, blur_mm=0.4),  # a sharp kernel: the smoothing against its noise mixes a thin
    # layer of air with the wall; it is read on a 3x3x3 median (its volume within a third)
], ids=["noisy", "blurred_fine_pixels", "sharp_kernel"])
def test_pneumothorax_is_found_through_noise_and_partial_volume(acquisition: dict) -> None:
    """The air's border is read past the first layer of air around its dark core (all three cases
    were counted as lung before: lung +4 to +6 %, no flag)."""
    ph, r = _measure(PhantomSpec(**QUIET, pneumothorax_mm=24.0, variant_side=1, seed=1153, **acquisition))
    sharp = acquisition["noise_hu"] > 40.0
    # under the sharp kernel 42 mL of ground glass reads 55 mL (its target is 10 mL): the series is flagged anyway
    assert within_targets(ph.truth, r) or sharp, describe(ph.truth, r)
    assert abs(r.lung_volume_ml / ph.truth["lung_volume_ml"] - 1) <= LUNG_REL, describe(ph.truth, r)
    assert "pneumothorax" in r.qc_flags.split(",")
    assert r.pneumothorax_volume_ml == pytest.approx(ph.truth["pneumothorax_volume_ml"], rel=0.34 if sharp else 0.25)
    # the median finds the air's core; under a sharp kernel its noisy edge (a third of a 24 mm layer) stays lung
    share_in_lung = (r.lungs.lung & ph.masks["pneumothorax"]).sum() / ph.masks["pneumothorax"].sum()
    assert share_in_lung <= (0.35 if sharp else 0.1)


def test_sharp_kernel_agrees_with_its_soft_twin() -> None:
    """The same scan reconstructed sharp (noise 80 HU, little blur) and soft (noise 15 HU, more blur)."""
    base = dict(matrix=128, slices=56, slice_spacing_mm=4.0, fov_mm=360.0, lesion_pct=18.0, solid_share=0.35, seed=230)
    sharp_ph, sharp = _measure(PhantomSpec(**base, noise_hu=80.0, blur_mm=0.4))
    soft_ph, soft = _measure(PhantomSpec(**base, noise_hu=15.0, blur_mm=1.2))
    assert sharp_ph.truth == soft_ph.truth  # same anatomy and lesions
    for ph, r in ((sharp_ph, sharp), (soft_ph, soft)):
        assert within_targets(ph.truth, r), describe(ph.truth, r)
    assert sharp.noise_hu == pytest.approx(80.0, rel=0.1) and soft.noise_hu == pytest.approx(15.0, rel=0.15)
    assert sharp.smoothing_mm > 0 == soft.smoothing_mm
    assert abs(sharp.lesion_pct - soft.lesion_pct) <= LESION_POINTS
    assert abs(sharp.solid_volume_ml - soft.solid_volume_ml) <= TARGETS.solid_tolerance_ml(soft.solid_volume_ml)


def test_noise_above_the_limit_is_refused() -> None:
    ph = make_chest_phantom(PhantomSpec(matrix=64, slices=24, fov_mm=360.0, slice_spacing_mm=10.0, noise_hu=120.0,
                                        seed=231))
    with pytest.raises(NotMeasurable, match="noise"):
        measure_volume(CTVolume(ph.hu, ph.spacing_mm), VolumetryParams(max_noise_hu=90.0))


@pytest.mark.parametrize("shift_mm", [40.0, -55.0])
def test_reconstruction_circle_cutting_a_lung_is_refused(shift_mm: float) -> None:
    ph = make_chest_phantom(PhantomSpec(**QUIET, fov_circle_mm=300.0, fov_circle_shift_mm=shift_mm, seed=232))
    with pytest.raises(NotMeasurable, match="field of view|reconstruction circle"):
        measure_volume(CTVolume(ph.hu, ph.spacing_mm))


def test_reconstruction_circle_around_the_chest_is_measured_with_its_margin() -> None:
    ph = make_chest_phantom(PhantomSpec(lesion_pct=10.0, fov_circle_mm=354.0, seed=233))
    r = measure_volume(CTVolume(ph.hu, ph.spacing_mm))
    assert within_targets(ph.truth, r), describe(ph.truth, r)
    # the lung's lateral edge is about 126 mm from the centre: the circle of radius 177 mm is ~50 mm away
    assert 30.0 <= r.fov_margin_mm <= 60.0


def _series(ph, tmp_path, **render) -> CTVolume:
    for k, data in enumerate(render_phantom_dicom(ph, **render)):
        (tmp_path / f"{(k * 7) % 101:03d}.dcm").write_bytes(data)
    return load_series(sorted(tmp_path.iterdir()))


def test_gantry_tilt_is_measured_and_recorded(tmp_path) -> None:
    ph = make_chest_phantom(PhantomSpec(lesion_pct=12.0, seed=234))
    volume = _series(ph, tmp_path, feet_first=False, tilt_deg=15.0, kernel="B31f")
    r = measure_volume(volume)
    assert within_targets(ph.truth, r), describe(ph.truth, r)
    assert r.gantry_tilt_deg == pytest.approx(15.0, abs=0.01)
    assert (r.convolution_kernel, r.kernel_class) == ("B31f", "soft")


def test_unsigned_pixels_with_padding_outside_the_circle(tmp_path) -> None:
    """uint16 storage with intercept -1024: the padding (stored 0, declared) reads as -1024 HU."""
    ph = make_chest_phantom(PhantomSpec(lesion_pct=12.0, fov_circle_mm=350.0, feet_first=True, seed=235))
    volume = _series(ph, tmp_path, feet_first=True, padding_value=0, kernel="LUNG")
    r = measure_volume(volume)
    truth = ph.truth
    assert within_targets(truth, r), describe(truth, r)
    assert r.kernel_class == "sharp" and r.fov_margin_mm > 20.0


def test_lesion_low_hu_does_not_move_the_lung_segmentation() -> None:
    ph = make_chest_phantom(PhantomSpec(lesion_pct=20.0, basal_consolidation=True, seed=236))
    vol = CTVolume(ph.hu, ph.spacing_mm)
    a, b = measure_volume(vol, VolumetryParams(lesion_low_hu=-700.0)), measure_volume(vol, VolumetryParams(lesion_low_hu=-600.0))
    assert np.array_equal(a.lungs.lung, b.lungs.lung)
    assert b.lesion_volume_ml < a.lesion_volume_ml


# Kinds drawn at random on coarse grids (80x80, 4.75 mm pixels, 6.5 mm slices); sharp kernels are
# tested on their own (``test_sharp_kernel_on_coarse_pixels_is_flagged``). The draws are
# derandomized so that CI is reproducible; the survey in the README covers many more seeds.
KINDS = {
    "basal": dict(basal_consolidation=True),
    "lobar": dict(lobar_consolidation=True),
    "paracardiac": dict(paracardiac_consolidation=True),
    "dependent": dict(dependent_density_mm=25.0),
    "dome": dict(dome_shift=0.8),
    "pneumothorax": dict(pneumothorax_mm=20.0),
    "cardiomegaly": dict(heart_scale=1.3, contrast=True),
    "emphysema": dict(emphysema_pct=15.0),
    "effusion": dict(effusion_mm=30.0),
}


@settings(max_examples=24, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(KINDS)), seed=st.integers(1000, 100_000), scale=st.floats(0.9, 1.1),
       lesion_pct=st.floats(0.0, 25.0), side=st.sampled_from([-1, 1]))
def test_held_out_style_variants_are_within_targets_or_flagged(kind, seed, scale, lesion_pct, side) -> None:
    spec = PhantomSpec(matrix=80, slices=40, fov_mm=380.0, slice_spacing_mm=6.5, body_scale=scale,
                       lesion_pct=lesion_pct, chest_wall_consolidation=False, variant_side=side, seed=seed,
                       **KINDS[kind])
    ph, r = _measure(spec)
    assert within_targets(ph.truth, r) or r.status == "measured-with-flags", describe(ph.truth, r)
    # pleural fluid or air counted as lung: at most its estimated edge (30 % of a large collection),
    # or the partial-volume layer of a small one (1 % of the lung, a third of the lung target)
    pleural = ph.masks["effusion"] | ph.masks["pneumothorax"]
    assert (r.lungs.lung & pleural).sum() <= max(0.3 * pleural.sum(), 0.01 * ph.masks["lung"].sum())


def test_variant_fields_keep_their_defaults_off() -> None:
    """A spec without variants draws nothing from the variants' stream: the image is the plain phantom's."""
    plain = PhantomSpec(matrix=48, slices=16, fov_mm=340.0, slice_spacing_mm=15.0, seed=5)
    with_side = dataclasses.replace(plain, variant_side=1)
    assert np.array_equal(make_chest_phantom(plain).hu, make_chest_phantom(with_side).hu)


def test_sharp_kernel_on_coarse_pixels_is_flagged() -> None:
    """At 4.75 mm pixels the vessel filter's opening is its smallest square, 2 pixels (9.5 mm, for 8 mm
    vessels); with the smoothing a sharp kernel needs (sigma about 2.7 mm) blurred vessels pass it and
    count as lesion (+1.1 lesion points here): the series is flagged. At 3.75 mm (3 pixels) the same
    kernel is measured within the targets, unflagged; a soft kernel at 4.75 mm is not smoothed and
    not flagged."""
    coarse = dict(matrix=80, slices=40, fov_mm=380.0, slice_spacing_mm=6.5)
    sharp = dict(lesion_pct=15.0, noise_hu=80.0, blur_mm=0.4, seed=8000)
    ph, r = _measure(PhantomSpec(**sharp, **coarse))
    assert "vessel_filter" in (r.qc_flags or "").split(","), describe(ph.truth, r)
    assert r.smoothing_mm == pytest.approx(80.0 / (40.0 * 2 * np.sqrt(np.pi)) * 380.0 / 80, rel=0.15)
    ph, r = _measure(PhantomSpec(**sharp))
    assert within_targets(ph.truth, r) and r.status == "measured", describe(ph.truth, r)
    ph, r = _measure(PhantomSpec(lesion_pct=15.0, seed=8000, **coarse))
    assert r.smoothing_mm == 0 and "vessel_filter" not in (r.qc_flags or ""), describe(ph.truth, r)


def test_lung_close_to_the_ground_glass_threshold_is_flagged() -> None:
    """Lung at -780 HU under a sharp kernel (noise 40 HU left after smoothing, 80 HU from -700): the
    ground glass grows by about 70 mL, outside its target, and was measured without a flag. The same
    lung under a soft kernel (25 HU, 3.2 SDs away) is measured within the targets, unflagged."""
    sharp = dict(lesion_pct=15.0, noise_hu=80.0, blur_mm=0.4, lung_hu=-780.0, seed=8101)
    ph, r = _measure(PhantomSpec(**sharp))
    assert "lung_density" in r.qc_flags.split(","), describe(ph.truth, r)
    assert not within_targets(ph.truth, r)  # the flag is earned: the number is off
    ph, r = _measure(PhantomSpec(**dict(sharp, noise_hu=25.0, blur_mm=1.0)))
    assert within_targets(ph.truth, r) and "lung_density" not in (r.qc_flags or ""), describe(ph.truth, r)


def test_rays_grazing_the_lungs_medial_tips_do_not_fill_the_paravertebral_gutters() -> None:
    """A healthy lung on 3 mm slices under a sharp kernel. Rays from the body's centre that graze the
    lungs' posterior-medial tips beside the spine see their outermost lung voxel far from the skin,
    as if disease hid the chest wall there; the chest-wall fill took the gutters' partial-volume
    layer on every slice, 17 mL of solid in a lung without lesions (target 10 mL). A band of such
    rays along the lung's angular edge is not filled now."""
    ph, r = _measure(PhantomSpec(matrix=128, slices=90, fov_mm=400.0, slice_spacing_mm=3.0, body_scale=1.02,
                                 noise_hu=79.0, blur_mm=0.4, feet_first=True, lesion_pct=0.0,
                                 chest_wall_consolidation=False, lung_hu=-818.0, seed=1921))
    assert ph.truth["solid_volume_ml"] == 0.0
    assert within_targets(ph.truth, r) and r.status == "measured", describe(ph.truth, r)
    voxel_ml = float(np.prod(ph.spacing_mm)) / 1000.0
    assert (r.solid & ~ph.masks["lung"]).sum() * voxel_ml <= 10.0


def test_severe_disease_under_a_sharp_kernel_on_thick_slices_is_flagged_lesion_edge() -> None:
    """27 % lesions, noise 85 HU, 10 mm slices, lung at -815 HU: the noise left after smoothing and the
    lesions' partial-volume border put more than the lesion-percentage target (1 point) of the lung
    within 50 HU above the ground-glass threshold, and the lesion percentage reads more than 1 point high.
    No other flag fires (pixels fine enough for the vessel filter, lung not dense enough for
    lung_density): without lesion_edge the series would be measured wrong without a word."""
    ph, r = _measure(PhantomSpec(matrix=96, slices=26, slice_spacing_mm=10.0, noise_hu=85.0, blur_mm=0.4,
                                 lesion_pct=27.0, solid_share=0.2, lung_hu=-815.0, seed=62))
    assert r.qc_flags == "lesion_edge", describe(ph.truth, r)
