"""Lake tables: every table is a Delta Lake table (delta-rs), Hive-partitioned Parquet plus
``_delta_log/``, at ``<lake>/<zone>/<name>/``.

A write is one Delta commit: readers see the table before or after it, never a mix, and a
version stays readable (time travel) until `vacuum_lake` removes files no version that must be
kept still needs. Data files are named by the sha256 of their schema and bytes
(``<partition dir>/part-<hash>.parquet``), so a partition whose content does not change keeps its
file and is not rewritten, and a write that changes nothing makes no commit at all: the table's
own file list says what is there, whoever wrote it.

Concurrency is optimistic: a commit is based on the version the write read, and fails with
`TableConflict` (nothing committed) if any other commit got in first; on S3 the commit is a
conditional PUT (``conditional_put: etag``), so no lock service is needed.
"""
from __future__ import annotations

import datetime
import hashlib
import io
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, Schema, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, CommitProperties, RemoveAction, create_table_with_add_actions

from trialake.lake.storage import ZONES, Lake, delta_storage_options, list_folder, polars_storage_options, write_object

WriteMode = Literal["replace_table", "replace_partitions"]
AsOf = int | str | None
#: Commit metadata key under which Trialake records run, flow, stage, code version and inputs.
COMMIT_KEY = "trialake"
#: Table properties set at creation: the transaction log is never cleaned up by delta-rs, so every
#: version stays in the history (the audit trail) and a lock can always be resolved.
TABLE_CONFIGURATION = {"delta.enableExpiredLogCleanup": "false"}
DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_SAFE_DIR_VALUE = re.compile(r"[A-Za-z0-9._-]+")
_UNSIGNED = {pl.UInt8: pl.Int16, pl.UInt16: pl.Int32, pl.UInt32: pl.Int64, pl.UInt64: pl.Int64}
_PARTITION_TYPES = (pl.String, pl.Date, pl.Boolean, pl.Int8, pl.Int16, pl.Int32, pl.Int64)


class TableConflict(RuntimeError):
    """Another writer committed to the table while this write was prepared; nothing was committed."""


@dataclass(frozen=True)
class TableWrite:
    """What a write changed: partitions written, left as they were, and removed; the table's
    version afterwards and whether this write committed it."""

    table: str
    written: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]
    rows: int
    version: int | None = None
    committed: bool = False


@dataclass(frozen=True)
class TableVersion:
    """A table's identity (the Delta table id, new if the table is ever re-created) and version."""

    table_id: str
    version: int


@dataclass(frozen=True)
class Commit:
    """One version of a table: when, which operation, and what Trialake recorded (run id, flow,
    stage, code version, inputs; empty for commits made by other tools)."""

    version: int
    timestamp: datetime.datetime
    operation: str
    info: Mapping[str, Any] = field(default_factory=dict)


def check_table_name(table: str) -> None:
    """Refuse a name that is not ``<zone>/<name>``."""
    zone, _, name = table.partition("/")
    if zone not in ZONES or not name or "/" in name:
        raise ValueError(f"table {table!r}: expected '<zone>/<name>' with zone in {ZONES}")


def delta_table(lake: Lake, table: str, version: int | None = None) -> DeltaTable | None:
    """The Delta table (at ``version``, else the latest), or None if there is none."""
    try:
        return DeltaTable(lake.uri(table), version=version, storage_options=delta_storage_options(lake))
    except TableNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------
# Writing


def write_table(
    lake: Lake,
    table: str,
    frame: pl.DataFrame,
    *,
    partition_by: Sequence[str] = (),
    mode: WriteMode = "replace_table",
    partitions: Sequence[Mapping[str, Any]] | None = None,
    expected_version: int | None = None,
) -> TableWrite:
    """Publish ``frame`` as ``<lake>/<table>/`` in one Delta commit (or none, if nothing changed).

    ``replace_table`` makes the table equal to ``frame``; ``replace_partitions`` replaces only the
    partitions present in ``frame`` and leaves the others alone, and also removes the partitions
    listed in ``partitions`` (``{column: value}`` each) that ``frame`` has no rows for. A partition
    whose data does not change keeps its file. A column the table does not have yet is added (other
    partitions read it as null); a type that changes rewrites the whole table in the same commit.
    The commit records ``lake.commit_info``. Raises `TableConflict` if another commit got in first,
    or if the table is not at ``expected_version`` (the version a read-modify-write read, so that
    no update is lost: ``v = table_version(...).version``, ``read_table(..., as_of=v)``, then write).
    """
    check_table_name(table)
    partition_by = list(partition_by)
    missing = [c for c in partition_by if c not in frame.columns]
    if missing:
        raise ValueError(f"table {table!r}: partition columns {missing} not in the frame")
    if partitions is not None and mode != "replace_partitions":
        raise ValueError(f"table {table!r}: 'partitions' only goes with mode='replace_partitions'")
    frame = _delta_frame(frame, table, partition_by)
    current = delta_table(lake, table)
    if expected_version is not None and (current is None or current.version() != expected_version):
        found = "no table" if current is None else f"version {current.version()}"
        raise TableConflict(f"table {table}: expected version {expected_version}, found {found}; nothing was committed")
    if current is not None and current.metadata().partition_columns != partition_by and mode == "replace_partitions":
        raise ValueError(
            f"table {table!r} is partitioned by {current.metadata().partition_columns}, "
            f"this write by {partition_by}: replace the whole table to change its partitioning"
        )
    if current is None:
        return _write_whole(lake, table, None, frame, partition_by)
    schema = _table_schema(current)
    if mode == "replace_partitions":
        target = _merged_schema(schema, frame.schema)
        if target != schema:  # a new column or a wider type: the whole table, in the new schema
            kept = _rows_outside(_read(lake, current), frame, partition_by, [_key(p, partition_by, table) for p in partitions or ()])
            return _write_whole(lake, table, current, _in_schema(pl.concat([kept, frame], how="diagonal_relaxed"), target), partition_by)
        frame = _in_schema(frame, target)
    elif dict(frame.schema) == dict(schema):
        frame = frame.select(list(schema))  # the table's column order: only a real change rewrites
    if _delta_schema(frame).to_json() != current.schema().to_json() or current.metadata().partition_columns != partition_by:
        return _write_whole(lake, table, current, frame, partition_by)
    return _write_changes(lake, table, current, frame, partition_by, mode, partitions)


def _rows_outside(existing: pl.DataFrame, frame: pl.DataFrame, partition_by: list[str], listed: list[tuple]) -> pl.DataFrame:
    """The rows of ``existing`` in partitions that ``frame`` does not replace (nor ``listed`` removes)."""
    if not partition_by:
        return existing.clear()
    types = {c: existing.schema[c] for c in partition_by}
    owned = pl.concat([frame.select(partition_by).cast(types),
                       pl.DataFrame(listed, schema=types, orient="row")]).unique()
    return existing.join(owned, on=partition_by, how="anti", nulls_equal=True)


def _write_changes(
    lake: Lake, table: str, current: DeltaTable, frame: pl.DataFrame, partition_by: list[str],
    mode: WriteMode, partitions: Sequence[Mapping[str, Any]] | None,
) -> TableWrite:
    """Partitions whose file would change get a new one; one commit adds and removes files."""
    schema_json = _schema_json(frame, partition_by)
    existing = _files_by_partition(current, partition_by)
    files = _partition_files(frame, partition_by, schema_json)
    written, unchanged, actions = [], [], []
    new_files = {}
    for key, (relpath, data, rows, values) in files.items():
        name = _partition_dir_name(values)
        if [p for p, _ in existing.get(key, [])] == [relpath]:
            unchanged.append(name)
            continue
        new_files[relpath] = data
        actions.append(_add_action(relpath, data, rows, values))
        actions.extend(_remove_action(path, size, values) for path, size in existing.get(key, []))
        written.append(name)
    owned = set(existing) if mode == "replace_table" else {_key(p, partition_by, table) for p in partitions or ()}
    removed = []
    for key in sorted(owned - set(files), key=str):
        if key in existing:
            values = dict(zip(partition_by, key))
            actions.extend(_remove_action(path, size, values) for path, size in existing[key])
            removed.append(_partition_dir_name(values))
    if not actions:
        return TableWrite(table, (), tuple(unchanged), (), frame.height, current.version(), False)
    _put_files(lake, table, new_files)
    _commit(current, table, lambda props: current.create_write_transaction(
        actions, "append", _delta_schema(frame), partition_by, commit_properties=props), lake, read_version=current.version())
    return TableWrite(table, tuple(written), tuple(unchanged), tuple(removed), frame.height, _latest_version(current), True)


def _write_whole(
    lake: Lake, table: str, current: DeltaTable | None, frame: pl.DataFrame, partition_by: list[str]
) -> TableWrite:
    """Every partition in a new file, one commit that replaces the whole table (a new table, or a
    schema or partitioning change)."""
    keys = frame.select(partition_by).unique().rows() if partition_by else [()]
    names = tuple(sorted(_partition_dir_name(dict(zip(partition_by, k))) for k in keys))
    before = current.metadata().partition_columns if current is not None else []
    removed = tuple(sorted({_partition_dir_name(dict(zip(before, k))) for k in _files_by_partition(current, before)} - set(names)))
    if current is not None and before != partition_by:  # delta-rs rewrites it, in files of its own naming
        _commit(current, table, lambda props: write_deltalake(
            current, frame.to_arrow(), mode="overwrite", schema_mode="overwrite", partition_by=partition_by or None,
            commit_properties=props), lake, read_version=current.version())
        return TableWrite(table, names, (), removed, frame.height, _latest_version(current), True)
    files = _partition_files(frame, partition_by, _schema_json(frame, partition_by))
    _put_files(lake, table, {relpath: data for relpath, data, _, _ in files.values()})
    adds = [_add_action(relpath, data, rows, values) for relpath, data, rows, values in files.values()]
    if current is None:
        _commit(None, table, lambda props: create_table_with_add_actions(
            lake.uri(table), _delta_schema(frame), adds, mode="error", partition_by=partition_by,
            configuration=TABLE_CONFIGURATION, storage_options=delta_storage_options(lake), commit_properties=props),
            lake, read_version=None)
        return TableWrite(table, names, (), removed, frame.height, 0, True)
    _commit(current, table, lambda props: current.create_write_transaction(
        adds, "overwrite", _delta_schema(frame), partition_by, commit_properties=props), lake, read_version=current.version())
    return TableWrite(table, names, (), removed, frame.height, _latest_version(current), True)


def _commit(
    current: DeltaTable | None, table: str, make: Callable[[CommitProperties], object], lake: Lake, *, read_version: int | None
) -> None:
    """Run one commit with this lake's commit info; a lost race becomes `TableConflict`."""
    info: dict[str, Any] = {COMMIT_KEY: dict(lake.commit_info)}
    if read_version is not None:
        info["readVersion"] = read_version
    try:
        make(CommitProperties(custom_metadata=info, max_commit_retries=0))
    except CommitFailedError as exc:
        raise TableConflict(
            f"table {table}: another writer committed while this write was prepared on version "
            f"{read_version}; nothing was committed ({' '.join(str(exc).split())})"
        ) from exc
    except DeltaError as exc:
        if current is None and "already exists" in str(exc):
            raise TableConflict(f"table {table}: created by another writer meanwhile; nothing was committed") from exc
        raise


def _latest_version(table: DeltaTable) -> int:
    table.update_incremental()
    return table.version()


def _put_files(lake: Lake, table: str, files: Mapping[str, bytes]) -> None:
    """Data files before the commit that references them (invisible until then): each written
    whole (rename on disk, one PUT on S3; concurrently on S3)."""
    if lake.is_local:
        for relpath, data in files.items():
            write_object(lake, f"{table}/{relpath}", data)
    elif files:
        lake.fs.pipe({lake.path(table, relpath): data for relpath, data in files.items()})


def _partition_files(
    frame: pl.DataFrame, partition_by: list[str], schema_json: str
) -> dict[tuple, tuple[str, bytes, int, dict[str, Any]]]:
    """{partition key: (relative path, Parquet bytes, rows, partition values)}; the file name is
    the hash of the table schema and the bytes."""
    if partition_by:
        parts = frame.partition_by(partition_by, as_dict=True, maintain_order=True, include_key=False)
    else:
        parts = {(): frame}
    out = {}
    for key, part in sorted(parts.items(), key=lambda item: tuple(str(v) for v in item[0])):
        values = dict(zip(partition_by, key))
        buffer = io.BytesIO()
        pq.write_table(part.to_arrow(), buffer, compression="zstd")
        data = buffer.getvalue()
        digest = hashlib.sha256(schema_json.encode() + b"\n" + data).hexdigest()[:32]
        relpath = "/".join(p for p in (_partition_dir_name(values), f"part-{digest}.parquet") if p)
        out[tuple(key)] = (relpath, data, part.height, values)
    return out


def _add_action(relpath: str, data: bytes, rows: int, values: Mapping[str, Any]) -> AddAction:
    partition_values = {c: _delta_partition_value(v) for c, v in values.items()}
    return AddAction(relpath, len(data), partition_values, int(time.time() * 1000), True, f'{{"numRecords":{rows}}}')


def _remove_action(path: str, size: int, values: Mapping[str, Any]) -> RemoveAction:
    partition_values = {c: _delta_partition_value(v) for c, v in values.items()}
    return RemoveAction(path, True, int(time.time() * 1000), size, partition_values)


def _files_by_partition(table: DeltaTable | None, partition_by: Sequence[str]) -> dict[tuple, list[tuple[str, int]]]:
    """The table's current files: {partition key: [(path, size)]}, paths as written (decoded)."""
    if table is None:
        return {}
    actions = pl.DataFrame(table.get_add_actions(flatten=True))
    out: dict[tuple, list[tuple[str, int]]] = {}
    if actions.is_empty():
        return out
    keys = actions.select([f"partition.{c}" for c in partition_by]).rows() if partition_by else [()] * actions.height
    for key, path, size in zip(keys, actions["path"], actions["size_bytes"]):
        out.setdefault(tuple(key), []).append((unquote(path), size))
    return {k: sorted(v) for k, v in out.items()}


def _key(partition: Mapping[str, Any], partition_by: Sequence[str], table: str) -> tuple:
    if sorted(partition) != sorted(partition_by):
        raise ValueError(f"table {table!r}: partition {dict(partition)} does not name the partition columns {list(partition_by)}")
    return tuple(partition[c] for c in partition_by)


def _partition_dir_name(values: Mapping[str, Any]) -> str:
    """``col=value/...`` (Delta readers take the values from the log; the names are for people).
    A value with characters outside ``[A-Za-z0-9._-]`` is named by its hash instead."""
    parts = []
    for column, value in values.items():
        text = _delta_partition_value(value)
        if text is None:
            text = DEFAULT_PARTITION
        elif not _SAFE_DIR_VALUE.fullmatch(text):
            text = "h" + hashlib.sha256(text.encode()).hexdigest()[:16]
        parts.append(f"{column}={text}")
    return "/".join(parts)


def _delta_partition_value(value: Any) -> str | None:
    """A partition value as the Delta log spells it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


# ---------------------------------------------------------------------------------------------
# Schemas


def _delta_frame(frame: pl.DataFrame, table: str, partition_by: Sequence[str]) -> pl.DataFrame:
    """The frame in types a Delta table holds (and every Delta reader reads): untyped nulls and
    categoricals as strings, unsigned integers widened, timestamps in microseconds (UTC if zoned)."""
    seen: dict[str, str] = {}
    for name in frame.columns:
        if name.lower() in seen:
            raise ValueError(f"table {table!r}: columns {seen[name.lower()]!r} and {name!r} differ only in case, "
                             "which Delta Lake (and SQL engines) take for one column; rename one")
        seen[name.lower()] = name
    schema = frame.schema
    casts = {name: _delta_dtype(dtype, f"table {table!r}: column {name!r}") for name, dtype in schema.items()}
    for column in partition_by:
        if casts[column] not in _PARTITION_TYPES:
            raise ValueError(f"table {table!r}: partition column {column!r} is {casts[column]}; use a string, integer, date or boolean")
    changed = {name: dtype for name, dtype in casts.items() if dtype != schema[name]}
    return frame.cast(changed) if changed else frame


def _delta_dtype(dtype: pl.DataType, where: str) -> pl.DataType:
    if dtype == pl.Null or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return pl.String
    if dtype in _UNSIGNED:
        return _UNSIGNED[dtype]
    if isinstance(dtype, pl.Datetime):
        return pl.Datetime("us", "UTC" if dtype.time_zone else None)
    if isinstance(dtype, (pl.List, pl.Array)):
        return pl.List(_delta_dtype(dtype.inner, where))
    if isinstance(dtype, pl.Struct):
        return pl.Struct([pl.Field(f.name, _delta_dtype(f.dtype, where)) for f in dtype.fields])
    if isinstance(dtype, (pl.Duration, pl.Time, pl.Object)) or dtype == pl.Int128:
        raise ValueError(f"{where} is {dtype}, which a Delta table cannot hold; store it as a number or text")
    return dtype


def _delta_schema(frame: pl.DataFrame) -> Schema:
    return Schema.from_arrow(frame.head(0).to_arrow().schema)


def _schema_json(frame: pl.DataFrame, partition_by: Sequence[str]) -> str:
    return _delta_schema(frame).to_json() + repr(list(partition_by))


def _table_schema(table: DeltaTable) -> pl.Schema:
    """The table's schema in Polars types."""
    return pl.from_arrow(pa.schema(table.schema().to_arrow()).empty_table()).schema


def _merged_schema(table: pl.Schema, frame: pl.Schema) -> pl.Schema:
    """The table's columns in its order, then the frame's new ones; each column in the type both
    fit in (as `pl.concat(how="diagonal_relaxed")` chooses)."""
    both = pl.concat([pl.DataFrame(schema=table), pl.DataFrame(schema=frame)], how="diagonal_relaxed").schema
    return pl.Schema({name: both[name] for name in [*table, *(c for c in frame if c not in table)]})


def _in_schema(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """``frame`` with exactly ``schema``'s columns and types (absent columns as nulls)."""
    return frame.select([
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name) for name, dtype in schema.items()
    ])


# ---------------------------------------------------------------------------------------------
# Reading


def resolve_version(lake: Lake, table: str, as_of: AsOf) -> int | None:
    """The version ``as_of`` names: an int is a version, a string the name of a lock
    (see `trialake.lake.locks`), None the latest."""
    if as_of is None or isinstance(as_of, int):
        if isinstance(as_of, int) and as_of < 0:
            raise ValueError(f"table {table}: version {as_of} is not a version")
        return as_of
    from trialake.lake.locks import locked_version

    return locked_version(lake, as_of, table)


def read_table(
    lake: Lake, table: str, *, columns: Sequence[str] | None = None, as_of: AsOf = None
) -> pl.DataFrame:
    """The table as one frame: its latest version, or the one ``as_of`` names (a version or a
    lock name). An empty frame with no columns if the table does not exist."""
    check_table_name(table)
    version = resolve_version(lake, table, as_of)
    delta = _load_version(lake, table, version)
    if delta is None:
        return pl.DataFrame()
    try:
        return _read(lake, delta, columns)
    except FileNotFoundError as exc:
        if version is None:
            raise
        raise LookupError(f"table {table}: the files of version {version} were removed "
                          "(vacuum keeps only recent and locked versions)") from exc


def _load_version(lake: Lake, table: str, version: int | None) -> DeltaTable | None:
    try:
        delta = delta_table(lake, table, version)
    except DeltaError as exc:
        raise LookupError(f"table {table}: version {version} cannot be read ({' '.join(str(exc).split())})") from exc
    if delta is None and version is not None:
        raise LookupError(f"table {table}: no such table, so no version {version}")
    return delta


def _read(lake: Lake, delta: DeltaTable, columns: Sequence[str] | None = None) -> pl.DataFrame:
    options = None if lake.is_local else polars_storage_options(lake.storage_options) or None
    return pl.read_delta(delta, columns=list(columns) if columns else None, storage_options=options)


def table_exists(lake: Lake, table: str) -> bool:
    """Whether the table has at least one data file in its latest version."""
    check_table_name(table)
    delta = delta_table(lake, table)
    return delta is not None and delta.get_add_actions().num_rows > 0


def scan_table(
    lake: str | Lake, table: str, *, as_of: AsOf = None, storage_options: Mapping[str, Any] | None = None
) -> pl.LazyFrame:
    """A Polars LazyFrame over a lake table (`pl.scan_delta`), for analysts: the latest version,
    or the one ``as_of`` names (a version number or a lock name). With a URL, S3 credentials and
    endpoint come from ``storage_options`` (s3fs style) or else the standard AWS variables.

    >>> scan_table("demo/lake", "gold/adct").filter(pl.col("PARAMCD") == "LESPCT")  # doctest: +SKIP
    >>> scan_table("demo/lake", "gold/endpoints", as_of="primary-analysis")  # doctest: +SKIP
    """
    if isinstance(lake, Lake):
        handle = lake
    else:
        from trialake.config import storage_options_from_env

        url = lake if "://" in lake else os.path.abspath(lake)
        options = storage_options if storage_options is not None else storage_options_from_env(os.environ)
        handle = Lake(url=url.rstrip("/"), storage_options=dict(options))
    check_table_name(table)
    version = resolve_version(handle, table, as_of)
    options = None if handle.is_local else polars_storage_options(handle.storage_options) or None
    return pl.scan_delta(handle.uri(table), version=version, storage_options=options)


# ---------------------------------------------------------------------------------------------
# Removing


def delete_partition(lake: Lake, table: str, partition: Mapping[str, Any]) -> bool:
    """Remove one partition of a table in one commit; returns whether it existed."""
    check_table_name(table)
    current = delta_table(lake, table)
    if current is None:
        return False
    partition_by = current.metadata().partition_columns
    key = _key(partition, partition_by, table)
    files = _files_by_partition(current, partition_by).get(tuple(_typed(current, partition_by, key)), [])
    if not files:
        return False
    actions = [_remove_action(path, size, dict(zip(partition_by, key))) for path, size in files]
    _commit(current, table, lambda props: current.create_write_transaction(
        actions, "append", current.schema(), partition_by, commit_properties=props), lake, read_version=current.version())
    return True


def _typed(table: DeltaTable, partition_by: Sequence[str], key: tuple) -> tuple:
    """A partition key in the types the table's add actions report (e.g. a date given as text)."""
    schema = _table_schema(table)
    return tuple(pl.Series([v]).cast(schema[c], strict=False)[0] if v is not None else None for c, v in zip(partition_by, key))


def delete_table(lake: Lake, table: str) -> None:
    """Remove every row of a table in one commit. The table's history stays (locks and audit
    still need it); `vacuum_lake` removes the files once no kept version needs them."""
    check_table_name(table)
    current = delta_table(lake, table)
    if current is None or current.get_add_actions().num_rows == 0:
        return
    partition_by = current.metadata().partition_columns
    actions = [
        _remove_action(path, size, dict(zip(partition_by, key)))
        for key, files in _files_by_partition(current, partition_by).items() for path, size in files
    ]
    _commit(current, table, lambda props: current.create_write_transaction(
        actions, "append", current.schema(), partition_by, commit_properties=props), lake, read_version=current.version())


# ---------------------------------------------------------------------------------------------
# Versions and history


def table_version(lake: Lake, table: str) -> TableVersion | None:
    """The table's id and latest version (None if there is no such table)."""
    check_table_name(table)
    delta = delta_table(lake, table)
    return None if delta is None else TableVersion(delta.metadata().id, delta.version())


def table_history(lake: Lake, table: str, *, limit: int | None = None) -> list[Commit]:
    """The table's versions, newest first (the last ``limit`` of them)."""
    check_table_name(table)
    delta = delta_table(lake, table)
    if delta is None:
        return []
    return [
        Commit(
            version=int(entry["version"]),
            timestamp=datetime.datetime.fromtimestamp(entry["timestamp"] / 1000, datetime.UTC),
            operation=str(entry.get("operation", "")),
            info=entry.get(COMMIT_KEY) or {},
        )
        for entry in delta.history(limit)
    ]


def versions_by_run(lake: Lake, table: str, run_id: str) -> list[int]:
    """The versions of ``table`` that run ``run_id`` committed, newest first: the run's commits
    are the newest ones of the table, so the history is read back only until the first commit
    of another run (in pages of growing size)."""
    limit = 8
    while True:
        history = table_history(lake, table, limit=limit)
        mine = []
        for commit in history:
            if commit.info.get("run_id") != run_id:
                return mine
            mine.append(commit.version)
        if len(history) < limit:
            return mine
        limit *= 4


def file_names(lake: Lake, table: str, version: int | None = None) -> frozenset[str]:
    """The data files of a version of the table (the latest by default), by path. Files written
    by `write_table` are named by the hash of their schema and bytes: equal names, equal bytes."""
    delta = _load_version(lake, table, version)
    return frozenset() if delta is None else frozenset(unquote(p) for p in delta.get_add_actions().column("path").to_pylist())


def list_tables(lake: Lake) -> list[str]:
    """Every Delta table of the lake (``<zone>/<name>`` with a ``_delta_log/``), sorted."""
    return sorted(
        f"{zone}/{name}" for zone in ZONES for name, is_folder in list_folder(lake, zone)
        if is_folder and ("_delta_log", True) in list_folder(lake, f"{zone}/{name}")
    )
