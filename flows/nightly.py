"""The nightly flow: landing area -> lake, every stage in order."""
from __future__ import annotations

import os

from prefect import flow, unmapped
from prefect.runtime import flow_run

from tasks.stages import (
    build_gold_task,
    clinical_bronze_task,
    clinical_silver_task,
    ingest_dicom_chunk_task,
    load_quality_gate_task,
    load_subject_key_task,
    measure_series_task,
    open_lake_task,
    plan_dicom_task,
    plan_volumetry_task,
    publish_dicom_task,
    publish_run_report_task,
    publish_volumetry_task,
)
from trialake.config import read_settings
from trialake.pipeline.params import volumetry_params
from trialake.pipeline.run_report import RunReport


@flow(name="nightly", flow_run_name="nightly {lake}", log_prints=False)
def nightly(landing: str, lake: str, config: str | None = None) -> RunReport:
    """Ingest what arrived in the landing area since the last run into the lake.

    Args:
        landing: Landing area URL: a local path or s3://bucket/prefix.
        lake: Lake URL: a local path or s3://bucket/prefix.
        config: Trial configuration YAML; empty for the reference trial.
    """
    settings = read_settings(landing=landing, lake=lake, environ=os.environ, config_path=config)
    ctx = open_lake_task(settings, str(flow_run.id or "local"))
    gate_future = load_quality_gate_task.submit(ctx)  # Great Expectations loads while DICOM is read
    key, shifts = load_subject_key_task(ctx)
    plan = plan_dicom_task(ctx)
    chunks = ingest_dicom_chunk_task.map(
        unmapped(ctx), plan.chunks, unmapped(key), unmapped(plan), [len(c) for c in plan.chunks]
    )
    gate = gate_future.result()
    clinical = clinical_bronze_task(ctx, gate, key, shifts)
    silver = clinical_silver_task(ctx, gate)
    dicom = publish_dicom_task(ctx, gate, plan, chunks.result())
    params = volumetry_params(settings.trial.ct)
    jobs = plan_volumetry_task(ctx, params)
    measured = measure_series_task.map(unmapped(ctx), jobs, unmapped(params))
    volumetry = publish_volumetry_task(ctx, gate, measured.result())
    gold = build_gold_task(ctx, gate)
    report = RunReport(clinical, silver, dicom, volumetry, gold)
    publish_run_report_task(ctx, report)
    return report
