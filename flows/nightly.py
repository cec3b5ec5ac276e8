"""The nightly flow: landing area -> lake, every stage in order."""
from __future__ import annotations

import os

from prefect import flow
from prefect.runtime import flow_run

from tasks.stages import clinical_bronze_task, load_subject_key_task, open_lake_task
from trialake.config import read_settings


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
    return {"clinical": clinical}
