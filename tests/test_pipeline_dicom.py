"""The flow's DICOM chunks: how landing files are split into chunks, and the chunk step: files go
through in windows, and the duplicate and SOP-conflict rules still hold across windows, on a local
lake and on S3 (SeaweedFS)."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import polars as pl
import pydicom

from dicom_factory import encode, synthesize_ct_series
from trialake.config import Settings, load_trial_config
from trialake.lake import Lake, LandingFile, read_object
from trialake.pipeline.context import RunContext
from trialake.pipeline.dicom import CHUNK_BYTES, CHUNK_FILES, WINDOW_FILES, DicomPlan, ingest_dicom_chunk, split_into_chunks

USUBJID = "TRIAL-01-001"
KEY = pl.DataFrame({"SITEID": ["01"], "PATIENT_ID": ["PAT-7"], "USUBJID": [USUBJID]})


def _series(folder: str, n_files: int, size: int) -> list[LandingFile]:
    return [LandingFile(f"dicom/{folder}/IM{i:04d}", size, "v1") for i in range(n_files)]


def test_many_small_series_share_chunks_of_at_most_chunk_files() -> None:
    files = [f for s in range(20) for f in _series(f"S{s:02d}", 80, 32_000)]  # 1600 files, 51 MB
    chunks = split_into_chunks(files[::-1] + files[:5])  # order and repeats do not matter
    assert [len(c) for c in chunks] == [400, 400, 400, 400]  # ceil(1600 / 400) chunks, even
    assert [p for c in chunks for p in c] == sorted(f.relpath for f in files)


def test_a_large_series_is_split_evenly_by_bytes() -> None:
    image = 512 * 512 * 2 + 2_000
    files = _series("S00", 300, image)  # 157 MB: two chunks of about 79 MB, not 128 MB and 29 MB
    assert CHUNK_BYTES < 300 * image <= 2 * CHUNK_BYTES and 300 <= CHUNK_FILES
    assert [len(c) for c in split_into_chunks(files)] == [150, 150]


def test_nothing_new_is_no_chunk() -> None:
    assert split_into_chunks([]) == ()


def _write_landing(folder: Path) -> dict[str, bytes]:
    """A series spanning two windows, plus (sorting last, so in the second window) an exact
    duplicate of the first slice and another file reusing the second slice's SOP Instance UID."""
    n = WINDOW_FILES + 4
    series = synthesize_ct_series(patient_id="PAT-7", n_slices=n)
    files = {f"IM{i:03d}": encode(ds) for i, ds in enumerate(series)}
    files["zz_duplicate"] = files["IM000"]
    changed = series[1]
    changed.InstanceNumber = 99  # same SOP Instance UID, different content
    files["zz_conflict"] = encode(changed)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def test_duplicates_and_sop_conflicts_across_windows(tmp_path: Path, lake: Lake) -> None:
    landing = tmp_path / "landing"
    files = _write_landing(landing / "dicom" / "visit1")
    relpaths = sorted(f"dicom/visit1/{name}" for name in files)
    ctx = RunContext(settings=Settings(landing=str(landing), lake=lake.url, trial=load_trial_config()),
                     lake=lake, landing=Lake(url=str(landing)), run_id="run-1", secret=b"s" * 32)

    result = ingest_dicom_chunk(ctx, relpaths, KEY, DicomPlan((), (), frozenset(), {})).result

    sha = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    assert dict(result.hashed) == {f"dicom/visit1/{name}": digest for name, digest in sha.items()}
    accepted = [str(a.row["source_sha256"]) for a in result.accepted]
    assert len(accepted) == WINDOW_FILES + 4
    assert set(accepted) == {sha[f"IM{i:03d}"] for i in range(WINDOW_FILES + 4)}
    reasons = {str(r["source_sha256"]): str(r["reason"]) for r in result.rejections}
    assert set(reasons) == {sha["zz_duplicate"], sha["zz_conflict"]}
    assert "exact duplicate" in reasons[sha["zz_duplicate"]]
    assert "same SOP Instance UID" in reasons[sha["zz_conflict"]]
    # The conflicting copy was written by the second window before the merge overruled it.
    assert len(result.stale_objects) == 1 and sha["zz_conflict"][:16] in result.stale_objects[0]
    for instance in result.accepted:
        assert instance.parts == ()  # the bytes were written and dropped
        copy = pydicom.dcmread(io.BytesIO(read_object(lake, f"bronze/dicom/{instance.object_name}")))
        assert copy.PatientID == USUBJID
        assert copy.SOPInstanceUID == instance.row["sop_id"]
