"""Shared fixtures: a real S3-compatible server (SeaweedFS on 127.0.0.1) and lake handles on disk and on S3."""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefect keeps its state (the ephemeral server's SQLite) per test process, offline and quiet.
# Set before anything imports prefect, which reads its settings once.
# The folder is named after the checkout too, so test runs of two checkouts never share a database.
_CHECKOUT = hashlib.sha256(str(Path(__file__).resolve().parent).encode()).hexdigest()[:8]
_PREFECT_HOME = Path(tempfile.gettempdir()) / f"trialake-tests-prefect-{_CHECKOUT}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
os.environ["PREFECT_HOME"] = str(_PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")  # slow, busy CI machines
os.environ.pop("PREFECT_API_URL", None)
# Loading prefect.main sets up Prefect's logging, whose console handler keeps the sys.stderr of that
# moment: load it here, with pytest's session-long stream, not first inside a test whose capsys
# stream is closed after it (later runs' log lines would fail with "I/O operation on closed file").
import prefect.main  # noqa: E402,F401

from trialake.config import storage_options_from_env  # noqa: E402
from trialake.lake import Lake, open_lake  # noqa: E402

from seaweedfs import SeaweedFS, start_seaweedfs  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _stop_ephemeral_prefect_servers() -> Iterator[None]:
    """Stop the ephemeral Prefect servers of this test process while its output is still open.

    Prefect stops them at interpreter exit, when pytest has already closed the stream its log
    handler writes to, which prints a "Logging error" traceback after the test summary; and logs
    still queued for the API are sent first, else they fail ("Error logging to API").
    """
    yield
    handlers = sys.modules.get("prefect.logging.handlers")
    if handlers is not None:  # send the last run logs while the server still answers
        handlers.APILogWorker.drain_all(timeout=30)
    server = sys.modules.get("prefect.server.api.server")
    if server is not None:
        for instance in list(server.SubprocessASGIServer._instances.values()):
            instance.stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """SeaweedFS's S3 server on free ports of 127.0.0.1, for this test process (stopped with its
    process group at the end of the session, or at exit)."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_endpoint(seaweedfs: SeaweedFS) -> str:
    """The S3 endpoint of the test server."""
    return seaweedfs.endpoint


@pytest.fixture
def s3_environ(seaweedfs: SeaweedFS) -> dict[str, str]:
    """The standard AWS variables pointing at the SeaweedFS server."""
    return seaweedfs.environ


@pytest.fixture
def s3_bucket(s3_environ: dict[str, str]) -> str:
    """A new empty bucket; returns its s3:// URL."""
    import s3fs

    fs = s3fs.S3FileSystem(**storage_options_from_env(s3_environ))
    name = f"trialake-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    return f"s3://{name}"


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path) -> Lake:
    """The same lake tests run against a local directory and a bucket on the SeaweedFS server."""
    if request.param == "local":
        return open_lake(str(tmp_path / "lake"))
    bucket = request.getfixturevalue("s3_bucket")
    environ = request.getfixturevalue("s3_environ")
    return open_lake(f"{bucket}/lake", storage_options_from_env(environ))


@pytest.fixture(scope="session")
def small_trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated trial (6 subjects, 2 sites, 64x64x40 CT) shared by the flow tests."""
    from trialake.synth import generate_trial

    out = tmp_path_factory.mktemp("trial")
    generate_trial(out, subjects=6, seed=7, matrix=64, slices=40, sites=2)
    return out


@pytest.fixture(scope="session")
def clean_run(small_trial: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lake folder of one nightly run on the small trial, made once per test process. Never
    change it: tests that write take a copy (`fresh_run`)."""
    from trialake_flows.nightly import nightly

    lake_dir = tmp_path_factory.mktemp("clean-run") / "lake"
    nightly(landing=str(small_trial / "landing"), lake=str(lake_dir))
    return lake_dir


@pytest.fixture
def fresh_run(clean_run: Path, tmp_path: Path) -> Lake:
    """A private copy of the clean run's lake, as if this test had run the nightly flow itself."""
    import shutil

    shutil.copytree(clean_run, tmp_path / "lake")
    return open_lake(str(tmp_path / "lake"))


#: A small generated trial's arguments, shared by the generator tests (same xdist group, one generation).
SMALL_GENERATED = {"subjects": 6, "seed": 7, "matrix": 32, "slices": 16, "sites": 3}


@pytest.fixture(scope="session")
def small_generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trial of ``SMALL_GENERATED`` without deliberate mess (read only)."""
    from trialake.synth import generate_trial

    out = tmp_path_factory.mktemp("generated")
    generate_trial(out, workers=1, **SMALL_GENERATED)
    return out
