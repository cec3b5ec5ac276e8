"""Shared fixtures: a real S3 API (moto's server on 127.0.0.1) and lake handles on disk and on S3."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from trialake.config import storage_options_from_env
from trialake.lake import Lake, open_lake


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
