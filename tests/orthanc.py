"""A throwaway Orthanc (Debian's `orthanc` + `orthanc-dicomweb`) for tests and benchmarks.

Started on free 127.0.0.1 ports with its own storage folder and configuration, stopped with its
process group. Remote access is off; HTTP basic authentication is on with a test user, so that the
credentials path of the DICOMweb source is exercised.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
_ENV = dict(os.environ, TCP_NODELAY=os.environ.get("TCP_NODELAY", "1"))
USER, PASSWORD = "trialake-test", "not-a-secret"


def orthanc_available() -> bool:
    return shutil.which("Orthanc") is not None and DICOMWEB_PLUGIN.is_file()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Orthanc:
    """A running Orthanc: its ports, AE title and REST helpers."""

    http_port: int
    dicom_port: int
    aet: str
    folder: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """The PACS URL of the DICOMweb source (credentials come from the environment)."""
        return f"dicomweb+http://127.0.0.1:{self.http_port}/dicom-web"

    def dimse_url(self, calling: str = "TRIALAKE", **options: str | int) -> str:
        query = "&".join([f"calling={calling}", *(f"{k}={v}" for k, v in options.items())])
        return f"dimse://{self.aet}@127.0.0.1:{self.dicom_port}?{query}"

    @property
    def environ(self) -> dict[str, str]:
        """The variables that give the DICOMweb source this Orthanc's test credentials."""
        return {"TRIALAKE_PACS_USER": USER, "TRIALAKE_PACS_PASSWORD": PASSWORD}

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json") -> bytes:
        req = urllib.request.Request(f"{self.http_url}{path}", data=body, method=method)
        req.add_header("Authorization", "Basic " + b64encode(f"{USER}:{PASSWORD}".encode()).decode())
        if body is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.read()

    def get_json(self, path: str) -> object:
        return json.loads(self.request("GET", path))

    def upload(self, files: Iterable[Path]) -> int:
        """POST every file to /instances (Orthanc stores the bytes as sent); returns the count."""
        count = 0
        for path in files:
            self.request("POST", "/instances", path.read_bytes(), "application/dicom")
            count += 1
        return count

    def add_modality(self, name: str, aet: str, port: int) -> None:
        """Declare a peer on 127.0.0.1 (for C-MOVE destinations and C-STORE pushes)."""
        spec = {"AET": aet, "Host": "127.0.0.1", "Port": port}
        self.request("PUT", f"/modalities/{name}", json.dumps(spec).encode())

    def instances(self) -> list[str]:
        return list(self.get_json("/instances"))  # type: ignore[arg-type]


def _config(folder: Path, http_port: int, dicom_port: int, aet: str) -> dict:
    return {
        "Name": "trialake-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": aet,
        "DicomCheckCalledAet": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "HttpsCACertificates": "",
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "StudiesMetadata": "Full"},
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowGet": True,
        "DicomModalities": {},
        "DicomModalitiesInDatabase": True,
        "UnknownSopClassAccepted": True,
        "StableAge": 1,
        "SaveJobs": False,
    }


@contextmanager
def run_orthanc(folder: Path, *, aet: str = "ORTHANC", http_port: int | None = None,
                dicom_port: int | None = None) -> Iterator[Orthanc]:
    """Start Orthanc in ``folder`` (config, storage, log) and stop it (its process group) after.
    Ports: free ones of 127.0.0.1 unless given."""
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(5):  # a port taken between probing and binding: try other ports
        http, dicom = http_port or free_port(), dicom_port or free_port()
        config = folder / "orthanc.json"
        config.write_text(json.dumps(_config(folder, http, dicom, aet)))
        log = (folder / "orthanc.log").open("wb")
        process = subprocess.Popen(["Orthanc", str(config)], stdout=log, stderr=subprocess.STDOUT, env=_ENV,
                                   start_new_session=True, cwd=folder)
        server = Orthanc(http, dicom, aet, folder)
        try:
            if _wait_ready(server, process):
                yield server
                return
        finally:
            _stop(process)
            log.close()
    raise RuntimeError(f"Orthanc did not start; see {folder / 'orthanc.log'}")


def _wait_ready(server: Orthanc, process: subprocess.Popen, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            server.get_json("/system")
            return True
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
