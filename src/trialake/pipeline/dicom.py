"""DICOM stage: new landing files -> de-identified copies in bronze/dicom/, bronze/dicom_instances,
rejections; then series assembly and QC into silver/ct_series.

Work is split into chunks of even size (at most ``CHUNK_FILES`` files and about ``CHUNK_BYTES``
bytes) so that the flow can run chunks in parallel; `publish_dicom` merges the chunk outcomes and
publishes the tables once.
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, replace

import polars as pl

from trialake.dicom import (
    INSTANCE_SCHEMA,
    AcceptedInstance,
    QUARANTINE_SCHEMA,
    UID_MAP_SCHEMA,
    DeidParams,
    IngestBatchResult,
    SubjectKey,
    ingest_dicom_batch,
    merge_ingest_results,
)
from trialake.dicom.series import derive_ct_series, derive_series_rejections
from trialake.lake import LandingFile, delete_partition, read_table, write_object, write_table
from trialake.pipeline.context import RunContext
from trialake.pipeline.freshness import is_stale, mark_fresh
from trialake.pipeline.inventory import derive_manifest, list_area, read_manifest, select_new, write_manifest
from trialake.pipeline.quality import QualityGate, outcomes_of, publish_checked, raise_if_blocked
from trialake.pipeline.rejections import publish_rejections
from trialake.pipeline.sources import list_pacs_files, open_dicom_reader
from trialake.quality import ValidationOutcome

AREA = "dicom"
CHUNK_FILES, CHUNK_BYTES = 400, 128 * 2**20
WINDOW_FILES = 16
INGEST_STAGES = ("ingest_dicom", "deid")
INSTANCES, QUARANTINE, UID_MAP = "bronze/dicom_instances", "restricted/dicom_quarantine", "restricted/uid_map"
SERIES_INPUTS = (INSTANCES, "silver/subjects")


@dataclass(frozen=True)
class DicomPlan:
    """What this run will read: chunks of landing paths, and what earlier runs already settled."""

    chunks: tuple[tuple[str, ...], ...]
    listed: tuple[LandingFile, ...]
    known_sha256: frozenset[str]
    known_sop_ids: dict[str, str]


@dataclass(frozen=True)
class ChunkOutcome:
    """One chunk's result with the copies already written (their bytes dropped)."""

    result: IngestBatchResult


@dataclass(frozen=True)
class DicomSummary:
    files_new: int
    instances_accepted: int
    files_rejected: int
    series: int
    series_usable: int
    quality: tuple[ValidationOutcome, ...] = ()


def plan_dicom(ctx: RunContext, key: pl.DataFrame | None = None) -> DicomPlan:
    """Chunks of new or changed landing files (plus files rejected only because their patient was
    not yet in the subject key, which are retried every run), and of new instances of the key's
    patients in the configured PACS (see ``pipeline/sources.py``)."""
    manifest = read_manifest(ctx)
    pacs = list_pacs_files(ctx, key, manifest)
    listed = list_area(ctx, AREA) + list(pacs.current)
    quarantine = read_table(ctx.lake, QUARANTINE)
    retry = set(quarantine.filter(pl.col("retry_on_key_change"))["source_sha256"]) if not quarantine.is_empty() else set()
    retry_paths = set(manifest.filter(pl.col("sha256").is_in(list(retry)))["relpath"]) if retry else set()
    todo = select_new(listed, manifest) + [f for f in listed if f.relpath in retry_paths]
    instances = read_table(ctx.lake, INSTANCES, columns=["source_sha256", "sop_id"])
    rejected = set(quarantine["source_sha256"]) - retry if not quarantine.is_empty() else set()
    accepted = set(instances["source_sha256"]) if not instances.is_empty() else set()
    sops = dict(instances.select("sop_id", "source_sha256").iter_rows()) if not instances.is_empty() else {}
    return DicomPlan(split_into_chunks(todo), tuple(listed) + pacs.kept, frozenset(accepted | rejected), sops)


def split_into_chunks(files: Sequence[LandingFile]) -> tuple[tuple[str, ...], ...]:
    """The files in path order (so a series' files stay together), cut into the fewest chunks of
    at most ``CHUNK_FILES`` files and about ``CHUNK_BYTES`` bytes, all of about the same size.

    A task costs the orchestrator a fraction of a second whatever its size, so many small series
    share a chunk, while a series larger than a chunk is shared by several workers.
    """
    ordered = sorted({f.relpath: f for f in files}.values(), key=lambda f: f.relpath)
    if not ordered:
        return ()
    total_bytes = sum(f.size for f in ordered)
    n_chunks = max(-(-len(ordered) // CHUNK_FILES), -(-total_bytes // CHUNK_BYTES))
    bounds = [len(ordered) * i // n_chunks for i in range(n_chunks + 1)]
    return tuple(tuple(f.relpath for f in ordered[start:end]) for start, end in zip(bounds, bounds[1:]))


def ingest_dicom_chunk(
    ctx: RunContext, relpaths: Sequence[str], key: pl.DataFrame, plan: DicomPlan, params: DeidParams = DeidParams()
) -> ChunkOutcome:
    """Read a chunk once (landing files or PACS instances), de-identify it, write the accepted
    copies under bronze/dicom/.

    Files go through in windows of ``WINDOW_FILES``: read together (concurrently on S3), ingested,
    their copies written, then dropped, so a chunk holds a few megabytes rather than all of its
    images.
    """
    subject_key = SubjectKey.from_frame(key)
    results = []
    with nullcontext() if ctx.lake.is_local else ThreadPoolExecutor(max_workers=8) as writers, open_dicom_reader(ctx) as read:
        for start in range(0, len(relpaths), WINDOW_FILES):
            window = relpaths[start : start + WINDOW_FILES]
            contents = read(window)
            result = ingest_dicom_batch(
                [(p, contents[p]) for p in window],
                key=subject_key,
                secret=ctx.secret,
                run_id=ctx.run_id,
                params=params,
                known_sha256=plan.known_sha256,
                known_sop_ids=plan.known_sop_ids,
            )
            del contents
            _write_copies(ctx, result.accepted, writers)
            results.append(replace(result, accepted=tuple(replace(a, parts=()) for a in result.accepted)))
    return ChunkOutcome(merge_ingest_results(results, run_id=ctx.run_id))


def _write_copies(ctx: RunContext, accepted: Sequence[AcceptedInstance], writers: ThreadPoolExecutor | None) -> None:
    """Write de-identified copies: in turn on a local disk (threads would only add switching),
    concurrently on an object store (each PUT waits on the network)."""
    def write(instance: AcceptedInstance) -> None:
        write_object(ctx.lake, f"bronze/dicom/{instance.object_name}", instance.parts)

    if writers is None:
        for instance in accepted:
            write(instance)
    else:
        list(writers.map(write, accepted))


def publish_dicom(
    ctx: RunContext,
    gate: QualityGate,
    plan: DicomPlan,
    outcomes: Sequence[ChunkOutcome],
    subjects: pl.DataFrame,
) -> DicomSummary:
    """Merge chunk outcomes, publish instances, rejections, restricted maps and manifest; re-derive
    silver/ct_series when the instances or the subjects changed since it was last derived."""
    merged = merge_ingest_results([o.result for o in outcomes], run_id=ctx.run_id)
    for name in merged.stale_objects:
        ctx.lake.fs.rm(ctx.lake.path("bronze/dicom", name))
    new_instances = merged.instances_frame()
    instances = _merge_rows(ctx, INSTANCES, new_instances, INSTANCE_SCHEMA, key=["source_sha256"], publish=False)
    checks = [publish_checked(ctx, gate, INSTANCES, instances, partition_by=["USUBJID"], mode="replace_partitions")] if not new_instances.is_empty() else []
    quarantine = _merge_rows(ctx, QUARANTINE, merged.quarantine_frame(), QUARANTINE_SCHEMA, key=["source_sha256"], replace_keys=True)
    settled = quarantine.filter(pl.col("source_sha256").is_in(instances["source_sha256"].implode()))
    if not settled.is_empty():  # a retried file that is now accepted leaves quarantine
        write_table(ctx.lake, QUARANTINE, quarantine.join(settled, on="source_sha256", how="anti"))
    _merge_rows(ctx, UID_MAP, merged.uid_map_frame(), UID_MAP_SCHEMA, key=["original_uid"])
    hashed = dict(merged.hashed)
    rejections = merged.rejections_frame()
    publish_rejections(ctx, rejections, stages=INGEST_STAGES, reprocessed=set(hashed.values()))
    write_manifest(ctx, derive_manifest(read_manifest(ctx), AREA, list(plan.listed), hashed))
    if instances.is_empty():
        series = pl.DataFrame()
    elif not is_stale(ctx, "ct_series", SERIES_INPUTS):
        series = read_table(ctx.lake, "silver/ct_series")
    else:
        series = derive_ct_series(instances, subjects.select("USUBJID", "RFSTDT"), run_id=ctx.run_id)
        checks.append(publish_checked(ctx, gate, "silver/ct_series", series, partition_by=["USUBJID"]))
        publish_rejections(ctx, derive_series_rejections(series), stages=["series_qc"], reprocessed=None)
        raise_if_blocked(checks)
        mark_fresh(ctx, "ct_series", SERIES_INPUTS)
    usable = series.filter(pl.col("status") == "usable").height if not series.is_empty() else 0
    raise_if_blocked(checks)
    return DicomSummary(
        files_new=len(hashed),
        instances_accepted=new_instances.height,
        files_rejected=rejections.select("source_sha256").n_unique() if not rejections.is_empty() else 0,
        series=series.height,
        series_usable=usable,
        quality=tuple(outcomes_of(checks)),
    )


def _merge_rows(
    ctx: RunContext,
    table: str,
    new: pl.DataFrame,
    schema: dict,
    *,
    key: list[str],
    replace_keys: bool = False,
    publish: bool = True,
) -> pl.DataFrame:
    """Existing rows plus new ones (the first row per key wins, or the new one if ``replace_keys``);
    published unless ``publish`` is False (the caller validates first); returns the whole table."""
    existing = read_table(ctx.lake, table)
    existing = existing.select(list(schema)).cast(schema) if not existing.is_empty() else pl.DataFrame(schema=schema)
    if new.is_empty():
        return existing
    combined = pl.concat([new, existing] if replace_keys else [existing, new]).unique(subset=key, keep="first")
    combined = combined.sort(key)
    if publish:
        write_table(ctx.lake, table, combined)
    return combined


def forget_subject_images(ctx: RunContext, usubjid: str) -> int:
    """Remove one subject's DICOM-derived data (instances, copies, series, volumetry, QC, masks)
    and its files from the manifest, so that the next run ingests them again; returns the files."""
    instances = read_table(ctx.lake, INSTANCES, columns=["USUBJID", "source_sha256"])
    shas = set(instances.filter(pl.col("USUBJID") == usubjid)["source_sha256"]) if not instances.is_empty() else set()
    for table in (INSTANCES, "silver/ct_series", "silver/ct_volumetry", "silver/ct_dicom_results"):
        delete_partition(ctx.lake, table, {"USUBJID": usubjid})
    for folder in (f"bronze/dicom/{usubjid}", f"reports/qc/{usubjid}", f"silver/ct_masks/{usubjid}",
                   f"silver/ct_seg/{usubjid}", f"silver/ct_sr/{usubjid}"):
        if ctx.lake.fs.exists(ctx.lake.path(folder)):
            ctx.lake.fs.rm(ctx.lake.path(folder), recursive=True)
    manifest = read_manifest(ctx)
    write_manifest(ctx, manifest.filter(~pl.col("sha256").is_in(list(shas))))
    return len(shas)
