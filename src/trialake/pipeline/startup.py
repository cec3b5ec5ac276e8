"""Can a run start? Checks made before anything is written: one line per problem, nothing created.

A run that cannot start (landing area missing or laid out otherwise, subject key unusable, storage
unreachable or refusing the credentials, lake in an unusable place, the PACS to pull from
unreachable or refusing the association or the credentials) stops here, before the lake
folder, the lease or the lake secret exist.
"""
from __future__ import annotations

import os
from pathlib import Path

import fsspec

from trialake.config import Settings
from trialake.lake import Lake, read_landing_bytes
from trialake.pacs import PacsError, check_pacs
from trialake.pipeline.inventory import DATA_AREAS, KEY_PATH
from trialake.pipeline.subjects import SubjectKeyError, parse_subject_key

LAYOUT = f"a landing area holds {KEY_PATH}, {DATA_AREAS[0]}/ and {DATA_AREAS[1]}/"


class StartupError(RuntimeError):
    """The run cannot start; the message is one line that names the location and the problem."""


def check_can_start(settings: Settings) -> None:
    """Raise StartupError when the run cannot start; reads only, creates nothing."""
    landing = Lake(url=settings.landing, storage_options=dict(settings.storage_options))
    lake = Lake(url=settings.lake, storage_options=dict(settings.storage_options))
    check_reachable(landing, "landing area")
    check_reachable(lake, "lake")
    _check_landing_layout(landing)
    _check_lake_location(lake, landing)
    if settings.pacs is not None:
        try:
            check_pacs(settings.pacs)
        except PacsError as exc:
            raise StartupError(str(exc)) from None


def check_reachable(place: Lake, what: str) -> None:
    """For S3: the bucket answers with these credentials; the reason says which part failed when
    the API tells (no credentials, endpoint unreachable, access refused, no such bucket)."""
    if place.is_local:
        return
    from botocore.exceptions import BotoCoreError, NoCredentialsError
    from botocore.exceptions import ConnectionError as EndpointError

    bucket = place.path().split("/", 1)[0]
    where = f"{what} {place.url}"
    # Its own client, asking once: the run's own client retries transient errors, this one answers fast.
    probe = fsspec.filesystem("s3", **place.storage_options, skip_instance_cache=True,
                              config_kwargs={"connect_timeout": 10, "retries": {"max_attempts": 2}})
    probe.retries = 1
    try:
        probe.call_s3("head_bucket", Bucket=bucket)
    except NoCredentialsError:
        raise StartupError(f"{where}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    except EndpointError as exc:
        raise StartupError(f"{where}: S3 endpoint not reachable ({_one_line(exc)}); check AWS_ENDPOINT_URL and the network") from None
    except FileNotFoundError:
        raise StartupError(f"{where}: bucket {bucket!r} does not exist") from None
    except PermissionError:
        raise StartupError(f"{where}: access to bucket {bucket!r} refused; check the credentials and their permissions") from None
    except (OSError, BotoCoreError) as exc:
        raise StartupError(f"{where}: storage error ({type(exc).__name__}: {_one_line(exc)})") from None


def _check_landing_layout(landing: Lake) -> None:
    fs = landing.fs
    if not fs.isdir(landing.path()):
        raise StartupError(f"landing area {landing.url} does not exist or is not a folder ({LAYOUT})")
    if not fs.isfile(landing.path(KEY_PATH)):
        below = sorted(
            p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(landing.path(), detail=False)
            if fs.isfile(f"{p.rstrip('/')}/{KEY_PATH}")
        )
        hint = f"; {below[0]}/ inside it is laid out so: pass --landing {landing.url}/{below[0]}" if below else ""
        raise StartupError(f"landing area {landing.url}: {KEY_PATH} not found ({LAYOUT}){hint}")
    try:
        parse_subject_key(read_landing_bytes(landing, [KEY_PATH])[KEY_PATH])
    except SubjectKeyError as exc:
        raise StartupError(f"landing area {landing.url}: {exc}") from None


def _check_lake_location(lake: Lake, landing: Lake) -> None:
    if not lake.is_local:
        return
    path = Path(lake.path())
    if path.exists() and not path.is_dir():
        raise StartupError(f"lake {lake.url} exists and is not a folder")
    if landing.is_local:
        land = Path(landing.path())
        if path == land or land in path.parents or path in land.parents:
            raise StartupError(f"lake {lake.url} and landing area {landing.url} overlap; keep them apart")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StartupError(f"lake {lake.url} cannot be created or written: {existing} is not writable")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
