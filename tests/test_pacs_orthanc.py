"""PACS sources and targets against a real Orthanc (Debian's orthanc + orthanc-dicomweb, started
by the tests on free 127.0.0.1 ports and stopped after): the nightly flow pulls the generated
trial over DICOMweb and over DIMSE into the same lake as from files, re-runs retrieve nothing, a
series still arriving is completed, pushes to ``trialake receive`` land and are ingested, SEG and
SR reach a research PACS and come back through its DICOMweb, start-up failures are one line."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
from pathlib import Path

import highdicom as hd
import polars as pl
import pydicom
import pytest

from orthanc import Orthanc, free_port, run_orthanc
from trialake.lake import Lake, open_lake, read_object, read_table, write_object
from trialake.pacs import PacsError, open_peer, read_pacs_connection
from trialake.pipeline.context import SECRET_OBJECT
from trialake.dicom import DeidParams

pytestmark = pytest.mark.xdist_group("prefect-flows")
ZONES = ("bronze", "silver", "gold")
#: Columns that differ between runs by design: the run, and where results were pushed.
RUN_COLUMNS = ("run_id", "push_run_id", "pushed_to")


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated trial (3 subjects, 2 sites, 10 series of 20 slices)."""
    from trialake.synth import generate_trial

    out = tmp_path_factory.mktemp("pacs-trial")
    generate_trial(out, subjects=3, seed=19, matrix=64, slices=20, sites=2)
    return out


def _dicom_files(trial: Path) -> list[Path]:
    return sorted(p for p in (trial / "landing" / "dicom").rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def landing_without_dicom(trial: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same landing area without dicom/: images come from the PACS only."""
    landing = tmp_path_factory.mktemp("pacs-landing") / "landing"
    shutil.copytree(trial / "landing", landing, ignore=shutil.ignore_patterns("dicom"))
    return landing


@pytest.fixture(scope="module")
def folder_lake(trial: Path, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The reference: the nightly flow on the landing folder with its DICOM files."""
    from trialake_flows.nightly import nightly

    lake = tmp_path_factory.mktemp("folder-lake")
    nightly(landing=str(trial / "landing"), lake=str(lake))
    return open_lake(str(lake))


def _new_lake(path: Path, like: Lake) -> Lake:
    """An empty lake with the reference lake's secret (same pseudonyms and date shifts)."""
    lake = open_lake(str(path))
    write_object(lake, SECRET_OBJECT, read_object(like, SECRET_OBJECT))
    return lake


def _config(tmp_path: Path, **pacs: str) -> Path:
    """The reference trial's configuration with a pacs: section (short retries for the tests)."""
    from trialake.config import default_trial_config_path

    lines = ["pacs:", "  retries: 2", "  backoff_s: 0.2", "  timeout_s: 20"] + [f"  {k}: {v}" for k, v in pacs.items()]
    path = tmp_path / "trial.yaml"
    path.write_text(default_trial_config_path().read_text() + "\n" + "\n".join(lines) + "\n")
    return path


def _tables(lake: Lake) -> dict[str, pl.DataFrame]:
    out = {}
    for zone in ZONES:
        root = lake.path(zone)
        for folder in sorted(lake.fs.ls(root, detail=False)) if lake.fs.exists(root) else []:
            name = f"{zone}/{folder.rsplit('/', 1)[-1]}"
            if name != "bronze/dicom" and lake.fs.glob(f"{folder}/**/*.parquet"):
                out[name] = read_table(lake, name)
    return out


_OBJECT_SHA = re.compile(r"_([0-9a-f]{16})\.dcm$")


def _normalized(frame: pl.DataFrame, sha_map: dict[str, str]) -> pl.DataFrame:
    """The frame without run columns, with source hashes (and the 16-digit prefixes in object
    names) mapped by ``sha_map``, sorted."""
    short = {k[:16]: v[:16] for k, v in sha_map.items()}

    def rename(name: str | None) -> str | None:
        if name is None:
            return None
        match = _OBJECT_SHA.search(name)
        return name[: match.start(1)] + short.get(match.group(1), match.group(1)) + ".dcm" if match else sha_map.get(name, name)

    frame = frame.drop([c for c in RUN_COLUMNS if c in frame.columns])
    columns = []
    for name, dtype in frame.schema.items():
        if dtype == pl.String:
            columns.append(pl.col(name).map_elements(rename, return_dtype=pl.String))
        elif dtype == pl.List(pl.String):
            columns.append(pl.col(name).list.eval(pl.element().map_elements(rename, return_dtype=pl.String)))
        else:
            columns.append(pl.col(name))
    frame = frame.select(columns)
    return frame.sort([c for c, t in frame.schema.items() if not isinstance(t, pl.List)], nulls_last=True)


def _copies(lake: Lake) -> dict[str, str]:
    """sha256 -> name of every de-identified copy under bronze/dicom/."""
    root = lake.path("bronze/dicom")
    return {hashlib.sha256(lake.fs.cat_file(p)).hexdigest(): p[len(root) + 1:] for p in lake.fs.find(root)}


def assert_same_lake(reference: Lake, lake: Lake, *, same_source_bytes: bool) -> None:
    """Every bronze, silver and gold table equal, and the same de-identified copies. When the PACS
    re-encodes the file meta (DIMSE), a file's source_sha256 differs: it is mapped through the SOP
    Instance UID first (the copies themselves must still be byte-identical)."""
    instances = read_table(lake, "bronze/dicom_instances").select("sop_id", "source_sha256")
    expected = read_table(reference, "bronze/dicom_instances").select("sop_id", "source_sha256")
    pairs = instances.join(expected, on="sop_id", suffix="_reference")
    assert pairs.height == expected.height == instances.height
    sha_map = dict(pairs.select("source_sha256", "source_sha256_reference").iter_rows())
    if same_source_bytes:
        assert all(k == v for k, v in sha_map.items())
    assert set(_copies(lake)) == set(_copies(reference))
    tables, reference_tables = _tables(lake), _tables(reference)
    assert tables.keys() == reference_tables.keys()
    assert "silver/ct_dicom_results" in tables and "gold/adct" in tables
    for name, frame in tables.items():
        assert _normalized(frame, sha_map).equals(_normalized(reference_tables[name], {})), name


def _upload(orthanc: Orthanc, files: list[Path]) -> None:
    assert orthanc.upload(files) == len(files)


# -- the nightly flow from a PACS ------------------------------------------------------------------


def test_dicomweb_pull_equals_the_folder_lake_and_completes_a_series_still_arriving(
    trial: Path, landing_without_dicom: Path, folder_lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trialake_flows.nightly import nightly

    files = _dicom_files(trial)
    with run_orthanc(tmp_path / "pacs") as pacs, run_orthanc(tmp_path / "research", aet="RESEARCH") as research:
        for name, value in pacs.environ.items():
            monkeypatch.setenv(name, value)
        for name, value in research.environ.items():
            monkeypatch.setenv(name.replace("TRIALAKE_PACS", "TRIALAKE_RESEARCH_PACS"), value)
        _upload(pacs, files)
        config = _config(tmp_path, research=research.dicomweb_url)
        lake = _new_lake(tmp_path / "lake", folder_lake)
        first = nightly(landing=str(landing_without_dicom), lake=lake.url, config=str(config), pacs=pacs.dicomweb_url)
        assert first.dicom.files_new == len(files)
        assert_same_lake(folder_lake, lake, same_source_bytes=True)  # WADO-RS sends the stored bytes
        _assert_results_served(lake, research)
        _assert_sources_only_in_restricted(trial, lake, pacs)
        again = nightly(landing=str(landing_without_dicom), lake=lake.url, config=str(config), pacs=pacs.dicomweb_url)
        assert again.dicom.files_new == 0 and (again.volumetry.measured, again.volumetry.failed) == (0, 0)  # nothing retrieved twice

        series_files = [p for p in files if p.parent == files[-1].parent]
        late = _extend_series(series_files, 2, tmp_path)  # the scanner sends two more slices of a series later
        _upload(pacs, late)
        before = read_table(lake, "silver/ct_series").filter(pl.col("n_instances") > 0)
        third = nightly(landing=str(landing_without_dicom), lake=lake.url, config=str(config), pacs=pacs.dicomweb_url)
        assert third.dicom.files_new == 2 and third.dicom.instances_accepted == 2
        after = read_table(lake, "silver/ct_series")
        grown = after.join(before, on="series_id", suffix="_before").filter(pl.col("n_instances") != pl.col("n_instances_before"))
        assert grown.select("n_instances", "n_instances_before").rows() == [(len(series_files) + 2, len(series_files))]


def _extend_series(series_files: list[Path], n: int, folder: Path) -> list[Path]:
    """``n`` new slices continuing a series past its last one (new SOP Instance UIDs, same pixels)."""
    datasets = sorted((pydicom.dcmread(p) for p in series_files), key=lambda ds: float(ds.ImagePositionPatient[2]))
    step = float(datasets[-1].ImagePositionPatient[2]) - float(datasets[-2].ImagePositionPatient[2])
    out = []
    for k in range(1, n + 1):
        ds = pydicom.dcmread(series_files[0])
        ds.PixelData = datasets[-1].PixelData
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[ds.SOPInstanceUID, str(k)])
        ds.ImagePositionPatient = [*datasets[-1].ImagePositionPatient[:2], float(datasets[-1].ImagePositionPatient[2]) + k * step]
        ds.InstanceNumber = len(datasets) + k
        path = folder / f"late-{k}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def _assert_results_served(lake: Lake, research: Orthanc) -> None:
    """Every measured series' SEG and SR, and its de-identified images, are in the research PACS
    and come back over its DICOMweb equal to the lake's objects, readable by highdicom."""
    index = read_table(lake, "silver/ct_dicom_results")
    measured = read_table(lake, "silver/ct_volumetry").filter(pl.col("status").is_in(["measured", "measured-with-flags"]))  # a flagged measurement has its SEG and SR too
    assert set(index.filter(pl.col("status") == "written")["series_id"]) == set(measured["series_id"])
    assert set(index["pushed_to"]) == {research.dicomweb_url}
    connection = read_pacs_connection(research.dicomweb_url, research.environ)
    with open_peer(connection) as peer:
        client = peer._client
        for row in index.iter_rows(named=True):
            for kind, series_uid, sop_uid in (("seg", row["seg_series_uid"], row["seg_sop_uid"]),
                                              ("sr", row["sr_series_uid"], row["sr_sop_uid"])):
                served = client.retrieve_instance(_study_of(lake, row["series_id"]), series_uid, sop_uid)
                stored = pydicom.dcmread(io.BytesIO(read_object(lake, row[f"{kind}_object"])))
                assert served == stored
                parsed = (hd.seg.Segmentation if kind == "seg" else hd.sr.Comprehensive3DSR).from_dataset(served)
                assert parsed.SOPInstanceUID == sop_uid
        instances = client.search_for_instances(search_filters={"Modality": "CT"})
    n_copies = read_table(lake, "bronze/dicom_instances").height
    assert len(instances) == n_copies


def _assert_sources_only_in_restricted(trial: Path, lake: Lake, pacs: Orthanc) -> None:
    """Each PACS instance is in the landing manifest (restricted/) under its source URL; no PHI of
    the generator (names, MRNs, original UIDs, ...) and no source URL is anywhere else, SEG and SR
    included."""
    from phi_scan import find_phi_leaks

    manifest = read_table(lake, "restricted/landing_files")
    pacs_rows = manifest.filter(pl.col("relpath").str.starts_with(pacs.dicomweb_url + "/studies/"))
    assert pacs_rows.height == len(_dicom_files(trial)) and pacs_rows["sha256"].null_count() == 0
    phi = json.loads((trial / "truth" / "phi.json").read_text())["values"]
    assert find_phi_leaks([Path(lake.url)], [*phi, pacs.dicomweb_url]) == []


def _study_of(lake: Lake, series_id: str) -> str:
    series = read_table(lake, "silver/ct_series").filter(pl.col("series_id") == series_id)
    return series["study_id"][0]


@pytest.mark.slow  # a fourth full run: C-GET itself is checked against WADO-RS below on every `make test`
def test_dimse_pull_equals_the_folder_lake_and_pushes_results_by_c_store(
    trial: Path, landing_without_dicom: Path, folder_lake: Lake, tmp_path: Path
) -> None:
    from trialake_flows.nightly import nightly

    with run_orthanc(tmp_path / "pacs") as pacs, run_orthanc(tmp_path / "research", aet="RESEARCH") as research:
        _upload(pacs, _dicom_files(trial))
        config = _config(tmp_path, research=research.dimse_url(calling="TRIALAKE"))
        lake = _new_lake(tmp_path / "lake", folder_lake)
        first = nightly(landing=str(landing_without_dicom), lake=lake.url, config=str(config), pacs=pacs.dimse_url())
        assert first.dicom.files_new == len(_dicom_files(trial))
        assert_same_lake(folder_lake, lake, same_source_bytes=False)
        again = nightly(landing=str(landing_without_dicom), lake=lake.url, config=str(config), pacs=pacs.dimse_url())
        assert again.dicom.files_new == 0
        index = read_table(lake, "silver/ct_dicom_results")
        in_research = {str(research.get_json(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"]) for i in research.instances()}
        assert set(index["seg_sop_uid"]) | set(index["sr_sop_uid"]) <= in_research


# -- peers directly --------------------------------------------------------------------------------


def test_c_get_c_move_and_wado_rs_bring_the_same_instances(trial: Path, tmp_path: Path) -> None:
    """WADO-RS returns the stored file byte for byte; C-GET and C-MOVE return the same dataset
    bytes behind a file meta of their own."""
    files = _dicom_files(trial)[:20]
    originals = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p.read_bytes() for p in files}
    with run_orthanc(tmp_path / "pacs") as pacs:
        _upload(pacs, files)
        move_port = free_port()
        pacs.add_modality("trialake", "TRIALAKE", move_port)
        patients = {pydicom.dcmread(p, stop_before_pixels=True).PatientID for p in files}
        results = {}
        for name, url in (("web", pacs.dicomweb_url), ("get", pacs.dimse_url()),
                          ("move", pacs.dimse_url(retrieve="move", move_port=move_port))):
            with open_peer(read_pacs_connection(url, pacs.environ)) as peer:
                found = peer.find_instances(sorted(patients) + ["NOT-A-PATIENT", "*"])
                assert {i.sop_uid for i in found} == set(originals)  # a wildcard in an ID finds no one
                results[name] = {i.sop_uid: data for i, data in peer.retrieve(found).items()}
    assert results["web"] == originals
    for name in ("get", "move"):
        assert {sop: _dataset_bytes(data) for sop, data in results[name].items()} == {
            sop: _dataset_bytes(data) for sop, data in originals.items()}


def _dataset_bytes(part10: bytes) -> bytes:
    """The bytes after the file meta group."""
    meta_length = int.from_bytes(part10[140:144], "little")  # (0002,0000) UL value after 128+4+8 bytes
    return part10[144 + meta_length:]


def test_a_pacs_that_comes_up_during_the_retries_is_reached(tmp_path: Path) -> None:
    http_port, dicom_port = free_port(), free_port()
    ready, done = threading.Event(), threading.Event()

    def start_late() -> None:
        time.sleep(1.0)
        with run_orthanc(tmp_path / "late", http_port=http_port, dicom_port=dicom_port):
            ready.set()
            done.wait(60)

    starter = threading.Thread(target=start_late)
    starter.start()
    try:
        environ = {"TRIALAKE_PACS_USER": "trialake-test", "TRIALAKE_PACS_PASSWORD": "not-a-secret"}
        for url in (f"dicomweb+http://127.0.0.1:{http_port}/dicom-web", f"dimse://ORTHANC@127.0.0.1:{dicom_port}"):
            connection = read_pacs_connection(url, environ, retries=6, backoff_s=0.5, timeout_s=10)
            with open_peer(connection) as peer:
                peer.check()
        assert ready.is_set()
    finally:
        done.set()
        starter.join()


def test_a_pacs_that_does_not_answer_times_out_in_one_line() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        connection = read_pacs_connection(f"dicomweb+http://127.0.0.1:{port}/dw", {}, retries=0, timeout_s=0.5)
        with open_peer(connection) as peer, pytest.raises(PacsError, match="no answer within 0.5 s"):
            peer.check()


def test_start_up_failures_exit_2_in_one_line_and_create_nothing(landing_without_dicom: Path, tmp_path: Path) -> None:
    config = _config(tmp_path)
    closed = free_port()
    with run_orthanc(tmp_path / "pacs") as pacs:
        cases = [
            (pacs.dimse_url().replace("ORTHANC@", "WRONG@"), {}, "refused the association"),
            (pacs.dicomweb_url, {"TRIALAKE_PACS_USER": "trialake-test", "TRIALAKE_PACS_PASSWORD": "pw-wrong-77"}, "HTTP 401"),
            (f"dicomweb+http://127.0.0.1:{closed}/dicom-web", {}, "unreachable"),
            (f"dimse://ORTHANC@127.0.0.1:{closed}", {}, "unreachable"),
        ]
        for url, environ, message in cases:
            lake = tmp_path / f"lake-{len(message)}"
            result = subprocess.run(
                [sys.executable, "-m", "trialake.cli", "run", "nightly", "--landing", str(landing_without_dicom),
                 "--lake", str(lake), "--config", str(config), "--pacs", url],
                capture_output=True, text=True, env={**os.environ, **environ}, timeout=120)
            assert result.returncode == 2, result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and message in lines[0] and "pw-wrong-77" not in lines[0], result.stderr
            assert not lake.exists()


# -- receiving pushes ------------------------------------------------------------------------------


def test_pushes_land_in_the_landing_area_and_are_ingested(trial: Path, landing_without_dicom: Path,
                                                          folder_lake: Lake, tmp_path: Path) -> None:
    """Orthanc (a real C-STORE SCU) pushes one subject's images to `trialake receive`; the files
    land atomically under dicom/received/ with the datasets exactly as sent, and the DICOM ingest
    accepts them into the same de-identified copies as the landing files of the folder run."""
    from trialake.dicom import SubjectKey, ingest_dicom_batch

    landing = tmp_path / "landing"
    shutil.copytree(landing_without_dicom, landing)
    subject_dir = sorted((trial / "landing" / "dicom").iterdir())[0]
    files = sorted(p for p in subject_dir.rglob("*") if p.is_file())
    receiver = subprocess.Popen(
        [sys.executable, "-m", "trialake.cli", "receive", "--port", "0", "--ae-title", "LAKE-IN", "--host", "127.0.0.1",
         "--landing", str(landing), "--allow", "ORTHANC"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        port = int(re.search(r":(\d+),", receiver.stdout.readline()).group(1))
        with run_orthanc(tmp_path / "pacs") as pacs:
            ids = [json.loads(pacs.request("POST", "/instances", p.read_bytes(), "application/dicom"))["ID"] for p in files]
            pacs.add_modality("lake", "LAKE-IN", port)
            pacs.request("POST", "/modalities/lake/store", json.dumps(ids).encode())
            with run_orthanc(tmp_path / "stranger", aet="STRANGER") as stranger:  # not an allowed calling AE
                stranger.upload(files[:1])
                stranger.add_modality("lake", "LAKE-IN", port)
                with pytest.raises(urllib.error.HTTPError):
                    stranger.request("POST", "/modalities/lake/store", json.dumps(stranger.instances()).encode())
    finally:
        os.killpg(receiver.pid, signal.SIGTERM)
        _, stderr = receiver.communicate(timeout=30)
    assert receiver.returncode == 0 and f"{len(files)} instances written" in stderr
    received = sorted(p for p in (landing / "dicom" / "received").rglob("*") if p.is_file())
    assert len(received) == len(files) and all(p.parts[-4] == "ORTHANC" for p in received)
    assert not [p for p in (landing / "dicom").rglob(".*")]  # no staging file left behind
    assert {_dataset_bytes(p.read_bytes()) for p in received} == {_dataset_bytes(p.read_bytes()) for p in files}

    key = SubjectKey.from_frame(pl.read_csv(landing / "keys" / "subject_key.csv", infer_schema=False))
    batch = ingest_dicom_batch([(str(p), p.read_bytes()) for p in received], key=key,
                               secret=read_object(folder_lake, SECRET_OBJECT), run_id="received",
                               params=DeidParams())
    assert len(batch.accepted) == len(files) and not batch.rejections
    copies = {hashlib.sha256(a.data).hexdigest() for a in batch.accepted}
    assert copies <= set(_copies(folder_lake))  # the same de-identified copies as from the landing files


def test_a_corrected_resend_is_kept_beside_the_first(tmp_path: Path) -> None:
    """The receiver in process, fed by pynetdicom's C-STORE SCU (our research-PACS push): the same
    SOP Instance UID sent twice with other pixels gives two files, nothing overwritten."""
    from pynetdicom import evt

    from dicom_factory import encode, synthesize_ct_series
    from trialake.pacs.receiver import build_receiver

    landing = tmp_path / "landing"
    landing.mkdir()
    ae, store = build_receiver(Lake(url=str(landing)), ae_title="LAKE-IN")
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, store)])
    try:
        [first] = synthesize_ct_series(patient_id="MRN-RESEND", n_slices=1, rows=8, columns=8)
        second = pydicom.dcmread(io.BytesIO(encode(first)))
        second.PixelData = bytes(len(first.PixelData))
        url = f"dimse://LAKE-IN@127.0.0.1:{server.server_address[1]}?calling=SITE7"
        with open_peer(read_pacs_connection(url, {}, retries=0, timeout_s=10)) as peer:
            peer.store([encode(first)])
            peer.store([encode(first)])  # the same bytes again: still one file
            peer.store([encode(second)])
    finally:
        server.shutdown()
    files = sorted(p for p in landing.rglob("*") if p.is_file())
    assert [p.parts[-4] for p in files] == ["SITE7", "SITE7"] and store.received == 3 and store.failed == 0
    assert {_dataset_bytes(p.read_bytes()) for p in files} == {_dataset_bytes(encode(first)), _dataset_bytes(encode(second))}
    assert files[0].name == f"{first.SOPInstanceUID}.dcm" and files[1].name.startswith(f"{first.SOPInstanceUID}_")
