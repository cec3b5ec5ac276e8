"""What every stage of a run shares: settings, lake and landing handles, run id, lake secret."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from trialake.config import Settings
from trialake.lake import Lake, open_lake, read_object, write_object

SECRET_OBJECT = "restricted/secrets/lake.key"


@dataclass(frozen=True)
class RunContext:
    """One run of a flow over one landing area and one lake."""

    settings: Settings
    lake: Lake
    landing: Lake
    run_id: str
    secret: bytes  # the lake's pseudonymization secret (kept in restricted/)


def open_storage(settings: Settings) -> tuple[Lake, Lake]:
    """The lake and the landing area; fails with a one-line reason when either is unreachable."""
    lake = open_lake(settings.lake, settings.storage_options)
    landing = Lake(url=settings.landing, storage_options=dict(settings.storage_options))
    if not landing.fs.exists(landing.path()):
        raise FileNotFoundError(f"landing area {settings.landing} does not exist or is not reachable")
    return lake, landing


def open_run(settings: Settings, run_id: str) -> RunContext:
    """Everything a run's stages share; creates the lake secret on the first run (call it while
    holding the lake's lease, so that two first runs cannot create two secrets)."""
    lake, landing = open_storage(settings)
    return RunContext(settings=settings, lake=lake, landing=landing, run_id=run_id, secret=load_or_create_secret(lake))


def load_or_create_secret(lake: Lake) -> bytes:
    """Read the lake secret, creating 32 random bytes the first time."""
    if lake.fs.exists(lake.path(SECRET_OBJECT)):
        return read_object(lake, SECRET_OBJECT)
    secret = secrets.token_bytes(32)
    write_object(lake, SECRET_OBJECT, secret)
    return read_object(lake, SECRET_OBJECT)


def list_landing_areas(settings: Settings) -> list[str]:
    """URLs of the landing areas inside ``settings.landing`` (sub-folders with a subject key), by name."""
    _, parent = open_storage(settings)
    folders = sorted(p for p in parent.fs.ls(parent.path(), detail=False) if parent.fs.isdir(p))
    areas = [f.rsplit("/", 1)[-1] for f in folders if parent.fs.exists(f"{f}/keys/subject_key.csv")]
    return [f"{settings.landing}/{name}" for name in areas]
