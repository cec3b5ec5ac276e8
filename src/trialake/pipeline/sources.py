"""Where DICOM files come from: the landing area's dicom/ folder and, when configured, a PACS.

A PACS instance is handled as a landing file whose path is its source id
(``<PACS URL>/studies/<study>/series/<series>/instances/<sop>``, restricted/ only): it is listed
into the same plan, read into the same chunks, hashed, checked, de-identified, accounted and
rejected exactly like a file, and recorded in the same manifest (``restricted/landing_files``,
area ``dicom``, size 0 and an empty version: what identifies it is its SOP Instance UID, in the
id, and the sha256 of the bytes received). An instance already in the manifest is never
retrieved again; instances added to a series later are new ids, so the next run completes it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import polars as pl

from trialake.lake import LandingFile, read_landing_bytes
from trialake.pacs import PacsPeer, compute_instance_id, is_pacs_id, open_peer, parse_instance_id
from trialake.pipeline.context import RunContext

Reader = Callable[[Sequence[str]], dict[str, bytes]]


@dataclass(frozen=True)
class PacsListing:
    """``current``: the configured PACS's instances of the key's patients, found now; ``kept``:
    manifest rows of other PACS (a run without them must not forget what they sent)."""

    current: tuple[LandingFile, ...] = ()
    kept: tuple[LandingFile, ...] = ()


def list_pacs_files(ctx: RunContext, key: pl.DataFrame | None, manifest: pl.DataFrame) -> PacsListing:
    """The PACS instances of the subjects in the subject key, as landing files (see module doc)."""
    connection = ctx.settings.pacs
    prefix = f"{connection.address.source_prefix}/" if connection is not None else None
    kept = tuple(
        LandingFile(relpath, int(size or 0), version or "")
        for relpath, size, version in manifest.filter(pl.col("area") == "dicom").select("relpath", "size", "version").iter_rows()
        if is_pacs_id(relpath) and (prefix is None or not relpath.startswith(prefix))
    )
    if connection is None or key is None or key.is_empty():
        return PacsListing((), kept)
    with open_peer(connection) as peer:
        found = peer.find_instances(key["PATIENT_ID"].drop_nulls().to_list())
    return PacsListing(tuple(LandingFile(compute_instance_id(connection.address, i), 0, "") for i in found), kept)


@contextmanager
def open_dicom_reader(ctx: RunContext) -> Iterator[Reader]:
    """A function that reads source ids (landing paths and PACS instance ids alike) into bytes;
    the PACS connection is opened on first use and closed on exit."""
    with ExitStack() as stack:
        peers: list[PacsPeer] = []

        def peer() -> PacsPeer:
            if not peers:
                if ctx.settings.pacs is None:
                    raise ValueError("a PACS instance is to be read but no PACS is configured for this run")
                peers.append(stack.enter_context(open_peer(ctx.settings.pacs)))
            return peers[0]

        def read(source_ids: Sequence[str]) -> dict[str, bytes]:
            landing = [s for s in source_ids if not is_pacs_id(s)]
            remote = {parse_instance_id(s)[1]: s for s in source_ids if is_pacs_id(s)}
            out = read_landing_bytes(ctx.landing, landing)
            if remote:
                out.update((remote[i], data) for i, data in peer().retrieve(list(remote)).items())
            return out

        yield read
