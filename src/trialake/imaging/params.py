"""The volumetry settings a trial chooses: the one definition of the ``ct:`` section of the trial YAML.

Every default and every check lives here; ``trialake.config.TrialConfig.ct`` is this model, and
``trialake.pipeline.params.volumetry_params`` is the one place that builds it with changes. The
classical segmenter's own thresholds are documented constants of the method
(``trialake.imaging.segment.SegmentationParams``) and are not trial configuration.

Defaults:

- ``lesion_low_hu = -700``: lower bound of opacity. Colombi D. et al., "Well-aerated lung on
  admitting chest CT to predict adverse outcome in COVID-19 pneumonia", Radiology 2020;
  296(2):E86-E96, define well-aerated lung as -950 to -700 HU, so anything denser is lesion.
- ``solid_split_hu = -300``: ground glass below, solid (consolidation) at or above. Published
  splits range from -400 to -200 HU; Zhang et al., BMC Infectious Diseases 2021;21:756
  (doi:10.1186/s12879-021-06556-z) compared eight splits and found -300 HU the most
  discriminating for the ground-glass volume.
- ``lesion_high_hu = 150``: denser voxels (calcification, contrast-filled vessels, bone) are not lesion.
- ``vessel_max_diameter_mm = 8``: up to segmental pulmonary arteries and veins.
- ``noise_target_hu = 40``: the HU bands keep 100-150 HU from the tissues on either side
  (aerated lung at about -850 against -700; ground glass at -600 to -450 against -700 and -300),
  so at 40 HU of noise a voxel crosses a band edge by noise alone with a probability below 1%.
  Soft (standard) kernels at a routine dose are at 10-25 HU and are not smoothed; sharp (lung)
  kernels at 60-120 HU are smoothed in-plane to it before the HU bands are applied (a stronger
  smoothing widens vessels past the vessel filter).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class VolumetryParams(BaseModel):
    """Parameters of one volumetry method (hashed into ``params_hash``); see the module doc.

    lesion_low_hu / lesion_high_hu: HU band of lesion voxels inside the lung.
    solid_split_hu: ground glass below, solid at or above.
    vessel_max_diameter_mm: tubes narrower than this are vessels (lesions smaller than this are not counted).
    noise_target_hu: lesions are measured after in-plane smoothing that brings the noise measured in
      the series (air outside the body) down to this; 0 turns smoothing off.
    max_noise_hu: series noisier than this are refused.
    segmenter: lung segmenter in the registry (``classical`` built in).
    check_segmenter: a second segmenter run on every series; the series is flagged when the two
      lung volumes differ by more than ``max_disagreement_pct`` percent.
    model_weights: local weights file (or folder) per model-based segmenter name; nothing is downloaded.
    max_put_back_pct: flag when more of the lung volume than this came from dense tissue put back.
    right_lung_share: flag when the right lung's share of the lung volume is outside this range.
    effusion_flag_ml / pneumothorax_flag_ml: flag pleural fluid or air from this volume on.
    hidden_border_flag_cm2: flag when dense tissue keeps the lung from the chest wall over at least
      this area and it was not put back.
    left_out_flag_ml: flag when at least this much thick dense tissue next to a lung, inside its chest
      wall and lateral to its medial edge, was not put back.
    open_border_flag_cm2: flag when thick dense disease put back as lung meets thick dense tissue
      outside it (mediastinum, heart, diaphragm) over at least this area, with no HU edge between them.
    solid_split_flag_ml: flag when more lesion than this (and than 15% of the solid volume) is expected
      on the wrong side of ``solid_split_hu`` because of the image noise (much of it lies near the split).
    lung_density_margin_sd: flag when the aerated lung's most common HU lies fewer than this many SDs of
      the image noise left after the smoothing below ``lesion_low_hu`` (the ground glass's extent then
      depends on the lung's own density and the noise).
    lesion_edge_flag_pct: flag when more of the lung than this (percentage points) is lesion within 50 HU
      above ``lesion_low_hu``: the lesion percentage then hangs on the threshold by about that much
      (partial volume at the lesions' border on thick slices or dense lung, a sharp kernel's noise);
      the default is the lesion-percentage target, 1 point.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lesion_low_hu: float = -700.0
    lesion_high_hu: float = 150.0
    solid_split_hu: float = -300.0
    vessel_max_diameter_mm: float = Field(default=8.0, gt=0.0, le=30.0)
    noise_target_hu: float = Field(default=40.0, ge=0.0)
    max_noise_hu: float = Field(default=150.0, gt=0.0)
    segmenter: str = Field(default="classical", min_length=1)
    check_segmenter: str | None = None
    max_disagreement_pct: float = Field(default=3.0, gt=0.0)
    model_weights: dict[str, str] = Field(default_factory=dict)
    max_put_back_pct: float = Field(default=30.0, gt=0.0, le=100.0)
    right_lung_share: tuple[float, float] = (0.40, 0.68)
    effusion_flag_ml: float = Field(default=20.0, ge=0.0)
    pneumothorax_flag_ml: float = Field(default=10.0, ge=0.0)
    hidden_border_flag_cm2: float = Field(default=20.0, ge=0.0)
    left_out_flag_ml: float = Field(default=15.0, ge=0.0)
    open_border_flag_cm2: float = Field(default=6.0, ge=0.0)
    solid_split_flag_ml: float = Field(default=5.0, ge=0.0)
    lung_density_margin_sd: float = Field(default=2.5, ge=0.0)
    lesion_edge_flag_pct: float = Field(default=1.0, ge=0.0)

    @model_validator(mode="after")
    def _consistent(self) -> VolumetryParams:
        if not self.lesion_low_hu < self.solid_split_hu < self.lesion_high_hu:
            raise ValueError("need lesion_low_hu < solid_split_hu < lesion_high_hu, got "
                             f"{self.lesion_low_hu}, {self.solid_split_hu}, {self.lesion_high_hu}")
        low, high = self.right_lung_share
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"right_lung_share must be two fractions low < high, got {self.right_lung_share}")
        if self.check_segmenter is not None and self.check_segmenter == self.segmenter:
            raise ValueError("check_segmenter must differ from segmenter")
        if self.noise_target_hu >= self.max_noise_hu:
            raise ValueError("noise_target_hu must be below max_noise_hu")
        return self
