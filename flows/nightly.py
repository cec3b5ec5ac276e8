"""The nightly flow: landing area (and a PACS, when configured) -> lake, every stage in order.

Imaging and clinical are independent branches: a stage that fails is recorded and the stages that
do not need its output go on (a PACS that cannot be listed fails the imaging branch only; the
DICOM SEG and SR step belongs to the imaging branch too). The run ends Completed when everything publishable was published,
and Failed, with a message naming every table held back and every stage that failed, otherwise
(the rest was still published); in both cases it carries the run report.
"""
from __future__ import annotations

import contextvars
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from prefect import flow, unmapped
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from trialake_flows.runners import task_runner_from_env
from trialake_tasks.stages import (
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
from trialake.pipeline.dicom import ChunkOutcome, DicomPlan
from trialake.pipeline.run_report import RunIncomplete, RunReport, StageFailure

T = TypeVar("T")


@flow(name="nightly", flow_run_name="nightly {lake}", log_prints=False, task_runner=task_runner_from_env(os.environ))
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


def _stages(settings: Settings, run_id: str, lease: Lease) -> State:
    """The stages in order; the lease is checked before each step that publishes."""
    ctx = open_lake_task(settings, run_id)
    gate_future = run_beside_flow(load_quality_gate_task, ctx)  # Great Expectations loads while DICOM is read
    key, shifts = load_subject_key_task(ctx)
    failures: list[StageFailure] = []
    plan = run_stage(failures, plan_dicom_task, ctx, key)  # lists the landing area and the PACS, if any
    chunks = ingest_dicom_chunk_task.map(
        unmapped(ctx), plan.chunks, unmapped(key), unmapped(plan), [len(c) for c in plan.chunks]
    ) if plan is not None else []
    gate = gate_future.result()
    lease.check()
    clinical = run_stage(failures, clinical_bronze_task, ctx, gate, key, shifts)
    silver = run_stage(failures, clinical_silver_task, ctx, gate)
    dicom = None
    if plan is not None:
        outcomes, unsettled = settle_chunks(failures, plan, chunks)
        lease.check()
        dicom = run_stage(failures, publish_dicom_task, ctx, gate, plan, outcomes, unsettled)
    params = volumetry_params(settings.trial.ct)
    jobs = run_stage(failures, plan_volumetry_task, ctx, params) or []
    measured = settled_results(failures, "measure series", measure_series_task.map(unmapped(ctx), jobs, unmapped(params)))
    lease.check()
    volumetry = run_stage(failures, publish_volumetry_task, ctx, gate, measured)
    lease.check()
    ct_results = run_stage(failures, publish_ct_results_task, ctx, gate, measured)  # DICOM SEG and SR
    lease.check()
    gold = run_stage(failures, build_gold_task, ctx, gate)
    report = RunReport(clinical, silver, dicom, volumetry, gold, tuple(failures), ct_results)
    run_stage(failures, publish_run_report_task, ctx, report)
    return final_state(replace(report, failures=tuple(failures)))


def run_stage(failures: list[StageFailure], task: Callable[..., T], *args: Any) -> T | None:
    """Run a stage task; when it fails, record why and give None, so the stages that do not need
    its result go on."""
    state = task(*args, return_state=True)
    if state.is_failed():
        failures.append(StageFailure(task.name, _one_line(state.result(raise_on_failure=False))))
        return None
    return state.result()


def settled_results(failures: list[StageFailure], stage: str, futures: Sequence[PrefectFuture]) -> list:
    """Results of mapped tasks that completed; the failed ones are recorded as one stage failure."""
    return [r for r in _results(failures, stage, futures) if not isinstance(r, BaseException)]


def settle_chunks(
    failures: list[StageFailure], plan: DicomPlan, chunks: Sequence[PrefectFuture]
) -> tuple[list[ChunkOutcome], list[str]]:
    """Outcomes of the DICOM chunks that completed, and the landing paths of those that failed
    (they are read again by the next run)."""
    results = _results(failures, "ingest DICOM chunk", chunks)
    unsettled = [path for chunk, r in zip(plan.chunks, results, strict=True) if isinstance(r, BaseException) for path in chunk]
    return [r for r in results if not isinstance(r, BaseException)], unsettled


def _results(failures: list[StageFailure], stage: str, futures: Sequence[PrefectFuture]) -> list:
    """Every mapped task's result, or its exception (recorded once, as one stage failure)."""
    results = [f.result(raise_on_failure=False) for f in futures]
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        failures.append(StageFailure(stage, f"{len(errors)} of {len(results)} task(s) failed, first: {_one_line(errors[0])}"))
    return results


def final_state(report: RunReport) -> State:
    """Completed with the report when everything publishable was published, else Failed naming
    what was held back or failed (carrying the report in a RunIncomplete)."""
    if report.complete:
        return Completed(message=report.status(), data=report)
    return Failed(message=report.status(), data=RunIncomplete(report))


def _one_line(error: object) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if isinstance(error, BaseException) else text
