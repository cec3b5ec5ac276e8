"""Trial configuration sections mapped onto the parameter objects of the library modules."""
from __future__ import annotations

from dataclasses import replace

from trialake.clinical import MeasurementStandards, default_standards, load_test_mapping
from trialake.config.trial import CTConfig, DeidConfig, LabsConfig
from trialake.dicom import DeidParams
from trialake.imaging import VolumetryParams


def deid_params(deid: DeidConfig) -> DeidParams:
    """De-identification parameters from the trial's deidentification section (the same date
    offsets as the clinical data: shift_dates and max_shift_days)."""
    return DeidParams(shift_dates=deid.shift_dates, max_shift_days=deid.max_shift_days)


def volumetry_params(ct: CTConfig) -> VolumetryParams:
    """Volumetry parameters from the trial's CT section (other fields keep their documented defaults)."""
    return VolumetryParams(lesion_low_hu=ct.lesion_low_hu, solid_split_hu=ct.solid_split_hu, segmenter=ct.segmenter)


def lab_standards(labs: LabsConfig) -> MeasurementStandards:
    """Lab standards: the packaged (or configured) mapping plus the configured basis conversions."""
    base = default_standards("LB")
    mapping = load_test_mapping(labs.mapping) if labs.mapping else base.mapping
    factors = {(c.test, c.from_basis, c.to_basis): c.factor for c in labs.basis_conversions}
    return replace(base, mapping=mapping, basis_factors=factors)
