"""The nightly flow: landing area -> lake, every stage in order."""
from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

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
    publish_ct_results_task,
    publish_dicom_task,
    publish_run_report_task,
    publish_volumetry_task,
)
from trialake.config import Settings, read_settings
from trialake.lake.lease import Lease, acquire_lease
from trialake.pipeline import open_storage
from trialake.pipeline.params import volumetry_params
from trialake.pipeline.run_report import RunReport

T = TypeVar("T")


@flow(name="nightly", flow_run_name="nightly {lake}", log_prints=False)
def nightly(
    landing: str, lake: str, config: str | None = None, lease_wait_s: float = 300.0, lease_ttl_s: float = 120.0,
    pacs: str | None = None,
) -> RunReport:
    """Ingest what arrived in the landing area since the last run into the lake.

    Args:
        landing: Landing area URL: a local path or s3://bucket/prefix.
        lake: Lake URL: a local path or s3://bucket/prefix.
        config: Trial configuration YAML; empty for the reference trial.
        lease_wait_s: Seconds to wait while another run is writing the same lake, then stop.
        lease_ttl_s: Seconds after which the lease of a run that crashed expires.
        pacs: A PACS to pull the key's patients' images from, besides the landing area:
            dicomweb+http(s)://host/path or dimse://CALLED_AET@host:port?calling=AET (credentials
            from TRIALAKE_PACS_USER/_PASSWORD or _TOKEN); empty for pacs.source of the configuration.
    """
    settings = read_settings(landing=landing, lake=lake, environ=os.environ, config_path=config, pacs=pacs or None)
    return run_holding_lease(settings, _stages, wait_s=lease_wait_s, ttl_s=lease_ttl_s)


def run_holding_lease(settings: Settings, stages: Callable[[Settings, str, Lease], T], *, wait_s: float, ttl_s: float) -> T:
    """Run ``stages`` while holding the lake's lease (one writer per lake)."""
    run_id = str(flow_run.id or "local")
    lake_handle, _ = open_storage(settings)
    with acquire_lease(lake_handle, owner=run_id, ttl_s=ttl_s, wait_s=wait_s) as lease:
        return stages(settings, run_id, lease)


def run_beside_flow(task: Callable[..., T], *args: Any) -> Future[T]:
    """Run a task in a thread of the flow process, beside the flow's own code.

    For tasks whose result only the flow process uses (the quality gate): submitted to the flow's
    task runner they would take a Dask worker away from the per-series work and ship their result
    back. The task still runs as a task of this flow run (the flow run's context is copied).
    """
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix=getattr(task, "name", "beside-flow"))
    future = background.submit(contextvars.copy_context().run, task, *args)
    background.shutdown(wait=False)  # the thread ends when the task does
    return future


def _stages(settings: Settings, run_id: str, lease: Lease) -> RunReport:
    """The stages in order; the lease is checked before each step that publishes."""
    ctx = open_lake_task(settings, run_id)
    gate_future = run_beside_flow(load_quality_gate_task, ctx)  # Great Expectations loads while DICOM is read
    key, shifts = load_subject_key_task(ctx)
    plan = plan_dicom_task(ctx, key)
    chunks = ingest_dicom_chunk_task.map(
        unmapped(ctx), plan.chunks, unmapped(key), unmapped(plan), [len(c) for c in plan.chunks]
    )
    gate = gate_future.result()
    lease.check()
    clinical = clinical_bronze_task(ctx, gate, key, shifts)
    silver = clinical_silver_task(ctx, gate)
    outcomes = chunks.result()
    lease.check()
    dicom = publish_dicom_task(ctx, gate, plan, outcomes)
    params = volumetry_params(settings.trial.ct)
    jobs = plan_volumetry_task(ctx, params)
    measured = measure_series_task.map(unmapped(ctx), jobs, unmapped(params)).result()
    lease.check()
    volumetry = publish_volumetry_task(ctx, gate, measured)
    lease.check()
    publish_ct_results_task(ctx, gate, measured)
    lease.check()
    gold = build_gold_task(ctx, gate)
    report = RunReport(clinical, silver, dicom, volumetry, gold)
    publish_run_report_task(ctx, report)
    return report
