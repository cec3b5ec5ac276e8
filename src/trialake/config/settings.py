"""Run settings: where the landing area and lake are, how to reach them, which trial config."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trialake.config.trial import TrialConfig, load_trial_config


def default_expectations_dir() -> Path:
    """The repository's expectations/ folder (suites are reviewed like code, next to it)."""
    return Path(__file__).resolve().parents[3] / "expectations"


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, read once at the edge and passed down."""

    landing: str
    lake: str
    trial: TrialConfig
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    expectations_dir: Path = field(default_factory=default_expectations_dir)


def storage_options_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """s3fs options from the standard AWS variables; empty when none are set (local paths,
    or boto's own credential chain)."""
    options: dict[str, Any] = {}
    if environ.get("AWS_ACCESS_KEY_ID"):
        options["key"] = environ["AWS_ACCESS_KEY_ID"]
    if environ.get("AWS_SECRET_ACCESS_KEY"):
        options["secret"] = environ["AWS_SECRET_ACCESS_KEY"]
    if environ.get("AWS_SESSION_TOKEN"):
        options["token"] = environ["AWS_SESSION_TOKEN"]
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
    *, landing: str, lake: str, environ: Mapping[str, str], config_path: str | Path | None = None
) -> Settings:
    """Build the settings of one run from its arguments and the process environment."""
    return Settings(
        landing=normalize_url(landing),
        lake=normalize_url(lake),
        trial=load_trial_config(config_path),
        storage_options=storage_options_from_env(environ),
    )


def normalize_url(url: str) -> str:
    """Absolute local paths; object-store URLs unchanged; no trailing slash."""
    if "://" in url:
        return url.rstrip("/")
    return str(Path(url).expanduser().resolve())
