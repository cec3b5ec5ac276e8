"""Flows a data manager starts from the Prefect UI besides the nightly run."""
from __future__ import annotations

import os

from prefect import flow, unmapped

from trialake_flows.nightly import nightly, run_holding_lease
from trialake_flows.runners import task_runner_from_env
from trialake_tasks.stages import (
    build_gold_task,
    rebuild_as_of_task,
    forget_stage_task,
    forget_subject_images_task,
    load_quality_gate_task,
    measure_series_task,
    open_lake_task,
    plan_volumetry_task,
    publish_ct_results_task,
    publish_volumetry_task,
)
from trialake.config import Settings, read_settings
from trialake.lake import Lease
from trialake.pipeline.database_lock import EndpointsAsOf
from trialake.pipeline.gold import GoldSummary
from trialake.pipeline.run_report import RunReport
from trialake.pipeline import list_landing_areas
from trialake.pipeline.params import volumetry_params
from trialake.pipeline.volumetry import VolumetrySummary


@flow(name="rebuild-marts", flow_run_name="rebuild marts {lake}")
def rebuild_marts(
    landing: str, lake: str, config: str | None = None, lock: str | None = None, lease_wait_s: float = 300.0,
    lease_ttl_s: float = 120.0,
) -> GoldSummary | EndpointsAsOf | None:
    """Rebuild every gold mart, the endpoints and the reports from silver, even if nothing changed;
    or, with a lock, recompute them as of that lock into reports/locks/<lock>/ (the lake's tables
    are left alone).

    Args:
        landing: Landing area URL (not read; kept so every data flow takes the same locations).
        lake: Lake URL: a local path or s3://bucket/prefix.
        config: Trial configuration YAML; empty for the reference trial (with a lock: the
            configuration the locked gold build used, whatever this says).
        lock: Name of a database lock (trialake lock): recompute gold, the endpoints and the
            report from exactly the table versions it recorded, and check them against the locked
            gold tables.
        lease_wait_s: Seconds to wait while another run is writing the same lake, then stop.
        lease_ttl_s: Seconds after which the lease of a run that crashed expires.
    """
    settings = read_settings(landing=landing, lake=lake, environ=os.environ, config_path=config)
    if lock:
        return rebuild_as_of_task(settings, lock)
    return run_holding_lease(settings, _rebuild_marts, wait_s=lease_wait_s, ttl_s=lease_ttl_s)


def _rebuild_marts(settings: Settings, run_id: str, lease: Lease) -> GoldSummary | None:
    ctx = open_lake_task(settings, run_id)
    gate = load_quality_gate_task(ctx)
    forget_stage_task(ctx, "gold")
    lease.check()
    return build_gold_task(ctx, gate)


@flow(name="remeasure-volumetry", flow_run_name="volumetry at {lesion_low_hu}/{solid_split_hu} HU on {lake}",
      task_runner=task_runner_from_env(os.environ))
def remeasure_volumetry(
    landing: str,
    lake: str,
    lesion_low_hu: float,
    solid_split_hu: float,
    config: str | None = None,
    lease_wait_s: float = 300.0,
    lease_ttl_s: float = 120.0,
) -> VolumetrySummary:
    """Measure every usable CT series with other thresholds, keeping the results beside the current ones.

    The marts keep using the thresholds of the trial configuration; put the new ones there (and
    run rebuild-marts) to adopt them.

    Args:
        landing: Landing area URL (not read; kept so every data flow takes the same locations).
        lake: Lake URL: a local path or s3://bucket/prefix.
        lesion_low_hu: Lower HU bound of lesion voxels (opacity), e.g. -700.
        solid_split_hu: HU that splits ground glass (below) from solid (at or above), e.g. -300.
        config: Trial configuration YAML; empty for the reference trial.
        lease_wait_s: Seconds to wait while another run is writing the same lake, then stop.
        lease_ttl_s: Seconds after which the lease of a run that crashed expires.
    """
    settings = read_settings(landing=landing, lake=lake, environ=os.environ, config_path=config)
    params = volumetry_params(settings.trial.ct, lesion_low_hu=lesion_low_hu, solid_split_hu=solid_split_hu)

    def stages(settings: Settings, run_id: str, lease: Lease) -> VolumetrySummary:
        ctx = open_lake_task(settings, run_id)
        gate = load_quality_gate_task(ctx)
        jobs = plan_volumetry_task(ctx, params)
        measured = measure_series_task.map(unmapped(ctx), jobs, unmapped(params)).result()
        lease.check()
        summary = publish_volumetry_task(ctx, gate, measured)
        lease.check()
        publish_ct_results_task(ctx, gate, measured)
        return summary

    return run_holding_lease(settings, stages, wait_s=lease_wait_s, ttl_s=lease_ttl_s)


@flow(name="reprocess-subject", flow_run_name="reprocess {usubjid} in {lake}", task_runner=task_runner_from_env(os.environ))
def reprocess_subject(
    landing: str, lake: str, usubjid: str, config: str | None = None, lease_wait_s: float = 300.0, lease_ttl_s: float = 120.0,
    pacs: str | None = None,
) -> RunReport:
    """Ingest, assemble and measure one subject's images again (after a fix), then update the marts.

    Args:
        landing: Landing area URL: a local path or s3://bucket/prefix.
        lake: Lake URL: a local path or s3://bucket/prefix.
        usubjid: The subject's USUBJID.
        config: Trial configuration YAML; empty for the reference trial.
        lease_wait_s: Seconds to wait while another run is writing the same lake, then stop.
        lease_ttl_s: Seconds after which the lease of a run that crashed expires.
        pacs: The PACS the subject's images came from, if any (as for the nightly flow): they are
            retrieved from it again.
    """
    settings = read_settings(landing=landing, lake=lake, environ=os.environ, config_path=config)

    def forget(settings: Settings, run_id: str, lease: Lease) -> int:
        return forget_subject_images_task(open_lake_task(settings, run_id), usubjid)

    run_holding_lease(settings, forget, wait_s=lease_wait_s, ttl_s=lease_ttl_s)
    return nightly(landing=landing, lake=lake, config=config, lease_wait_s=lease_wait_s, lease_ttl_s=lease_ttl_s,
                   pacs=pacs)


@flow(name="backfill", flow_run_name="backfill {lake} from {landing}")
def backfill(landing: str, lake: str, config: str | None = None, lease_wait_s: float = 300.0) -> int:
    """Load earlier landing areas into the lake, oldest first, one nightly run each.

    Args:
        landing: URL of a folder whose sub-folders are landing areas (for example one per
            delivery date); they are loaded in the order of their names.
        lake: Lake URL: a local path or s3://bucket/prefix.
        config: Trial configuration YAML; empty for the reference trial.
        lease_wait_s: Seconds each run waits while another run is writing the same lake.
    """
    settings = read_settings(landing=landing, lake=lake, environ=os.environ, config_path=config)
    drops = list_landing_areas(settings)
    for drop in drops:
        nightly(landing=drop, lake=settings.lake, config=config, lease_wait_s=lease_wait_s)
    return len(drops)
