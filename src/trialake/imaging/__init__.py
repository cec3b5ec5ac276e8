"""CT lung volumetry (classical pipeline, pluggable segmenters), QC pictures and mask export.

Names are imported on first use, so reading the trial configuration (which needs only
``VolumetryParams``) does not load numpy, scipy or matplotlib.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "render_qc_png": "qc", "write_masks_nifti": "qc",
    "ClassicalSegmenter": "segment", "LungMasks": "segment", "SegmentationParams": "segment",
    "load_series": "series",
    "CTVolume": "volume", "NotMeasurable": "volume", "compute_hu": "volume",
    "VolumetryParams": "params",
    "Segmenter": "volumetry", "VolumetryResult": "volumetry", "compute_params_hash": "volumetry",
    "get_segmenter": "volumetry", "measure_series_dir": "volumetry", "measure_volume": "volumetry",
    "register_segmenter": "volumetry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trialake.imaging' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"trialake.imaging.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
