"""The table writer Trialake had before its tables were Delta tables, kept as the reference for the
upgrade tests (lakes it wrote must upgrade in place) and as the floor of the publication
benchmark: each partition one ``part-0.parquet`` holding every column (partition columns too),
replaced in one step (rename on disk, one PUT on S3), skipped when its bytes would not change (on
S3 that comparison downloads the partition), partitions that are gone removed afterwards."""
from __future__ import annotations

import io
from collections.abc import Sequence

import polars as pl
import pyarrow.parquet as pq

from trialake.lake import Lake, write_object

LEGACY_FILE = "part-0.parquet"


def write_legacy_table(lake: Lake, table: str, frame: pl.DataFrame, *, partition_by: Sequence[str] = ()) -> int:
    """Make ``<lake>/<table>/`` equal to ``frame`` the old way; returns the partitions written."""
    root = lake.path(table)
    lake.fs.invalidate_cache(root)
    existing = {p[len(root) + 1:].rsplit("/", 1)[0] if "/" in p[len(root) + 1:] else "": p
                for p in (lake.fs.find(root) if lake.fs.exists(root) else []) if p.endswith("/" + LEGACY_FILE)}
    groups = frame.partition_by(list(partition_by), as_dict=True, maintain_order=True) if partition_by else {(): frame}
    written, keep = 0, set()
    for key, part in sorted(groups.items(), key=lambda item: tuple(str(v) for v in item[0])):
        folder = "/".join(f"{c}={'__HIVE_DEFAULT_PARTITION__' if v is None else v}" for c, v in zip(partition_by, key))
        keep.add(folder)
        buffer = io.BytesIO()
        pq.write_table(part.to_arrow(), buffer, compression="zstd")
        data = buffer.getvalue()
        current = existing.get(folder)
        if current is not None and lake.fs.size(current) == len(data) and lake.fs.cat_file(current) == data:
            continue
        write_object(lake, "/".join(p for p in (table, folder, LEGACY_FILE) if p), data)
        written += 1
    for folder, path in existing.items():
        if folder not in keep:
            lake.fs.rm(path)
    return written
