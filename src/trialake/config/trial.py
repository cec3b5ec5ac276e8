"""The trial configuration file: arms, visits and windows, CT thresholds, lab standards."""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trialake.imaging.params import VolumetryParams as CTConfig  # the ct: section is defined once, there
from trialake.visits import VisitWindow, compute_window_problems


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


#: A ``visits:`` entry is an analysis visit window, defined once for every stage.
VisitConfig = VisitWindow


class DeidConfig(_Strict):
    shift_dates: bool = True
    max_shift_days: int = Field(default=365, ge=1, le=3650)


class BasisConversion(_Strict):
    """An explicit conversion between result bases (for example D-dimer DDU -> FEU)."""

    test: str = Field(min_length=1)
    from_basis: str = Field(min_length=1)
    to_basis: str = Field(min_length=1)
    factor: float = Field(gt=0)


class LabsConfig(_Strict):
    mapping: str | None = None
    basis_conversions: tuple[BasisConversion, ...] = ()
    toxicity: str | None = None  # toxicity-grade criteria file; None = the packaged CTCAE v5.0 subset


Avar = Literal["CHG", "PCHG"]
PopulationFlag = Literal["FASFL", "ITTFL", "SAFFL", "PPROTFL", "RANDFL"]


class EndpointTest(_Strict):
    """One comparison: a parameter at an analysis visit on an analysis variable."""

    paramcd: str = Field(min_length=1)
    avisit: str = Field(min_length=1)
    avar: Avar

    def label(self) -> str:
        return f"{self.paramcd} {self.avar} at {self.avisit}"


class HierarchyConfig(_Strict):
    """Fixed-sequence testing: each test at the full ``alpha`` in ``order``; testing stops at the
    first test that does not reject, and the later ones are not tested (family-wise error
    controlled at alpha)."""

    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    order: tuple[EndpointTest, ...] = ()


class MissingDataConfig(_Strict):
    """primary: complete_case (subjects without a value at the visit are left out);
    sensitivity: worst_rank (deaths, then subjects without a value, ranked worst) or none."""

    primary: Literal["complete_case"] = "complete_case"
    sensitivity: Literal["worst_rank", "none"] = "worst_rank"


class EndpointsConfig(_Strict):
    """The statistical analysis plan of the efficacy endpoints."""

    conf_level: float = Field(default=0.95, gt=0.5, lt=1.0)
    estimator: Literal["hodges_lehmann"] = "hodges_lehmann"
    population: PopulationFlag = "FASFL"
    populations: dict[str, PopulationFlag] = Field(default_factory=dict)  # PARAMCD -> flag
    primary: EndpointTest | None = None
    hierarchy: HierarchyConfig = HierarchyConfig()
    descriptive_only: tuple[str, ...] = ()
    better: dict[str, Literal["lower", "higher"]] = Field(default_factory=dict)  # PARAMCD -> direction
    missing_data: MissingDataConfig = MissingDataConfig()
    outside_window: Literal["exclude", "nearest"] = "exclude"

    @model_validator(mode="after")
    def _plan_is_consistent(self) -> EndpointsConfig:
        tests = [*([self.primary] if self.primary else []), *self.hierarchy.order]
        for test in tests:
            if test.paramcd in self.descriptive_only:
                raise ValueError(f"{test.label()} is tested but {test.paramcd} is descriptive_only")
        if self.hierarchy.order and self.primary is not None and self.hierarchy.order[0] != self.primary:
            raise ValueError(f"hierarchy.order must start with the primary endpoint ({self.primary.label()})")
        if len(set(self.hierarchy.order)) != len(self.hierarchy.order):
            raise ValueError("hierarchy.order: a test appears twice")
        if self.missing_data.sensitivity == "worst_rank":
            undirected = sorted({t.paramcd for t in tests} - self.better.keys())
            if undirected:
                raise ValueError(f"better: worst-rank analysis needs the direction of improvement of {undirected}")
        return self


class AdamConfig(_Strict):
    """Study-specific choices of the ADaM derivations."""

    age_groups: tuple[int, ...] = (65,)  # AGEGR1 cut points: <65, >=65
    per_protocol_min_doses: int = Field(default=1, ge=1)  # PPROTFL: dosing records needed
    treatment_window_days: int | None = Field(default=30, ge=0)  # TRTEMFL, ONTRTFL: days after the last dose; None = no limit

    @model_validator(mode="after")
    def _ages_increase(self) -> AdamConfig:
        if list(self.age_groups) != sorted(set(self.age_groups)):
            raise ValueError(f"age_groups must be distinct and increasing, got {list(self.age_groups)}")
        return self


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
    nightly_cron: str = Field(default="0 2 * * *", pattern=r"^\s*\S+(\s+\S+){4}\s*$")  # five cron fields
    arms: ArmsConfig
    visits: tuple[VisitWindow, ...] = Field(min_length=2)
    deidentification: DeidConfig = DeidConfig()
    ct: CTConfig = Field(default_factory=CTConfig)
    labs: LabsConfig = LabsConfig()
    endpoints: EndpointsConfig = EndpointsConfig()
    adam: AdamConfig = AdamConfig()
    # A new trial starts blinded: arms and arm-level results only under <lake>/unblinded/.
    blinding: Literal["blinded", "unblinded"] = "blinded"
    pacs: PacsConfig = PacsConfig()

    @model_validator(mode="after")
    def _visits_distinct_and_apart(self) -> TrialConfig:
        problems = compute_window_problems(self.visits)
        if problems:
            raise ValueError(f"visits: {problems[0]}")
        names = [v.name for v in self.visits]
        post_baseline = set(names) - {self.baseline_visit.name}
        sap = self.endpoints
        for test in [*([sap.primary] if sap.primary else []), *sap.hierarchy.order]:
            if test.avisit not in post_baseline:
                raise ValueError(f"endpoints: {test.label()}: {test.avisit!r} is not a post-baseline visit {sorted(post_baseline)}")
        from trialake.marts.parameters import efficacy_parameter_codes  # the marts know their parameters

        known = efficacy_parameter_codes()
        named = {
            "primary": [sap.primary.paramcd] if sap.primary else [],
            "hierarchy": [t.paramcd for t in sap.hierarchy.order],
            "descriptive_only": list(sap.descriptive_only),
            "populations": list(sap.populations),
            "better": list(sap.better),
        }
        for key, codes in named.items():
            unknown = sorted(set(codes) - known)
            if unknown:
                raise ValueError(f"endpoints.{key}: unknown parameter(s) {unknown}; known: {sorted(known)}")
        return self

    @property
    def blinded(self) -> bool:
        """Whether the lake runs blinded (treatment assignment only in the unblinded zone)."""
        return self.blinding == "blinded"

    @property
    def baseline_visit(self) -> VisitWindow:
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
