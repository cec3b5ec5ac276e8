"""The benchmark cases of ``python -m bench``: each runs one benchmark module and returns table rows."""
from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import nightly
from bench.flow_runs import TrialSize
from bench.results import Floor, Result

INGEST_GOAL_DCM2NIIX = 1.0
LABS_GOAL_ROWS_PER_S = 500_000.0
RERUN_GOAL_SHARE = 0.10
VALIDATION_GOAL_SHARE = 0.20
DASK_GOAL_SPEEDUP = 1.7
PUBLISH_GOAL_SHARE = 0.05
READ_GOAL_RATIO = 3.0
LOCK_GOAL_RATIO = 3.0
AS_OF_GOAL_RATIO = 2.0


@dataclass(frozen=True)
class Sizes:
    """Data sizes of every case (defaults: the sizes the issues set the goals for).

    series: rows, columns, slices of the ingested CT series; phantom_*: the volumetry phantoms;
    lab_rows: bronze lab rows normalized; mart_subjects: subject counts the marts are built for;
    trial: the synthetic trial of the nightly flow; dask_trial: the one of the Dask speed-up;
    lock_trial: the one the database lock and the recomputation as of it are timed on.
    """

    series: tuple[int, int, int] = (512, 512, 300)
    phantom_matrix: int = 512
    phantom_slices: int = 300
    phantom_spacing_mm: float = 1.0
    lab_rows: int = 1_000_000
    mart_subjects: tuple[int, ...] = (100, 10_000)
    trial: TrialSize = TrialSize()
    dask_trial: TrialSize = TrialSize(subjects=7, matrix=128, slices=80)
    lock_trial: TrialSize = TrialSize(subjects=100, matrix=64, slices=24)


QUICK = Sizes(series=(256, 256, 100), phantom_matrix=192, phantom_slices=100, phantom_spacing_mm=3.0,
              lab_rows=200_000, mart_subjects=(100,), trial=TrialSize(subjects=6, matrix=48, slices=20),
              dask_trial=TrialSize(subjects=3, matrix=64, slices=40), lock_trial=TrialSize(subjects=10, matrix=48, slices=20))


def bench_ingest(sizes: Sizes, workdir: str | None) -> list[Result]:
    """Ingest of one CT series in two processes against cat, dcmdump and dcm2niix of the same files."""
    from bench import ingest
    from bench.floors import dcmdump_floor

    rows, columns, slices = sizes.series
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        series = Path(tmp) / "series"
        key = ingest.write_series(series, rows=rows, columns=columns, slices=slices)
        timings = ingest.run(series, key, workers=2)
        dcmdump = dcmdump_floor(sorted(series.iterdir()))
    dcm2niix = timings.get("dcm2niix_s")
    floors = (Floor("cat", timings["cat_s"]),
              *(() if dcmdump is None else (Floor("dcmdump", dcmdump),)),
              *(() if dcm2niix is None else (Floor("dcm2niix", dcm2niix),)))
    return [Result(
        "ingest", f"1 CT series {rows}x{columns}x{slices} ({timings['files']:.0f} files), 2 processes",
        timings["ingest_s"], "s", f"<= {INGEST_GOAL_DCM2NIIX:g}x dcm2niix",
        None if dcm2niix is None else timings["ingest_s"] <= INGEST_GOAL_DCM2NIIX * dcm2niix, floors,
    )]


def _accuracy_result(row: dict) -> Result:
    shown = (f"lung {row['lung_err_pct']:+.2f}%, lesion {row['lesion_pct_err_points']:+.2f} pt, "
             f"GGO {row['ggo_err_ml']:+.1f} mL, solid {row['solid_err_ml']:+.1f} mL "
             f"(truth {row['truth_lung_ml']:.0f} mL, {row['truth_lesion_pct']:.1f}%); {row['status']}"
             + (f" ({row['flags']})" if row["flags"] else ""))
    return Result("volumetry", f"accuracy: {row['case']}", None, "",
                  "lung 3%, 1 pt, GGO 10 mL|15%, solid 10 mL|30%, or flagged", bool(row["accuracy_ok"]), shown=shown)


def _volumetry_time_result(slowest: dict, n_cases: int, goal_ratio: float) -> Result:
    ratio = slowest["ratio_to_dcm2niix"]
    floors = (*(() if ratio is None else (Floor("dcm2niix", slowest["seconds"] / ratio),)),
              Floor("numpy pass", slowest["seconds"] / slowest["ratio_to_numpy_pass"]))
    return Result("volumetry", f"1 series {slowest['shape']} read+measure (slowest of {n_cases})", slowest["seconds"],
                  "s", f"<= {goal_ratio:g}x dcm2niix", None if ratio is None else ratio <= goal_ratio, floors)


def bench_volumetry(sizes: Sizes, workdir: str | None) -> list[Result]:
    """Time and peak memory of the slowest and largest phantom, and the accuracy of each."""
    from bench import volumetry_accuracy as va

    size = {"matrix": sizes.phantom_matrix, "slices": sizes.phantom_slices, "slice_spacing_mm": sizes.phantom_spacing_mm}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        rows = [va.run_case(name, dataclasses.replace(spec, **size), Path(tmp)) for name, spec in va.CASES.items()]
    largest = max(rows, key=lambda r: r["peak_rss_mb"])
    voxel_mb = sizes.phantom_matrix**2 * sizes.phantom_slices * 2 / 2**20
    return [
        _volumetry_time_result(max(rows, key=lambda r: r["seconds"]), len(rows), va.GOAL_DCM2NIIX_RATIO),
        Result("volumetry", f"peak RSS of the child (largest of {len(rows)})", largest["peak_rss_mb"], "MB",
               f"<= {va.GOAL_PEAK_MB:g} MB", largest["peak_rss_mb"] <= va.GOAL_PEAK_MB, (Floor("int16 voxels", voxel_mb),)),
        *(_accuracy_result(row) for row in rows),
    ]


def bench_labs(sizes: Sizes, workdir: str | None) -> list[Result]:
    """derive_labs on generated bronze rows against one Polars parse of the same rows."""
    from bench import labs
    from bench.frame_floors import polars_parse_floor

    n = sizes.lab_rows
    floor = polars_parse_floor(labs.make_bronze_labs(n))
    rate = labs.run(n)
    return [Result("labs", f"normalize {n:,} lab rows", n / rate, "s", f">= {LABS_GOAL_ROWS_PER_S / 1000:,.0f}k rows/s",
                   rate >= LABS_GOAL_ROWS_PER_S, (Floor("polars parse", floor),),
                   shown=f"{rate / 1000:,.0f}k rows/s ({n / rate:.2f} s)")]


def bench_marts(sizes: Sizes, workdir: str | None) -> list[Result]:
    """All marts and endpoints per subject count against sorting their inputs by subject."""
    from bench import marts
    from bench.frame_floors import polars_sort_floor

    timings = marts.run_marts_benchmark(sizes.mart_subjects)
    results = []
    for n, seconds in timings.items():
        goal = marts.GOALS_S.get(n)
        results.append(Result(
            "marts", f"all marts + endpoints, {n:,} subjects", seconds, "s", "-" if goal is None else f"< {goal:g} s",
            None if goal is None else seconds < goal, (Floor("sort inputs", polars_sort_floor(marts.make_silver_frames(n))),),
        ))
    return results


def _validation_result(validation: nightly.ValidationTimes | None, full: Floor) -> Result:
    goal = f"<= {VALIDATION_GOAL_SHARE:g}x full run"
    if validation is None:
        return Result("nightly", "validation in the full run", None, "s", goal, None, (full,),
                      shown="not measured: the flow validates nothing")
    shown = (f"{validation.critical_s:.3g} s (validate_table {validation.calls_s:.3g} s + waiting for suites/GX; "
             f"loading them took {validation.tasks_s:.3g} s beside other stages)")
    return Result("nightly", "validation added to the full run", validation.critical_s, "s", goal,
                  validation.critical_s <= VALIDATION_GOAL_SHARE * full.value, (full,), shown=shown)


def bench_nightly(sizes: Sizes, workdir: str | None) -> list[Result]:
    """Full nightly run, a run with nothing new, and the validation share, on a demo-size trial."""
    trial = sizes.trial
    t = nightly.run(trial, workdir=workdir)
    empty = Floor("empty flow", t.empty_flow_s)
    full = Floor("full run", t.full_s)
    label = f"{trial.subjects} subjects, {t.n_series} series {trial.matrix}x{trial.matrix}x{trial.slices}"
    return [
        Result("nightly", f"full run ({label})", t.full_s, "s", "-", None, (empty,)),
        Result("nightly", "second run, nothing new", t.rerun_s, "s", f"< {RERUN_GOAL_SHARE:g}x full run",
               t.rerun_s < RERUN_GOAL_SHARE * t.full_s, (full, empty)),
        _validation_result(t.validation, full),
        Result("nightly", "slowest stages of the full run", None, "", "-", None,
               shown=", ".join(f"{name} {s:.1f} s" for name, s in sorted(t.stages.items(), key=lambda kv: -kv[1])[:3])),
    ]


def bench_dask(sizes: Sizes, workdir: str | None) -> list[Result]:
    """Speed-up of two Dask workers over one (when the flows have a task-runner factory)."""
    from bench import dask_scaling

    goal = f">= {DASK_GOAL_SPEEDUP:g}x speed-up"
    if not dask_scaling.available():
        return [Result("dask", "2 workers over 1", None, "", goal, None,
                       shown="not measured: flows/runners.py build_task_runner does not exist")]
    trial = sizes.dask_trial
    t = dask_scaling.run(trial, workdir=workdir)
    one, two = t.one, t.two
    speedup = one.per_series_s / two.per_series_s
    return [
        Result("dask", f"per-series tasks, 2 workers ({t.n_series} series {trial.matrix}x{trial.matrix}x{trial.slices})",
               two.per_series_s, "s", goal, speedup >= DASK_GOAL_SPEEDUP, (Floor("1 worker", one.per_series_s),),
               shown=f"{two.per_series_s:.3g} s = {speedup:.2f}x speed-up ("
                     + ", ".join(f"{phase} {one.phases_s[phase]:.3g} -> {two.phases_s[phase]:.3g} s" for phase in one.phases_s)
                     + f"; mean task {one.task_mean_s:.2f} -> {two.task_mean_s:.2f} s)"),
        Result("dask", "whole nightly run, 2 workers", two.run_s, "s", "-", None, (Floor("1 worker", one.run_s),),
               shown=f"{two.run_s:.3g} s = {one.run_s / two.run_s:.2f}x speed-up"),
    ]


def bench_lake(sizes: Sizes, workdir: str | None) -> list[Result]:
    """Delta tables: publication against the writer before Delta, reads, no-op commits, lock and as-of."""
    from bench import lake

    t = lake.run(sizes.trial, sizes.lock_trial, workdir=workdir)
    demo = f"{t.n_tables} tables, {t.n_partitions} partitions of the {sizes.trial.subjects}-subject trial"
    goal, run = f"<= {PUBLISH_GOAL_SHARE:g}x nightly run", Floor("nightly run", t.nightly_s)
    rows = []
    for what, timings in ((f"publish every table ({demo})", t.publish), ("publish them again, unchanged", t.republish)):
        for store, (delta_s, old_s) in timings.items():
            rows.append(Result("lake", f"{what}, {store}", delta_s, "s", goal, delta_s <= PUBLISH_GOAL_SHARE * t.nightly_s,
                               (Floor("old writer", old_s), run)))
    for store, seconds in t.lease.items():
        rows.append(Result("lake", f"take and release the lake's lease, {store}", seconds, "s", "-", None, (run,)))
    old_read = Floor("old layout read", t.read_old_s)
    rows += [
        Result("lake", "read gold/adct: pl.scan_delta", t.read_delta_s, "s", f"<= {READ_GOAL_RATIO:g}x old layout read",
               t.read_delta_s <= READ_GOAL_RATIO * t.read_old_s, (old_read,)),
        Result("lake", "read gold/adct: scan_table", t.read_scan_table_s, "s", f"<= {READ_GOAL_RATIO:g}x old layout read",
               t.read_scan_table_s <= READ_GOAL_RATIO * t.read_old_s, (old_read,)),
        Result("lake", "table commits of a nightly run with nothing new", None, "", "0", t.noop_commits == 0,
               shown=str(t.noop_commits)),
        Result("lake", f"trialake lock ({t.lock_subjects} subjects)", t.lock_s, "s", f"<= {LOCK_GOAL_RATIO:g}x versions",
               t.lock_s <= LOCK_GOAL_RATIO * t.versions_s, (Floor("versions", t.versions_s),)),
        Result("lake", f"endpoints as of the lock ({t.lock_subjects} subjects)", t.as_of_s, "s",
               f"<= {AS_OF_GOAL_RATIO:g}x gold rebuild, identical",
               t.reproduced and t.as_of_s <= AS_OF_GOAL_RATIO * t.gold_rebuild_s, (Floor("gold rebuild", t.gold_rebuild_s),),
               shown=f"{t.as_of_s:.3g} s, {'identical to the locked gold tables' if t.reproduced else 'NOT identical'}"),
    ]
    if t.lock_note:
        rows.append(Result("lake", "lock and as-of measured on the demo trial", None, "", "-", None, shown=t.lock_note))
    return rows


def bench_pacs(sizes: Sizes, workdir: str | None) -> list[Result]:
    """One CT series from Orthanc over WADO-RS and C-GET against copying its files; SEG and SR."""
    from bench import pacs

    rows, columns, slices = sizes.series
    t = pacs.run(rows=rows, columns=columns, slices=slices, workdir=workdir)
    label = f"1 CT series {rows}x{columns}x{slices} ({t['files']:.0f} files, {t['mb']:.0f} MB)"
    copy = Floor("folder copy", t["copy_s"])
    return [
        Result("pacs", f"{label} from Orthanc over DICOMweb (WADO-RS)", t["wado_rs_s"], "s", "-", None, (copy,)),
        Result("pacs", f"{label} from Orthanc over DIMSE (C-GET)", t["c_get_s"], "s", "-", None,
               (copy, Floor("WADO-RS", t["wado_rs_s"]))),
        Result("pacs", f"DICOM SEG + SR of the series (3 segments, highdicom)", t["seg_sr_s"], "s", "-", None, (copy,)),
    ]


CASES: dict[str, Callable[[Sizes, str | None], list[Result]]] = {
    "ingest": bench_ingest,
    "volumetry": bench_volumetry,
    "labs": bench_labs,
    "marts": bench_marts,
    "nightly": bench_nightly,
    "dask": bench_dask,
    "lake": bench_lake,
    "pacs": bench_pacs,
}
