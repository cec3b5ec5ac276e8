"""One task per pipeline stage (per batch or per series, never per file)."""
from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from trialake_tasks.base import stage_task
from trialake.config import Settings
from trialake.console import DICOM_FILES, SERIES, progress_extra
from trialake.imaging import VolumetryParams
from trialake.lake import read_table
from trialake.pipeline import RunContext, open_run, open_storage
from trialake.pipeline.clinical import (
    ClinicalBronzeSummary,
    ClinicalSilverSummary,
    derive_clinical_silver,
    ingest_clinical_bronze,
)
from trialake.pipeline.database_lock import EndpointsAsOf, publish_as_of, rebuild_endpoints_as_of
from trialake.pipeline.ct_results import CtResultsSummary, publish_ct_results
from trialake.pipeline.dicom import ChunkOutcome, forget_subject_images, DicomPlan, DicomSummary, ingest_dicom_chunk, plan_dicom, publish_dicom
from trialake.pipeline.freshness import forget_stage
from trialake.pipeline.gold import GoldSummary, build_gold, endpoints_for_display, endpoints_with_subjects
from trialake.pipeline.inventory import record_stray_files
from trialake.pipeline.quality import HeldBack, QualityGate, load_quality_gate
from trialake.pipeline.run_report import RunReport, publish_run_report
from trialake.pipeline.subjects import load_subject_key
from trialake.pipeline.volumetry import SeriesJob, VolumetrySummary, measure_series, plan_volumetry, publish_volumetry
from trialake.quality import ValidationOutcome, render_dq_summary_markdown


def _dq_artifact(key: str, outcomes: Sequence[ValidationOutcome]) -> None:
    if outcomes:
        create_markdown_artifact(render_dq_summary_markdown(outcomes), key=key, description="data quality")


def _log_held_back(held_back: Sequence[HeldBack]) -> None:
    for held in held_back:
        get_run_logger().warning("held back: %s: %s", held.table, held.reason)


@stage_task("open lake")
def open_lake_task(settings: Settings, run_id: str) -> RunContext:
    return open_run(settings, run_id, flow=flow_run.flow_name or "")


@stage_task("load quality suites")
def load_quality_gate_task(ctx: RunContext) -> QualityGate:
    return load_quality_gate(ctx, ctx.settings.expectations_dir)


@stage_task("load subject key")
def load_subject_key_task(ctx: RunContext) -> tuple[pl.DataFrame, pl.DataFrame]:
    key, shifts = load_subject_key(ctx)
    stray = record_stray_files(ctx)
    get_run_logger().info("subject key: %d subjects; %d new files outside dicom/ and clinical/ rejected", key.height, stray)
    return key, shifts


@stage_task("clinical exports to bronze")
def clinical_bronze_task(ctx: RunContext, gate: QualityGate, key: pl.DataFrame, shifts: pl.DataFrame) -> ClinicalBronzeSummary:
    summary = ingest_clinical_bronze(ctx, gate, key, shifts)
    get_run_logger().info(
        "clinical: %d new files (%d rejected), %d already ingested, %d rows loaded, %d rows rejected",
        summary.files_new, summary.files_rejected, summary.files_known, summary.rows_loaded, summary.rows_rejected,
    )
    _log_held_back(summary.held_back)
    _dq_artifact("dq-clinical-bronze", summary.quality)
    return summary


@stage_task("clinical silver")
def clinical_silver_task(ctx: RunContext, gate: QualityGate) -> ClinicalSilverSummary | None:
    summary = derive_clinical_silver(ctx, gate)
    if summary is None:
        get_run_logger().info("clinical silver: up to date")
        return None
    get_run_logger().info("clinical silver: %s; %d rows rejected", summary.tables, summary.rows_rejected)
    if summary.not_sent:
        get_run_logger().warning("Expected SDTM variables not sent (their checks are skipped): %s", ", ".join(summary.not_sent))
    _log_held_back(summary.held_back)
    _dq_artifact("dq-clinical-silver", summary.quality)
    return summary


@stage_task("plan DICOM ingest")
def plan_dicom_task(ctx: RunContext, key: pl.DataFrame | None = None) -> DicomPlan:
    plan = plan_dicom(ctx, key)
    files = sum(len(chunk) for chunk in plan.chunks)
    get_run_logger().info("DICOM: %d files to ingest in %d chunks", files, len(plan.chunks),
                          extra=progress_extra(DICOM_FILES, total=files))
    return plan


@stage_task("ingest DICOM chunk", task_run_name="ingest DICOM chunk of {relpaths_count} files")
def ingest_dicom_chunk_task(ctx: RunContext, relpaths: Sequence[str], key: pl.DataFrame, plan: DicomPlan, relpaths_count: int) -> ChunkOutcome:
    outcome = ingest_dicom_chunk(ctx, relpaths, key, plan)
    get_run_logger().info("DICOM chunk: %d files read", len(relpaths), extra=progress_extra(DICOM_FILES, advance=len(relpaths)))
    return outcome


@stage_task("publish DICOM")
def publish_dicom_task(
    ctx: RunContext, gate: QualityGate, plan: DicomPlan, outcomes: Sequence[ChunkOutcome], unsettled: Sequence[str]
) -> DicomSummary:
    summary = publish_dicom(ctx, gate, plan, outcomes, unsettled=unsettled)
    get_run_logger().info(
        "DICOM: %d new files, %d already ingested, %d instances accepted, %d files rejected, %d series (%d usable)",
        summary.files_new, summary.files_known, summary.instances_accepted, summary.files_rejected, summary.series,
        summary.series_usable,
    )
    _log_held_back(summary.held_back)
    _dq_artifact("dq-dicom", summary.quality)
    return summary


@stage_task("plan volumetry")
def plan_volumetry_task(ctx: RunContext, params: VolumetryParams) -> list[SeriesJob]:
    jobs = plan_volumetry(ctx, params)
    get_run_logger().info("volumetry: %d series to measure", len(jobs), extra=progress_extra(SERIES, total=len(jobs)))
    return jobs


@stage_task("measure series", task_run_name="measure series {job.USUBJID} day {job.ADY}")
def measure_series_task(ctx: RunContext, job: SeriesJob, params: VolumetryParams) -> dict:
    row = measure_series(ctx, job, params)
    get_run_logger().info("series %s", row["status"], extra=progress_extra(SERIES, advance=1))
    return row


@stage_task("publish volumetry")
def publish_volumetry_task(ctx: RunContext, gate: QualityGate, rows: Sequence[dict]) -> VolumetrySummary:
    summary = publish_volumetry(ctx, gate, rows)
    get_run_logger().info("volumetry: %d series measured (%d with flags), %d not measurable",
                          summary.measured, summary.flagged, summary.failed)
    _log_held_back(summary.held_back)
    _dq_artifact("dq-volumetry", summary.quality)
    return summary


@stage_task("publish DICOM SEG and SR")
def publish_ct_results_task(ctx: RunContext, gate: QualityGate, rows: Sequence[dict]) -> CtResultsSummary:
    summary = publish_ct_results(ctx, gate, rows)
    get_run_logger().info("DICOM SEG and SR: %d series written, %d not built, %d series pushed to the research PACS",
                          summary.written, summary.failed, summary.pushed_series)
    _log_held_back(summary.held_back)
    _dq_artifact("dq-ct-dicom-results", summary.quality)
    return summary


@stage_task("build gold marts and report")
def build_gold_task(ctx: RunContext, gate: QualityGate) -> GoldSummary | None:
    summary = build_gold(ctx, gate)
    if summary is None:
        get_run_logger().info("gold: up to date")
        return None
    _log_held_back(summary.held_back)
    if summary.report is not None:
        get_run_logger().info("gold: %s; report at %s", summary.tables, summary.report)
        endpoints = read_table(ctx.lake, "gold/endpoints")
        create_table_artifact(
            endpoints_for_display(endpoints_with_subjects(endpoints)).to_dicts(), key="endpoints",
            description=f"Endpoint results, primary first, rows without subjects left out (full report: {ctx.lake.uri(summary.report)})",
        )
    _dq_artifact("dq-gold", summary.quality)
    return summary


@stage_task("run summary")
def publish_run_report_task(ctx: RunContext, report: RunReport) -> str:
    markdown = publish_run_report(ctx, report)
    create_markdown_artifact(markdown, key="nightly-summary", description="what this run took in, rejected, published and held back")
    return markdown


@stage_task("recompute gold as of a lock")
def rebuild_as_of_task(settings: Settings, lock: str) -> EndpointsAsOf:
    lake, _ = open_storage(settings)
    result = rebuild_endpoints_as_of(lake, lock, expectations_dir=settings.expectations_dir)
    folder = publish_as_of(lake, result)
    differ = [table for table, same in result.identical.items() if same is False]
    create_table_artifact(
        endpoints_for_display(result.endpoints).to_dicts(), key="endpoints-as-of",
        description=f"Endpoints as of lock {lock} ({lake.uri(folder)}): "
                    + (f"NOT reproduced, differs: {', '.join(differ)}" if differ else "reproduced, identical to the locked gold tables"),
    )
    if differ:
        get_run_logger().warning("as of lock %s: gold tables differ from the locked versions: %s", lock, ", ".join(differ))
    return result


@stage_task("forget stage")
def forget_stage_task(ctx: RunContext, stage: str) -> None:
    forget_stage(ctx, stage)


@stage_task("forget subject images")
def forget_subject_images_task(ctx: RunContext, usubjid: str) -> int:
    files = forget_subject_images(ctx, usubjid)
    get_run_logger().info("%d DICOM files of the subject will be ingested again", files)
    return files
