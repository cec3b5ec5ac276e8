"""Benchmark: retrieving one CT series from a PACS (a throwaway Orthanc on 127.0.0.1) over DICOMweb
(WADO-RS) and over DIMSE (C-GET), against copying the same files from a folder; and building the
DICOM SEG and SR of the series.

Retrieval goes through the flow's own reader (``trialake.pipeline.sources.open_dicom_reader``) in
windows of ``WINDOW_FILES`` instances, as the ingest chunks read them. Orthanc runs with
``TCP_NODELAY=1`` (see infra/README.md).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.floors import best_of
from bench.ingest import open_bench_run, write_series
from trialake.pacs import compute_instance_id, open_peer, read_pacs_connection
from trialake.pipeline.dicom import WINDOW_FILES
from trialake.pipeline.sources import open_dicom_reader

ROUNDS = 3


def _orthanc():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import orthanc

    return orthanc


def run(*, rows: int = 512, columns: int = 512, slices: int = 300, workdir: str | None = None) -> dict[str, float]:
    """Seconds of: copying the series' files, retrieving them over WADO-RS and over C-GET (best of
    ``ROUNDS``), and building its SEG and SR; plus the bytes moved."""
    orthanc = _orthanc()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        landing = Path(tmp) / "landing"
        series = landing / "dicom" / "series"
        key = write_series(series, rows=rows, columns=columns, slices=slices)
        files = sorted(series.iterdir())
        out: dict[str, float] = {"files": float(len(files)), "mb": sum(f.stat().st_size for f in files) / 2**20}
        copies = Path(tmp) / "copies"

        def copy() -> None:
            shutil.rmtree(copies, ignore_errors=True)
            copies.mkdir()
            for f in files:
                shutil.copyfile(f, copies / f.name)

        out["copy_s"] = best_of(copy, repeat=ROUNDS)
        with orthanc.run_orthanc(Path(tmp) / "orthanc") as pacs:
            pacs.upload(files)
            for name, url in (("wado_rs", pacs.dicomweb_url), ("c_get", pacs.dimse_url())):
                connection = read_pacs_connection(url, pacs.environ)
                with open_peer(connection) as peer:
                    found = peer.find_instances(key["PATIENT_ID"].to_list())
                ids = [compute_instance_id(connection.address, i) for i in found]
                if len(ids) != len(files):
                    raise AssertionError(f"{name}: {len(ids)} of {len(files)} instances found")
                base = open_bench_run(landing, Path(tmp) / f"lake-{name}")
                ctx = replace(base, settings=replace(base.settings, pacs=connection))

                def retrieve() -> None:
                    with open_dicom_reader(ctx) as read:
                        got = sum(len(read(ids[i:i + WINDOW_FILES])) for i in range(0, len(ids), WINDOW_FILES))
                    if got != len(ids):
                        raise AssertionError(f"{name}: {got} of {len(ids)} instances retrieved")

                out[f"{name}_s"] = best_of(retrieve, repeat=ROUNDS)
        out["seg_sr_s"] = _time_results(files)
    return out


def _time_results(files: list[Path]) -> float:
    """SEG and SR of the series with threshold masks (the builder's cost does not depend on how
    the masks were made)."""
    from trialake.dicom.results import build_result_objects, compute_source_frames, read_sources
    from trialake.imaging import load_series

    data = [f.read_bytes() for f in files]
    volume = load_series(data)
    masks = np.stack([volume.hu < -500, (volume.hu > -800) & (volume.hu < -500), volume.hu > 0], axis=-1)
    measurements = {"lung_volume_ml": 1.0, "lesion_volume_ml": 0.5, "ggo_volume_ml": 0.25, "solid_volume_ml": 0.25,
                    "lesion_pct": 50.0, "ggo_pct": 25.0, "solid_pct": 25.0, "method": "classical",
                    "method_version": "bench", "params_hash": "0" * 16}
    start = time.perf_counter()
    sources = read_sources(data)
    frames = compute_source_frames(sources, masks, volume.origin_mm, volume.spacing_mm)
    build_result_objects(sources, frames, measurements, uid_seed="bench")
    return time.perf_counter() - start


if __name__ == "__main__":
    for name, value in run().items():
        print(f"pacs {name}: {value:.3f}")
