"""Upgrade, in place, a lake written before tables were Delta tables.

Such a lake holds each table as plain Hive-partitioned Parquet, one ``part-0.parquet`` per
partition, with the partition columns inside the files too. Each such table becomes a Delta table
in one commit (version 0, with the same rows and types), checked against the old files, and only
then are the old files removed; a run killed half-way leaves every table readable one way or the
other, and the next upgrade finishes the job. ``_lake.json`` marks a lake that needs no upgrade,
so a run checks one object, not every table.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl

from trialake.lake.storage import ZONES, Lake, list_folder, read_object, write_object
from trialake.lake.tables import delta_table, read_table, write_table

LAKE_FORMAT = "_lake.json"
FORMAT = {"tables": "delta", "version": 1}
LEGACY_FILE = "part-0.parquet"


@dataclass(frozen=True)
class TableUpgrade:
    """One table converted: its partition columns, rows, and columns renamed (old -> new)
    because a Delta table cannot hold names that differ only in case."""

    table: str
    partition_by: tuple[str, ...]
    rows: int
    renamed: tuple[tuple[str, str], ...] = ()


def is_upgraded(lake: Lake) -> bool:
    """Whether the lake is marked as holding Delta tables only."""
    try:
        read_object(lake, LAKE_FORMAT)
    except FileNotFoundError:
        return False
    return True


def upgrade_lake(lake: Lake) -> list[TableUpgrade]:
    """Convert every plain-Parquet table to a Delta table, remove the old files, mark the lake.
    Nothing is lost: a table's old files are removed only once the Delta table reads back the
    same rows. Idempotent."""
    done = [_upgrade_table(lake, table, files) for table, files in find_legacy_tables(lake).items()]
    write_object(lake, LAKE_FORMAT, json.dumps(FORMAT).encode())
    return [d for d in done if d is not None]


def find_legacy_tables(lake: Lake) -> dict[str, list[str]]:
    """{table: lake-relative paths of its ``part-0.parquet`` files} for every table that still has
    some. Only folders that look like tables (a ``part-0.parquet`` or ``column=value`` folders)
    are searched, so folders of other objects (DICOM copies, reports) are listed once, not walked."""
    found: dict[str, list[str]] = {}
    prefix = len(lake.path()) + 1
    for zone in ZONES:
        for name, is_folder in list_folder(lake, zone):
            children = [child for child, _ in list_folder(lake, f"{zone}/{name}")] if is_folder else []
            if LEGACY_FILE not in children and not any("=" in c for c in children):
                continue
            files = sorted(p[prefix:] for p in lake.fs.find(lake.path(zone, name)) if p.rsplit("/", 1)[-1] == LEGACY_FILE)
            if files:
                found[f"{zone}/{name}"] = files
    return found


def _upgrade_table(lake: Lake, table: str, files: list[str]) -> TableUpgrade | None:
    """One table to Delta (unless an earlier upgrade committed it already), then its old files go."""
    if delta_table(lake, table) is None:
        frame = pl.concat([_read_legacy(lake, path) for path in files], how="diagonal_relaxed")
        renamed = _distinct_names(frame.columns)
        frame = frame.rename(dict(renamed))
        partition_by = [part.split("=", 1)[0] for part in files[0][len(table) + 1 :].split("/")[:-1]]
        write_table(lake, table, frame, partition_by=partition_by)
        _check_same_rows(table, frame, read_table(lake, table))
        result = TableUpgrade(table, tuple(partition_by), frame.height, tuple(renamed))
    else:
        result = None  # converted by a run that stopped before removing the old files
    lake.fs.rm([lake.path(path) for path in files])
    return result


def _distinct_names(columns: list[str]) -> list[tuple[str, str]]:
    """Renames (old, new) that make the names distinct ignoring case: a later column whose name
    differs from an earlier one only in case gets ``_2`` (``_3`` ...)."""
    taken = {c.lower() for c in columns}
    seen: set[str] = set()
    renames = []
    for column in columns:
        if column.lower() in seen:
            suffix = 2
            while f"{column}_{suffix}".lower() in taken:
                suffix += 1
            renames.append((column, f"{column}_{suffix}"))
            taken.add(f"{column}_{suffix}".lower())
        seen.add(column.lower())
    return renames


def _read_legacy(lake: Lake, relpath: str) -> pl.DataFrame:
    with lake.fs.open(lake.path(relpath), "rb") as handle:
        return pl.read_parquet(handle)


def _check_same_rows(table: str, before: pl.DataFrame, after: pl.DataFrame) -> None:
    """Refuse to go on (keeping the old files) unless the Delta table holds the same rows."""
    if before.height != after.height or set(before.columns) != set(after.columns):
        raise RuntimeError(f"upgrade of {table}: the Delta table does not hold the same rows; the old files are kept")
    aligned = before.select(after.columns).cast(after.schema)
    keys = [c for c, dtype in after.schema.items() if not dtype.is_nested()]
    if not aligned.sort(keys, nulls_last=True).equals(after.sort(keys, nulls_last=True)):
        raise RuntimeError(f"upgrade of {table}: the Delta table does not hold the same rows; the old files are kept")
