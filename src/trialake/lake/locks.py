"""Database locks and retention.

A lock is a named, immutable record of the version of every table at one moment, kept in the
lake at ``_locks/<NAME>.json`` (created with a conditional write, never changed): when, by whom,
by which run, and per table its id, version and the run that committed that version. Reading a
table ``as_of`` a lock name gives exactly the locked version (`trialake.lake.read_table`,
`scan_table`), for as long as `vacuum_lake` runs: it never removes a file a locked version needs.
"""
from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from deltalake.transaction import CommitProperties

from trialake.lake.storage import Lake, create_object, list_folder, read_object
from trialake.lake.tables import COMMIT_KEY, delta_table, list_tables, table_history

LOCKS = "_locks"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
DEFAULT_RETENTION_HOURS = 168


class LockExists(ValueError):
    """A lock of that name exists already; locks are never replaced."""


@dataclass(frozen=True)
class LockedTable:
    """One table in a lock: its id and version, and the run that committed that version."""

    table_id: str
    version: int
    run_id: str | None
    committed_at: str


@dataclass(frozen=True)
class LockRecord:
    """A lock as stored: name, when (UTC), who and which run made it, the tables, and whatever
    else the caller recorded (``extra``: code version, stage states)."""

    name: str
    created_at: str
    created_by: str
    run_id: str
    tables: Mapping[str, LockedTable]
    extra: Mapping[str, Any] = field(default_factory=dict)


def check_lock_name(name: str) -> None:
    """Refuse a name that is not 1-128 letters, digits, ``.``, ``_`` or ``-`` (not starting with
    ``.``, ``_`` or ``-``)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"lock name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")


def create_lock(
    lake: Lake, name: str, *, run_id: str, created_by: str, tables: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> LockRecord:
    """Record the current version of every table (or of ``tables``) under ``name``.

    Raises `LockExists` if the name is taken (whoever made it): a lock is never changed.
    """
    check_lock_name(name)
    entries = {}
    for table in tables if tables is not None else list_tables(lake):
        delta = delta_table(lake, table)
        if delta is None:
            continue
        last = table_history(lake, table, limit=1)[0]
        entries[table] = LockedTable(delta.metadata().id, delta.version(), last.info.get("run_id"), last.timestamp.isoformat())
    record = LockRecord(
        name=name, created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        created_by=created_by, run_id=run_id, tables=entries, extra=dict(extra or {}),
    )
    if not create_object(lake, f"{LOCKS}/{name}.json", json.dumps(asdict(record), indent=1, sort_keys=True).encode()):
        existing = read_lock(lake, name)
        raise LockExists(f"lock {name!r} exists already (made {existing.created_at} by run {existing.run_id}); "
                         "a lock is never changed: choose another name")
    return record


def read_lock(lake: Lake, name: str) -> LockRecord:
    """The lock ``name``; LookupError naming the locks there are if there is no such lock."""
    check_lock_name(name)
    try:
        data = read_object(lake, f"{LOCKS}/{name}.json")
    except FileNotFoundError:
        names = [lock.name for lock in list_locks(lake)]
        raise LookupError(f"no lock {name!r} in lake {lake.url} (locks: {', '.join(names) or 'none'})") from None
    return _decode(data, name)


def _decode(data: bytes, name: str) -> LockRecord:
    raw = json.loads(data)
    tables = {t: LockedTable(**entry) for t, entry in raw.pop("tables").items()}
    if raw.get("name") != name:
        raise ValueError(f"lock object {name}.json names lock {raw.get('name')!r}")
    return LockRecord(tables=tables, **raw)


def list_locks(lake: Lake) -> list[LockRecord]:
    """Every lock of the lake, by name."""
    names = [name[: -len(".json")] for name, is_folder in list_folder(lake, LOCKS) if not is_folder and name.endswith(".json")]
    return [_decode(read_object(lake, f"{LOCKS}/{name}.json"), name) for name in names]


def locked_version(lake: Lake, name: str, table: str) -> int:
    """The version of ``table`` that lock ``name`` recorded."""
    lock = read_lock(lake, name)
    if table not in lock.tables:
        raise LookupError(f"lock {name!r} has no table {table} (it did not exist when the lock was made)")
    return lock.tables[table].version


def vacuum_lake(lake: Lake, *, retention_hours: int = DEFAULT_RETENTION_HOURS, dry_run: bool = False) -> dict[str, list[str]]:
    """Remove data files that no version younger than ``retention_hours`` and no locked version
    needs, table by table (delta-rs vacuum, full mode, keeping every locked version); returns the
    files removed (or that would be, with ``dry_run``) per table. The transaction log is kept."""
    if retention_hours < 0:
        raise ValueError(f"retention_hours must be >= 0, got {retention_hours}")
    keep: dict[str, set[int]] = {}
    for lock in list_locks(lake):
        for table, entry in lock.tables.items():
            keep.setdefault(table, set()).add(entry.version)
    removed = {}
    for table in list_tables(lake):
        delta = delta_table(lake, table)
        if delta is None:
            continue
        removed[table] = sorted(delta.vacuum(
            retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False, full=True,
            keep_versions=sorted(keep.get(table, ())) or None,
            commit_properties=CommitProperties(custom_metadata={COMMIT_KEY: dict(lake.commit_info)}),
        ))
    return removed
