"""Secrets never travel in task arguments: what a task runner ships to a worker process (a Dask
worker unpickles it) holds neither the lake's pseudonymization secret nor storage or PACS
credentials; the receiving process reads them from the lake's restricted zone or its environment."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from prefect.task_runners import ThreadPoolTaskRunner

from trialake.config import read_settings
from trialake.env_secret import EnvSecret
from trialake.lake import open_lake, read_object
from trialake.pipeline import RunContext
from trialake.pipeline.context import SECRET_OBJECT

pytestmark = pytest.mark.xdist_group("prefect-flows")

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIA-MARKER-7f3c9a",
    "AWS_SECRET_ACCESS_KEY": "secret-access-key-MARKER-41d2e8",
    "AWS_SESSION_TOKEN": "session-token-MARKER-b90c11",
    "TRIALAKE_PACS_USER": "pacs-user-MARKER-5e6f",
    "TRIALAKE_PACS_PASSWORD": "pacs-password-MARKER-0a1b",
    "TRIALAKE_RESEARCH_PACS_TOKEN": "research-token-MARKER-c3d4",
}


def _leaked(blob: bytes, secrets: dict[str, bytes]) -> list[str]:
    return [name for name, value in secrets.items() if value in blob]


class _Shipped:
    """What every submitted task's arguments look like when a task runner sends them elsewhere."""

    blobs: list[tuple[str, bytes]] = []


class _RecordingRunner(ThreadPoolTaskRunner):
    """The thread pool, recording each submitted task's arguments pickled as Dask ships them."""

    def submit(self, task: Any, parameters: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        _Shipped.blobs.append((task.name, cloudpickle.dumps(parameters)))
        return super().submit(task, parameters, *args, **kwargs)

    def duplicate(self) -> _RecordingRunner:
        return type(self)(max_workers=self._max_workers)


def test_settings_pickle_the_names_of_credentials_and_read_them_where_they_arrive(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = dict(CREDENTIALS)
    settings = read_settings(landing="s3://landing/x", lake="s3://lake/y", environ=environ,
                             pacs="dicomweb+https://pacs.example.org/dicom-web")
    assert settings.storage_options["secret"] == CREDENTIALS["AWS_SECRET_ACCESS_KEY"]  # usable in this process
    blob = cloudpickle.dumps(settings)
    assert not _leaked(blob, {k: v.encode() for k, v in CREDENTIALS.items()})
    assert not _leaked(pickle.dumps(settings), {k: v.encode() for k, v in CREDENTIALS.items()})

    # The receiving process has its own values (a worker's environment), and uses them.
    for name in CREDENTIALS:
        monkeypatch.setenv(name, f"worker-{name.lower()}")
    received = pickle.loads(blob)
    assert received.storage_options["key"] == "worker-aws_access_key_id"
    assert received.storage_options["token"] == "worker-aws_session_token"
    assert received.pacs.password == "worker-trialake_pacs_password"
    assert received.research_pacs is None  # none configured for the reference trial


def test_a_worker_without_the_credential_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    blob = pickle.dumps(EnvSecret("AWS_SECRET_ACCESS_KEY", "x" * 20))
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(RuntimeError, match="AWS_SECRET_ACCESS_KEY is not set .* every Prefect worker and Dask worker"):
        pickle.loads(blob)


def test_no_submitted_task_of_a_nightly_run_carries_a_secret(
    small_trial: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trialake_flows.nightly import nightly

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    _Shipped.blobs = []
    lake_dir = tmp_path / "lake"
    nightly.with_options(task_runner=_RecordingRunner(max_workers=2))(landing=str(small_trial / "landing"), lake=str(lake_dir))

    lake = open_lake(str(lake_dir))
    lake_secret = read_object(lake, SECRET_OBJECT)
    assert len(lake_secret) == 32
    secrets = {"lake secret": lake_secret, **{k: v.encode() for k, v in CREDENTIALS.items()}}
    shipped = {name for name, _ in _Shipped.blobs}
    assert {"ingest DICOM chunk", "measure series"} <= shipped, shipped  # the per-series work was submitted
    for name, blob in _Shipped.blobs:
        assert not _leaked(blob, secrets), f"task {name!r} ships {_leaked(blob, secrets)}"

    # What a worker unpickles is still a working run context: the secret is read from the lake.
    contexts = [v for _, blob in _Shipped.blobs for v in cloudpickle.loads(blob).values() if isinstance(v, RunContext)]
    assert contexts and all(ctx.secret == lake_secret for ctx in contexts)
