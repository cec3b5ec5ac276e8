"""Volumetry results for viewers: a DICOM SEG and SR per measured series (``trialake.dicom.results``),
written to ``silver/ct_seg/`` and ``silver/ct_sr/``, indexed in ``silver/ct_dicom_results``, and
pushed with the de-identified series to the research PACS when the configuration names one.

The volumetry stage calls :func:`write_ct_results` for each series it measures (the masks are
still in memory then); :func:`publish_ct_results` publishes the index and pushes what the research
PACS has not received yet. A series whose SEG or SR cannot be built keeps its measurement: the
index row says ``failed`` and why.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from trialake.dicom.results import build_result_objects, compute_source_frames, read_sources
from trialake.imaging import CTVolume, VolumetryResult
from trialake.lake import read_object, read_table, write_object, write_table
from trialake.pacs import open_peer
from trialake.pipeline.context import RunContext
from trialake.pipeline.quality import HeldBack, QualityGate, held_back_of, outcomes_of, publish_checked
from trialake.quality import ValidationOutcome

TABLE = "silver/ct_dicom_results"
ROW_KEY = "ct_dicom_results"  # where write_ct_results puts the index row in the volumetry row
SCHEMA = {
    "USUBJID": pl.String, "series_id": pl.String, "params_hash": pl.String, "status": pl.String, "reason": pl.String,
    "seg_object": pl.String, "sr_object": pl.String, "seg_series_uid": pl.String, "seg_sop_uid": pl.String,
    "sr_series_uid": pl.String, "sr_sop_uid": pl.String, "n_seg_frames": pl.Int64, "run_id": pl.String,
    "pushed_to": pl.String, "push_run_id": pl.String,
}
#: Errors highdicom and the geometry mapping raise for a series they cannot describe.
_BUILD_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError)
#: The result's masks of the SEG's segments (``trialake.dicom.results.SEGMENTS``), in their order.
SEGMENT_MASKS = ("lung", "ggo", "solid")


@dataclass(frozen=True)
class CtResultsSummary:
    """What the SEG/SR step did: series written and not built this run, series pushed to the
    research PACS; ``held_back``: the index when a table rule held it back."""

    written: int
    failed: int
    pushed_series: int
    quality: tuple[ValidationOutcome, ...] = ()
    held_back: tuple[HeldBack, ...] = ()


class _SegmentStack:
    """The (z, y, x, 3) lung, ground-glass and solid masks of a whole volume, built one slice at a
    time from the boxed masks when indexed (a whole stack of a 512x512x300 series is 235 MB)."""

    def __init__(self, result: VolumetryResult) -> None:
        self.result = result
        self.shape = (*result.boxed_lungs.shape, len(SEGMENT_MASKS))

    def __getitem__(self, k: int) -> np.ndarray:
        return np.stack([self.result.mask_slice(name, 0, k) for name in SEGMENT_MASKS], axis=-1)


def write_ct_results(ctx: RunContext, usubjid: str, series_id: str, files: Sequence[bytes], volume: CTVolume,
                     result: VolumetryResult) -> dict[str, dict]:
    """Build and write the SEG and SR of one measured series; returns ``{ROW_KEY: index row}``."""
    row: dict[str, object] = {"USUBJID": usubjid, "series_id": series_id, "params_hash": result.params_hash,
                              "run_id": ctx.run_id, "pushed_to": None, "push_run_id": None}
    try:
        sources = read_sources(files)
        frames = compute_source_frames(sources, _SegmentStack(result), volume.origin_mm, volume.spacing_mm)
        objects = build_result_objects(sources, frames, result.to_record(), uid_seed=f"{series_id}/{result.params_hash}")
    except _BUILD_ERRORS as exc:
        reason = f"DICOM SEG/SR not built ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        return {ROW_KEY: {**row, "status": "failed", "reason": reason}}
    stem = f"{usubjid}/{series_id}_{result.params_hash}.dcm"
    return {ROW_KEY: {
        **row, "status": "written", "reason": None,
        "seg_object": write_object(ctx.lake, f"silver/ct_seg/{stem}", objects.seg),
        "sr_object": write_object(ctx.lake, f"silver/ct_sr/{stem}", objects.sr),
        "seg_series_uid": objects.seg_series_uid, "seg_sop_uid": objects.seg_sop_uid,
        "sr_series_uid": objects.sr_series_uid, "sr_sop_uid": objects.sr_sop_uid, "n_seg_frames": objects.n_seg_frames,
    }}


def publish_ct_results(ctx: RunContext, gate: QualityGate, measured: Sequence[dict]) -> CtResultsSummary:
    """Add this run's index rows to silver/ct_dicom_results, then push to the research PACS what
    the published index (without quarantined rows; its previous version when held back) lists."""
    new = [r[ROW_KEY] for r in measured if ROW_KEY in r]
    outcomes = []
    if new:
        fresh = pl.DataFrame(new, schema=SCHEMA, orient="row")
        table = pl.concat([fresh, _read_index(ctx)]).unique(["series_id", "params_hash"], keep="first").sort("USUBJID", "series_id", "params_hash")
        outcomes.append(publish_checked(ctx, gate, TABLE, table, partition_by=["USUBJID"]))
    pushed = push_to_research_pacs(ctx, _read_index(ctx)) if ctx.settings.research_pacs is not None else 0
    failed = sum(1 for r in new if r["status"] != "written")
    return CtResultsSummary(len(new) - failed, failed, pushed, tuple(outcomes_of(outcomes)), held_back_of(outcomes))


def push_to_research_pacs(ctx: RunContext, table: pl.DataFrame) -> int:
    """Send each series not yet sent to the configured research PACS: its de-identified instances,
    SEG and SR; the index records what went where. Returns the series sent. A PACS that fails
    stops the push (the series sent so far are recorded; the rest go on the next run)."""
    connection = ctx.settings.research_pacs
    assert connection is not None
    target = connection.address.url
    todo = table.filter((pl.col("status") == "written") & pl.col("pushed_to").ne_missing(pl.lit(target)))
    if todo.is_empty():
        return 0
    series = read_table(ctx.lake, "silver/ct_series", columns=["series_id", "object_names"])
    objects = dict(series.iter_rows()) if not series.is_empty() else {}
    done: list[tuple[str, str]] = []
    try:
        with open_peer(connection) as peer:
            for r in todo.iter_rows(named=True):
                files = [read_object(ctx.lake, f"bronze/dicom/{name}") for name in objects.get(r["series_id"], [])]
                peer.store([*files, read_object(ctx.lake, r["seg_object"]), read_object(ctx.lake, r["sr_object"])])
                done.append((r["series_id"], r["params_hash"]))
    finally:
        if done:
            _mark_pushed(ctx, table, done, target)
    return len({s for s, _ in done})


def forget_ct_results(ctx: RunContext, series_ids: set[str]) -> None:
    """Drop the SEG, SR and index rows of measured series that no longer exist."""
    index = _read_index(ctx)
    gone = index.filter(pl.col("series_id").is_in(list(series_ids)))
    if gone.is_empty():
        return
    for name in [*gone["seg_object"].drop_nulls(), *gone["sr_object"].drop_nulls()]:
        if ctx.lake.fs.exists(ctx.lake.path(name)):
            ctx.lake.fs.rm(ctx.lake.path(name))
    write_table(ctx.lake, TABLE, index.filter(~pl.col("series_id").is_in(list(series_ids))), partition_by=["USUBJID"])


def _mark_pushed(ctx: RunContext, table: pl.DataFrame, done: list[tuple[str, str]], target: str) -> None:
    keys = pl.DataFrame(done, schema={"series_id": pl.String, "params_hash": pl.String}, orient="row").with_columns(
        pl.lit(True).alias("_pushed"))
    marked = table.join(keys, on=["series_id", "params_hash"], how="left").with_columns(
        pl.when(pl.col("_pushed")).then(pl.lit(target)).otherwise(pl.col("pushed_to")).alias("pushed_to"),
        pl.when(pl.col("_pushed")).then(pl.lit(ctx.run_id)).otherwise(pl.col("push_run_id")).alias("push_run_id"),
    ).drop("_pushed")
    write_table(ctx.lake, TABLE, marked.select(list(SCHEMA)), partition_by=["USUBJID"])


def _read_index(ctx: RunContext) -> pl.DataFrame:
    existing = read_table(ctx.lake, TABLE)
    return existing.select(list(SCHEMA)).cast(SCHEMA) if not existing.is_empty() else pl.DataFrame(schema=SCHEMA)
