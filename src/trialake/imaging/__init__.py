"""CT lung volumetry (classical pipeline, pluggable segmenters), QC pictures and mask export."""
from trialake.imaging.qc import render_qc_png, write_masks_nifti
from trialake.imaging.segment import ClassicalSegmenter, LungMasks, SegmentationParams
from trialake.imaging.series import load_series
from trialake.imaging.volume import CTVolume, NotMeasurable, compute_hu
from trialake.imaging.volumetry import (
    Segmenter,
    VolumetryParams,
    VolumetryResult,
    compute_params_hash,
    get_segmenter,
    measure_series_dir,
    measure_volume,
    register_segmenter,
)

__all__ = [
    "CTVolume", "ClassicalSegmenter", "LungMasks", "NotMeasurable", "SegmentationParams", "Segmenter",
    "VolumetryParams", "VolumetryResult", "compute_hu", "compute_params_hash", "get_segmenter", "load_series",
    "measure_series_dir", "measure_volume", "register_segmenter", "render_qc_png", "write_masks_nifti",
]
