"""Volumetry stage: every usable CT series not yet measured with the current method and
parameters is measured (one task per series), with a QC picture and a mask file per series."""
from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, replace

import polars as pl

from trialake.imaging import NotMeasurable, VolumetryParams, load_series, measure_volume
from trialake.imaging import render_qc_png, write_masks_nifti
from trialake.imaging.volumetry import FAILED, FLAGGED, compute_params_hash
from trialake.lake import read_object, read_table, write_object
from trialake.pipeline.context import RunContext
from trialake.pipeline.params import volumetry_method, volumetry_params_hash
from trialake.pipeline.ct_results import write_ct_results
from trialake.pipeline.quality import HeldBack, QualityGate, held_back_of, outcomes_of, publish_checked
from trialake.quality import ValidationOutcome
from trialake.pages import render_page

TABLE = "silver/ct_volumetry"
MEASURES = (
    "lung_volume_ml", "lesion_volume_ml", "ggo_volume_ml", "solid_volume_ml", "lesion_pct", "ggo_pct",
    "solid_pct", "left_lung_volume_ml", "right_lung_volume_ml", "mean_lung_density_hu", "effusion_volume_ml",
    "pneumothorax_volume_ml",
)
#: Per-series quality columns (see trialake.imaging.volumetry.VolumetryResult).
QC = {
    "qc_flags": pl.String, "noise_hu": pl.Float64, "smoothing_mm": pl.Float64, "convolution_kernel": pl.String,
    "kernel_class": pl.String, "right_lung_share": pl.Float64, "airway_found": pl.Boolean, "put_back_pct": pl.Float64,
    "fov_margin_mm": pl.Float64, "scan_margin_mm": pl.Float64, "gantry_tilt_deg": pl.Float64,
    "check_method": pl.String, "check_lung_volume_ml": pl.Float64, "disagreement_pct": pl.Float64,
}
SCHEMA = {
    "USUBJID": pl.String, "series_id": pl.String, "stack": pl.Int64, "ADT": pl.Date, "ADY": pl.Int64,
    "status": pl.String, "reason": pl.String, **{m: pl.Float64 for m in MEASURES}, **QC,
    "method": pl.String, "method_version": pl.String, "params_hash": pl.String,
    "qc_png": pl.String, "mask_nifti": pl.String, "source_sha256": pl.String, "run_id": pl.String,
}


@dataclass(frozen=True)
class VolumetrySummary:
    """What the volumetry step published: series measured (``flagged`` of them with QC flags for the
    core lab) and not measurable this run."""

    measured: int
    failed: int
    flagged: int = 0
    quality: tuple[ValidationOutcome, ...] = ()
    held_back: tuple[HeldBack, ...] = ()


@dataclass(frozen=True)
class SeriesJob:
    """One series to measure: where its de-identified slices are and when it was acquired."""

    USUBJID: str
    series_id: str
    stack: int
    ADT: datetime.date | None
    ADY: int | None
    object_names: tuple[str, ...]
    source_sha256: str


def plan_volumetry(ctx: RunContext, params: VolumetryParams) -> list[SeriesJob]:
    """Usable series chosen for volumetry (main stack, the soft kernel of a study that has both)
    without a result for this method version and parameters."""
    series = read_table(ctx.lake, "silver/ct_series")
    if series.is_empty():
        return []
    params_hash = volumetry_params_hash(params)
    done = read_table(ctx.lake, TABLE)
    measured = set(done.filter(pl.col("params_hash") == params_hash)["series_id"]) if not done.is_empty() else set()
    chosen = pl.col("volumetry_selected") if "volumetry_selected" in series.columns else pl.lit(True)
    todo = series.filter((pl.col("status") == "usable") & chosen & ~pl.col("series_id").is_in(list(measured)))
    return [
        SeriesJob(r["USUBJID"], r["series_id"], r["stack"], r["acquisition_date"], r["ADY"], tuple(r["object_names"]), r["source_sha256"])
        for r in todo.sort("USUBJID", "series_id").iter_rows(named=True)
    ]


def measure_series(ctx: RunContext, job: SeriesJob, params: VolumetryParams) -> dict:
    """Measure one series; a series that cannot be measured gets status "failed" and the reason."""
    base = {"USUBJID": job.USUBJID, "series_id": job.series_id, "stack": job.stack, "ADT": job.ADT, "ADY": job.ADY,
            "source_sha256": job.source_sha256, "run_id": ctx.run_id}
    segmenter, check = volumetry_method(params)
    method = {"method": segmenter.name, "method_version": segmenter.version,
              "params_hash": compute_params_hash(params, segmenter, check)}
    try:
        files = [read_object(ctx.lake, f"bronze/dicom/{name}") for name in job.object_names]
        volume = load_series(files)
        result = measure_volume(volume, params, segmenter, check)
    except (NotMeasurable, ValueError) as exc:
        return {**base, **method, "status": FAILED, "reason": " ".join(str(exc).split())}
    stem = f"{job.USUBJID}/{job.series_id}"
    png = render_qc_png(volume, result, subject=job.USUBJID, day=job.ADY)
    qc_png = write_object(ctx.lake, f"reports/qc/{stem}.png", png)
    mask = write_object(ctx.lake, f"silver/ct_masks/{stem}.nii.gz", write_masks_nifti(volume, result))
    dicom_results = write_ct_results(ctx, job.USUBJID, job.series_id, files, volume, result)  # DICOM SEG and SR
    return {**base, **result.to_record(), "qc_png": qc_png, "mask_nifti": mask,
            **dicom_results}


def publish_volumetry(ctx: RunContext, gate: QualityGate, rows: Sequence[dict]) -> VolumetrySummary:
    """Add this run's results to silver/ct_volumetry (one row per series, method and parameters),
    with every row's study day taken from silver/ct_series as it is now (it follows the subject's
    first dose, which may arrive or change after the series was measured), and rewrite the QC
    index page."""
    failed = sum(r["status"] == FAILED for r in rows)
    summary = VolumetrySummary(len(rows) - failed, failed, flagged=sum(r["status"] == FLAGGED for r in rows))
    existing = read_table(ctx.lake, TABLE)
    if existing.is_empty():
        existing = pl.DataFrame(schema=SCHEMA)
    else:  # results written before a column existed get it empty
        missing = [pl.lit(None, dtype).alias(name) for name, dtype in SCHEMA.items() if name not in existing.columns]
        existing = existing.with_columns(missing).select(list(SCHEMA)).cast(SCHEMA)
    new = pl.DataFrame(list(rows), schema=SCHEMA, orient="row") if rows else pl.DataFrame(schema=SCHEMA)
    table = pl.concat([new, existing]).unique(["series_id", "params_hash"], keep="first")
    order = ["USUBJID", "ADY", "series_id", "params_hash"]
    table = _with_current_study_days(table, read_table(ctx.lake, "silver/ct_series")).sort(order, nulls_last=True)
    if new.is_empty() and table.equals(existing.sort(order, nulls_last=True)):
        return summary
    outcome = publish_checked(ctx, gate, TABLE, table, partition_by=["USUBJID"], mode="replace_partitions")
    published = read_table(ctx.lake, TABLE)
    if not published.is_empty():
        write_object(ctx.lake, "reports/qc/index.html", render_qc_index(published).encode())
    return replace(summary, quality=tuple(outcomes_of([outcome])), held_back=held_back_of([outcome]))


def _with_current_study_days(table: pl.DataFrame, series: pl.DataFrame) -> pl.DataFrame:
    """``ADY`` of each measured series as silver/ct_series has it now (kept for series no longer there)."""
    if series.is_empty():
        return table
    current = series.select("series_id", pl.col("ADY").cast(pl.Int64).alias("_ady"), pl.lit(True).alias("_known")).unique("series_id")
    return (
        table.join(current, on="series_id", how="left", maintain_order="left")
        .with_columns(pl.when(pl.col("_known")).then(pl.col("_ady")).otherwise(pl.col("ADY")).alias("ADY"))
        .select(list(SCHEMA))
    )


def render_qc_index(table: pl.DataFrame) -> str:
    """The imaging core lab's QC page: one row per measured, flagged or failed series, linked pictures;
    flagged and failed series first."""
    order = pl.when(pl.col("status") == FAILED).then(0).when(pl.col("status") == "measured").then(2).otherwise(1)
    rows = [
        {"USUBJID": r["USUBJID"], "ADY": r["ADY"], "status": r["status"],
         "values": ["" if r[m] is None else f"{r[m]:.1f}" for m in _QC_MEASURES],
         "kernel": r.get("kernel_class") or "", "reason": r["reason"] or "",
         "picture": r["qc_png"][len("reports/qc/"):] if r["qc_png"] else None}
        for r in table.with_columns(_order=order).sort("_order", "USUBJID", "ADY").iter_rows(named=True)
    ]
    header = ("USUBJID", "ADY", "status", "lung mL", "lesion %", "GGO %", "solid %", "effusion mL", "pneumothorax mL",
              "noise HU", "kernel", "reason / flags", "QC")
    return render_page("qc_index.html.j2", title="Volumetry QC", header=header, rows=rows)


_QC_MEASURES = ("lung_volume_ml", "lesion_pct", "ggo_pct", "solid_pct", "effusion_volume_ml", "pneumothorax_volume_ml", "noise_hu")
