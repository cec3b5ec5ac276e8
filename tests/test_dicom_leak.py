"""Leak test of the DICOM ingest outputs, its negative controls, and tests of the scanner itself."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pydicom
import pytest
from matplotlib.figure import Figure
from dicom_factory import add_phi, encode, phi_values, synthesize_ct_series
from phi_scan import find_phi_leaks

from trialake.dicom import DeidParams, PrivateTag, SubjectKey, ingest_dicom_batch
from trialake.dicom.series import derive_ct_series

SECRET = b"trialake-test-secret-0123456789ab"
KEY = SubjectKey.from_frame(pl.DataFrame({"SITEID": ["01"], "PATIENT_ID": ["MRN0042"], "USUBJID": ["T-01-001"]}))
SAFE = DeidParams(private_tag_allowlist=frozenset({PrivateTag("ACME SAFE", 0x0013, 0x02)}))


@pytest.fixture(scope="module")
def landing() -> tuple[list[tuple[str, bytes]], list[str]]:
    series = synthesize_ct_series(patient_id="MRN0042", n_slices=3)
    for i, ds in enumerate(series):
        add_phi(ds, referenced_sop_uid=series[(i + 1) % 3].SOPInstanceUID)
    unknown = synthesize_ct_series(patient_id="MRN7777", n_slices=1, seed="x")[0]
    add_phi(unknown, referenced_sop_uid=unknown.SOPInstanceUID)
    folder = "dicom/site1/QUIXWELL_ZEBULON_MRN0042/20200301_ACC99887766"
    files = [(f"{folder}/{i}.dcm", encode(ds)) for i, ds in enumerate(series + [unknown])]
    files.append((f"{folder}/notes.txt", b"Zebulon Quixwell MRN0042 scan notes"))
    return files, phi_values(series + [unknown]) + ["MRN7777", "QUIXWELL_ZEBULON_MRN0042"]


def _write_outputs(root: Path, files, params: DeidParams) -> Path:
    """Lay out what the nightly flow writes from one batch: copies, instance index, rejections,
    series table, and restricted/ tables (which the scan must skip)."""
    result = ingest_dicom_batch(files, key=KEY, secret=SECRET, run_id="run-1", params=params)
    for instance in result.accepted:
        target = root / "bronze" / "dicom" / instance.object_name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(instance.data)
    (root / "silver").mkdir(parents=True)
    result.instances_frame().write_parquet(root / "bronze" / "dicom_instances.parquet")
    result.rejections_frame().write_parquet(root / "silver" / "rejections.parquet")
    subjects = pl.DataFrame({"USUBJID": ["T-01-001"], "RFSTDT": [None]}, schema={"USUBJID": pl.String, "RFSTDT": pl.Date})
    derive_ct_series(result.instances_frame(), subjects, run_id="run-1").write_parquet(root / "silver" / "ct_series.parquet")
    (root / "restricted").mkdir()
    result.quarantine_frame().write_parquet(root / "restricted" / "quarantine.parquet")
    result.uid_map_frame().write_parquet(root / "restricted" / "uid_map.parquet")
    return root


def test_ingest_outputs_contain_no_phi(tmp_path: Path, landing) -> None:
    files, phi = landing
    root = _write_outputs(tmp_path, files, SAFE)
    assert len(list((root / "bronze" / "dicom").rglob("*.dcm"))) == 3
    assert find_phi_leaks([root], phi) == []
    # restricted/ does hold PHI (landing paths, original UIDs): the clean result is not a blind scanner
    assert find_phi_leaks([root / "restricted"], phi)


@pytest.mark.parametrize(("params", "leaked"), [
    (DeidParams(copy_keywords=frozenset({"InstitutionName"})), "St Yolanthe Infirmary"),
    (DeidParams(copy_keywords=frozenset({"SeriesDescription"})), "Quixwell"),
    (DeidParams(shift_dates=False), "20200301"),
    (DeidParams(private_tag_allowlist=frozenset({PrivateTag("ACME PHI", 0x0011, 0x01)})), "Quixwell MRN private"),
], ids=["keep-institution", "no-descriptor-cleaning", "no-date-shift", "private-tag-allowed"])
def test_negative_control_skipping_one_rule_is_caught(tmp_path: Path, landing, params: DeidParams, leaked: str) -> None:
    files, phi = landing
    findings = find_phi_leaks([_write_outputs(tmp_path, files, params)], phi)
    assert any(line.endswith(f": {leaked}") or leaked.lower() in line.lower() for line in findings), findings
    assert all("/restricted/" not in line for line in findings)


def test_scanner_finds_parquet_names_values_and_dates(tmp_path: Path) -> None:
    frame = pl.DataFrame({"Quixwell_flag": [1], "note": [["seen by", "Hargreave"]], "birth": [dt.date(1961, 4, 12)]})
    frame.write_parquet(tmp_path / "t.parquet")
    frame.write_parquet(tmp_path / "m.parquet", metadata={"note": "Ottoline"})
    findings = find_phi_leaks([tmp_path], ["Quixwell", "Hargreave", "19610412", "Ottoline"])
    assert any("m.parquet: Parquet key-value metadata" in f and f.endswith("Ottoline") for f in findings)
    assert any("Parquet column name" in f and f.endswith("Quixwell") for f in findings)
    assert any("Parquet column note" in f for f in findings)
    assert any("Parquet column birth" in f and f.endswith("1961-04-12") for f in findings)


def test_scanner_finds_nested_dicom_private_json_text_and_object_names(tmp_path: Path) -> None:
    ds = synthesize_ct_series(patient_id="CLEANID", n_slices=1)[0]
    item = pydicom.Dataset()
    item.private_block(0x0009, "ACME", create=True).add_new(0x01, "LO", "Ysolde")
    outer = pydicom.Dataset()
    outer.ReferencedImageSequence = [item]
    ds.SourceImageSequence = [outer]
    (tmp_path / "a.dcm").write_bytes(encode(ds))
    (tmp_path / "report.json").write_text(json.dumps({"name": "Núñez"}))  # \u00d1 escapes in the file
    Figure(figsize=(1, 1)).savefig(tmp_path / "qc.png", metadata={"Title": "QC of Ysolde"})
    (tmp_path / "Pellingham").mkdir()
    (tmp_path / "Pellingham" / "log.txt").write_text("ok")
    (tmp_path / "restricted").mkdir()
    (tmp_path / "restricted" / "key.csv").write_text("Ysolde,Núñez,Pellingham")
    findings = find_phi_leaks([tmp_path], ["Ysolde", "Núñez", "Pellingham"])
    assert any("a.dcm: dataset DICOM" in f and f.endswith("Ysolde") for f in findings)
    assert any("report.json: JSON" in f for f in findings)
    assert any("qc.png: PNG tEXt chunk: Ysolde" in f for f in findings)
    assert any("object name: Pellingham" in f for f in findings)
    assert not any("key.csv" in f for f in findings)
