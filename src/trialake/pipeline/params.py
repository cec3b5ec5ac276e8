"""Trial configuration sections mapped onto the parameter objects of the library modules."""
from __future__ import annotations

from trialake.config.trial import CTConfig
from trialake.imaging import VolumetryParams


def volumetry_params(ct: CTConfig) -> VolumetryParams:
    """Volumetry parameters from the trial's CT section (other fields keep their documented defaults)."""
    return VolumetryParams(lesion_low_hu=ct.lesion_low_hu, solid_split_hu=ct.solid_split_hu, segmenter=ct.segmenter)
