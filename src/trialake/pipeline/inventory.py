"""What arrived in the landing area since the last run, by path, size and version, then sha256.

The manifest ``restricted/landing_files`` holds every landing file seen (its path may carry PHI,
so it lives in restricted/) with the sha256 of the bytes seen. A file is new when its path, size
or version (mtime or ETag) is not in the manifest; stages read new files once, hash them, and
give the hashes back for the manifest.
"""
from __future__ import annotations

import polars as pl

from trialake.lake import LandingFile, list_landing_files, read_table, write_table
from trialake.pipeline.context import RunContext

MANIFEST = "restricted/landing_files"
MANIFEST_SCHEMA = {"relpath": pl.String, "size": pl.Int64, "version": pl.String, "sha256": pl.String, "area": pl.String}


def read_manifest(ctx: RunContext) -> pl.DataFrame:
    """The landing manifest (empty with the right columns before the first run)."""
    manifest = read_table(ctx.lake, MANIFEST)
    return manifest if not manifest.is_empty() else pl.DataFrame(schema=MANIFEST_SCHEMA)


def list_area(ctx: RunContext, area: str) -> list[LandingFile]:
    """Every landing file of an area ("dicom", "clinical", "keys")."""
    return list_landing_files(ctx.landing, area)


def select_new(files: list[LandingFile], manifest: pl.DataFrame) -> list[LandingFile]:
    """Files whose path, size or version the manifest has not seen."""
    seen = set(manifest.select("relpath", "size", "version").iter_rows())
    return [f for f in files if (f.relpath, f.size, f.version) not in seen]


def derive_manifest(
    manifest: pl.DataFrame, area: str, listed: list[LandingFile], hashed: dict[str, str]
) -> pl.DataFrame:
    """The manifest after a stage: the area's rows are the files listed now, with their sha256
    (from ``hashed`` for files read in this run, else as recorded before)."""
    known = {row[0]: row[1] for row in manifest.filter(pl.col("area") == area).select("relpath", "sha256").iter_rows()}
    rows = [
        {"relpath": f.relpath, "size": f.size, "version": f.version, "sha256": hashed.get(f.relpath, known.get(f.relpath)), "area": area}
        for f in listed
    ]
    current = pl.DataFrame(rows, schema=MANIFEST_SCHEMA)
    return pl.concat([manifest.filter(pl.col("area") != area), current]).sort("area", "relpath")


def write_manifest(ctx: RunContext, manifest: pl.DataFrame) -> None:
    """Publish the manifest (unchanged bytes are not rewritten)."""
    write_table(ctx.lake, MANIFEST, manifest.sort("area", "relpath"))
