"""Is a derived stage up to date with its inputs? Crash-safe re-derivation.

A stage records the fingerprint of its input tables (every published partition's path, size and
mtime or ETag) when it finishes. The next run re-derives it when the inputs' fingerprint differs,
so a run killed between publishing inputs and deriving from them is completed by the next run,
and a changed trial configuration (windows, thresholds, lab conversions) re-derives as well.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

from trialake.lake import object_version, read_object, write_object
from trialake.pipeline.context import RunContext

STATE = "_state"


def compute_fingerprint(ctx: RunContext, tables: Sequence[str]) -> str:
    """sha256 over the trial configuration and the listing of every published partition file of
    ``tables`` (a changed configuration re-derives too)."""
    lines = [ctx.settings.trial.model_dump_json()]
    for table in sorted(tables):
        root = ctx.lake.path(table)
        if not ctx.lake.fs.exists(root):
            lines.append(f"{table} absent")
            continue
        for path, info in sorted(ctx.lake.fs.find(root, detail=True).items()):
            if path.endswith(".parquet") and not path.rsplit("/", 1)[-1].startswith((".", "_")):
                lines.append(f"{path[len(root):]} {info['size']} {object_version(info)}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def is_stale(ctx: RunContext, stage: str, tables: Sequence[str]) -> bool:
    """Whether ``stage`` was never completed on the current version of ``tables``."""
    marker = f"{STATE}/{stage}"
    if not ctx.lake.fs.exists(ctx.lake.path(marker)):
        return True
    return read_object(ctx.lake, marker).decode() != compute_fingerprint(ctx, tables)


def mark_fresh(ctx: RunContext, stage: str, tables: Sequence[str]) -> None:
    """Record that ``stage`` is derived from the current version of ``tables``."""
    write_object(ctx.lake, f"{STATE}/{stage}", compute_fingerprint(ctx, tables).encode())


def forget_stage(ctx: RunContext, stage: str) -> None:
    """Make ``stage`` stale, so that it is derived again (an ad hoc rebuild)."""
    marker = ctx.lake.path(f"{STATE}/{stage}")
    if ctx.lake.fs.exists(marker):
        ctx.lake.fs.rm(marker)
