"""The one place the trial configuration is mapped onto the parameter objects of the library
modules: de-identification, volumetry, measurement standards (labs, function and lung function
tests) and the ADaM derivations. Stages receive these validated, immutable objects and build no
defaults of their own."""
from __future__ import annotations

from dataclasses import replace

from trialake.clinical import MeasurementStandards, default_standards, load_test_mapping
from trialake.config.trial import CTConfig, DeidConfig, LabsConfig, TrialConfig
from trialake.dicom import DeidParams
from trialake.imaging import VolumetryParams, compute_params_hash, get_segmenter
from trialake.imaging.volumetry import Segmenter
from trialake.marts import AnalysisConfig, ArmSpec


def deid_params(deid: DeidConfig) -> DeidParams:
    """De-identification parameters from the trial's deidentification section (the same date
    offsets as the clinical data: shift_dates and max_shift_days)."""
    return DeidParams(shift_dates=deid.shift_dates, max_shift_days=deid.max_shift_days)


def volumetry_params(ct: CTConfig, **changes: object) -> VolumetryParams:
    """The volumetry parameters of the trial's ``ct:`` section with ``changes`` applied, validated
    exactly as the YAML is (a ValueError names the setting). The segmenters are built once here,
    so an unknown one or missing model weights stop the run before any series is measured."""
    params = VolumetryParams.model_validate({**ct.model_dump(), **changes})
    volumetry_method(params)
    return params


def volumetry_method(params: VolumetryParams) -> tuple[Segmenter, Segmenter | None]:
    """(segmenter, check segmenter or None) that ``params`` name."""
    check = get_segmenter(params, params.check_segmenter) if params.check_segmenter else None
    return get_segmenter(params), check


def volumetry_params_hash(params: VolumetryParams) -> str:
    """The hash results measured with ``params`` carry in ``params_hash``."""
    return compute_params_hash(params, *volumetry_method(params))


def lab_standards(labs: LabsConfig) -> MeasurementStandards:
    """Lab standards: the packaged (or configured) mapping plus the configured basis conversions."""
    base = default_standards("LB")
    mapping = load_test_mapping(labs.mapping) if labs.mapping else base.mapping
    factors = {(c.test, c.from_basis, c.to_basis): c.factor for c in labs.basis_conversions}
    return replace(base, mapping=mapping, basis_factors=factors)


def measurement_standards(labs: LabsConfig) -> dict[str, MeasurementStandards]:
    """The standards of every standardized domain: labs as configured, function and lung function tests packaged."""
    return {"LB": lab_standards(labs), "FT": default_standards("FT"), "RE": default_standards("RE")}


def analysis_config(trial: TrialConfig) -> AnalysisConfig:
    """The ADaM derivations' parameters: arms, visit windows, out-of-window rule, ADaM choices."""
    return AnalysisConfig(
        treatment=ArmSpec(armcd=trial.arms.treatment.armcd, arm=trial.arms.treatment.arm),
        control=ArmSpec(armcd=trial.arms.control.armcd, arm=trial.arms.control.arm),
        visits=trial.visits,
        outside_window=trial.endpoints.outside_window,
        age_groups=trial.adam.age_groups,
        per_protocol_min_doses=trial.adam.per_protocol_min_doses,
        treatment_window_days=trial.adam.treatment_window_days,
    )
