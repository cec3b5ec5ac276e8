"""``trialake receive``: a C-STORE SCP (pynetdicom) that writes what sites send into the landing
area, one instance at a time and atomically (a hidden staging file renamed into place on disk, one
PUT on S3), so that the next nightly run ingests it like any landing file.

Files land at ``dicom/received/<calling AE>/<study UID>/<series UID>/<SOP instance UID>.dcm``:
the landing area may hold identifying names, and these paths reach only restricted/. An instance
sent again with other bytes (a correction) is kept beside the first as ``<SOP>_<sha256[:16]>.dcm``,
so nothing is overwritten before the nightly run has seen it (which then names the conflict). A
C-STORE is answered with success only once its file is in place; a failed write is answered with
"out of resources" (0xA700), so the sender keeps the image and sends it again.
"""
from __future__ import annotations

import hashlib
import re
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pynetdicom import AE, evt

from trialake.lake import Lake, write_object
from trialake.pacs.address import check_ae_title
from trialake.pacs.dimse import OUT_OF_RESOURCES, SUCCESS, encode_received, storage_contexts

FOLDER = "dicom/received"
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def compute_received_path(calling_aet: str, study_uid: str, series_uid: str, sop_uid: str) -> str:
    """Where a received instance lands. UIDs that are not plain dotted numbers (a hostile sender
    could put ``../`` there) and AE titles are made safe for a path."""
    aet = _SAFE.sub("_", calling_aet.strip()).lstrip(".") or "_"  # never "..", never a hidden folder
    parts = [_safe_uid(u) for u in (study_uid, series_uid, sop_uid)]
    return f"{FOLDER}/{aet}/{parts[0]}/{parts[1]}/{parts[2]}.dcm"


def _safe_uid(uid: str) -> str:
    uid = uid.strip().rstrip("\x00")
    return uid if _UID.match(uid) and len(uid) <= 64 else "x" + hashlib.sha256(uid.encode()).hexdigest()[:32]


class LandingStore:
    """The C-STORE handler: each instance written into the landing area before it is acknowledged."""

    def __init__(self, landing: Lake) -> None:
        self.landing = landing
        self.received = 0
        self.failed = 0
        self._lock = threading.Lock()

    def __call__(self, event: evt.Event) -> int:
        try:
            data = encode_received(event)
            study, series = _study_and_series(event)
            path = compute_received_path(event.assoc.requestor.ae_title, study, series,
                                         str(event.request.AffectedSOPInstanceUID))
            target = self.landing.path(path)
            if self.landing.fs.exists(target) and self.landing.fs.cat_file(target) != data:
                path = f"{path[:-4]}_{hashlib.sha256(data).hexdigest()[:16]}.dcm"
            write_object(self.landing, path, data)
        except Exception:  # noqa: BLE001 - the sender is told to try again; nothing is acknowledged unwritten
            with self._lock:
                self.failed += 1
            return OUT_OF_RESOURCES
        with self._lock:
            self.received += 1
        return SUCCESS


def _study_and_series(event: evt.Event) -> tuple[str, str]:
    """The instance's study and series UIDs, or empty strings when its dataset does not decode (it
    is stored all the same: the nightly run rejects it with a reason)."""
    try:
        ds = event.dataset
        return str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", ""))
    except Exception:  # noqa: BLE001 - any decoding problem: keep the bytes, let the ingest judge them
        return "", ""


def build_receiver(landing: Lake, *, ae_title: str, allowed: Sequence[str] | None = None) -> tuple[AE, LandingStore]:
    """The application entity (every storage SOP class, common transfer syntaxes, C-ECHO) and its
    store handler. ``allowed``: the calling AE titles accepted (None: any)."""
    check_ae_title(ae_title, "receiver")
    ae = AE(ae_title=ae_title)
    ae.supported_contexts = storage_contexts()
    ae.add_supported_context("1.2.840.10008.1.1")  # Verification (C-ECHO)
    if allowed:
        ae.require_calling_aet = [check_ae_title(a, "allowed calling") for a in allowed]
    return ae, LandingStore(landing)


def run_receiver(*, landing_url: str, storage_options: Mapping[str, Any], host: str, port: int, ae_title: str,
                 allowed: Sequence[str] | None = None) -> int:
    """Listen until SIGTERM or SIGINT; prints one line when listening (with the bound port) and
    one when stopping (counts only: never a name or UID)."""
    url = landing_url if "://" in landing_url else str(Path(landing_url).expanduser().resolve())
    landing = Lake(url=url.rstrip("/"), storage_options=dict(storage_options))
    if not landing.fs.exists(landing.path()):
        raise FileNotFoundError(f"landing area {url} does not exist or is not reachable")
    ae, store = build_receiver(landing, ae_title=ae_title, allowed=allowed)
    server = ae.start_server((host, port), block=False, evt_handlers=[(evt.EVT_C_STORE, store)])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    bound = server.server_address[1]
    print(f"trialake receive: {ae_title} listening on {host}:{bound}, writing to {url}/{FOLDER}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
    print(f"trialake receive: stopped; {store.received} instances written, {store.failed} refused", file=sys.stderr,
          flush=True)
    return 0
