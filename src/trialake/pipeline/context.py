"""What every stage of a run shares: settings, lake and landing handles, run id, lake secret."""
from __future__ import annotations

import functools
import hashlib
import secrets
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import trialake
from trialake.blinding import UNBLINDED_ZONE
from trialake.config import Settings, TrialConfig
from trialake.lake import Lake, create_object, is_upgraded, open_lake, read_object, upgrade_lake, write_object

SECRET_OBJECT = "restricted/secrets/lake.key"
#: The trial configurations that commits name by sha256 (``config_sha256``), one object each.
CONFIGS = "_configs"


@dataclass(frozen=True)
class RunContext:
    """One run of a flow over one landing area and one lake."""

    settings: Settings
    lake: Lake
    landing: Lake
    run_id: str
    secret: bytes = field(repr=False)  # the lake's pseudonymization secret (kept in restricted/)

    def for_stage(self, stage: str) -> RunContext:
        """The same run, its table commits recording ``stage``."""
        return replace(self, lake=self.lake.with_commit_info(stage=stage))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled (a task's argument shipped to a Dask worker) without the secret: the receiving
        process reads it from the lake's restricted zone."""
        return _context_reading_secret, (self.settings, self.lake, self.landing, self.run_id, bool(self.secret))

    def __copy__(self) -> RunContext:
        return self

    def __deepcopy__(self, _memo: dict[int, Any]) -> RunContext:
        return self


def _context_reading_secret(settings: Settings, lake: Lake, landing: Lake, run_id: str, has_secret: bool) -> RunContext:
    secret = read_object(lake, SECRET_OBJECT) if has_secret else b""
    return RunContext(settings=settings, lake=lake, landing=landing, run_id=run_id, secret=secret)


def open_storage(settings: Settings) -> tuple[Lake, Lake]:
    """The lake and the landing area; fails with a one-line reason when either is unreachable."""
    lake = open_lake(settings.lake, settings.storage_options)
    landing = Lake(url=settings.landing, storage_options=dict(settings.storage_options))
    if not landing.fs.exists(landing.path()):
        raise FileNotFoundError(f"landing area {settings.landing} does not exist or is not reachable")
    return lake, landing


def open_run(settings: Settings, run_id: str, *, flow: str = "") -> RunContext:
    """Everything a run's stages share. Call it while holding the lake's lease: it creates the
    lake secret on the first run (so that two first runs cannot create two secrets), upgrades a
    lake written before tables were Delta tables, and records the trial configuration.

    Every table commit of the run records the run id, the flow, the code version and the
    configuration's sha256 (the configuration itself is kept at ``_configs/<sha256>.json``).
    """
    lake, landing = open_storage(settings)
    config = record_config(lake, settings.trial)
    lake = lake.with_commit_info(run_id=run_id, flow=flow, code_version=code_version(), config_sha256=config)
    if not is_upgraded(lake):
        upgrade_lake(lake.with_commit_info(stage="upgrade"))
    return RunContext(settings=settings, lake=lake, landing=landing, run_id=run_id, secret=load_or_create_secret(lake))


def load_or_create_secret(lake: Lake) -> bytes:
    """Read the lake secret, creating 32 random bytes the first time."""
    if lake.fs.exists(lake.path(SECRET_OBJECT)):
        return read_object(lake, SECRET_OBJECT)
    secret = secrets.token_bytes(32)
    write_object(lake, SECRET_OBJECT, secret)
    return read_object(lake, SECRET_OBJECT)


def config_sha256(trial: TrialConfig) -> str:
    """sha256 of the trial configuration as recorded (its JSON)."""
    return hashlib.sha256(trial.model_dump_json().encode()).hexdigest()


def record_config(lake: Lake, trial: TrialConfig) -> str:
    """Keep the configuration at ``_configs/<sha256>.json`` (once), or under ``unblinded/_configs/``
    for a blinded trial (it names the arms); returns the sha256."""
    digest = config_sha256(trial)
    create_object(lake, f"{_configs_folder(trial.blinded)}/{digest}.json", trial.model_dump_json().encode())
    return digest


def read_config(lake: Lake, digest: str) -> TrialConfig:
    """A configuration a commit or stage state names by its sha256."""
    public = f"{CONFIGS}/{digest}.json"
    name = public if lake.fs.exists(lake.path(public)) else f"{_configs_folder(True)}/{digest}.json"
    return TrialConfig.model_validate_json(read_object(lake, name))


def _configs_folder(blinded: bool) -> str:
    return f"{UNBLINDED_ZONE}/{CONFIGS}" if blinded else CONFIGS


@functools.cache
def code_version() -> str:
    """``trialake <version>``, plus the git commit of the checkout the code runs from (``+g<sha>``,
    ``.dirty`` with uncommitted changes) when it runs from one."""
    version = f"trialake {trialake.__version__}"
    root = str(Path(trialake.__file__).resolve().parents[2])
    try:
        sha = subprocess.run(["git", "-C", root, "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{sha}{'.dirty' if dirty else ''}"


def list_landing_areas(settings: Settings) -> list[str]:
    """URLs of the landing areas inside ``settings.landing`` (sub-folders with a subject key), by name."""
    _, parent = open_storage(settings)
    folders = sorted(p for p in parent.fs.ls(parent.path(), detail=False) if parent.fs.isdir(p))
    areas = [f.rsplit("/", 1)[-1] for f in folders if parent.fs.exists(f"{f}/keys/subject_key.csv")]
    return [f"{settings.landing}/{name}" for name in areas]
