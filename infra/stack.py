"""The production topology on one machine, as processes (no Docker): PostgreSQL, the Prefect server
on it, SeaweedFS as the S3 store, a Dask scheduler with two workers, the deployments and a Prefect
process worker whose nightly runs use that Dask cluster. The same services and variables as
infra/compose.yaml (SeaweedFS stands in for MinIO).

    python infra/stack.py up STATE_DIR     # `make stack`: start everything, write STATE_DIR/stack.env
    python infra/stack.py down STATE_DIR   # `make stack-down`: stop every process it recorded

Every server listens on 127.0.0.1 on a free port. STATE_DIR holds the data, logs/ and pids.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests"))
from seaweedfs import start_seaweedfs  # noqa: E402  (the tests' SeaweedFS launcher, shared)

BUCKETS = ("trialake-landing", "trialake-lake")
PREFECT_START_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(state: Path, name: str, command: list[str], environ: dict[str, str], cwd: Path | None = None) -> int:
    """Start ``command`` in its own session (logs in logs/<name>.log) and record its pid."""
    with (state / "logs" / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(command, env=environ, cwd=cwd or state, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    record_pid(state, name, process.pid)
    return process.pid


def record_pid(state: Path, name: str, pid: int) -> None:
    with (state / "pids").open("a") as pids:
        pids.write(f"{name} {pid}\n")


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        sys.exit("stack: PostgreSQL is not installed (make stack installs the Debian package postgresql)")
    return found[-1].parent


def as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start_postgres(state: Path) -> str:
    """A private cluster in state/postgres with database and user `prefect`; its asyncpg URL."""
    pg, data, port, password = postgres_bin(), state / "postgres", free_port(), secrets.token_hex(16)
    data.mkdir()
    (state / "pgpass").write_text(password)
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chmod(state, 0o711)
        for path in (data, state / "pgpass"):
            os.chown(path, user.pw_uid, user.pw_gid)
        if subprocess.run(as_postgres_user(["test", "-w", str(data)])).returncode != 0:
            sys.exit(f"stack: the postgres user cannot reach {data}: use a state folder whose parents others may enter")
    subprocess.run(as_postgres_user([str(pg / "initdb"), "-D", str(data), "-U", "prefect", "--auth=scram-sha-256",
                                     f"--pwfile={state / 'pgpass'}", "--no-instructions"]),
                   check=True, stdout=subprocess.DEVNULL)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data}"
    subprocess.run(as_postgres_user([str(pg / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"),
                                     "-o", options, "-w", "start"]), check=True, stdout=subprocess.DEVNULL)
    record_pid(state, "postgres", int((data / "postmaster.pid").read_text().split()[0]))
    environ = {**os.environ, "PGPASSWORD": password}
    subprocess.run([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "prefect", "prefect"],
                   check=True, env=environ)
    return f"postgresql+asyncpg://prefect:{password}@127.0.0.1:{port}/prefect"


def wait_for_prefect(api_url: str, state: Path) -> None:
    deadline = time.monotonic() + PREFECT_START_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    sys.exit(f"stack: the Prefect server did not answer within {PREFECT_START_S} s; see {state}/logs/prefect-server.log")


def up(state: Path) -> dict[str, str]:
    """Start the whole topology; returns the variables that reach it (also in state/stack.env)."""
    if (state / "pids").exists():
        sys.exit(f"stack: {state} already holds a stack; run `make stack-down STACK_DIR={state}` first")
    (state / "logs").mkdir(parents=True, exist_ok=True)
    database_url = start_postgres(state)

    weed = start_seaweedfs(state / "seaweedfs", stop_at_exit=False)
    record_pid(state, "seaweedfs", weed.process.pid)
    storage = weed.environ
    import s3fs

    store = s3fs.S3FileSystem(key=storage["AWS_ACCESS_KEY_ID"], secret=storage["AWS_SECRET_ACCESS_KEY"],
                              client_kwargs={"endpoint_url": weed.endpoint, "region_name": storage["AWS_REGION"]})
    for bucket in BUCKETS:
        if not store.exists(bucket):
            store.mkdir(bucket)

    api_port, dask_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{api_port}/api"
    base = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
            "PREFECT_HOME": str(state / "prefect-home")}
    spawn(state, "prefect-server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(api_port)],
          {**base, "PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url, "PREFECT_UI_API_URL": api_url})

    # What every process that runs flow or task code needs: the Prefect API and the object store.
    runtime = {**base, "PREFECT_API_URL": api_url, **storage}
    dask_address = f"tcp://127.0.0.1:{dask_port}"
    spawn(state, "dask-scheduler", [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(dask_port),
                                    "--no-dashboard"], runtime)
    for n in (1, 2):
        spawn(state, f"dask-worker-{n}", [str(BIN / "dask"), "worker", dask_address, "--host", "127.0.0.1",
                                          "--nworkers", "1", "--nthreads", "1", "--no-dashboard"], runtime, cwd=REPO)
    wait_for_prefect(api_url, state)

    variables = {"PREFECT_API_URL": api_url, **storage, "TRIALAKE_LANDING": f"s3://{BUCKETS[0]}/landing",
                 "TRIALAKE_LAKE": f"s3://{BUCKETS[1]}/lake", "TRIALAKE_TASK_RUNNER": dask_address}
    deploy = subprocess.run(["make", "-s", "deploy"], cwd=REPO, env={**runtime, **variables},
                            stdout=(state / "logs" / "deploy.log").open("wb"), stderr=subprocess.STDOUT)
    if deploy.returncode != 0:
        sys.exit(f"stack: make deploy failed; see {state}/logs/deploy.log")
    # The worker command Prefect prints, started outside the checkout (the deployments know where it is).
    spawn(state, "prefect-worker", [str(BIN / "prefect"), "worker", "start", "--pool", "trialake", "--type", "process"],
          {**runtime, "PREFECT_WORKER_QUERY_SECONDS": "2"})
    (state / "stack.env").write_text("".join(f"export {k}={v}\n" for k, v in variables.items()))
    return variables


def down(state: Path) -> None:
    """Stop every recorded process (its whole session: SIGTERM, then SIGKILL after 10 s)."""
    if not (state / "pids").exists():
        return
    for line in reversed((state / "pids").read_text().splitlines()):
        name, pid = line.split()
        if name == "postgres":
            subprocess.run(as_postgres_user([str(postgres_bin() / "pg_ctl"), "-D", str(state / "postgres"),
                                             "-m", "fast", "-w", "stop"]), stdout=subprocess.DEVNULL)
            continue
        stop_group(int(pid))
    (state / "pids").unlink()


def stop_group(pid: int) -> None:
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print(__doc__, file=sys.stderr)
        return 2
    state = Path(argv[1]).resolve()
    if argv[0] == "down":
        down(state)
        return 0
    try:
        variables = up(state)
    except BaseException:
        down(state)
        raise
    print(f"stack up: Prefect UI/API {variables['PREFECT_API_URL']}, S3 {variables['AWS_ENDPOINT_URL']}, "
          f"Dask {variables['TRIALAKE_TASK_RUNNER']}; variables in {state}/stack.env, logs in {state}/logs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
