"""One task per pipeline stage (per batch or per series, never per file)."""
from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from prefect import get_run_logger

from tasks.base import stage_task
from trialake.config import Settings
from trialake.pipeline import RunContext, open_run
from trialake.pipeline.clinical import (
    ClinicalBronzeSummary,
    ClinicalSilverSummary,
    derive_clinical_silver,
    ingest_clinical_bronze,
)
from trialake.pipeline.dicom import ChunkOutcome, DicomPlan, DicomSummary, ingest_dicom_chunk, plan_dicom, publish_dicom
from trialake.imaging import VolumetryParams
from trialake.pipeline.gold import GoldSummary, build_gold
from trialake.pipeline.subjects import load_subject_key
from trialake.pipeline.volumetry import SeriesJob, measure_series, plan_volumetry, publish_volumetry


@stage_task("open lake")
def open_lake_task(settings: Settings, run_id: str) -> RunContext:
    return open_run(settings, run_id)


@stage_task("load subject key")
def load_subject_key_task(ctx: RunContext) -> tuple[pl.DataFrame, pl.DataFrame]:
    key, shifts = load_subject_key(ctx)
    get_run_logger().info("subject key: %d subjects", key.height)
    return key, shifts


@stage_task("clinical exports to bronze")
def clinical_bronze_task(ctx: RunContext, key: pl.DataFrame, shifts: pl.DataFrame) -> ClinicalBronzeSummary:
    summary = ingest_clinical_bronze(ctx, key, shifts)
    get_run_logger().info(
        "clinical: %d new files (%d rejected), %d rows loaded, %d rows rejected",
        summary.files_new, summary.files_rejected, summary.rows_loaded, summary.rows_rejected,
    )
    return summary


@stage_task("clinical silver")
def clinical_silver_task(ctx: RunContext) -> ClinicalSilverSummary:
    summary = derive_clinical_silver(ctx)
    get_run_logger().info("clinical silver: %s; %d rows rejected", summary.tables, summary.rows_rejected)
    return summary


@stage_task("plan DICOM ingest")
def plan_dicom_task(ctx: RunContext) -> DicomPlan:
    plan = plan_dicom(ctx)
    get_run_logger().info("DICOM: %d chunks to ingest", len(plan.chunks))
    return plan


@stage_task("ingest DICOM chunk", task_run_name="ingest DICOM chunk of {relpaths_count} files")
def ingest_dicom_chunk_task(ctx: RunContext, relpaths: Sequence[str], key: pl.DataFrame, plan: DicomPlan, relpaths_count: int) -> ChunkOutcome:
    return ingest_dicom_chunk(ctx, relpaths, key, plan)


@stage_task("publish DICOM")
def publish_dicom_task(
    ctx: RunContext, plan: DicomPlan, outcomes: Sequence[ChunkOutcome], subjects_changed: bool
) -> DicomSummary:
    from trialake.lake import read_table

    subjects = read_table(ctx.lake, "silver/subjects", columns=["USUBJID", "RFSTDT"])
    if subjects.is_empty():
        subjects = pl.DataFrame(schema={"USUBJID": pl.String, "RFSTDT": pl.Date})
    summary = publish_dicom(ctx, plan, outcomes, subjects, subjects_changed=subjects_changed)
    get_run_logger().info(
        "DICOM: %d new files, %d instances accepted, %d files rejected, %d series (%d usable)",
        summary.files_new, summary.instances_accepted, summary.files_rejected, summary.series, summary.series_usable,
    )
    return summary


@stage_task("plan volumetry")
def plan_volumetry_task(ctx: RunContext, params: VolumetryParams) -> list[SeriesJob]:
    jobs = plan_volumetry(ctx, params)
    get_run_logger().info("volumetry: %d series to measure", len(jobs))
    return jobs


@stage_task("measure series", task_run_name="measure series {job.USUBJID} day {job.ADY}")
def measure_series_task(ctx: RunContext, job: SeriesJob, params: VolumetryParams) -> dict:
    return measure_series(ctx, job, params)


@stage_task("publish volumetry")
def publish_volumetry_task(ctx: RunContext, rows: Sequence[dict]) -> int:
    failed = [r for r in rows if r["status"] != "measured"]
    publish_volumetry(ctx, rows)
    get_run_logger().info("volumetry: %d series measured, %d not measurable", len(rows) - len(failed), len(failed))
    return len(rows)


@stage_task("build gold marts and report")
def build_gold_task(ctx: RunContext) -> GoldSummary:
    summary = build_gold(ctx)
    if summary.missing_inputs:
        get_run_logger().warning("gold not built: no rows yet in %s", ", ".join(summary.missing_inputs))
    else:
        get_run_logger().info("gold: %s; report at %s", summary.tables, summary.report)
    return summary
