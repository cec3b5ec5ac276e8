"""The nightly flow under a crash, a concurrent run, and on a Dask cluster of two processes.

A run killed with SIGKILL at any moment must leave every published table readable, and the next
run must converge to the lake a clean run produces. Tables are compared without their run ids
(which name the run that wrote a row) and with the same lake secret, so pseudonyms and date
shifts are comparable one to one.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from trialake.lake import Lake, open_lake, read_object, read_table, write_object
from trialake.pipeline.context import SECRET_OBJECT

pytestmark = pytest.mark.xdist_group("prefect-crash")

TABLES = (
    "bronze/dm", "bronze/lb", "bronze/dicom_instances", "silver/subjects", "silver/labs", "silver/ct_series",
    "silver/ct_volumetry", "silver/rejections", "gold/adsl", "gold/adct", "gold/endpoints",
)


@pytest.fixture(scope="module")
def clean_lake(clean_run: Path) -> Lake:
    return open_lake(str(clean_run))


def _comparable(lake: Lake, table: str) -> pl.DataFrame:
    frame = read_table(lake, table).drop("run_id", strict=False)
    return frame.sort(frame.columns)


def _start_run(landing: str, lake: str, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "trialake.cli", "run", "nightly", "--landing", landing, "--lake", lake, "--lease-ttl", "3"]
    # its own process group: the kill takes the run's Prefect server process with it, as a machine failure would
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _kill_when(lake: Lake, prefix: str, run: subprocess.Popen, timeout_s: float = 240) -> None:
    """SIGKILL the run and every process it started as soon as an object under ``prefix`` appears
    (mid-run, mid-stage)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and run.poll() is None:
        if lake.fs.exists(lake.path(prefix)) and lake.fs.find(lake.path(prefix)):
            break
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()


@pytest.mark.parametrize(("storage", "kill_at"), [("local", "bronze/dicom"), ("s3", "silver/ct_volumetry")])
def test_a_killed_run_leaves_readable_tables_and_the_next_run_converges(
    storage: str, kill_at: str, small_trial: Path, clean_lake: Lake, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from trialake_flows.nightly import nightly
    from trialake.config import storage_options_from_env

    env = dict(os.environ)
    if storage == "local":
        landing, lake = str(small_trial / "landing"), open_lake(str(tmp_path / "lake"))
    else:
        environ = request.getfixturevalue("s3_environ")
        bucket = request.getfixturevalue("s3_bucket")
        env |= environ
        options = storage_options_from_env(environ)
        landing_lake = Lake(url=f"{bucket}/landing", storage_options=options)
        landing_lake.fs.put(str(small_trial / "landing") + "/", landing_lake.path(), recursive=True)
        landing, lake = landing_lake.url, open_lake(f"{bucket}/lake", options)
        for name, value in environ.items():
            request.getfixturevalue("monkeypatch").setenv(name, value)
    write_object(lake, SECRET_OBJECT, read_object(clean_lake, SECRET_OBJECT))

    _kill_when(lake, kill_at, _start_run(landing, lake.url, env))
    for table in TABLES:  # whatever was published is readable
        read_table(lake, table)

    nightly(landing=landing, lake=lake.url, lease_wait_s=30, lease_ttl_s=3)
    for table in TABLES:
        assert _comparable(lake, table).equals(_comparable(clean_lake, table)), table


def test_a_second_run_waits_for_the_lease_or_stops_with_a_clear_message(small_trial: Path, tmp_path: Path) -> None:
    from trialake.lake import LeaseHeld, acquire_lease

    lake = open_lake(str(tmp_path / "lake"))
    from trialake_flows.nightly import nightly

    with acquire_lease(lake, owner="scheduled-run", ttl_s=60):
        with pytest.raises(LeaseHeld, match="scheduled-run"):
            nightly(landing=str(small_trial / "landing"), lake=lake.url, lease_wait_s=1)
    assert not read_table(lake, "bronze/dm").height  # the refused run wrote nothing


@pytest.mark.slow  # Dask on every change: tests/test_runners.py (a local cluster and an address); this whole run nightly
def test_the_nightly_flow_on_a_dask_cluster_of_two_processes(small_trial: Path, clean_lake: Lake, tmp_path: Path) -> None:
    from trialake_flows.nightly import nightly
    from trialake_flows.runners import build_task_runner

    lake = open_lake(str(tmp_path / "lake"))
    write_object(lake, SECRET_OBJECT, read_object(clean_lake, SECRET_OBJECT))
    nightly.with_options(task_runner=build_task_runner("dask", n_workers=2))(landing=str(small_trial / "landing"), lake=lake.url)
    for table in TABLES:
        assert _comparable(lake, table).equals(_comparable(clean_lake, table)), table
