"""Task runners for the flows: Prefect's thread pool (the default) or a Dask cluster (prefect-dask).

A flow gets its runner at the edge, e.g. ``nightly.with_options(task_runner=build_task_runner("dask"))``,
or, for a deployment, from the job variable TRIALAKE_TASK_RUNNER (`task_runner_from_env`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

if TYPE_CHECKING:
    from distributed import LocalCluster

TASK_RUNNER_KINDS = ("thread", "dask")
#: Environment variable (a deployment's job variable) choosing the data flows' task runner.
TASK_RUNNER_VARIABLE = "TRIALAKE_TASK_RUNNER"


def build_task_runner(kind: str = "thread", *, address: str | None = None, n_workers: int = 2) -> TaskRunner:
    """The task runner for ``kind``.

    ``thread``: Prefect's ThreadPoolTaskRunner with ``n_workers`` threads (I/O-bound work, one machine).
    ``dask``: prefect-dask's DaskTaskRunner, on the existing cluster whose scheduler is at ``address``
    (``tcp://host:8786``) or, without one, on a new local cluster of ``n_workers`` single-threaded
    worker processes (CPU-bound work such as volumetry uses every core, free of the GIL).
    """
    if kind not in TASK_RUNNER_KINDS:
        raise ValueError(f"task runner kind {kind!r}: expected one of {TASK_RUNNER_KINDS}")
    if n_workers < 1:
        raise ValueError(f"task runner n_workers must be >= 1, got {n_workers}")
    if kind == "thread":
        if address is not None:
            raise ValueError(f"task runner address {address!r} applies only to kind 'dask'")
        return ThreadPoolTaskRunner(max_workers=n_workers)
    from prefect_dask import DaskTaskRunner  # imports dask.distributed: only when asked for

    if address is not None:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_class=local_cluster_on_this_api,
        cluster_kwargs={"n_workers": n_workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None},
    )


def local_cluster_on_this_api(**cluster_kwargs: Any) -> LocalCluster:
    """A Dask LocalCluster whose worker processes report to the Prefect API this flow run uses.

    Called by the task runner inside the flow run. Without it, each worker process of an in-process
    (ephemeral) run would start a Prefect server of its own, slowly, and leave it behind.
    """
    from distributed import LocalCluster
    from prefect.client.orchestration import get_client

    api_url = str(get_client(sync_client=True).api_url).rstrip("/")
    env = {**cluster_kwargs.pop("env", {}), "PREFECT_API_URL": api_url}
    return LocalCluster(env=env, **cluster_kwargs)


def task_runner_from_env(environ: Mapping[str, str]) -> TaskRunner:
    """The task runner TRIALAKE_TASK_RUNNER names: empty or ``thread`` for Prefect's thread pool
    (its default size), ``dask`` for a local Dask cluster of two worker processes, or a Dask
    scheduler's address (``tcp://host:8786``) for that cluster.

    Read when a flow module is imported, i.e. in the flow run's process, whose environment has the
    deployment's job variables.
    """
    value = environ.get(TASK_RUNNER_VARIABLE, "").strip()
    if "://" in value:
        return build_task_runner("dask", address=value)
    if value in ("", "thread"):
        return ThreadPoolTaskRunner()
    if value not in TASK_RUNNER_KINDS:
        raise ValueError(f"{TASK_RUNNER_VARIABLE}={value!r}: expected thread, dask or a Dask scheduler address tcp://host:port")
    return build_task_runner(value)
