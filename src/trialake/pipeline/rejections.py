"""silver/rejections: every rejected file or row, with a reason a data manager can act on."""
from __future__ import annotations

from collections.abc import Collection

import polars as pl

from trialake.lake import read_table, write_table
from trialake.lineage import REJECTION_SCHEMA as SCHEMA
from trialake.pipeline.context import RunContext

TABLE = "silver/rejections"
_IDENTITY = ["source_sha256", "source_row", "stage", "reason"]


def derive_stage_rejections(
    existing: pl.DataFrame, new: pl.DataFrame, *, reprocessed: Collection[str] | None
) -> pl.DataFrame:
    """A stage's rejections after a run.

    Rows of sources that were reprocessed (all of them when ``reprocessed`` is None) are replaced
    by ``new``; a rejection that was already recorded keeps its first run id, so re-running on the
    same inputs changes nothing.
    """
    existing = existing.select(list(SCHEMA)).cast(SCHEMA) if not existing.is_empty() else pl.DataFrame(schema=SCHEMA)
    new = new.select(list(SCHEMA)).cast(SCHEMA)
    kept = existing if reprocessed is None else existing.filter(~pl.col("source_sha256").is_in(list(reprocessed)))
    if reprocessed is None:
        kept = kept.clear()
    first_run = existing.select(*_IDENTITY, pl.col("run_id").alias("_first_run"))
    refreshed = (
        new.join(first_run, on=_IDENTITY, how="left", nulls_equal=True)
        .with_columns(pl.coalesce("_first_run", "run_id").alias("run_id"))
        .drop("_first_run")
    )
    return pl.concat([kept, refreshed]).unique(subset=_IDENTITY, keep="first").sort(_IDENTITY, nulls_last=True)


def publish_rejections(
    ctx: RunContext, new: pl.DataFrame, *, stages: Collection[str], reprocessed: Collection[str] | None
) -> int:
    """Merge rejections into silver/rejections (one partition per stage) for the stages a step
    owns, in one commit; rows in ``new`` carry their stage. Returns how many rejections those
    stages now hold."""
    current = read_table(ctx.lake, TABLE)
    merged = []
    for stage in sorted(stages):
        existing = current.filter(pl.col("stage") == stage) if not current.is_empty() else pl.DataFrame(schema=SCHEMA)
        merged.append(derive_stage_rejections(existing, new.filter(pl.col("stage") == stage), reprocessed=reprocessed))
    frame = pl.concat(merged) if merged else pl.DataFrame(schema=SCHEMA)
    write_table(ctx.lake, TABLE, frame, partition_by=["stage"], mode="replace_partitions",
                partitions=[{"stage": stage} for stage in stages])
    return frame.height
