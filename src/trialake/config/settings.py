"""Run settings: where the landing area and lake are, how to reach them, which trial config."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from trialake.env_secret import env_secret
from trialake.config.trial import ConfigError, TrialConfig, load_trial_config
from trialake.pacs.address import PacsConnection, read_pacs_connection


def default_expectations_dir() -> Path:
    """The shipped quality suites: package ``trialake.expectations``, built from the repository's
    top-level expectations/ folder (an editable install maps that folder itself, a wheel carries
    a copy of its YAML files)."""
    suites = files("trialake.expectations")
    if not isinstance(suites, Path):
        raise RuntimeError(f"trialake is installed as an archive ({suites}); install it unpacked (pip does)")
    return suites


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, read once at the edge and passed down."""

    landing: str
    lake: str
    trial: TrialConfig
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    expectations_dir: Path = field(default_factory=default_expectations_dir)
    pacs: PacsConnection | None = None  # a PACS pulled besides the landing area's dicom/ folder
    research_pacs: PacsConnection | None = None  # receives de-identified series, SEG and SR


def storage_options_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """s3fs options from the standard AWS variables; empty when none are set (local paths,
    or boto's own credential chain). The credentials are EnvSecrets: shipped to another process
    (a Dask worker), they are read from that process's environment, never sent."""
    options: dict[str, Any] = {}
    for option, name in (("key", "AWS_ACCESS_KEY_ID"), ("secret", "AWS_SECRET_ACCESS_KEY"), ("token", "AWS_SESSION_TOKEN")):
        if (value := env_secret(environ, name)) is not None:
            options[option] = value
    client: dict[str, str] = {}
    if environ.get("AWS_ENDPOINT_URL"):
        client["endpoint_url"] = environ["AWS_ENDPOINT_URL"]
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        client["region_name"] = region
    if client:
        options["client_kwargs"] = client
    return options


def read_settings(
    *, landing: str, lake: str, environ: Mapping[str, str], config_path: str | Path | None = None,
    pacs: str | None = None,
) -> Settings:
    """Build the settings of one run from its arguments and the process environment.

    ``pacs`` (else ``pacs.source`` of the trial configuration) adds a PACS as a DICOM source; its
    credentials come from TRIALAKE_PACS_USER / TRIALAKE_PACS_PASSWORD or TRIALAKE_PACS_TOKEN, the
    research PACS's from the same names with TRIALAKE_RESEARCH_PACS_.
    """
    trial = load_trial_config(config_path)
    return Settings(
        landing=normalize_url(landing),
        lake=normalize_url(lake),
        trial=trial,
        storage_options=storage_options_from_env(environ),
        pacs=_pacs_connection(pacs or trial.pacs.source, trial, environ, "TRIALAKE_PACS"),
        research_pacs=_pacs_connection(trial.pacs.research, trial, environ, "TRIALAKE_RESEARCH_PACS"),
    )


def _pacs_connection(url: str | None, trial: TrialConfig, environ: Mapping[str, str], prefix: str) -> PacsConnection | None:
    if not url:
        return None
    options = trial.pacs
    try:
        return read_pacs_connection(url, environ, prefix=prefix, timeout_s=options.timeout_s,
                                    retries=options.retries, backoff_s=options.backoff_s)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def normalize_url(url: str) -> str:
    """Absolute local paths; object-store URLs unchanged; no trailing slash."""
    if "://" in url:
        return url.rstrip("/")
    return str(Path(url).expanduser().resolve())
