"""The generator's deliberate mess: it only adds rows, leaves variables out or holds DM records back,
never changes a row of the clean trial, and its truth says which rows the lake must keep out of
silver. Expected values are read from the files themselves and the clean trial, not from the
mess module."""
from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from trialake.synth import SynthParams, generate_trial
from trialake.synth.params import MessParams

from conftest import SMALL_GENERATED

EDC = ("dm.csv", "ex.csv", "sv.csv", "ft.csv", "re.csv", "ae.csv")

pytestmark = pytest.mark.xdist_group("generator")


@pytest.fixture(scope="module")
def trials(small_generated: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The small trial, clean and with every kind of mess at 35 %."""
    messy = tmp_path_factory.mktemp("messy")
    generate_trial(messy, params=SynthParams(mess=MessParams.uniform(0.35)), workers=1, **SMALL_GENERATED)
    return small_generated, messy


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a landing export as text cells (the lab workbook included)."""
    if path.suffix == ".xlsx":
        sheet = openpyxl.load_workbook(path, read_only=True).worksheets[0]
        cells = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    else:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig") if raw.startswith(b"\xef\xbb\xbf") or path.name != "lb_site2.csv" else raw.decode("latin-1")
        cells = list(csv.reader(io.StringIO(text), delimiter=";" if path.name == "lb_site2.csv" else ","))
    return cells[0], cells[1:]


def _quarantine(trial: Path) -> dict[tuple[str, int], tuple[str, str]]:
    with open(trial / "truth" / "quarantine.csv", newline="") as handle:
        return {(r["file"], int(r["source_row"])): (r["stage"], r["rule"]) for r in csv.DictReader(handle)}


def _consent(trial: Path) -> dict[str, date]:
    with open(trial / "truth" / "subjects.csv", newline="") as handle:
        return {r["USUBJID"]: date.fromisoformat(r["RFICDTC"]) for r in csv.DictReader(handle)}


def test_a_clean_trial_has_no_mess_but_its_rows_before_consent_are_marked(trials: tuple[Path, Path]) -> None:
    clean, _ = trials
    assert json.loads((clean / "truth" / "mess.json").read_text())["dropped"] == {}
    consent, marked = _consent(clean), _quarantine(clean)
    for name, column in (("sv.csv", "SVSTDTC"), ("ft.csv", "FTDTC"), ("re.csv", "REDTC")):
        header, rows = _rows(clean / "landing" / "clinical" / name)
        subject, when = header.index("USUBJID"), header.index(column)
        early = {n for n, row in enumerate(rows, start=1) if date.fromisoformat(row[when]) < consent[row[subject]]}
        assert {n for (file, n), (_, rule) in marked.items() if file == name} == early, name
        assert all(marked[(name, n)] == (f"dq_silver_{ {'sv.csv': 'visits', 'ft.csv': 'sixmwt', 're.csv': 'lung_function'}[name]}",
                                          "not_before_consent") for n in early)


def test_mess_only_adds_rows_leaves_variables_out_or_holds_dm_back(trials: tuple[Path, Path]) -> None:
    clean, messy = trials
    doc = json.loads((messy / "truth" / "mess.json").read_text())
    assert doc["rates"]["duplicate"] == 0.35 and doc["late_dm"], "the rate should have held some DM records back"
    marked = _quarantine(messy)
    for name in EDC:
        clean_header, clean_rows = _rows(clean / "landing" / "clinical" / name)
        header, rows = _rows(messy / "landing" / "clinical" / name)
        dropped = doc["dropped"].get(name[:2])
        assert header == [c for c in clean_header if c != dropped], name
        keep = [clean_header.index(c) for c in header]
        expected = [[row[i] for i in keep] for row in clean_rows]
        if name == "dm.csv":
            subject = clean_header.index("USUBJID")
            late_header, late_rows = _rows(messy / "truth" / "late_dm.csv")
            assert late_header == header and {r[header.index("USUBJID")] for r in late_rows} == set(doc["late_dm"])
            expected = [r for r, full in zip(expected, clean_rows) if full[subject] not in doc["late_dm"]]
        kinds = {a["source_row"]: a["kind"] for a in doc["added"] if a["file"] == name}
        originals = [row for n, row in enumerate(rows, start=1) if n not in kinds]
        assert originals == expected, name  # the clean rows, in order, none changed
        dates = {"ex.csv": "EXSTDTC", "sv.csv": "SVSTDTC", "ft.csv": "FTDTC", "re.csv": "REDTC", "ae.csv": "AESTDTC"}
        date_column = header.index(dates[name]) if name in dates else None
        subject = header.index("USUBJID")
        consent = _consent(messy)
        for n, kind in kinds.items():
            row = rows[n - 1]
            if kind == "duplicate":
                original = max(m for m in range(1, n) if m not in kinds)
                assert row == rows[original - 1], (name, n)  # an exact copy of the clean row before it
                assert marked[(name, n)] == (f"clinical_{name[:2]}", "duplicate")
            elif kind == "unknown_unit":
                assert row[header.index(f"{name[:2].upper()}ORRESU")] == "mmol/h"
                assert marked[(name, n)] == (f"clinical_{name[:2]}", "unknown_unit")
            elif kind == "partial_date":
                assert len(row[date_column]) == 7 and (name, n) in marked
            else:
                assert kind == "before_consent" and date.fromisoformat(row[date_column]) < consent[row[subject]]
                quarantined = "RFICDTC" not in doc["dropped"].values() or row[subject] in doc["late_dm"]
                assert ((name, n) in marked) == quarantined


def test_rows_of_subjects_without_dm_wait_for_it(trials: tuple[Path, Path]) -> None:
    _, messy = trials
    late = set(json.loads((messy / "truth" / "mess.json").read_text())["late_dm"])
    marked = _quarantine(messy)
    for name in EDC[1:]:
        header, rows = _rows(messy / "landing" / "clinical" / name)
        for n, row in enumerate(rows, start=1):
            if row[header.index("USUBJID")] in late:
                stage, rule = marked[(name, n)]
                assert stage == f"clinical_{name[:2]}" and rule in {"no_dm_record", "duplicate", "unknown_unit", "partial_date"}


def test_lab_truth_marks_the_copies_and_the_rows_before_consent(trials: tuple[Path, Path]) -> None:
    _, messy = trials
    consent, marked = _consent(messy), _quarantine(messy)
    doc = json.loads((messy / "truth" / "mess.json").read_text())
    with open(messy / "truth" / "labs.csv", newline="") as handle:
        truth = list(csv.DictReader(handle))
    rules = {r["quarantine"] for r in truth if r["quarantine"]}
    assert {"duplicate", "result_date_present"} <= rules
    for r in truth:
        key = (r["file"], int(r["source_row"]))
        if r["status"] != "ok":
            assert marked[key][1] == r["category"]
        elif r["quarantine"] == "not_before_consent":
            assert "RFICDTC" not in doc["dropped"].values() and date.fromisoformat(r["LBDT"]) < consent[r["USUBJID"]]
            assert marked[key] == ("dq_silver_labs", "not_before_consent")
        elif r["quarantine"] is None or r["quarantine"] == "":
            assert key not in marked
            assert r["USUBJID"] not in doc["late_dm"]
