"""The trial configuration file: arms, visits and windows, CT thresholds, lab standards."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A configuration problem, described in one line that names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArmConfig(_Strict):
    armcd: str = Field(min_length=1)
    arm: str = Field(min_length=1)


class ArmsConfig(_Strict):
    treatment: ArmConfig
    control: ArmConfig


class VisitConfig(_Strict):
    """An analysis visit: records with study day in [low_day, high_day]; nearest to target wins."""

    name: str = Field(min_length=1)
    avisitn: float
    target_day: int
    low_day: int
    high_day: int

    @model_validator(mode="after")
    def _window_contains_target(self) -> VisitConfig:
        if not self.low_day <= self.target_day <= self.high_day:
            raise ValueError(f"window {self.low_day}..{self.high_day} does not contain target_day {self.target_day}")
        return self


class DeidConfig(_Strict):
    shift_dates: bool = True
    max_shift_days: int = Field(default=365, ge=1, le=3650)


class CTConfig(_Strict):
    lesion_low_hu: float = -700.0
    solid_split_hu: float = -300.0
    segmenter: str = "classical"

    @model_validator(mode="after")
    def _split_above_low(self) -> CTConfig:
        if self.solid_split_hu <= self.lesion_low_hu:
            raise ValueError("solid_split_hu must be above lesion_low_hu")
        return self


class BasisConversion(_Strict):
    """An explicit conversion between result bases (for example D-dimer DDU -> FEU)."""

    test: str = Field(min_length=1)
    from_basis: str = Field(min_length=1)
    to_basis: str = Field(min_length=1)
    factor: float = Field(gt=0)


class LabsConfig(_Strict):
    mapping: str | None = None
    basis_conversions: tuple[BasisConversion, ...] = ()


class EndpointsConfig(_Strict):
    conf_level: float = Field(default=0.95, gt=0.5, lt=1.0)
    estimator: str = "hodges_lehmann"


class PacsConfig(_Strict):
    """PACS peers: a source pulled by every nightly run (``--pacs`` on the command line wins) and a
    research PACS that receives the de-identified series with their DICOM SEG and SR."""

    source: str | None = None
    research: str | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _urls_parse(self) -> PacsConfig:
        from trialake.pacs.address import parse_pacs_url

        for url in (self.source, self.research):
            if url is not None:
                parse_pacs_url(url)
        return self


class TrialConfig(_Strict):
    """Everything trial-specific. Nothing in the code knows the reference trial; this does."""

    version: int
    study_id: str = Field(min_length=1)
    timezone: str = "UTC"
    nightly_cron: str = "0 2 * * *"
    arms: ArmsConfig
    visits: tuple[VisitConfig, ...] = Field(min_length=2)
    deidentification: DeidConfig = DeidConfig()
    ct: CTConfig = CTConfig()
    labs: LabsConfig = LabsConfig()
    endpoints: EndpointsConfig = EndpointsConfig()
    pacs: PacsConfig = PacsConfig()

    @model_validator(mode="after")
    def _visits_distinct_and_apart(self) -> TrialConfig:
        names = [v.name for v in self.visits]
        if len(set(names)) != len(names):
            raise ValueError(f"visit names must be unique, got {names}")
        ordered = sorted(self.visits, key=lambda v: v.low_day)
        for before, after in zip(ordered, ordered[1:]):
            if after.low_day <= before.high_day:
                raise ValueError(f"visit windows {before.name!r} and {after.name!r} overlap")
        return self

    @property
    def baseline_visit(self) -> VisitConfig:
        """The first visit is the baseline visit."""
        return min(self.visits, key=lambda v: v.avisitn)


def default_trial_config_path() -> Path:
    """The shipped reference-trial configuration."""
    return Path(str(resources.files("trialake.config") / "reference_trial.yaml"))


def load_trial_config(path: str | Path | None = None) -> TrialConfig:
    """Read and validate a trial configuration file; errors name the file and the key."""
    source = Path(path) if path is not None else default_trial_config_path()
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start}); save the configuration as UTF-8 YAML") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({_one_line(str(exc))})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return TrialConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigError(f"{source}: {key}: {first['msg']}") from exc


def _one_line(text: str) -> str:
    return " ".join(text.split())
