"""Shared fixtures: a real S3 API (moto's server on 127.0.0.1) and lake handles on disk and on S3."""
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

from trialake.config import storage_options_from_env  # noqa: E402
from trialake.lake import Lake, open_lake  # noqa: E402


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
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1, for this test process."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_environ(s3_endpoint: str) -> dict[str, str]:
    """The standard AWS variables pointing at the moto server."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
    }


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
    """The same lake tests run against a local directory and a bucket on the moto server."""
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


#: A small generated trial's arguments, shared by the generator tests (same xdist group, one generation).
SMALL_GENERATED = {"subjects": 6, "seed": 7, "matrix": 32, "slices": 16, "sites": 3}


@pytest.fixture(scope="session")
def small_generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trial of ``SMALL_GENERATED`` without deliberate mess (read only)."""
    from trialake.synth import generate_trial

    out = tmp_path_factory.mktemp("generated")
    generate_trial(out, workers=1, **SMALL_GENERATED)
    return out
