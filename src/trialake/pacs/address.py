"""PACS addresses (the URL forms of ``trialake run nightly --pacs``) and how to reach them.

- ``dicomweb+http://host[:port]/path`` or ``dicomweb+https://...``: a DICOMweb service (QIDO-RS,
  WADO-RS, STOW-RS under ``path``). Credentials never go in the URL (it is a flow parameter,
  stored by the orchestrator): they come from the environment (see :func:`read_pacs_connection`).
- ``dimse://CALLED_AET@host:port?calling=AET``: DICOM networking (C-FIND, then C-GET or C-MOVE;
  C-STORE to push). Options in the query: ``calling`` (this side's AE title, default
  ``TRIALAKE``), ``retrieve`` (``get``, the default, or ``move``) and ``move_port`` (the port this
  side listens on for the C-STORE sub-operations of a C-MOVE; the PACS must know the calling AE
  title at this host and port).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from trialake.env_secret import env_secret

DEFAULT_CALLING_AET = "TRIALAKE"
_DIMSE_OPTIONS = frozenset({"calling", "retrieve", "move_port"})


@dataclass(frozen=True)
class PacsAddress:
    """Where a PACS is. ``url`` is the URL as given (normalized, no credentials in it)."""

    url: str
    kind: Literal["dicomweb", "dimse"]
    http_url: str | None = None  # DICOMweb: the service root, http(s)://host/path
    host: str | None = None
    port: int | None = None
    called_aet: str | None = None
    calling_aet: str = DEFAULT_CALLING_AET
    retrieve: Literal["get", "move"] = "get"
    move_port: int | None = None

    @property
    def source_prefix(self) -> str:
        """What source ids of this PACS start with: the URL without its query."""
        return self.url.split("?", 1)[0]


@dataclass(frozen=True)
class PacsConnection:
    """A PACS address with how to talk to it: timeouts, retries with exponential backoff on
    transient network errors, and credentials (from the environment; never printed)."""

    address: PacsAddress
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 1.0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)


def parse_pacs_url(url: str) -> PacsAddress:
    """Parse and check a PACS URL; ValueError with a one-line reason (never the credentials)."""
    text = url.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("dicomweb+http", "dicomweb+https"):
        return _parse_dicomweb(text, scheme)
    if scheme == "dimse":
        return _parse_dimse(text)
    raise ValueError("PACS URL: expected dicomweb+http(s)://host/path or dimse://CALLED_AET@host:port?calling=AET")


def _parse_dicomweb(text: str, scheme: str) -> PacsAddress:
    parts = urlsplit(text)
    if parts.username is not None or parts.password is not None:
        raise ValueError("PACS URL: credentials must not be in the URL; set TRIALAKE_PACS_USER and "
                         "TRIALAKE_PACS_PASSWORD (or TRIALAKE_PACS_TOKEN) instead")
    if not parts.hostname:
        raise ValueError("PACS URL: no host in the DICOMweb URL")
    if parts.query or parts.fragment:
        raise ValueError("PACS URL: a DICOMweb URL takes no query or fragment")
    _port(parts)
    path = parts.path.rstrip("/")
    http = f"{scheme.split('+', 1)[1]}://{parts.netloc}{path}"
    return PacsAddress(url=f"{scheme}://{parts.netloc}{path}", kind="dicomweb", http_url=http)


def _parse_dimse(text: str) -> PacsAddress:
    parts = urlsplit(text)
    called = unquote(parts.username or "")
    if not called or parts.password is not None:
        raise ValueError("PACS URL: expected dimse://CALLED_AET@host:port (the PACS's AE title before the @)")
    if not parts.hostname or parts.port is None:
        raise ValueError("PACS URL: a dimse:// URL needs host and port")
    port = _port(parts)
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError("PACS URL: a dimse:// URL takes no path")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - _DIMSE_OPTIONS)
    if unknown:
        raise ValueError(f"PACS URL: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(_DIMSE_OPTIONS))}")
    calling = options.get("calling", DEFAULT_CALLING_AET)
    for name, aet in (("called", called), ("calling", calling)):
        check_ae_title(aet, name)
    retrieve = options.get("retrieve", "get")
    if retrieve not in ("get", "move"):
        raise ValueError("PACS URL: retrieve must be get or move")
    move_port = _int_option(options, "move_port")
    if retrieve == "move" and move_port is None:
        raise ValueError("PACS URL: retrieve=move needs move_port (where the PACS sends the images)")
    query = "&".join(f"{k}={v}" for k, v in (("calling", calling), ("retrieve", retrieve), ("move_port", move_port)) if v is not None)
    host = parts.hostname
    return PacsAddress(url=f"dimse://{called}@{host}:{port}?{query}", kind="dimse", host=host, port=port,
                       called_aet=called, calling_aet=calling, retrieve=retrieve, move_port=move_port)  # type: ignore[arg-type]


def check_ae_title(aet: str, name: str = "AE") -> str:
    """An AE title: 1-16 characters of printable ASCII, no backslash, not only spaces."""
    if not 1 <= len(aet) <= 16 or not aet.strip() or "\\" in aet or not all(32 <= ord(c) < 127 for c in aet):
        raise ValueError(f"{name} AE title must be 1-16 printable ASCII characters without a backslash")
    return aet


def _port(parts) -> int | None:
    try:
        return parts.port
    except ValueError:
        raise ValueError("PACS URL: the port must be a number from 0 to 65535") from None


def _int_option(options: Mapping[str, str], name: str) -> int | None:
    if name not in options:
        return None
    value = options[name]
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"PACS URL: {name} must be a port number")
    return int(value)


def read_pacs_connection(url: str, environ: Mapping[str, str], *, prefix: str = "TRIALAKE_PACS",
                         timeout_s: float = 30.0, retries: int = 3, backoff_s: float = 1.0) -> PacsConnection:
    """A connection to ``url`` with credentials from ``<prefix>_USER`` / ``<prefix>_PASSWORD``
    (HTTP basic) or ``<prefix>_TOKEN`` (HTTP bearer) in ``environ`` (EnvSecrets: never pickled)."""
    return PacsConnection(
        address=parse_pacs_url(url), timeout_s=timeout_s, retries=retries, backoff_s=backoff_s,
        username=env_secret(environ, f"{prefix}_USER"), password=env_secret(environ, f"{prefix}_PASSWORD"),
        token=env_secret(environ, f"{prefix}_TOKEN"),
    )
