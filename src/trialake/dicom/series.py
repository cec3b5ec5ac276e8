"""Series assembly and geometry QC: bronze/dicom_instances -> silver/ct_series.

A *stack* is the set of CT instances sharing series UID, orientation and image size (one series
UID may hold several stacks, e.g. a localizer and the axial images); ``stack`` numbers them within
the series, largest first. Slices are ordered by their position along the slice normal, never by
InstanceNumber, and spacing comes from positions. ``stack_kind`` says what volumetry may use:
"axial_volume" (subject to the QC flags), "localizer" or "non_axial" (always unusable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from trialake.imaging.volume import compute_kernel_class
from trialake.visits import study_day

_ORIENTATION = ["orientation_row_x", "orientation_row_y", "orientation_row_z",
                "orientation_col_x", "orientation_col_y", "orientation_col_z"]
_POSITION = ["position_x", "position_y", "position_z"]
_AXIS_LABELS = ("sagittal", "coronal", "axial")

CT_SERIES_SCHEMA: dict[str, pl.DataType] = {
    "USUBJID": pl.String(), "study_id": pl.String(), "series_id": pl.String(), "stack": pl.Int64(),
    "stack_kind": pl.String(), "modality": pl.String(), "n_instances": pl.Int64(), "rows": pl.Int64(),
    "columns": pl.Int64(), "pixel_spacing_mm": pl.Float64(), "pixel_spacing_col_mm": pl.Float64(),
    "slice_spacing_mm": pl.Float64(), "slice_thickness_mm": pl.Float64(), "orientation": pl.String(),
    "gantry_tilt_deg": pl.Float64(), "kvp": pl.Float64(), "convolution_kernel": pl.String(),
    "acquisition_date": pl.Date(), "ADY": pl.Int64(), "status": pl.String(), "qc_reasons": pl.String(),
    "kernel_class": pl.String(), "volumetry_selected": pl.Boolean(), "selection_reason": pl.String(),
    "object_names": pl.List(pl.String()), "source_sha256": pl.String(), "run_id": pl.String(),
}


@dataclass(frozen=True)
class SeriesQcParams:
    """Thresholds of the series QC.

    min_slices: fewer slices than this cannot give a lung volume.
    spacing_rel_tol: a gap may differ from k x the median spacing by this fraction of it.
    duplicate_tol_mm: slices closer than this along the normal share a position.
    max_tilt_deg: larger angles between slice normal and stacking direction (gantry tilt) are
      refused. Below it the voxels are a sheared image whose volumes are right (spacing is taken
      along the normal), and the volumetry records the tilt.
    oblique_limit_deg: a normal further than this from every patient axis is "oblique".
    """

    min_slices: int = 16
    spacing_rel_tol: float = 0.1
    duplicate_tol_mm: float = 0.01
    max_tilt_deg: float = 30.0
    oblique_limit_deg: float = 30.0


def compute_orientation_label(normal: np.ndarray, *, oblique_limit_deg: float) -> str:
    """"axial", "coronal", "sagittal" or "oblique" for a unit slice normal."""
    axis = int(np.argmax(np.abs(normal)))
    angle = math.degrees(math.acos(min(1.0, abs(float(normal[axis])))))
    return _AXIS_LABELS[axis] if angle <= oblique_limit_deg else "oblique"


def compute_spacing_qc(along_normal: np.ndarray, params: SeriesQcParams) -> tuple[float | None, list[str]]:
    """Median spacing (mm) of sorted positions along the normal and the spacing defects found."""
    if along_normal.size < 2:
        return None, []
    gaps = np.diff(np.sort(along_normal))
    reasons = []
    duplicates = int(np.sum(gaps < params.duplicate_tol_mm))
    if duplicates:
        reasons.append(f"{duplicates} duplicate slice position(s): the series holds overlapping or repeated "
                       "slices; ask the site for the single reconstruction")
    gaps = gaps[gaps >= params.duplicate_tol_mm]
    if gaps.size == 0:
        return None, reasons
    spacing = float(np.median(gaps))
    multiples = np.maximum(np.rint(gaps / spacing), 1)
    off_grid = np.abs(gaps - multiples * spacing) > params.spacing_rel_tol * spacing
    missing = int(np.sum((multiples - 1)[~off_grid]))
    if missing:
        reasons.append(f"{missing} missing slice(s) (gap up to {float(gaps.max()):.2f} mm where spacing is "
                       f"{spacing:.2f} mm): ask the site to re-send the complete series")
    if off_grid.any():
        reasons.append(f"uneven slice spacing ({float(gaps.min()):.2f} to {float(gaps.max()):.2f} mm): "
                       "the volume cannot be measured on a regular grid")
    return spacing, reasons


def derive_ct_series(instances: pl.DataFrame, subjects: pl.DataFrame, *, run_id: str,
                     params: SeriesQcParams = SeriesQcParams()) -> pl.DataFrame:
    """One row per CT stack of bronze/dicom_instances (INSTANCE_SCHEMA columns) with geometry, QC
    status and study day. ``subjects`` gives each USUBJID's first dose date (columns USUBJID,
    RFSTDT); ADY is null for subjects without one."""
    missing = [c for c in ("USUBJID", "RFSTDT") if c not in subjects.columns]
    if missing:
        raise ValueError(f"subjects: missing column(s) {', '.join(missing)}")
    ct = instances.filter(pl.col("modality_family") == "CT").with_columns(
        pl.concat_str([pl.col(c).round(3).cast(pl.String) for c in _ORIENTATION], separator=",",
                      ignore_nulls=False).fill_null("?").alias("_orientation_key"))
    rows = [
        _stack_row(stack, number, params)
        for _, series in ct.sort("series_id").group_by("series_id", maintain_order=True)
        for number, stack in enumerate(_stacks(series), start=1)
    ]
    derived = ("ADY", "run_id", "kernel_class", "volumetry_selected", "selection_reason")
    frame = derive_volumetry_choice(
        pl.DataFrame(rows, schema={k: v for k, v in CT_SERIES_SCHEMA.items() if k not in derived}, orient="row"))
    first_dose = subjects.select("USUBJID", pl.col("RFSTDT").cast(pl.Date)).unique("USUBJID")
    return (frame.join(first_dose, on="USUBJID", how="left")
            .with_columns(ADY=study_day("acquisition_date", "RFSTDT"),
                          run_id=pl.lit(run_id, pl.String()))
            .select(list(CT_SERIES_SCHEMA)))


_KERNEL_RANK = {"soft": 0, "unknown": 1, "sharp": 2}


def derive_volumetry_choice(stacks: pl.DataFrame) -> pl.DataFrame:
    """Adds kernel_class and the choice of one series per study for volumetry.

    Among the usable axial stacks of a study on one date (e.g. a soft and a sharp reconstruction of
    the same scan) the soft kernel is measured, then the unknown one, then the sharp one (a sharp
    kernel's noise is smoothed, at some cost in resolution); ties go to the thinner slices, more
    images, then the series UID. The others keep status "usable" and say why they are not measured.
    """
    ranked = stacks.with_columns(
        kernel_class=pl.col("convolution_kernel").map_elements(compute_kernel_class, return_dtype=pl.String),
    ).with_columns(
        _candidate=(pl.col("status") == "usable") & (pl.col("stack_kind") == "axial_volume"),
        _kernel_rank=pl.col("kernel_class").replace_strict(_KERNEL_RANK, return_dtype=pl.Int64),
    )
    study = ["USUBJID", "study_id", "acquisition_date"]
    order = pl.struct(pl.col("_kernel_rank"), pl.col("slice_spacing_mm").fill_null(1e9), -pl.col("n_instances"),
                      pl.col("series_id"), pl.col("stack"))
    best = (ranked.filter("_candidate").sort(order).group_by(study, maintain_order=True)
            .agg(pl.col("series_id").first().alias("_best_series"), pl.col("stack").first().alias("_best_stack"),
                 pl.col("kernel_class").first().alias("_best_kernel")))
    chosen = ranked.join(best, on=study, how="left", nulls_equal=True).with_columns(
        volumetry_selected=pl.col("_candidate") & (pl.col("series_id") == pl.col("_best_series"))
        & (pl.col("stack") == pl.col("_best_stack")),
    )
    return chosen.with_columns(
        selection_reason=pl.when(pl.col("_candidate") & ~pl.col("volumetry_selected")).then(
            pl.format("another reconstruction of the same scan is measured (series {}, {} kernel)",
                      "_best_series", "_best_kernel")),
    ).drop("_candidate", "_kernel_rank", "_best_series", "_best_stack", "_best_kernel")


def derive_series_rejections(ct_series: pl.DataFrame) -> pl.DataFrame:
    """silver/rejections rows (stage ``series_qc``) for axial stacks that failed QC: the files were
    ingested, but the series cannot be measured. ``source_sha256`` is the stack's first file (its
    row in bronze/dicom_instances names the series); the reason names the rule, no UID."""
    return ct_series.filter((pl.col("stack_kind") == "axial_volume") & (pl.col("status") == "unusable")).select(
        "source_sha256",
        pl.lit(None, pl.Int64()).alias("source_row"),
        pl.lit("series_qc").alias("stage"),
        pl.format("series of this file (stack {}, {} files) cannot be measured: {}", "stack", "n_instances",
                  "qc_reasons").alias("reason"),
        "run_id",
    )


def _stacks(series: pl.DataFrame) -> list[pl.DataFrame]:
    """The stacks of one series, largest first (ties: by orientation and size), so stack 1 is the
    main volume."""
    keys = ["_orientation_key", "rows", "columns"]
    stacks = series.sort(keys).partition_by(keys, maintain_order=True)
    return sorted(stacks, key=lambda s: -s.height)


def _stack_row(stack: pl.DataFrame, number: int, params: SeriesQcParams) -> dict[str, object]:
    first = stack.row(0, named=True)
    reasons: list[str] = []
    orientation, tilt, spacing = None, None, None
    order = np.arange(stack.height)
    geometry = stack.select(_ORIENTATION + _POSITION).drop_nulls().height == stack.height
    if geometry:
        cosines = np.asarray([first[c] for c in _ORIENTATION], dtype=float)
        normal = np.cross(cosines[:3], cosines[3:])
        normal /= np.linalg.norm(normal) or 1.0
        orientation = compute_orientation_label(normal, oblique_limit_deg=params.oblique_limit_deg)
        positions = stack.select(_POSITION).to_numpy()
        along = positions @ normal
        order = np.argsort(along, kind="stable")
        spacing, reasons = compute_spacing_qc(along, params)
        tilt = _tilt_deg(positions[order], normal) if stack.height > 1 else abs(first["gantry_tilt_deg"] or 0.0)
    kind = _stack_kind(stack, orientation)
    reasons = _qc_reasons(stack, kind, orientation, geometry, tilt, reasons, params)
    ordered = stack[order.tolist()]
    dates = stack.select(pl.coalesce("acquisition_date", "series_date", "content_date", "study_date").min()).item()
    return {
        "USUBJID": first["USUBJID"], "study_id": first["study_id"], "series_id": first["series_id"],
        "stack": number, "stack_kind": kind, "modality": first["modality"], "n_instances": stack.height,
        "rows": first["rows"], "columns": first["columns"],
        "pixel_spacing_mm": stack["pixel_spacing_row_mm"].median(),
        "pixel_spacing_col_mm": stack["pixel_spacing_col_mm"].median(), "slice_spacing_mm": spacing,
        "slice_thickness_mm": stack["slice_thickness_mm"].median(), "orientation": orientation,
        "gantry_tilt_deg": tilt, "kvp": stack["kvp"].median(),
        "convolution_kernel": stack["convolution_kernel"].drop_nulls().mode().sort().first(),
        "acquisition_date": dates, "status": "unusable" if reasons else "usable",
        "qc_reasons": "; ".join(reasons), "object_names": ordered["object_name"].to_list(),
        "source_sha256": ordered["source_sha256"][0],
    }


def _tilt_deg(ordered_positions: np.ndarray, normal: np.ndarray) -> float:
    direction = ordered_positions[-1] - ordered_positions[0]
    length = float(np.linalg.norm(direction))
    if length == 0.0:
        return 0.0
    return math.degrees(math.acos(min(1.0, abs(float(direction @ normal)) / length)))


def _stack_kind(stack: pl.DataFrame, orientation: str | None) -> str:
    image_types = stack["image_type"].fill_null("").str.to_uppercase()
    if image_types.str.contains("LOCALIZER").any():
        return "localizer"
    return "axial_volume" if orientation == "axial" else "non_axial"


def _qc_reasons(stack: pl.DataFrame, kind: str, orientation: str | None, geometry: bool, tilt: float | None,
                spacing_reasons: list[str], params: SeriesQcParams) -> list[str]:
    if kind == "localizer":
        return ["localizer (scout) image: not a volume, not used for volumetry"]
    if not geometry:
        return ["ImagePositionPatient or ImageOrientationPatient missing: slices cannot be placed in space; "
                "ask the site to re-export the series from the scanner"]
    if kind == "non_axial":
        return [f"{orientation} stack: only axial stacks are used for volumetry"]
    reasons = []
    if (stack["number_of_frames"] > 1).any():
        reasons.append("multi-frame (enhanced) image: per-frame geometry is not supported for volumetry")
    if stack.height < params.min_slices:
        reasons.append(f"too few slices ({stack.height} < {params.min_slices}): not a whole-lung volume")
    no_rescale = stack.filter(pl.col("rescale_slope").is_null() | pl.col("rescale_intercept").is_null()).height
    if no_rescale:
        reasons.append(f"RescaleSlope/RescaleIntercept missing in {no_rescale} instance(s): pixel values cannot "
                       "be converted to HU")
    if stack["pixel_spacing_row_mm"].n_unique() > 1 or stack["pixel_spacing_col_mm"].n_unique() > 1 \
            or stack["pixel_spacing_row_mm"].null_count():
        reasons.append("PixelSpacing missing or different between slices")
    reasons.extend(spacing_reasons)
    if tilt is not None and tilt > params.max_tilt_deg:
        reasons.append(f"gantry tilt {tilt:.1f} deg (> {params.max_tilt_deg} deg): slices are sheared; "
                       "ask for a reconstruction without tilt")
    return reasons
