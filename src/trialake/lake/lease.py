"""A lease in the lake: at most one run writes to a lake at a time, on disk and on S3.

The lease is one small JSON object, ``<lake>/_lease.json``: a unique token per acquisition, the
holder's run id, host and pid, when it was acquired and until when it is valid. It is changed only
by compare-and-swap, so two contenders can never both believe they hold it:

- on S3 (and S3-compatible stores that implement conditional writes: AWS since 2024, MinIO,
  SeaweedFS): create with ``If-None-Match: *``, renew / take over / release with ``If-Match: <ETag>``;
- on disk: the same read-compare-write under ``flock`` on the lake's root directory (one host).

Every acquisition is confirmed by reading the object back and finding our own token, which also
covers a conditional PUT that succeeded but whose answer was lost and retried.

A background thread renews the lease every ``ttl_s / 3``. A holder that crashed stops renewing and
its lease expires after ``ttl_s``; the next run takes it over.

Remaining hazard (the classic one for leases without fencing, acceptable here): a holder that is
frozen for longer than ``ttl_s`` (a suspended VM, a stopped process) may resume and write once
more after another run took the lease over. ``Lease.check()`` refuses once the holder's own
monotonic clock says the lease may have expired, so this needs a freeze between that check and a
single object write. Every object write is atomic and runs converge, so the damage is bounded to a
partition the next run rewrites. Expiry across hosts compares wall clocks: keep them NTP-synced;
the default ``ttl_s`` (120 s) is far above usual skew.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol

from trialake.lake.storage import Lake, write_object

LEASE_OBJECT = "_lease.json"
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409", "404"})


class LeaseHeld(RuntimeError):
    """Another run holds the lake's lease."""


class LeaseLost(RuntimeError):
    """This run's lease expired or was taken over: stop writing."""


@dataclass(frozen=True)
class LeaseRecord:
    """What the lease object says: who holds the lake, since when, until when (epoch seconds)."""

    token: str
    owner: str
    host: str
    pid: int
    acquired_at: float
    expires_at: float

    def describe(self) -> str:
        """One line naming the holder, for error messages and logs."""
        return (
            f"run {self.owner!r} on {self.host} (pid {self.pid}) since {_iso(self.acquired_at)}, "
            f"valid until {_iso(self.expires_at)}"
        )


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


def _encode(record: LeaseRecord) -> bytes:
    return json.dumps(asdict(record), sort_keys=True).encode()


def _decode(data: bytes, where: str) -> LeaseRecord:
    try:
        return LeaseRecord(**json.loads(data))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: not a Trialake lease object ({exc}); remove it if no run is active") from exc


class _Store(Protocol):
    """Compare-and-swap on one object; versions are opaque strings, None means 'did not happen'."""

    def read(self) -> tuple[bytes, str] | None: ...
    def create(self, data: bytes) -> str | None: ...
    def replace(self, data: bytes, version: str) -> str | None: ...
    def delete(self, version: str) -> bool: ...


class _LocalStore:
    """The lease file on disk; every change happens under an exclusive flock on the lake root."""

    def __init__(self, lake: Lake) -> None:
        self._lake = lake
        self._path = lake.path(LEASE_OBJECT)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lake.path(), os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def read(self) -> tuple[bytes, str] | None:
        try:
            with open(self._path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def create(self, data: bytes) -> str | None:
        with self._locked():
            if self.read() is not None:
                return None
            return self._write(data)

    def replace(self, data: bytes, version: str) -> str | None:
        with self._locked():
            current = self.read()
            if current is None or current[1] != version:
                return None
            return self._write(data)

    def delete(self, version: str) -> bool:
        with self._locked():
            current = self.read()
            if current is None or current[1] != version:
                return False
            os.remove(self._path)
            return True

    def _write(self, data: bytes) -> str:
        write_object(self._lake, LEASE_OBJECT, data)
        return hashlib.sha256(data).hexdigest()


class _S3Store:
    """The lease object on S3, changed only by conditional requests."""

    def __init__(self, lake: Lake) -> None:
        self._fs = lake.fs
        self._path = lake.path(LEASE_OBJECT)
        self._bucket, _, self._key = self._path.partition("/")

    def read(self) -> tuple[bytes, str] | None:
        # The ETag first, then the bytes: if the object changes in between, a swap against that
        # ETag fails, so a decision is never applied to a newer object than the one it was made on.
        try:
            etag = self._fs.info(self._path, refresh=True)["ETag"]
            data = self._fs.cat_file(self._path)
        except FileNotFoundError:
            return None
        return data, etag

    def create(self, data: bytes) -> str | None:
        return self._put(data, IfNoneMatch="*")

    def replace(self, data: bytes, version: str) -> str | None:
        return self._put(data, IfMatch=version)

    def delete(self, version: str) -> bool:
        try:
            self._fs.call_s3("delete_object", Bucket=self._bucket, Key=self._key, IfMatch=version)
        except OSError as exc:
            if _is_conflict(exc):
                return False
            raise
        finally:
            self._fs.invalidate_cache(self._path)
        return True

    def _put(self, data: bytes, **condition: str) -> str | None:
        try:
            answer = self._fs.call_s3("put_object", Bucket=self._bucket, Key=self._key, Body=data, **condition)
        except OSError as exc:
            if _is_conflict(exc):
                return None
            raise
        finally:
            self._fs.invalidate_cache(self._path)
        return answer["ETag"]


def _is_conflict(exc: OSError) -> bool:
    """Whether s3fs' error is a failed precondition (someone else changed the object)."""
    if isinstance(exc, (FileExistsError, FileNotFoundError)):
        return True
    response = getattr(exc.__cause__, "response", None) or {}
    return str(response.get("Error", {}).get("Code")) in _CONFLICT_CODES


def _store(lake: Lake) -> _Store:
    if lake.is_local:
        return _LocalStore(lake)
    if lake.fs.protocol[0] not in ("s3", "s3a"):
        raise ValueError(f"lake {lake.url}: leases need a local path or s3:// (conditional writes)")
    return _S3Store(lake)


class Lease:
    """A held lease; renews itself in a background thread until released.

    Use it as a context manager, and call `check()` before each publishing step.
    """

    def __init__(
        self, lake: Lake, store: _Store, record: LeaseRecord, version: str, *, ttl_s: float, valid_until: float
    ) -> None:
        self.lake = lake
        self._store = store
        self._record = record
        self._version = version
        self._ttl_s = ttl_s
        self._valid_until = valid_until  # monotonic: when the last successful write was sent + ttl
        self._lost: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{record.owner}", daemon=True)
        self._thread.start()

    @property
    def record(self) -> LeaseRecord:
        """The lease as last written by this holder."""
        with self._lock:
            return self._record

    def check(self) -> None:
        """Raise `LeaseLost` if this holder may no longer hold the lease."""
        with self._lock:
            if self._lost is None and time.monotonic() >= self._valid_until:
                self._lost = f"not renewed within {self._ttl_s:g} s"
            if self._lost is not None:
                raise LeaseLost(f"lease on lake {self.lake.url} lost: {self._lost}; stop writing")

    def renew(self) -> None:
        """Extend the lease by ``ttl_s`` from now (the background thread calls this)."""
        sent = time.monotonic()
        with self._lock:
            if self._lost is not None:
                return
            now = time.time()
            renewed = replace(self._record, expires_at=now + self._ttl_s)
            version = self._store.replace(_encode(renewed), self._version)
            if version is None:
                holder = _current_holder(self._store, self.lake)
                self._lost = f"taken over by {holder.describe()}" if holder else "the lease object disappeared"
                return
            self._record, self._version, self._valid_until = renewed, version, sent + self._ttl_s

    def release(self) -> bool:
        """Stop renewing and remove the lease object if it is still ours; returns whether it was.

        If storage cannot be reached the object stays and simply expires after ``ttl_s``.
        """
        self._stop.set()
        self._thread.join()
        with self._lock:
            held, self._lost = self._lost is None, self._lost or "released"
            if not held:
                return False
            try:
                return self._store.delete(self._version)
            except OSError:
                return False

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._ttl_s / 3):
            try:
                self.renew()
            except OSError:
                pass  # transient storage error: try again next tick; check() fails once it is too late
            with self._lock:
                if self._lost is not None:
                    return

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _current_holder(store: _Store, lake: Lake) -> LeaseRecord | None:
    current = store.read()
    return None if current is None else _decode(current[0], lake.uri(LEASE_OBJECT))


def acquire_lease(lake: Lake, *, owner: str, ttl_s: float = 120.0, wait_s: float = 0.0, poll_s: float = 1.0) -> Lease:
    """Take the lake's lease for the run ``owner``, waiting up to ``wait_s`` for a holder to finish.

    ``ttl_s``: how long the lease stays valid without renewal (renewed every ``ttl_s / 3``), so how
    long the lake stays blocked after a holder crashed. ``poll_s``: pause between attempts.
    Raises `LeaseHeld`, naming the holder's run id and since when, if it is still held after
    ``wait_s`` seconds.
    """
    if not owner:
        raise ValueError("acquire_lease: owner must name the run (e.g. the flow run id)")
    if ttl_s <= 0:
        raise ValueError(f"acquire_lease: ttl_s must be > 0 seconds, got {ttl_s}")
    if poll_s <= 0:
        raise ValueError(f"acquire_lease: poll_s must be > 0 seconds, got {poll_s}")
    if wait_s < 0:
        raise ValueError(f"acquire_lease: wait_s must be >= 0 seconds, got {wait_s}")
    store = _store(lake)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    while True:
        holder = _try_acquire(store, lake, token=token, owner=owner, ttl_s=ttl_s)
        if isinstance(holder, Lease):
            return holder
        remaining = deadline - time.monotonic()
        if holder is None:
            continue  # released between our two reads: try again at once
        if remaining <= 0:
            raise LeaseHeld(f"lake {lake.url} is being written by {holder.describe()}; try again later")
        time.sleep(min(poll_s, remaining))


def _try_acquire(store: _Store, lake: Lake, *, token: str, owner: str, ttl_s: float) -> Lease | LeaseRecord | None:
    """One attempt: the new `Lease`, the record of the run that holds it, or None if it is free."""
    sent = time.monotonic()
    now = time.time()
    mine = LeaseRecord(token, owner, socket.gethostname(), os.getpid(), acquired_at=now, expires_at=now + ttl_s)
    current = store.read()
    if current is None:
        store.create(_encode(mine))
    elif _decode(current[0], lake.uri(LEASE_OBJECT)).expires_at < now:
        store.replace(_encode(mine), current[1])  # take over an expired lease
    confirmed = store.read()  # the write may have lost a race or its answer: the object decides
    if confirmed is None:
        return None
    record = _decode(confirmed[0], lake.uri(LEASE_OBJECT))
    if record.token != token:
        return record
    return Lease(lake, store, record, confirmed[1], ttl_s=ttl_s, valid_until=sent + ttl_s)
