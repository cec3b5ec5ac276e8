"""One task per pipeline stage (per batch or per series, never per file)."""
from __future__ import annotations

import polars as pl
from prefect import get_run_logger

from tasks.base import stage_task
from trialake.config import Settings
from trialake.pipeline import RunContext, open_run
from trialake.pipeline.clinical import ClinicalBronzeSummary, ingest_clinical_bronze
from trialake.pipeline.subjects import load_subject_key


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
