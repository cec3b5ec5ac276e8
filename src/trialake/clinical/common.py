"""Shared frame helpers for the clinical derivations: lineage, rejections, duplicates."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from trialake.lineage import LINEAGE_COLUMNS, REJECTION_SCHEMA
from trialake.visits import study_day

__all__ = [
    "LINEAGE_COLUMNS",
    "REJECTION_SCHEMA",
    "require_columns",
    "presence",
    "rejections_from",
    "split_rejected",
    "split_exact_duplicates",
    "join_reasons",
    "empty_rejections",
    "with_sdtm_columns",
    "with_study_day",
]



def require_columns(frame: pl.DataFrame, columns: Iterable[str], *, argument: str) -> None:
    """Raise ValueError naming ``argument`` when ``frame`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{argument}: missing required column(s) {', '.join(missing)}")


def join_reasons(*reasons: pl.Expr) -> pl.Expr:
    """'; '-joined non-null reasons, null when there are none."""
    joined = pl.concat_str(list(reasons), separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)


def presence(column: str) -> pl.Expr:
    """"empty" or "given" for a cell, so that a reason can say which of several cells was
    unusable without quoting any of them (reasons never carry cell values)."""
    return pl.when(pl.col(column).str.strip_chars().fill_null("") == "").then(pl.lit("empty")).otherwise(pl.lit("given"))


def rejections_from(rejected: pl.DataFrame, reason: str, *, stage: str) -> pl.DataFrame:
    """silver/rejections rows for ``rejected`` (lineage columns + the string column ``reason``)."""
    return rejected.select(
        "source_sha256", "source_row", pl.lit(stage).alias("stage"), pl.col(reason).alias("reason"), "run_id"
    ).cast(dict(REJECTION_SCHEMA))


def split_rejected(frame: pl.DataFrame, reason: str, *, stage: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split on the string column ``reason`` (null = keep): (kept rows without it, rejections)."""
    rejected = frame.filter(pl.col(reason).is_not_null())
    kept = frame.filter(pl.col(reason).is_null()).drop(reason)
    return kept, rejections_from(rejected, reason, stage=stage)


NO_SUBJECT_REASON = ("USUBJID has no accepted demographics (DM) row: add or correct the subject's DM record "
                     "in the EDC export; the row is read again when it arrives")


def split_unknown_subjects(frame: pl.DataFrame, subjects: pl.DataFrame, *, stage: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows whose USUBJID is in ``subjects``, rejections of the others with ``NO_SUBJECT_REASON``)."""
    unknown = ~pl.col("USUBJID").is_in(subjects["USUBJID"].implode())
    marked = frame.with_columns(pl.when(unknown).then(pl.lit(NO_SUBJECT_REASON)).alias("_no_subject"))
    return split_rejected(marked, "_no_subject", stage=stage)


def split_exact_duplicates(frame: pl.DataFrame, *, stage: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keep the first of rows identical in every non-lineage column, reject the others.

    "First" is the lowest (source_sha256, source_row); the reason names the kept row, so a
    data manager can find it. Rows that differ in any value are all kept. A per-row hash only
    preselects candidates; duplicates are then decided on the values themselves.
    """
    content = [c for c in frame.columns if c not in LINEAGE_COLUMNS]
    row_hash = pl.reduce(lambda a, b: a ^ b, [pl.col(c).hash(seed=i) for i, c in enumerate(content)])
    candidate = frame.select(row_hash.is_duplicated()).to_series()
    if not candidate.any():
        return frame, empty_rejections()
    indexed = frame.with_row_index("_index")
    ordered = indexed.filter(candidate).sort("source_sha256", "source_row", maintain_order=True)
    first = pl.struct("source_sha256", "source_row").first().over(content)
    marked = ordered.with_columns(
        pl.when(pl.int_range(pl.len()).over(content) > 0)
        .then(
            pl.format(
                "exact duplicate of row {} of file {}",
                first.struct.field("source_row"),
                first.struct.field("source_sha256").str.head(12),
            )
        )
        .alias("_duplicate")
    ).filter(pl.col("_duplicate").is_not_null())
    kept = indexed.filter(~pl.col("_index").is_in(marked.get_column("_index").implode())).drop("_index")
    return kept, split_rejected(marked.drop("_index"), "_duplicate", stage=stage)[1]


def empty_rejections() -> pl.DataFrame:
    """A rejections frame with no rows."""
    return pl.DataFrame(schema=REJECTION_SCHEMA)


def with_sdtm_columns(frame: pl.DataFrame, columns: Iterable[str]) -> pl.DataFrame:
    """Add each missing column of ``columns`` as nulls and type all-null ones (strings, or Date for
    names ending in DT), so optional SDTM variables and empty inputs need no special cases."""
    columns = list(columns)
    return frame.with_columns(
        pl.col(c).cast(pl.Date if c.endswith("DT") else pl.String) if c in frame.columns
        else pl.lit(None, pl.Date if c.endswith("DT") else pl.String).alias(c)
        for c in columns
        if c not in frame.columns or frame.schema[c] == pl.Null
    )


def with_study_day(frame: pl.DataFrame, subjects: pl.DataFrame, *, date: str, day: str) -> pl.DataFrame:
    """Add ``day`` (no day 0) from ``date`` and the subject's first-dose date ``RFSTDT``."""
    require_columns(subjects, ["USUBJID", "RFSTDT"], argument="subjects")
    reference = subjects.select("USUBJID", pl.col("RFSTDT").alias("_rfstdt"))
    return (
        frame.join(reference, on="USUBJID", how="left", maintain_order="left")
        .with_columns(study_day(pl.col(date), pl.col("_rfstdt")).alias(day))
        .drop("_rfstdt")
    )
