"""Lineage columns and the rejection record, defined once for every stage (clinical, DICOM, quality)."""
from __future__ import annotations

import polars as pl

#: Columns that tie a lake row to the landing file and row it came from, and the run that wrote it.
LINEAGE_COLUMNS = ("source_sha256", "source_row", "run_id")

#: silver/rejections: a rejected file (source_row null) or row, the stage that rejected it, and a
#: reason a data manager can act on (never the value itself).
REJECTION_SCHEMA = pl.Schema(
    {"source_sha256": pl.String, "source_row": pl.Int64, "stage": pl.String, "reason": pl.String, "run_id": pl.String}
)
