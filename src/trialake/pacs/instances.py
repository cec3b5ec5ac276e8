"""PACS instances as sources: their ids (the "landing path" of an instance that came from a PACS),
and what a PACS peer offers (find, retrieve, store)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from trialake.pacs.address import PacsAddress


class PacsError(Exception):
    """A PACS could not be reached or refused a request; the message is one line naming the PACS
    (its URL without credentials) and the problem, never a patient ID or a UID."""


@dataclass(frozen=True, order=True)
class PacsInstance:
    """One instance in a PACS, by its (original, identifying) UIDs: restricted/ only."""

    study_uid: str
    series_uid: str
    sop_uid: str


def compute_instance_id(address: PacsAddress, instance: PacsInstance) -> str:
    """The instance's source id, in the manifest (restricted/) where a landing file has its path:
    ``<PACS URL>/studies/<study>/series/<series>/instances/<sop>``."""
    return (f"{address.source_prefix}/studies/{instance.study_uid}/series/{instance.series_uid}"
            f"/instances/{instance.sop_uid}")


def parse_instance_id(source_id: str) -> tuple[str, PacsInstance]:
    """(PACS URL prefix, instance) of a source id made by :func:`compute_instance_id`."""
    prefix, sep, rest = source_id.rpartition("/studies/")
    parts = rest.split("/")
    if not sep or len(parts) != 5 or parts[1] != "series" or parts[3] != "instances":
        raise ValueError("not a PACS instance id")
    return prefix, PacsInstance(parts[0], parts[2], parts[4])


def is_pacs_id(source_id: str) -> bool:
    """Whether a source id names a PACS instance (landing paths have no scheme)."""
    return source_id.startswith(("dicomweb+http://", "dicomweb+https://", "dimse://"))


class PacsPeer(Protocol):
    """An open connection to a PACS (DICOMweb or DIMSE)."""

    def check(self) -> None:
        """Fail with PacsError when the PACS is unreachable or refuses us."""

    def find_instances(self, patient_ids: Sequence[str]) -> list[PacsInstance]:
        """Every instance of the studies of these patients (exact PatientID match)."""

    def retrieve(self, instances: Sequence[PacsInstance]) -> dict[PacsInstance, bytes]:
        """Each instance as Part 10 bytes (as sent by the PACS, in its stored transfer syntax)."""

    def store(self, files: Sequence[bytes]) -> None:
        """Send Part 10 files to the PACS."""

    def close(self) -> None: ...
