"""`make stack` for real: PostgreSQL, the Prefect server on it, SeaweedFS, a Dask scheduler and two
workers, the deployments and a Prefect worker started by infra/stack.py; the nightly deployment run
through the Prefect API with landing and lake on SeaweedFS and Dask measuring every series."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from trialake.config import storage_options_from_env
from trialake.lake import open_lake, read_object, read_table, scan_table
from trialake.pipeline.context import SECRET_OBJECT
from trialake.pseudonym import compute_pseudo_uid

pytestmark = [pytest.mark.slow, pytest.mark.server]

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 900


def _read_env(path: Path) -> dict[str, str]:
    return dict(line.removeprefix("export ").split("=", 1) for line in path.read_text().splitlines())


@pytest.fixture(scope="module")
def stack() -> Iterator[Path]:
    """`infra/stack.py up` in a state folder the postgres user can enter (pytest's tmp is private)."""
    state = Path(tempfile.mkdtemp(prefix="trialake-stack-"))
    up = subprocess.run([sys.executable, str(REPO / "infra" / "stack.py"), "up", str(state)], capture_output=True, text=True)
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield state
    finally:
        subprocess.run([sys.executable, str(REPO / "infra" / "stack.py"), "down", str(state)])


def test_a_nightly_run_through_the_api_lands_on_seaweedfs_with_dask_measuring_every_series(
    stack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import s3fs
    from distributed import Client
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from trialake.synth import generate_trial

    environ = _read_env(stack / "stack.env")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    generate_trial(tmp_path, subjects=4, seed=3, matrix=48, slices=24, sites=2)
    options = storage_options_from_env(environ)
    s3fs.S3FileSystem(**options).put(f"{tmp_path / 'landing'}/", environ["TRIALAKE_LANDING"].removeprefix("s3://") + "/",
                                     recursive=True)

    # A scheduled-style run: the deployment's own parameters (landing and lake on S3), its task runner.
    with temporary_settings(updates={PREFECT_API_URL: environ["PREFECT_API_URL"]}):
        run = run_deployment("nightly/nightly", timeout=RUN_TIMEOUT_S, poll_interval=3)
    assert run.state is not None and run.state.is_completed(), (
        f"{run.state}\n{(stack / 'logs' / 'prefect-worker.log').read_text()[-4000:]}")

    lake = open_lake(environ["TRIALAKE_LAKE"], options)
    secret = read_object(lake, SECRET_OBJECT)
    truth = pl.read_csv(tmp_path / "truth" / "ct_series.csv").with_columns(
        pl.col("SeriesInstanceUID").map_elements(lambda uid: compute_pseudo_uid(secret, uid), return_dtype=pl.String).alias("series_id"))
    volumetry = read_table(lake, "silver/ct_volumetry")
    assert set(volumetry["series_id"]) == set(truth["series_id"])  # a row for every generated series
    assert read_table(lake, "silver/ct_series").height == truth.height
    endpoints = scan_table(lake, "gold/endpoints").collect()
    assert not endpoints.is_empty()

    # The per-series work ran on the stack's Dask workers: the scheduler saw one task per series.
    with Client(environ["TRIALAKE_TASK_RUNNER"], timeout=30) as client:
        prefixes = client.run_on_scheduler(
            lambda dask_scheduler: {p: dict(tp.state_counts) for p, tp in dask_scheduler.task_prefixes.items()})
    assert prefixes["measure_series_task"]["memory"] == truth.height, prefixes
    with temporary_settings(updates={PREFECT_API_URL: environ["PREFECT_API_URL"]}), get_client(sync_client=True) as prefect:
        task_runs = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
    measured = [t for t in task_runs if t.name.startswith("measure series")]
    assert len(measured) == truth.height and all(t.state.is_completed() for t in measured)
    # The server keeps them in PostgreSQL.
    assert asyncio.run(_count_in_postgres(stack, run.id)) == len(measured)


async def _count_in_postgres(state: Path, flow_run_id: object) -> int:
    import asyncpg

    port = (state / "postgres" / "postmaster.pid").read_text().splitlines()[3]
    connection = await asyncpg.connect(host="127.0.0.1", port=int(port), user="prefect", database="prefect",
                                       password=(state / "pgpass").read_text())
    try:
        return await connection.fetchval(
            "select count(*) from task_run where flow_run_id = $1 and name like 'measure series%'", flow_run_id)
    finally:
        await connection.close()


def test_the_worker_stops_within_seconds_on_sigterm(stack: Path) -> None:
    pid = next(int(line.split()[1]) for line in (stack / "pids").read_text().splitlines()
               if line.startswith("prefect-worker "))
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    pytest.fail("the Prefect worker was still running 10 s after SIGTERM")
