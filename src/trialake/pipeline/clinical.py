"""Clinical stage: new or changed exports into bronze (one partition per source file), then silver."""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from trialake.clinical.bronze import derive_bronze_clinical
from trialake.clinical.readers import ClinicalFileError, parse_clinical_file
from trialake.lake import compute_sha256, delete_partition, read_landing_bytes, read_table, write_table
from trialake.pipeline.context import RunContext
from trialake.pipeline.inventory import derive_manifest, list_area, read_manifest, select_new, write_manifest
from trialake.pipeline.rejections import SCHEMA as REJECTION_SCHEMA
from trialake.pipeline.rejections import publish_rejections

AREA = "clinical"
STAGE = "clinical_read"


@dataclass(frozen=True)
class ClinicalBronzeSummary:
    """What the bronze clinical step did; ``changed_domains`` drives the silver re-derivation."""

    files_new: int
    files_rejected: int
    rows_loaded: int
    rows_rejected: int
    changed_domains: tuple[str, ...]


def ingest_clinical_bronze(ctx: RunContext, key: pl.DataFrame, shifts: pl.DataFrame) -> ClinicalBronzeSummary:
    """Load new or changed clinical exports into ``bronze/<domain>``; drop those that left landing."""
    manifest = read_manifest(ctx)
    listed = list_area(ctx, AREA)
    new = select_new(listed, manifest)
    contents = read_landing_bytes(ctx.landing, [f.relpath for f in new])
    hashed = {path: compute_sha256(data) for path, data in contents.items()}
    shift_frame = shifts if ctx.settings.trial.deidentification.shift_dates else None
    rejections, changed, loaded, files_rejected = [], set(), 0, 0
    for relpath, data in contents.items():
        bronze, rejected, domain = _bronze_of_file(relpath, data, hashed[relpath], key, shift_frame, ctx.run_id)
        rejections.append(rejected)
        files_rejected += bronze is None
        if bronze is not None:
            write_table(ctx.lake, f"bronze/{domain.lower()}", bronze, partition_by=["source_sha256"], mode="replace_partitions")
            loaded += bronze.height
            changed.add(domain)
    updated = derive_manifest(manifest, AREA, listed, hashed)
    changed |= _drop_sources_gone(ctx, manifest, updated)
    new_rejections = pl.concat(rejections) if rejections else pl.DataFrame(schema=REJECTION_SCHEMA)
    publish_rejections(ctx, new_rejections, stages=[STAGE], reprocessed=set(hashed.values()))
    write_manifest(ctx, updated)
    rows_rejected = new_rejections.filter(pl.col("source_row").is_not_null()).height
    return ClinicalBronzeSummary(len(new), files_rejected, loaded, rows_rejected, tuple(sorted(changed)))


def _bronze_of_file(
    relpath: str, data: bytes, sha256: str, key: pl.DataFrame, shifts: pl.DataFrame | None, run_id: str
) -> tuple[pl.DataFrame | None, pl.DataFrame, str]:
    """Bronze rows and rejections of one export; a file that cannot be read is one rejection."""
    name = relpath.rsplit("/", 1)[-1]
    try:
        parsed = parse_clinical_file(name, data)
        bronze, rejected = derive_bronze_clinical(parsed, key=key, date_shift=shifts, source_sha256=sha256, run_id=run_id)
    except ClinicalFileError as exc:
        whole = pl.DataFrame(
            [{"source_sha256": sha256, "source_row": None, "stage": STAGE, "reason": str(exc), "run_id": run_id}],
            schema=REJECTION_SCHEMA,
        )
        return None, whole, ""
    rejected = rejected.with_columns(pl.lit(sha256).alias("source_sha256"), pl.lit(run_id).alias("run_id"))
    return bronze, rejected.select(list(REJECTION_SCHEMA)).cast(REJECTION_SCHEMA), parsed.domain


def _drop_sources_gone(ctx: RunContext, before: pl.DataFrame, after: pl.DataFrame) -> set[str]:
    """Remove bronze partitions of exports no longer in landing (a replaced export's old version)."""
    old = set(before.filter(pl.col("area") == AREA)["sha256"].drop_nulls())
    current = set(after.filter(pl.col("area") == AREA)["sha256"].drop_nulls())
    gone = old - current
    touched: set[str] = set()
    if not gone:
        return touched
    for table_dir in ctx.lake.fs.ls(ctx.lake.path("bronze"), detail=False) if ctx.lake.fs.exists(ctx.lake.path("bronze")) else []:
        domain = table_dir.rstrip("/").rsplit("/", 1)[-1]
        for sha in gone:
            if delete_partition(ctx.lake, f"bronze/{domain}", {"source_sha256": sha}):
                touched.add(domain.upper())
    return touched


def read_bronze_domain(ctx: RunContext, domain: str) -> pl.DataFrame:
    """All bronze rows of one clinical domain."""
    return read_table(ctx.lake, f"bronze/{domain.lower()}")
