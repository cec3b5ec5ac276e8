"""A DICOMweb PACS through dicomweb-client: QIDO-RS to find, WADO-RS to retrieve, STOW-RS to store.

dicomweb-client hands retrieved instances back as pydicom datasets; the lake hashes and
de-identifies the bytes exactly as the PACS sent them, so :class:`_RawDicomwebClient` adds two
methods that reuse the client's own request, retry and multipart code but keep the bytes.

Retries: connection errors, read timeouts and HTTP 408/429/502/503/504 are retried by urllib3 on
the session, with exponential backoff (dicomweb-client's own retry layer is switched off so the two
do not multiply). Errors leave as :class:`PacsError` with the service URL and the HTTP status only:
a QIDO-RS request URL carries a patient ID in its query, so no exception text is passed on, and
the loggers that would print request URLs (``retrying``'s warnings, urllib3's debug lines) are
kept quiet.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import TypeVar

import logging

import requests
from dicomweb_client import DICOMwebClient
from dicomweb_client.web import _Transaction
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from trialake.pacs.address import PacsConnection
from trialake.pacs.instances import PacsError, PacsInstance

#: QIDO-RS page size: servers that page their results return at most this many per request.
PAGE = 1000
#: Concurrent WADO-RS requests (one instance each) while retrieving.
RETRIEVE_THREADS = 8
_RETRIABLE = (HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.BAD_GATEWAY,
              HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.GATEWAY_TIMEOUT)
_STUDY_UID, _SERIES_UID, _SOP_UID, _PATIENT_ID = "0020000D", "0020000E", "00080018", "00100020"
T = TypeVar("T")
#: Loggers whose records would quote request URLs (patient IDs in QIDO-RS queries): their level.
_QUIET_LOGGERS = {"retrying": logging.ERROR, "urllib3.connectionpool": logging.INFO}


class _RawDicomwebClient(DICOMwebClient):
    """dicomweb-client, plus retrieve and store of Part 10 bytes as they are."""

    def retrieve_instance_bytes(self, instance: PacsInstance) -> bytes:
        """WADO-RS of one instance in any transfer syntax (the stored one, not transcoded)."""
        url = self._get_instances_url(_Transaction.RETRIEVE, instance.study_uid, instance.series_uid, instance.sop_uid)
        response = self._http_get(url, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
        if response.headers.get("Content-Type", "").startswith("application/dicom"):
            return bytes(response.content)  # a single part sent without the multipart envelope
        parts = list(self._decode_multipart_message(response, stream=False))
        if len(parts) != 1:
            raise PacsError(f"expected one instance in the WADO-RS response, got {len(parts)}")
        return bytes(parts[0])  # the multipart decoder gives bytearrays

    def store_bytes(self, files: Sequence[bytes]) -> None:
        """STOW-RS of Part 10 files as they are."""
        self._http_post_multipart_application_dicom(self._get_studies_url(_Transaction.STORE, None), list(files))


class DicomwebPeer:
    """A DICOMweb PACS (see the module doc)."""

    def __init__(self, connection: PacsConnection) -> None:
        self._connection = connection
        self._name = connection.address.url
        session = requests.Session()
        if connection.username is not None:
            session.auth = (connection.username, connection.password or "")
        if connection.token is not None:
            session.headers["Authorization"] = f"Bearer {connection.token}"
        retry = Retry(total=connection.retries, connect=connection.retries, read=connection.retries,
                      status=connection.retries, status_forcelist=_RETRIABLE, backoff_factor=connection.backoff_s,
                      allowed_methods=None, raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=RETRIEVE_THREADS)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._client = _RawDicomwebClient(connection.address.http_url or "", session=session,
                                          timeout=connection.timeout_s)
        self._client.set_http_retry_params(retry=False)
        for name, level in _QUIET_LOGGERS.items():
            logging.getLogger(name).setLevel(max(level, logging.getLogger(name).level))

    def check(self) -> None:
        """One QIDO-RS request (at most one study): reachable, and the credentials are accepted."""
        self._call(lambda: self._client.search_for_studies(limit=1, fields=[_STUDY_UID]))

    def find_instances(self, patient_ids: Sequence[str]) -> list[PacsInstance]:
        """QIDO-RS: the studies of each patient (the PatientID must match exactly: a wildcard in an
        ID never pulls another patient's images), then every instance of those studies."""
        found: set[PacsInstance] = set()
        for patient in sorted(set(patient_ids)):
            studies = self._pages(lambda limit, offset: self._client.search_for_studies(
                search_filters={"PatientID": patient}, fields=[_PATIENT_ID], limit=limit, offset=offset))
            for study in sorted({_value(s, _STUDY_UID) for s in studies if _value(s, _PATIENT_ID) == patient} - {None}):
                instances = self._pages(lambda limit, offset: self._client.search_for_instances(
                    study_instance_uid=study, fields=[_SERIES_UID, _SOP_UID], limit=limit, offset=offset))
                found.update(PacsInstance(study, series, sop) for series, sop in
                             ((_value(i, _SERIES_UID), _value(i, _SOP_UID)) for i in instances) if series and sop)
        return sorted(found)

    def retrieve(self, instances: Sequence[PacsInstance]) -> dict[PacsInstance, bytes]:
        """WADO-RS, one request per instance, several at once."""
        with ThreadPoolExecutor(max_workers=RETRIEVE_THREADS) as pool:
            data = list(pool.map(lambda i: self._call(lambda: self._client.retrieve_instance_bytes(i)), instances))
        return dict(zip(instances, data))

    def store(self, files: Sequence[bytes]) -> None:
        """STOW-RS of the files in one request."""
        if files:
            self._call(lambda: self._client.store_bytes(files))

    def close(self) -> None:
        self._client._session.close()

    def _pages(self, search: Callable[[int, int], list[dict]]) -> list[dict]:
        """Every result of a QIDO-RS search, page by page (stops at a short or repeated page)."""
        results: list[dict] = []
        seen: set[str] = set()
        while True:
            page = self._call(lambda: search(PAGE, len(results)))
            fresh = [r for r in page if repr(sorted(r.items())) not in seen]
            seen.update(repr(sorted(r.items())) for r in fresh)
            results.extend(fresh)
            if len(page) < PAGE or not fresh:
                return results

    def _call(self, request: Callable[[], T]) -> T:
        try:
            return request()
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            hint = {401: " (credentials refused: check TRIALAKE_PACS_USER / TRIALAKE_PACS_PASSWORD or "
                         "TRIALAKE_PACS_TOKEN)", 403: " (access refused)", 404: " (not found)"}.get(status or 0, "")
            raise PacsError(f"PACS {self._name}: HTTP {status}{hint}") from None
        except requests.ConnectionError as exc:
            reason = exc.args[0].reason if exc.args and isinstance(exc.args[0], MaxRetryError) else None
            timed_out = isinstance(reason, (ConnectTimeoutError, ReadTimeoutError)) and not isinstance(reason, NewConnectionError)
            if isinstance(exc, requests.Timeout) or timed_out:  # (urllib3 counts a refused connection as a timeout)
                raise PacsError(f"PACS {self._name}: no answer within {self._connection.timeout_s:g} s "
                                f"({self._connection.retries} retries)") from None
            raise PacsError(f"PACS {self._name}: unreachable (connection failed after "
                            f"{self._connection.retries} retries)") from None
        except requests.Timeout:
            raise PacsError(f"PACS {self._name}: no answer within {self._connection.timeout_s:g} s "
                            f"({self._connection.retries} retries)") from None
        except (requests.RequestException, ValueError) as exc:
            raise PacsError(f"PACS {self._name}: unexpected answer ({type(exc).__name__})") from None


def _value(item: dict, tag: str) -> str | None:
    values = item.get(tag, {}).get("Value") or []
    return str(values[0]) if values else None
