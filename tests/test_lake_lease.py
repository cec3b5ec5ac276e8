"""The lake lease: one writer at a time, on disk and on S3 (SeaweedFS), across threads and processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from trialake.lake import Lake, read_object, write_object
from trialake.lake.lease import LEASE_OBJECT, LeaseHeld, LeaseLost, LeaseRecord, acquire_lease

# A child process that takes the lease and either holds it until killed, or does read-modify-write
# increments of a counter object while holding it (lost updates would show without the lease).
CHILD = """
import json, sys, time
from trialake.lake import Lake, read_object, write_object
from trialake.lake.lease import acquire_lease

url, options, owner, mode, ttl = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
lake = Lake(url=url, storage_options=options)
if mode == "hold":
    lease = acquire_lease(lake, owner=owner, ttl_s=ttl)
    print("held", flush=True)
    time.sleep(600)
print("ready", flush=True)
sys.stdin.readline()  # start together
for _ in range(3):
    with acquire_lease(lake, owner=owner, ttl_s=ttl, wait_s=120, poll_s=0.05) as lease:
        value = int(read_object(lake, "counter.txt"))
        time.sleep(0.1)
        lease.check()
        write_object(lake, "counter.txt", str(value + 1).encode())
"""


def _child(lake: Lake, owner: str, mode: str, ttl_s: float) -> subprocess.Popen:
    args = [sys.executable, "-c", CHILD, lake.url, json.dumps(dict(lake.storage_options)), owner, mode, str(ttl_s)]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _stored(lake: Lake) -> LeaseRecord:
    return LeaseRecord(**json.loads(read_object(lake, LEASE_OBJECT)))


def test_a_second_run_is_refused_with_the_holders_run_id_until_the_first_releases(lake: Lake) -> None:
    before = time.time()
    with acquire_lease(lake, owner="run-A", ttl_s=30) as lease:
        stored = _stored(lake)
        assert (stored.owner, stored.pid) == ("run-A", os.getpid())
        assert before <= stored.acquired_at <= time.time()
        assert stored.expires_at == pytest.approx(stored.acquired_at + 30, abs=1)
        with pytest.raises(LeaseHeld, match=r"run 'run-A' .* since \d{4}-\d\d-\d\dT"):
            acquire_lease(lake, owner="run-B", wait_s=0)
        lease.check()
    assert not lake.fs.exists(lake.path(LEASE_OBJECT))
    with acquire_lease(lake, owner="run-B") as second:
        assert second.record.owner == "run-B"


def test_a_waiting_run_gets_the_lease_when_the_holder_releases(lake: Lake) -> None:
    first = acquire_lease(lake, owner="run-A", ttl_s=30)
    releaser = threading.Timer(0.5, first.release)
    releaser.start()
    started = time.monotonic()
    with acquire_lease(lake, owner="run-B", wait_s=20, poll_s=0.1) as second:
        waited = time.monotonic() - started
        assert _stored(lake).owner == "run-B" and second.record.owner == "run-B"
    releaser.join()
    assert 0.4 <= waited < 20


def test_renewal_keeps_a_short_lease_past_its_ttl(lake: Lake) -> None:
    with acquire_lease(lake, owner="run-A", ttl_s=3.0) as lease:
        first_expiry = lease.record.expires_at
        started = time.monotonic()
        while time.monotonic() - started < 4.0:  # longer than the ttl, as measured: only renewals keep it
            time.sleep(0.2)
        lease.check()
        assert lease.record.expires_at > first_expiry
        seen = lease.record
        stored = _stored(lake)  # the renewal thread may renew again meanwhile, never go back
        assert stored.token == seen.token and stored.expires_at >= seen.expires_at
        with pytest.raises(LeaseHeld):
            acquire_lease(lake, owner="run-B")


def test_a_holder_whose_lease_was_taken_over_is_told_to_stop(lake: Lake) -> None:
    lease = acquire_lease(lake, owner="run-A", ttl_s=1.5)
    now = time.time()
    usurper = LeaseRecord("other-token", "run-B", "elsewhere", 1, acquired_at=now, expires_at=now + 60)
    write_object(lake, LEASE_OBJECT, json.dumps(asdict(usurper)).encode())
    deadline = time.monotonic() + 5
    with pytest.raises(LeaseLost, match="taken over by run 'run-B'"):
        while time.monotonic() < deadline:
            lease.check()
            time.sleep(0.1)
    assert lease.release() is False
    assert _stored(lake).owner == "run-B"  # release never removes somebody else's lease


def test_a_crashed_holder_blocks_the_lake_only_until_its_lease_expires(lake: Lake) -> None:
    """Measured against the time that actually elapsed, not against a sleep: every attempt that
    ended before the dead holder's lease ran out was refused naming it, and the lease was taken
    only once it had run out, however slowly this machine runs the attempts."""
    ttl_s = 6.0  # margin for a loaded machine: attempts are still refused after the holder is killed
    holder = _child(lake, "run-crashed", "hold", ttl_s)
    try:
        assert holder.stdout.readline().strip() == "held"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    expires_at = _stored(lake).expires_at  # the holder's last word: nobody renews it any more
    while True:
        try:
            lease = acquire_lease(lake, owner="run-B", wait_s=0)
        except LeaseHeld as exc:
            assert "run 'run-crashed'" in str(exc)
            assert time.time() <= expires_at + 60  # it does end
            time.sleep(0.1)
            continue
        with lease:  # an attempt that started before the dead lease ran out would fail here
            assert lease.record.acquired_at >= expires_at and lease.record.owner == "run-B"
        break


def test_competing_processes_never_interleave_their_writes(lake: Lake) -> None:
    write_object(lake, "counter.txt", b"0")
    children = [_child(lake, f"run-{i}", "count", 30.0) for i in range(2)]
    assert [child.stdout.readline().strip() for child in children] == ["ready", "ready"]
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    assert [child.wait(timeout=150) for child in children] == [0, 0]
    assert int(read_object(lake, "counter.txt")) == 2 * 3  # no increment lost
    assert not lake.fs.exists(lake.path(LEASE_OBJECT))


def test_a_lake_that_is_not_local_or_s3_is_refused() -> None:
    with pytest.raises(ValueError, match="memory://x"):
        acquire_lease(Lake(url="memory://x"), owner="run-A")


@pytest.mark.parametrize(("option", "value"), [("ttl_s", 0), ("wait_s", -1), ("poll_s", 0)])
def test_bad_arguments_are_named(tmp_path: Path, option: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{option} must be"):
        acquire_lease(Lake(url=str(tmp_path)), owner="run-A", **{option: value})
