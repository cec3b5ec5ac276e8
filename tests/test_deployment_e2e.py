"""A real Prefect server on 127.0.0.1: `make server`, `make deploy`, `make worker`, then a run of
`nightly/nightly` created through the API (what the UI's Run button does) that a worker executes."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from trialake.config import load_trial_config
from trialake.lake import open_lake, read_table
from trialake.synth import generate_trial

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("prefect-server")]

REPO = Path(__file__).resolve().parents[1]
SERVER_START_S = 120
RUN_TIMEOUT_S = 240


@dataclass(frozen=True)
class Stack:
    """A running server and worker, and the environment that reaches them."""

    api_url: str
    environ: dict[str, str]
    trial: Path
    worker_log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(target: str, environ: dict[str, str], log: Path) -> subprocess.Popen:
    """`make <target>` in its own process group, output to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            ["make", "-s", target], cwd=REPO, env=environ, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the whole group, then SIGKILL if it does not exit in time."""
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_healthy(api_url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"prefect server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"prefect server not healthy after {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`make server` on a free port with a fresh PREFECT_HOME, a small trial, `make deploy`, `make worker`."""
    home = tmp_path_factory.mktemp("prefect-home")
    trial = tmp_path_factory.mktemp("trial")
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    environ = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_UI_ENABLED": "false",  # nothing looks at it; starts faster
        "PREFECT_WORKER_QUERY_SECONDS": "1",  # the worker picks the run up at once
        "TRIALAKE_LANDING": str(trial / "landing"),
        "TRIALAKE_LAKE": str(home / "scheduled-lake"),
    }
    server = _start("server", environ, home / "server.log")
    worker = None
    try:
        generate_trial(trial, subjects=6, seed=7, matrix=64, slices=40, sites=2)  # while the server starts
        _wait_healthy(api_url, server, home / "server.log")
        deploy = subprocess.run(["make", "-s", "deploy"], cwd=REPO, env=environ, capture_output=True, text=True)
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
        worker = _start("worker", environ, home / "worker.log")
        yield Stack(api_url=api_url, environ=environ, trial=trial, worker_log=home / "worker.log")
    finally:
        if worker is not None:
            _stop(worker)
        _stop(server)


async def _read_deployment(api_url: str):
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        return await client.read_deployment_by_name("nightly/nightly")


async def _run_as_the_ui_does(api_url: str, parameters: dict[str, str]):
    """POST /deployments/{id}/create_flow_run, then poll the run until it is final."""
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        deployment = await client.read_deployment_by_name("nightly/nightly")
        run = await client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            run = await client.read_flow_run(run.id)
            if run.state is not None and run.state.is_final():
                return run
            await asyncio.sleep(2)
        return run


def test_make_deploy_registers_nightly_with_its_schedule_and_defaults(stack: Stack) -> None:
    deployment = asyncio.run(_read_deployment(stack.api_url))
    assert deployment.work_pool_name == "trialake"
    assert deployment.parameters == {
        "landing": stack.environ["TRIALAKE_LANDING"],
        "lake": stack.environ["TRIALAKE_LAKE"],
        "pacs": stack.environ.get("TRIALAKE_PACS", ""),  # empty: no PACS, or pacs.source of the configuration
    }
    [schedule] = deployment.schedules
    assert schedule.active
    assert schedule.schedule.cron == load_trial_config(None).nightly_cron == "0 2 * * *"
    assert schedule.schedule.timezone == load_trial_config(None).timezone
    assert {"landing", "lake"} <= set(deployment.parameter_openapi_schema["required"])


def test_a_run_started_through_the_api_completes_on_the_worker(stack: Stack, tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    run = asyncio.run(_run_as_the_ui_does(stack.api_url, {"landing": str(stack.trial / "landing"), "lake": str(lake_dir)}))
    assert run.state is not None and run.state.is_completed(), (
        f"flow run ended {run.state}:\n{stack.worker_log.read_text()[-4000:]}"
    )
    assert run.work_pool_name == "trialake"
    lake = open_lake(str(lake_dir))
    truth = pl.read_csv(stack.trial / "truth" / "ct_series.csv")
    assert read_table(lake, "bronze/dicom_instances").height == truth["n_files"].sum()
    assert read_table(lake, "silver/ct_series").height == truth.height
    assert not read_table(lake, "bronze/dm").is_empty()
    endpoints = read_table(lake, "gold/endpoints")
    assert {"PARAMCD", "AVISIT", "AVAR", "estimate", "ci_low", "ci_high", "p_value"} <= set(endpoints.columns)
    assert not endpoints.is_empty()
