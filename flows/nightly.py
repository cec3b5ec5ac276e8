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
    load_subject_key_task,
    open_lake_task,
    plan_dicom_task,
    measure_series_task,
    plan_volumetry_task,
    publish_dicom_task,
    publish_volumetry_task,
)
from trialake.config import read_settings
from trialake.pipeline.params import volumetry_params


@flow(name="nightly", flow_run_name="nightly {lake}", log_prints=False)
def nightly(landing: str, lake: str, config: str | None = None) -> dict:
    """Ingest what arrived in `landing` since the last run into the lake at `lake`.

    landing: landing area URL (local path or s3://bucket/prefix).
    lake: lake URL (local path or s3://bucket/prefix).
    config: trial configuration YAML (default: the reference trial).
    """
    settings = read_settings(landing=landing, lake=lake, environ=os.environ, config_path=config)
    ctx = open_lake_task(settings, str(flow_run.id or "local"))
    key, shifts = load_subject_key_task(ctx)
    clinical = clinical_bronze_task(ctx, key, shifts)
    silver = clinical_silver_task(ctx) if clinical.changed_domains else None
    plan = plan_dicom_task(ctx)
    chunks = ingest_dicom_chunk_task.map(
        unmapped(ctx), plan.chunks, unmapped(key), unmapped(plan), [len(c) for c in plan.chunks]
    )
    dicom = publish_dicom_task(ctx, plan, chunks.result(), subjects_changed=silver is not None)
    params = volumetry_params(settings.trial.ct)
    jobs = plan_volumetry_task(ctx, params)
    measured = measure_series_task.map(unmapped(ctx), jobs, unmapped(params))
    volumetry = publish_volumetry_task(ctx, measured.result())
    changed = silver is not None or dicom.instances_accepted > 0 or volumetry > 0
    gold = build_gold_task(ctx) if changed else None
    return {"clinical": clinical, "clinical_silver": silver, "dicom": dicom, "series_measured": volumetry, "gold": gold}
