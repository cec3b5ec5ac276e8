"""DICOM stage: new landing files -> de-identified copies in bronze/dicom/, bronze/dicom_instances,
rejections; then series assembly and QC into silver/ct_series.

Work is split into chunks of even size (at most ``CHUNK_FILES`` files and about ``CHUNK_BYTES``
bytes) so that the flow can run chunks in parallel; `publish_dicom` merges the chunk outcomes and
publishes the tables once.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, replace

import polars as pl

from trialake.dicom import (
    INSTANCE_SCHEMA,
    AcceptedInstance,
    QUARANTINE_SCHEMA,
    UID_MAP_SCHEMA,
    IngestBatchResult,
    SubjectKey,
    ingest_dicom_batch,
    merge_ingest_results,
    reclean_copy,
)
from trialake.dicom.checks import Rejected
from trialake.dicom.deid import DEID_VERSION
from trialake.dicom.series import derive_ct_series, derive_series_rejections
from trialake.lake import (
    LandingFile,
    compute_sha256,
    delete_partition,
    is_hidden,
    read_landing_bytes,
    read_object,
    read_table,
    write_object,
    write_table,
)
from trialake.pacs import is_pacs_id
from trialake.pipeline.context import RunContext
from trialake.pipeline.ct_results import forget_ct_results
from trialake.pipeline.params import deid_params
from trialake.pipeline.rules_state import is_written_under_other_rules, mark_rules
from trialake.pipeline.volumetry import render_qc_index
from trialake.pipeline.freshness import StageDependencies, mark_fresh, stale_reasons, with_inputs
from trialake.pipeline.inventory import derive_manifest, hidden_rejection, list_area, read_manifest, select_new, write_manifest
from trialake.pipeline.quality import HeldBack, QualityGate, held_back_of, outcomes_of, publish_checked, suite_files
from trialake.pipeline.rejections import publish_rejections
from trialake.pipeline.sources import list_pacs_files, open_dicom_reader
from trialake.quality import ValidationOutcome

AREA = "dicom"
CHUNK_FILES, CHUNK_BYTES = 400, 128 * 2**20
WINDOW_FILES = 16
INGEST_STAGES = ("ingest_dicom", "deid")
INSTANCES, QUARANTINE, UID_MAP = "bronze/dicom_instances", "restricted/dicom_quarantine", "restricted/uid_map"
SERIES_INPUTS = (INSTANCES, "silver/subjects")
#: silver/ct_series is derived from the instances and the subjects' first dose (study days).
CT_SERIES = StageDependencies(tables=SERIES_INPUTS, config=(), suites=("silver/ct_series",),
                              code=("trialake.dicom", "trialake.quality"))


@dataclass(frozen=True)
class DicomPlan:
    """What this run will read: chunks of landing paths, and what earlier runs already settled.
    ``reingest``: the lake's DICOM data was de-identified under other rules or settings, so every
    landing file is read again and every copy replaced (see ``rules_state``)."""

    chunks: tuple[tuple[str, ...], ...]
    listed: tuple[LandingFile, ...]
    known_sha256: frozenset[str]
    known_sop_ids: dict[str, str]
    reingest: bool = False


@dataclass(frozen=True)
class ChunkOutcome:
    """One chunk's result with the copies already written (their bytes dropped)."""

    result: IngestBatchResult


@dataclass(frozen=True)
class DicomSummary:
    """What the DICOM publishing step did; ``held_back``: tables not published this run.
    ``files_new``: files (or PACS instances) whose bytes the lake had not seen; ``files_known``:
    the others listed, ingested or rejected by an earlier run (read again or not)."""

    files_new: int
    instances_accepted: int
    files_rejected: int
    series: int
    series_usable: int
    quality: tuple[ValidationOutcome, ...] = ()
    held_back: tuple[HeldBack, ...] = ()
    rederived_because: tuple[str, ...] = ()  # why silver/ct_series was derived again (empty: it was not)
    files_known: int = 0


def plan_dicom(ctx: RunContext, key: pl.DataFrame | None = None) -> DicomPlan:
    """Chunks of new or changed landing files (plus files rejected only because their patient was
    not yet in the subject key, which are retried every run), and of new instances of the key's
    patients in the configured PACS (see ``pipeline/sources.py``)."""
    manifest = read_manifest(ctx)
    pacs = list_pacs_files(ctx, key, manifest)
    listed = list_area(ctx, AREA) + list(pacs.current)
    if is_written_under_other_rules(ctx, AREA, DEID_VERSION):
        return DicomPlan(split_into_chunks(listed), tuple(listed) + pacs.kept, frozenset(), {}, reingest=True)
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


def ingest_dicom_chunk(ctx: RunContext, relpaths: Sequence[str], key: pl.DataFrame, plan: DicomPlan) -> ChunkOutcome:
    """Read a chunk once (landing files or PACS instances), de-identify it (with the trial
    configuration's date shifting, the same offsets as the clinical data), write the accepted
    copies under bronze/dicom/.

    Files go through in windows of ``WINDOW_FILES``: read together (concurrently on S3), ingested,
    their copies written, then dropped, so a chunk holds a few megabytes rather than all of its
    images. Files under a hidden name or folder are rejected, not read as DICOM.
    """
    subject_key = SubjectKey.from_frame(key)
    params = deid_params(ctx.settings.trial.deidentification)
    hidden = {p for p in relpaths if not is_pacs_id(p) and is_hidden(p)}  # PACS instances have no file name
    visible = [p for p in relpaths if p not in hidden]
    results = [_reject_hidden(ctx, [p for p in relpaths if p in hidden])]
    with nullcontext() if ctx.lake.is_local else ThreadPoolExecutor(max_workers=8) as writers, open_dicom_reader(ctx) as read:
        for start in range(0, len(visible), WINDOW_FILES):
            window = visible[start : start + WINDOW_FILES]
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


def _reject_hidden(ctx: RunContext, relpaths: Sequence[str]) -> IngestBatchResult:
    """Rejections of files under a hidden name or folder (hashed, so the lake can name them)."""
    hashed = []
    for start in range(0, len(relpaths), WINDOW_FILES):
        contents = read_landing_bytes(ctx.landing, relpaths[start : start + WINDOW_FILES])
        hashed += [(path, compute_sha256(data)) for path, data in contents.items()]
    rejections = tuple(hidden_rejection(sha, ctx.run_id, "ingest_dicom") for _, sha in hashed)
    return IngestBatchResult(accepted=(), rejections=rejections, quarantine=(), uid_map=(), hashed=tuple(hashed))


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
    *,
    unsettled: Collection[str] = (),
) -> DicomSummary:
    """Merge chunk outcomes, publish instances, rejections, restricted maps and manifest; re-derive
    silver/ct_series when the instances or the subjects changed since it was last derived.

    unsettled: landing paths of chunks whose task failed; they are read again by the next run.
    Study days come from the published silver/subjects, whatever its state: without it a series
    has no study day yet, and is derived again when silver/subjects changes.
    """
    merged = merge_ingest_results([o.result for o in outcomes], run_id=ctx.run_id)
    ctx = with_inputs(ctx, landing_sha256=dict(merged.hashed).values())
    for name in merged.stale_objects:
        ctx.lake.fs.rm(ctx.lake.path("bronze/dicom", name))
    if plan.reingest:
        merged = _reclean_orphans(ctx, merged)
    new_instances = merged.instances_frame()
    if plan.reingest:
        instances = new_instances.sort("source_sha256")
    else:
        instances = _merge_rows(ctx, INSTANCES, new_instances, INSTANCE_SCHEMA, key=["source_sha256"], publish=False)
    mode = "replace_table" if plan.reingest else "replace_partitions"
    publish = plan.reingest or not new_instances.is_empty()
    checks = [publish_checked(ctx, gate, INSTANCES, instances, partition_by=["USUBJID"], mode=mode)] if publish else []
    instances_held = bool(held_back_of(checks))
    quarantine = _merge_rows(ctx, QUARANTINE, merged.quarantine_frame(), QUARANTINE_SCHEMA, key=["source_sha256"], replace_keys=True)
    instances = read_table(ctx.lake, INSTANCES) if instances_held else instances  # what readers see
    instances = instances.select(list(INSTANCE_SCHEMA)).cast(INSTANCE_SCHEMA) if not instances.is_empty() else pl.DataFrame(schema=INSTANCE_SCHEMA)
    if plan.reingest and not instances_held:
        _remove_copies_not_in(ctx, set(instances["object_name"]))
    settled = quarantine.filter(pl.col("source_sha256").is_in(instances["source_sha256"].implode()))
    if not settled.is_empty():  # a retried file that is now accepted leaves quarantine
        write_table(ctx.lake, QUARANTINE, quarantine.join(settled, on="source_sha256", how="anti"))
    _merge_rows(ctx, UID_MAP, merged.uid_map_frame(), UID_MAP_SCHEMA, key=["original_uid"])
    hashed = dict(merged.hashed)
    retry = set(unsettled) | ({a.landing_path for a in merged.accepted} if instances_held else set())
    rejections = merged.rejections_frame()
    publish_rejections(ctx, rejections, stages=INGEST_STAGES, reprocessed=None if plan.reingest else set(hashed.values()))
    write_manifest(ctx, derive_manifest(read_manifest(ctx), AREA, list(plan.listed), hashed, retry=retry))
    suites = suite_files(gate)
    reasons = ("the DICOM data was ingested again",) if plan.reingest else stale_reasons(ctx, "ct_series", CT_SERIES, suites)
    if instances.is_empty():
        series = pl.DataFrame()
    elif not reasons:
        series = read_table(ctx.lake, "silver/ct_series")
    else:
        subjects = read_table(ctx.lake, "silver/subjects")
        subjects = subjects.select("USUBJID", "RFSTDT") if not subjects.is_empty() else pl.DataFrame(schema={"USUBJID": pl.String, "RFSTDT": pl.Date})
        series = derive_ct_series(instances, subjects, run_id=ctx.run_id)
        series_check = publish_checked(with_inputs(ctx, tables=SERIES_INPUTS), gate, "silver/ct_series", series, partition_by=["USUBJID"])
        checks.append(series_check)
        if series_check is None or series_check.should_publish:
            publish_rejections(ctx, derive_series_rejections(series), stages=["series_qc"], reprocessed=None)
            mark_fresh(ctx, "ct_series", CT_SERIES, suites, reasons)
        series = read_table(ctx.lake, "silver/ct_series")
    if plan.reingest and not held_back_of(checks):
        _forget_volumetry_not_in(ctx, set(series["series_id"]) if not series.is_empty() else set())
    usable = series.filter(pl.col("status") == "usable").height if not series.is_empty() else 0
    if not retry and not held_back_of(checks):  # else part of the area is still as earlier rules left it
        mark_rules(ctx, AREA, DEID_VERSION)
    files_new = sum(sha not in plan.known_sha256 for sha in hashed.values())
    return DicomSummary(
        files_new=files_new,
        files_known=len({f.relpath for f in plan.listed}) - files_new,
        instances_accepted=new_instances.height,
        files_rejected=rejections.select("source_sha256").n_unique() if not rejections.is_empty() else 0,
        series=series.height,
        series_usable=usable,
        quality=tuple(outcomes_of(checks)),
        held_back=held_back_of(checks),
        rederived_because=reasons if not instances.is_empty() else (),
    )


def _reclean_orphans(ctx: RunContext, merged: IngestBatchResult) -> IngestBatchResult:
    """On a re-ingest, the copies whose landing file is gone (not read again) are cleaned again
    from the copy itself under the current rules, keeping their pseudonyms and moved dates."""
    existing = read_table(ctx.lake, INSTANCES)
    if existing.is_empty():
        return merged
    reread = {sha for _, sha in merged.hashed}
    orphans = existing.filter(~pl.col("source_sha256").is_in(list(reread)))
    if orphans.is_empty():
        return merged
    uid_map = read_table(ctx.lake, UID_MAP)
    pseudonyms = frozenset(uid_map["pseudo_uid"]) if not uid_map.is_empty() else frozenset()
    params = deid_params(ctx.settings.trial.deidentification)
    accepted, rejections, uids = list(merged.accepted), list(merged.rejections), list(merged.uid_map)
    for name, usubjid, sha in orphans.select("object_name", "USUBJID", "source_sha256").iter_rows():
        try:
            instance, mapped = reclean_copy(name, read_object(ctx.lake, f"bronze/dicom/{name}"), usubjid=usubjid,
                                            source_sha256=sha, secret=ctx.secret, params=params,
                                            pseudonyms=pseudonyms, run_id=ctx.run_id)
        except (Rejected, FileNotFoundError) as exc:
            reason = exc.reason if isinstance(exc, Rejected) else "the de-identified copy is missing from the lake"
            rejections.append({"source_sha256": sha, "source_row": None, "stage": "deid", "run_id": ctx.run_id,
                               "reason": f"copy of a file no longer in the landing area could not be cleaned "
                                         f"again under the current rules ({reason}): land the file again"})
            continue
        write_object(ctx.lake, f"bronze/dicom/{instance.object_name}", instance.parts)
        accepted.append(replace(instance, parts=()))
        uids += [{"original_uid": o, "pseudo_uid": p, "USUBJID": usubjid, "run_id": ctx.run_id} for o, p in mapped.items()]
    return replace(merged, accepted=tuple(accepted), rejections=tuple(rejections), uid_map=tuple(uids))


def _remove_copies_not_in(ctx: RunContext, object_names: set[str]) -> None:
    """Delete de-identified copies that no instance row names (written under older rules)."""
    root = ctx.lake.path("bronze/dicom")
    if not ctx.lake.fs.exists(root):
        return
    for path in ctx.lake.fs.find(root):
        if path[len(root) + 1:] not in object_names:
            ctx.lake.fs.rm(path)


def _forget_volumetry_not_in(ctx: RunContext, series_ids: set[str]) -> None:
    """Drop measurements, QC pictures, masks and DICOM SEG and SR of series that no longer exist
    (their series UID was kept by older rules and is a pseudonym now)."""
    volumetry = read_table(ctx.lake, "silver/ct_volumetry")
    if volumetry.is_empty():
        return
    gone = volumetry.filter(~pl.col("series_id").is_in(list(series_ids)))
    if gone.is_empty():
        return
    for usubjid, series_id in gone.select("USUBJID", "series_id").unique().iter_rows():
        for path in (f"reports/qc/{usubjid}/{series_id}.png", f"silver/ct_masks/{usubjid}/{series_id}.nii.gz"):
            if ctx.lake.fs.exists(ctx.lake.path(path)):
                ctx.lake.fs.rm(ctx.lake.path(path))
    kept = volumetry.join(gone.select("series_id").unique(), on="series_id", how="anti")
    write_table(ctx.lake, "silver/ct_volumetry", kept, partition_by=["USUBJID"])
    forget_ct_results(ctx, set(gone["series_id"]))
    write_object(ctx.lake, "reports/qc/index.html", render_qc_index(kept).encode())


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
