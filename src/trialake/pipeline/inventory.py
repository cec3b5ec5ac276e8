"""What arrived in the landing area since the last run, by path, size and version, then sha256.

The manifest ``restricted/landing_files`` holds every landing file seen (its path may carry PHI,
so it lives in restricted/) with the sha256 of the bytes seen. A file is new when its path, size
or version (mtime or ETag) is not in the manifest; stages read new files once, hash them, and
give the hashes back for the manifest. Every file is accounted for: files under a hidden name or
folder, and files outside dicom/ and clinical/ (other than the subject key), are rejected with a
reason that says to move them.
"""
from __future__ import annotations

from collections.abc import Collection

import polars as pl

from trialake.lake import LandingFile, compute_sha256, list_landing_files, object_version, read_landing_bytes, read_table, write_table
from trialake.lineage import REJECTION_SCHEMA
from trialake.pipeline.context import RunContext
from trialake.pipeline.rejections import publish_rejections

MANIFEST = "restricted/landing_files"
MANIFEST_SCHEMA = {"relpath": pl.String, "size": pl.Int64, "version": pl.String, "sha256": pl.String, "area": pl.String}
KEY_PATH = "keys/subject_key.csv"
DATA_AREAS = ("dicom", "clinical")
STRAY_AREA, STRAY_STAGE = "other", "landing"
HIDDEN_REASON = ("hidden file or folder name (starting with '.'): the lake does not read hidden files; if the file "
                 "belongs to the trial give it a visible name, else delete it from the landing area")
STRAY_REASON = ("file outside dicom/ and clinical/ (keys/ holds subject_key.csv only): move it into dicom/ or "
                "clinical/, or remove it from the landing area")


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
    manifest: pl.DataFrame, area: str, listed: list[LandingFile], hashed: dict[str, str], *, retry: Collection[str] = ()
) -> pl.DataFrame:
    """The manifest after a stage: the area's rows are the files listed now, with their sha256
    (from ``hashed`` for files read in this run, else as recorded before). Files in ``retry`` (not
    settled this run: held back, or their task failed) keep the row recorded before, or none, so
    the next run reads them again."""
    before = {row["relpath"]: row for row in manifest.filter(pl.col("area") == area).iter_rows(named=True)}
    rows = [
        before[f.relpath] if f.relpath in retry else
        {"relpath": f.relpath, "size": f.size, "version": f.version,
         "sha256": hashed.get(f.relpath, before.get(f.relpath, {}).get("sha256")), "area": area}
        for f in listed
        if f.relpath not in retry or f.relpath in before
    ]
    current = pl.DataFrame(rows, schema=MANIFEST_SCHEMA)
    return pl.concat([manifest.filter(pl.col("area") != area), current]).sort("area", "relpath")


def write_manifest(ctx: RunContext, manifest: pl.DataFrame) -> None:
    """Publish the manifest (unchanged bytes are not rewritten)."""
    write_table(ctx.lake, MANIFEST, manifest.sort("area", "relpath"))


def hidden_rejection(sha256: str, run_id: str, stage: str) -> dict[str, object]:
    """The silver/rejections row of a file under a hidden name or folder."""
    return {"source_sha256": sha256, "source_row": None, "stage": stage, "reason": HIDDEN_REASON, "run_id": run_id}


def list_stray_files(ctx: RunContext) -> list[LandingFile]:
    """Landing files outside dicom/ and clinical/, except the subject key."""
    fs, root = ctx.landing.fs, ctx.landing.path()
    files: list[LandingFile] = []
    for info in fs.ls(root, detail=True):
        name = info["name"].rstrip("/").rsplit("/", 1)[-1]
        if info["type"] != "directory":
            files.append(LandingFile(relpath=name, size=int(info["size"]), version=object_version(info)))
        elif name not in DATA_AREAS:
            files += [f for f in list_landing_files(ctx.landing, name) if f.relpath != KEY_PATH]
    return sorted(files, key=lambda f: f.relpath)


def record_stray_files(ctx: RunContext) -> int:
    """Reject new files outside dicom/ and clinical/ (once each: they enter the manifest); returns
    how many new ones this run found."""
    manifest = read_manifest(ctx)
    listed = list_stray_files(ctx)
    new = select_new(listed, manifest)
    hashed = {path: compute_sha256(data) for path, data in read_landing_bytes(ctx.landing, [f.relpath for f in new]).items()}
    rows = [{"source_sha256": sha, "source_row": None, "stage": STRAY_STAGE, "reason": STRAY_REASON, "run_id": ctx.run_id}
            for sha in hashed.values()]
    publish_rejections(ctx, pl.DataFrame(rows, schema=REJECTION_SCHEMA), stages=[STRAY_STAGE], reprocessed=set(hashed.values()))
    write_manifest(ctx, derive_manifest(manifest, STRAY_AREA, listed, hashed))
    return len(new)
