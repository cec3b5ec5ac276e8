"""A PACS over DICOM networking (pynetdicom): C-ECHO, C-FIND, C-GET or C-MOVE, C-STORE.

Received instances are kept as Part 10 bytes made of the file meta pynetdicom negotiated and the
dataset exactly as it came over the wire (no decoding, no re-encoding). Associations that fail
for network reasons are retried with exponential backoff; a rejected association is not.
"""
from __future__ import annotations

import io
import ipaddress
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import groupby
from typing import TypeVar

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, StoragePresentationContexts, _config, build_context, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind as FIND_MODEL,
    StudyRootQueryRetrieveInformationModelGet as GET_MODEL,
    StudyRootQueryRetrieveInformationModelMove as MOVE_MODEL,
    Verification,
)

from trialake.pacs.address import PacsConnection
from trialake.pacs.instances import PacsError, PacsInstance

#: Transfer syntaxes accepted for received images: the stored one is then sent as it is.
RECEIVE_SYNTAXES = [
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
    JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless,
    JPEG2000Lossless, JPEG2000, RLELossless,
]
SUCCESS, PENDING = 0x0000, (0xFF00, 0xFF01)
OUT_OF_RESOURCES = 0xA700
T = TypeVar("T")
_MOVE_LOCK = threading.Lock()  # one C-MOVE receiver per process at a time (they share move_port)


def storage_contexts() -> list:
    """Presentation contexts for every storage SOP class pynetdicom knows, with RECEIVE_SYNTAXES."""
    return [build_context(cx.abstract_syntax, RECEIVE_SYNTAXES) for cx in StoragePresentationContexts]


def encode_received(event: evt.Event) -> bytes:
    """A received C-STORE as a Part 10 file: preamble, file meta, the dataset bytes as received."""
    out = io.BytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, event.file_meta, enforce_standard=True)
    out.write(event.request.DataSet.getvalue())
    return out.getvalue()


class DimsePeer:
    """A DIMSE PACS (see the module doc). Retrieval associations are opened when first needed and
    kept for the life of the peer."""

    def __init__(self, connection: PacsConnection) -> None:
        # pynetdicom's debug log would print query identifiers (patient IDs) and responses
        _config.LOG_REQUEST_IDENTIFIERS = _config.LOG_RESPONSE_IDENTIFIERS = False
        address = connection.address
        self._connection = connection
        self._name = f"dimse://{address.called_aet}@{address.host}:{address.port}"
        self._received: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._retrieve_assoc: Association | None = None

    # -- public --------------------------------------------------------------------------------
    def check(self) -> None:
        """C-ECHO: reachable, and the PACS accepts our AE titles."""
        def echo(assoc: Association) -> None:
            status = assoc.send_c_echo()
            if getattr(status, "Status", None) != SUCCESS:
                raise PacsError(f"PACS {self._name}: C-ECHO failed")
        self._with_association([build_context(Verification)], echo)

    def find_instances(self, patient_ids: Sequence[str]) -> list[PacsInstance]:
        """C-FIND, study root: studies of each patient (exact PatientID match), their series, their
        instances."""
        def find(assoc: Association) -> list[PacsInstance]:
            found: set[PacsInstance] = set()
            for patient in sorted(set(patient_ids)):
                studies = self._find(assoc, "STUDY", PatientID=patient, StudyInstanceUID="")
                for study in sorted({s.StudyInstanceUID for s in studies if s.get("PatientID") == patient}):
                    for series in sorted({s.SeriesInstanceUID for s in self._find(
                            assoc, "SERIES", StudyInstanceUID=study, SeriesInstanceUID="")}):
                        images = self._find(assoc, "IMAGE", StudyInstanceUID=study, SeriesInstanceUID=series,
                                            SOPInstanceUID="")
                        found.update(PacsInstance(study, series, i.SOPInstanceUID) for i in images if i.get("SOPInstanceUID"))
            return sorted(found)
        return self._with_association([build_context(FIND_MODEL)], find)

    def retrieve(self, instances: Sequence[PacsInstance]) -> dict[PacsInstance, bytes]:
        """C-GET (or C-MOVE to ourselves), one request per series."""
        out: dict[PacsInstance, bytes] = {}
        for (study, series), group in groupby(sorted(instances), key=lambda i: (i.study_uid, i.series_uid)):
            wanted = list(group)
            data = self._retry(lambda: self._retrieve_series(study, series, [i.sop_uid for i in wanted]))
            out.update((i, data[i.sop_uid]) for i in wanted)
        return out

    def store(self, files: Sequence[bytes]) -> None:
        """C-STORE of Part 10 files, in their own transfer syntaxes."""
        if not files:
            return
        datasets = [dcmread(io.BytesIO(f)) for f in files]
        pairs = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets})
        contexts = [build_context(c, [s]) for c, s in pairs]
        def send(assoc: Association) -> None:
            for ds in datasets:
                status = assoc.send_c_store(ds)
                if getattr(status, "Status", None) not in (SUCCESS, 0xB000, 0xB007, 0xB006):
                    raise PacsError(f"PACS {self._name}: C-STORE refused (status 0x{getattr(status, 'Status', 0):04X})")
        self._with_association(contexts, send)

    def close(self) -> None:
        if self._retrieve_assoc is not None and self._retrieve_assoc.is_established:
            self._retrieve_assoc.release()
        self._retrieve_assoc = None

    # -- retrieval ------------------------------------------------------------------------------
    def _retrieve_series(self, study: str, series: str, sops: list[str]) -> dict[str, bytes]:
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID, query.SeriesInstanceUID = study, series
        query.SOPInstanceUID = sops if len(sops) > 1 else sops[0]
        with self._lock:
            self._received = {}
        if self._connection.address.retrieve == "move":
            self._move(query)
        else:
            self._check_final(self._get_association().send_c_get(query, GET_MODEL), "C-GET")
        with self._lock:
            received, self._received = self._received, {}
        missing = [s for s in sops if s not in received]
        if missing:
            raise PacsError(f"PACS {self._name}: {len(missing)} of {len(sops)} requested instances were not sent")
        return received

    def _get_association(self) -> Association:
        if self._retrieve_assoc is None or not self._retrieve_assoc.is_established:
            contexts = [build_context(GET_MODEL)] + storage_contexts()[:127]
            roles = [build_role(cx.abstract_syntax, scp_role=True) for cx in contexts[1:]]
            self._retrieve_assoc = self._associate(contexts, ext_neg=roles,
                                                   handlers=[(evt.EVT_C_STORE, self._on_store)])
        return self._retrieve_assoc

    def _move(self, query: Dataset) -> None:
        address = self._connection.address
        host = "127.0.0.1" if _is_loopback(address.host or "") else "0.0.0.0"
        with _MOVE_LOCK:
            receiver = AE(ae_title=address.calling_aet)
            _set_timeouts(receiver, self._connection.timeout_s)
            receiver.supported_contexts = storage_contexts()
            try:
                server = receiver.start_server((host, address.move_port), block=False,
                                               evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
            except OSError as exc:
                raise ConnectionError(f"move_port {address.move_port} is taken") from exc
            try:
                def move(assoc: Association) -> None:
                    self._check_final(assoc.send_c_move(query, address.calling_aet, MOVE_MODEL), "C-MOVE")
                self._with_association([build_context(MOVE_MODEL)], move, retry=False)
            finally:
                server.shutdown()

    def _on_store(self, event: evt.Event) -> int:
        try:
            data = encode_received(event)
        except Exception:  # noqa: BLE001 - a bad sub-operation is reported to the PACS, not raised here
            return OUT_OF_RESOURCES
        with self._lock:
            self._received[str(event.request.AffectedSOPInstanceUID)] = data
        return SUCCESS

    def _check_final(self, responses: Iterator[tuple[Dataset, Dataset | None]], what: str) -> None:
        status = None
        for status, _ in responses:
            pass
        code = getattr(status, "Status", None)
        if code is None:
            raise ConnectionError(f"{what}: no answer (association aborted or timed out)")
        if code not in (SUCCESS, 0xB000):  # B000: some sub-operations failed; the missing ones are named
            raise PacsError(f"PACS {self._name}: {what} failed (status 0x{code:04X})")

    # -- associations ---------------------------------------------------------------------------
    def _find(self, assoc: Association, level: str, **keys: str) -> list[Dataset]:
        query = Dataset()
        query.QueryRetrieveLevel = level
        for name, value in keys.items():
            setattr(query, name, value)
        results: list[Dataset] = []
        status = None
        for status, identifier in assoc.send_c_find(query, FIND_MODEL):
            if getattr(status, "Status", None) in PENDING and identifier is not None:
                results.append(identifier)
        if getattr(status, "Status", None) != SUCCESS:
            raise PacsError(f"PACS {self._name}: C-FIND failed at {level} level")
        return results

    def _associate(self, contexts: list, *, ext_neg: list | None = None, handlers: list | None = None) -> Association:
        address = self._connection.address
        ae = AE(ae_title=address.calling_aet)
        _set_timeouts(ae, self._connection.timeout_s)
        ae.requested_contexts = contexts
        assoc = ae.associate(address.host, address.port, ae_title=address.called_aet, ext_neg=ext_neg,
                             evt_handlers=handlers)
        if assoc.is_established:
            return assoc
        if assoc.is_rejected:
            raise PacsError(f"PACS {self._name}: refused the association (check the called AE title and that the "
                            f"PACS knows calling AE title {address.calling_aet})")
        raise ConnectionError("association not established")

    def _with_association(self, contexts: list, work: Callable[[Association], T], *, retry: bool = True) -> T:
        def attempt() -> T:
            assoc = self._associate(contexts)
            try:
                return work(assoc)
            finally:
                if assoc.is_established:
                    assoc.release()
        return self._retry(attempt) if retry else attempt()

    def _retry(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt``, retrying network failures (ConnectionError, OSError) with backoff."""
        connection = self._connection
        for n in range(connection.retries + 1):
            try:
                return attempt()
            except PacsError:
                raise
            except (ConnectionError, OSError, RuntimeError):
                self.close()
                if n == connection.retries:
                    raise PacsError(f"PACS {self._name}: unreachable or the association failed "
                                    f"(after {connection.retries} retries)") from None
                time.sleep(connection.backoff_s * 2**n)
        raise AssertionError("unreachable")


def _set_timeouts(ae: AE, timeout_s: float) -> None:
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
