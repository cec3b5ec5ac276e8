"""Benchmark: DICOM ingest of one CT series (hash, parse, check, de-identify, write the copies and
the instance index) beside reading the same files (`cat`) and dcm2niix converting them.

The ingest runs the way the nightly flow does: the series' files are split into one chunk per
worker process; each worker runs the flow's own chunk step, ``trialake.pipeline.dicom.
ingest_dicom_chunk`` (read from the landing area, ingest, write the de-identified copies into the
lake), so the pixel data never crosses a process boundary; the parent merges the chunk results and
writes the index. The worker pool is started before timing, as a long-lived worker's is.
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import polars as pl

from bench.floors import dcm2niix_floor, read_floor
from trialake.config import read_settings
from trialake.dicom import merge_ingest_results
from trialake.lake import Lake, open_lake
from trialake.pipeline.context import RunContext
from trialake.pipeline.dicom import ChunkOutcome, DicomPlan, ingest_dicom_chunk

SECRET = b"benchmark-secret-0123456789abcdef"
PATIENT_ID, USUBJID = "MRN0042", "BENCH-01-001"


def write_series(folder: Path, *, rows: int = 512, columns: int = 512, slices: int = 300) -> pl.DataFrame:
    """A PHI-laden axial CT series (the test suite's factory) as files in ``folder``; its subject key."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from dicom_factory import add_phi, encode, synthesize_ct_series

    folder.mkdir(parents=True, exist_ok=True)
    series = synthesize_ct_series(patient_id=PATIENT_ID, n_slices=slices, rows=rows, columns=columns,
                                  slice_spacing_mm=1.0)
    for i, ds in enumerate(series):
        add_phi(ds, referenced_sop_uid=series[(i + 1) % slices].SOPInstanceUID)
        (folder / f"IM{i:05d}").write_bytes(encode(ds))
    return pl.DataFrame({"SITEID": ["01"], "PATIENT_ID": [PATIENT_ID], "USUBJID": [USUBJID]})


def open_bench_run(landing: Path, lake: Path) -> RunContext:
    """A run context over a landing area and a new local lake, with the benchmark's secret."""
    settings = read_settings(landing=str(landing), lake=str(lake), environ={})
    return RunContext(settings=settings, lake=open_lake(settings.lake, {}), landing=Lake(url=settings.landing),
                      run_id="bench", secret=SECRET)


def ingest_chunk(ctx: RunContext, relpaths: list[str], key: pl.DataFrame) -> tuple[ChunkOutcome, float]:
    """One worker's share through the flow's chunk step; the outcome and the worker's CPU seconds."""
    start = time.process_time()
    outcome = ingest_dicom_chunk(ctx, relpaths, key, DicomPlan((), (), frozenset(), {}))
    return outcome, time.process_time() - start


def ingest_series(pool: ProcessPoolExecutor, ctx: RunContext, relpaths: list[str], key: pl.DataFrame,
                  workers: int) -> tuple[int, float]:
    """Ingest ``relpaths`` in ``workers`` chunks and write the index; (accepted count, worker CPU s)."""
    size = -(-len(relpaths) // workers)
    chunks = [relpaths[i:i + size] for i in range(0, len(relpaths), size)]
    outcomes = list(pool.map(ingest_chunk, [ctx] * len(chunks), chunks, [key] * len(chunks)))
    merged = merge_ingest_results([outcome.result for outcome, _ in outcomes], run_id="bench")
    index = Path(ctx.lake.path("bronze"))
    index.mkdir(parents=True, exist_ok=True)
    merged.instances_frame().write_parquet(index / "dicom_instances.parquet")
    merged.rejections_frame().write_parquet(index / "rejections.parquet")
    return len(merged.accepted), sum(cpu for _, cpu in outcomes)


ROUNDS = 5


def _time_dcm2niix(series_dir: Path) -> tuple[float, float] | None:
    """(wall s, CPU s) of one dcm2niix conversion, or None when dcm2niix is not installed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = dcm2niix_floor(series_dir, repeat=1)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if wall is None:
        return None
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def run(series_dir: Path | None = None, key: pl.DataFrame | None = None, *, workers: int = 2) -> dict[str, float]:
    """Wall seconds of cat, dcm2niix and the ingest of one series, their ratios, and the CPU
    seconds of dcm2niix and of the ingest workers (a fairer comparison on a busy machine).

    Ingest and dcm2niix alternate for ``ROUNDS`` rounds and the best of each counts, so that both
    are timed under the same conditions of a shared machine. Without ``series_dir`` a
    512x512x300 series is written first; with it, pass its subject ``key``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        if series_dir is None:
            series_dir = Path(tmp) / "landing" / "dicom" / "series"
            key = write_series(series_dir)
        if key is None:
            raise ValueError("key: the subject key of the series is required with series_dir")
        files = sorted(p for p in series_dir.iterdir() if p.is_file())
        timings = {"files": float(len(files)), "cat_s": read_floor(files)}
        landing = series_dir.parent
        relpaths = [str(p.relative_to(landing)) for p in files]
        ingests, conversions = [], []
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            warm = open_bench_run(landing, Path(tmp) / "warm")
            ingest_series(pool, warm, relpaths[:workers], key, workers)  # imports in the workers
            for _ in range(ROUNDS):
                ctx = open_bench_run(landing, Path(tempfile.mkdtemp(dir=tmp)))
                start = time.perf_counter()
                accepted, cpu = ingest_series(pool, ctx, relpaths, key, workers)
                ingests.append((time.perf_counter() - start, cpu))
                if accepted != len(files):
                    raise AssertionError(f"benchmark series: {accepted} of {len(files)} files accepted")
                conversion = _time_dcm2niix(series_dir)
                if conversion is not None:
                    conversions.append(conversion)
        timings["ingest_s"], timings["ingest_cpu_s"] = min(ingests)
        if conversions:
            timings["dcm2niix_s"], timings["dcm2niix_cpu_s"] = min(conversions)
            timings["ingest_vs_dcm2niix"] = timings["ingest_s"] / timings["dcm2niix_s"]
            timings["ingest_cpu_per_core_vs_dcm2niix_cpu"] = timings["ingest_cpu_s"] / workers / timings["dcm2niix_cpu_s"]
        timings["ingest_vs_cat"] = timings["ingest_s"] / timings["cat_s"]
        return timings


if __name__ == "__main__":
    for name, value in run().items():
        print(f"dicom ingest {name}: {value:.3f}")
