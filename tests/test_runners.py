"""Task runners: the thread pool, and Dask worker processes (a new local cluster or an existing one)."""
from __future__ import annotations

import os
import threading
import time

import pytest
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from trialake_flows.runners import build_task_runner

pytestmark = pytest.mark.xdist_group("prefect-flows")


@task
def _pid_after(seconds: float) -> int:
    time.sleep(seconds)  # long enough that one worker cannot take every task before the other starts
    return os.getpid()


@flow
def _pids_of_four_tasks() -> list[int]:
    return [future.result() for future in _pid_after.map([0.5] * 4)]


class _Concurrency:
    """How many tasks run at once in this process, and the most seen."""

    lock = threading.Lock()
    running = 0
    most = 0


@task
def _count_concurrency(seconds: float) -> int:
    with _Concurrency.lock:
        _Concurrency.running += 1
        _Concurrency.most = max(_Concurrency.most, _Concurrency.running)
    time.sleep(seconds)
    with _Concurrency.lock:
        _Concurrency.running -= 1
    return os.getpid()


@flow
def _concurrency_of_six_tasks() -> list[int]:
    return [future.result() for future in _count_concurrency.map([0.3] * 6)]


def test_the_default_is_prefects_thread_pool_with_n_workers_threads() -> None:
    runner = build_task_runner(n_workers=2)
    assert isinstance(runner, ThreadPoolTaskRunner)
    _Concurrency.most = 0
    pids = _concurrency_of_six_tasks.with_options(task_runner=runner)()
    assert set(pids) == {os.getpid()}
    assert _Concurrency.most == 2


def test_dask_runs_tasks_in_two_worker_processes_of_a_local_cluster() -> None:
    pids = _pids_of_four_tasks.with_options(task_runner=build_task_runner("dask", n_workers=2))()
    assert len(set(pids)) == 2
    assert os.getpid() not in pids


def test_dask_runs_tasks_on_an_existing_cluster_given_its_address() -> None:
    from distributed import Client, LocalCluster
    from prefect.client.orchestration import get_client

    # An existing cluster's workers are configured with the Prefect API the flows use (see infra/),
    # here the API of this test process's in-process server.
    env = {"PREFECT_API_URL": str(get_client(sync_client=True).api_url)}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=env) as cluster:
        with Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
        runner = build_task_runner("dask", address=cluster.scheduler_address)
        pids = _pids_of_four_tasks.with_options(task_runner=runner)()
    assert set(pids) == worker_pids and len(worker_pids) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "spark"}, "kind 'spark'"),
        ({"kind": "thread", "address": "tcp://10.0.0.1:8786"}, "address 'tcp://10.0.0.1:8786'"),
        ({"kind": "dask", "n_workers": 0}, "n_workers must be >= 1"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_task_runner(**kwargs)
