"""PACS sources and targets: pull from a PACS (DICOMweb or DIMSE), receive pushes (C-STORE SCP),
push results to a research PACS."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from trialake.pacs.address import PacsAddress, PacsConnection, check_ae_title, parse_pacs_url, read_pacs_connection
from trialake.pacs.instances import PacsError, PacsInstance, PacsPeer, compute_instance_id, is_pacs_id, parse_instance_id


@contextmanager
def open_peer(connection: PacsConnection) -> Iterator[PacsPeer]:
    """A connection to the PACS, closed on exit (pynetdicom and requests are imported here only)."""
    peer: PacsPeer
    if connection.address.kind == "dicomweb":
        from trialake.pacs.dicomweb import DicomwebPeer

        peer = DicomwebPeer(connection)
    else:
        from trialake.pacs.dimse import DimsePeer

        peer = DimsePeer(connection)
    try:
        yield peer
    finally:
        peer.close()


def check_pacs(connection: PacsConnection) -> None:
    """Fail with a one-line PacsError when the PACS is unreachable or refuses us (start-up check)."""
    with open_peer(connection) as peer:
        peer.check()


__all__ = [
    "PacsAddress", "PacsConnection", "PacsError", "PacsInstance", "PacsPeer", "check_ae_title", "check_pacs",
    "compute_instance_id", "is_pacs_id", "open_peer", "parse_instance_id", "parse_pacs_url", "read_pacs_connection",
]
