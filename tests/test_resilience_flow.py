"""The nightly flow on landing areas it has never seen: generated trials of many seeds with random
mutations (an Expected variable dropped, rows before consent, a file hidden, an export corrupted).
It never crashes; every landing file and row ends up published or rejected; the tables a mutation
cannot touch equal those of the clean run; imaging and clinical publish independently.

Expected values come from the landing files themselves and the generator's truth, never from the
code under test. ``make test`` runs a few examples (the issue's reproductions always among them),
the ``slow`` marker many more over any seed.
"""
from __future__ import annotations

import csv
import hashlib
import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trialake.lake import Lake, open_lake, read_object, read_table, write_object
from trialake.pipeline.context import SECRET_OBJECT
from trialake.pipeline.inventory import HIDDEN_REASON
from trialake.pipeline.run_report import RunIncomplete, RunReport

pytestmark = pytest.mark.xdist_group("prefect-resilience")

TINY = {"subjects": 4, "sites": 2, "matrix": 48, "slices": 16, "workers": 1}
SEED = 3
#: The generator dates nothing before consent by itself: the trials carry its deliberate copies
#: dated before consent (a first lab result or 6-minute walk), which the lake must quarantine.
EARLY = {"before_consent": 0.5}
DOMAIN_TABLES = {"dm": "silver/subjects", "ex": "silver/exposure", "sv": "silver/visits", "lb": "silver/labs",
                 "ft": "silver/sixmwt", "re": "silver/lung_function", "ae": "silver/adverse_events",
                 "ds": "silver/disposition"}
DICOM_TABLES = ("bronze/dicom_instances", "silver/ct_series", "silver/ct_volumetry")
GOLD_TABLES = ("gold/adsl", "gold/adct", "gold/adft", "gold/adlb", "gold/adae", "gold/endpoints")
COMPARED = (*(f"bronze/{d}" for d in DOMAIN_TABLES), *DOMAIN_TABLES.values(), *DICOM_TABLES, *GOLD_TABLES)
DATES = {"ft.csv": "FTDTC", "re.csv": "REDTC", "sv.csv": "SVSTDTC"}


@dataclass
class Trials:
    """Generated tiny trials and their clean runs, made once per seed and per test process."""

    base: Path
    made: dict[int, tuple[Path, Lake, RunReport]]

    def get(self, seed: int) -> tuple[Path, Lake]:
        return self.run(seed)[:2]

    def run(self, seed: int) -> tuple[Path, Lake, RunReport]:
        if seed not in self.made:
            from trialake_flows.nightly import nightly
            from trialake.synth import SynthParams, generate_trial
            from trialake.synth.params import MessParams

            out = self.base / f"seed{seed}"
            generate_trial(out, seed=seed, params=SynthParams(mess=MessParams(**EARLY)), **TINY)
            lake = open_lake(str(out / "lake"))
            result = nightly(landing=str(out / "landing"), lake=lake.url, return_state=True).result(raise_on_failure=False)
            self.made[seed] = (out, lake, result.report if isinstance(result, RunIncomplete) else result)
        return self.made[seed]


@pytest.fixture(scope="module")
def trials(tmp_path_factory: pytest.TempPathFactory) -> Trials:
    return Trials(tmp_path_factory.mktemp("trials"), {})


# --- mutations: each changes a copy of the landing area and says which tables it may change ---------

Mutation = tuple[str, ...]


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    return rows[0], rows[1:]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *rows])
    path.write_text(text.getvalue(), encoding="utf-8")


def drop_expected(landing: Path, name: str, variable: str) -> set[str]:
    header, rows = _csv_rows(landing / "clinical" / name)
    keep = [i for i, c in enumerate(header) if c != variable]
    _write_csv(landing / "clinical" / name, [header[i] for i in keep], [[r[i] for i in keep] for r in rows])
    domain = name[:2]
    touched = {f"bronze/{domain}", DOMAIN_TABLES[domain], *GOLD_TABLES}
    return touched | set(DOMAIN_TABLES.values()) if domain == "dm" else touched  # consent checks everywhere


def add_row_before_consent(landing: Path, name: str) -> set[str]:
    """A copy of the export's first row, dated two days before its subject's informed consent, at the end."""
    dm_header, dm_rows = _csv_rows(landing / "clinical" / "dm.csv")
    consent = {r[dm_header.index("USUBJID")]: date.fromisoformat(r[dm_header.index("RFICDTC")]) for r in dm_rows}
    header, rows = _csv_rows(landing / "clinical" / name)
    copy = list(rows[0])
    copy[header.index(DATES[name])] = f"{consent[copy[header.index('USUBJID')]] - timedelta(days=2):%Y-%m-%d}"
    if name == "sv.csv":  # an extra, early visit (a second record of the same visit would be a conflict)
        copy[header.index("VISITNUM")], copy[header.index("VISIT")] = "0.5", "Pre-screening"
    _write_csv(landing / "clinical" / name, header, [*rows, copy])
    return {f"bronze/{name[:2]}"}  # the row is quarantined: silver and gold are as if it never came


def hide(landing: Path, area: str, how: str) -> set[str]:
    files = sorted(p for p in (landing / area).rglob("*") if p.is_file() and not p.name.startswith(".") and p.parent.name != ".trash")
    victim = files[len(files) // 2]
    target = victim.parent / ".trash" / "IM0001" if how == "folder" else victim.parent / f".{victim.name}"
    target.parent.mkdir(exist_ok=True)
    victim.rename(target)
    if area == "dicom":
        return {*DICOM_TABLES, *GOLD_TABLES}
    return _clinical_touched(victim.name)


def corrupt(landing: Path, name: str, garbage: bytes) -> set[str]:
    path = landing / "clinical" / name
    path.write_bytes(path.read_bytes()[: len(garbage)] + garbage)
    return _clinical_touched(name)


def _clinical_touched(name: str) -> set[str]:
    domain = name[:2]
    touched = {f"bronze/{domain}", DOMAIN_TABLES[domain], *GOLD_TABLES}
    if domain in ("dm", "ex"):  # first dose and subjects: study days and the rows kept everywhere
        touched |= set(DOMAIN_TABLES.values()) | {"silver/ct_series", "silver/ct_volumetry"}
    return touched


EDC = ("dm.csv", "ex.csv", "sv.csv", "ft.csv", "re.csv", "ae.csv")
DROPPABLE = {"dm.csv": ("RFICDTC", "RACE", "SEX", "AGE"), "ex.csv": ("EXENDTC", "EXDOSE"), "sv.csv": ("VISIT", "SVENDTC"),
             "ft.csv": ("FTTEST",), "re.csv": ("RETESTCD",), "ae.csv": ("AESER", "AEREL", "AESEV")}
mutations = st.one_of(
    st.sampled_from(sorted(DROPPABLE)).flatmap(lambda n: st.tuples(st.just("drop"), st.just(n), st.sampled_from(DROPPABLE[n]))),
    st.tuples(st.just("before_consent"), st.sampled_from(sorted(DATES))),
    st.tuples(st.just("hide"), st.sampled_from(["dicom", "clinical"]), st.sampled_from(["folder", "name"])),
    st.tuples(st.just("corrupt"), st.sampled_from([*EDC, "lb_site1.csv", "lb_site2.csv"]),
              st.binary(min_size=1, max_size=64).map(bytes.hex)),
)


def apply(landing: Path, mutation: Mutation) -> set[str]:
    kind, *args = mutation
    actions: dict[str, Callable[..., set[str]]] = {
        "drop": drop_expected, "before_consent": add_row_before_consent, "hide": hide,
        "corrupt": lambda landing, name, garbage: corrupt(landing, name, bytes.fromhex(garbage)),
    }
    return actions[kind](landing, *args)


# --- what must hold after any run -------------------------------------------------------------------

def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _comparable(lake: Lake, table: str) -> pl.DataFrame:
    frame = read_table(lake, table)  # lineage to the (mutated) file and the run aside
    frame = frame.select([c for c, t in frame.schema.items() if c not in ("run_id", "source_sha256") and not isinstance(t, pl.List)])
    return frame.sort(frame.columns, nulls_last=True) if frame.width else frame


def check_everything_accounted_for(landing: Path, lake: Lake, report: RunReport) -> None:
    """Every landing file and row is published or rejected (rows of tables held back excepted)."""
    from trialake.clinical import ClinicalFileError, parse_clinical_file

    rejections = read_table(lake, "silver/rejections")
    rejected_files = set(rejections.filter(pl.col("source_row").is_null())["source_sha256"])
    instances = set(read_table(lake, "bronze/dicom_instances")["source_sha256"])
    for path in (p for p in (landing / "dicom").rglob("*") if p.is_file()):
        assert _sha(path) in instances | rejected_files, path.name
    held = {h.table for h in report.held_back}
    for path in (p for p in (landing / "clinical").rglob("*") if p.is_file()):
        sha = _sha(path)
        if sha in rejected_files:
            continue
        try:
            rows = set(parse_clinical_file(path.name, path.read_bytes()).frame["source_row"])
        except ClinicalFileError:
            raise AssertionError(f"{path.name}: unreadable but not rejected") from None
        domain = path.name[:2]
        mine = rejections.filter(pl.col("source_sha256") == sha)
        bronze = read_table(lake, f"bronze/{domain}").filter(pl.col("source_sha256") == sha)
        assert set(bronze["source_row"]) | set(mine.filter(pl.col("stage").str.starts_with("clinical_read") |
                                                            pl.col("stage").str.starts_with("dq_bronze"))["source_row"]) == rows
        if DOMAIN_TABLES[domain] in held:
            continue
        silver = read_table(lake, DOMAIN_TABLES[domain])
        published = set(silver.filter(pl.col("source_sha256") == sha)["source_row"]) if silver.width else set()
        assert set(bronze["source_row"]) <= published | set(mine["source_row"]), path.name


def run_mutated(trials: Trials, seed: int, mutations: list[Mutation], tmp: Path) -> tuple[Path, Lake, set[str], RunReport]:
    from trialake_flows.nightly import nightly

    out, clean = trials.get(seed)
    landing = tmp / "landing"
    shutil.copytree(out / "landing", landing)
    touched = set().union(*(apply(landing, m) for m in mutations))
    lake = open_lake(str(tmp / "lake"))
    write_object(lake, SECRET_OBJECT, read_object(clean, SECRET_OBJECT))  # same pseudonyms and date shifts
    state = nightly(landing=str(landing), lake=lake.url, return_state=True)
    result = state.result(raise_on_failure=False)
    assert not isinstance(result, BaseException) or isinstance(result, RunIncomplete), f"crashed: {result!r}"
    report = result.report if isinstance(result, RunIncomplete) else result
    assert report.failures == (), report.failures  # data problems never fail a stage
    assert state.is_completed() == report.complete
    return landing, lake, touched, report


def test_a_clean_run_quarantines_exactly_the_rows_the_truth_names_and_publishes_the_rest(trials: Trials) -> None:
    out, lake, report = trials.run(SEED)
    assert report.complete and report.failures == ()
    shas = {p.name: _sha(p) for p in (out / "landing" / "clinical").iterdir()}
    truth = pl.read_csv(out / "truth" / "quarantine.csv").with_columns(pl.col("file").replace_strict(shas).alias("source_sha256"))
    assert truth.filter(pl.col("rule") == "not_before_consent").height > 0
    rejected = read_table(lake, "silver/rejections").filter(pl.col("source_row").is_not_null())
    assert sorted(rejected.select("source_sha256", "source_row", "stage").iter_rows()) == sorted(
        truth.select("source_sha256", "source_row", "stage").iter_rows())
    check_everything_accounted_for(out / "landing", lake, report)
    assert read_table(lake, "gold/adsl").height == TINY["subjects"]


def test_the_issue_s_landing_area_publishes_everything(trials: Trials, tmp_path: Path) -> None:
    """A DM export without RFICDTC (it crashed the quality code), valid DICOM files under a hidden
    folder and a hidden name (they were in neither bronze nor rejections)."""
    mutations = [("drop", "dm.csv", "RFICDTC"), ("hide", "dicom", "folder"), ("hide", "dicom", "name")]
    landing, lake, touched, report = run_mutated(trials, SEED, mutations, tmp_path)
    _, clean = trials.get(SEED)
    assert report.complete and "DM.RFICDTC" in report.clinical_silver.not_sent
    check_everything_accounted_for(landing, lake, report)
    check_unaffected(lake, clean, touched)
    check_hidden_rejected(landing, lake, expected=2)
    skipped = read_table(lake, "silver/dq_results").filter(pl.col("success").is_null())
    assert ("silver/labs", "not checked: silver/subjects.RFICDT has no values") in set(zip(skipped["table"], skipped["details"]))


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**16), mutation=mutations)
@example(seed=SEED, mutation=("corrupt", "dm.csv", "00ff"))  # no DM at all: clinical waits, imaging publishes
@example(seed=SEED, mutation=("before_consent", "ft.csv"))
@example(seed=SEED, mutation=("hide", "clinical", "name"))
def test_any_seed_and_mutation_never_stops_the_lake(trials: Trials, tmp_path_factory: pytest.TempPathFactory,
                                                   seed: int, mutation: Mutation) -> None:
    check_mutation(trials, tmp_path_factory.mktemp("mutated"), seed, mutation)


def check_mutation(trials: Trials, tmp: Path, seed: int, mutation: Mutation) -> None:
    landing, lake, touched, report = run_mutated(trials, seed, [mutation], tmp)
    _, clean = trials.get(seed)
    check_everything_accounted_for(landing, lake, report)
    check_unaffected(lake, clean, touched)
    kind, *args = mutation
    if kind == "before_consent":
        name = args[0]
        added = (_sha(landing / "clinical" / name), len(_csv_rows(landing / "clinical" / name)[1]))
        quarantined = read_table(lake, "silver/rejections").filter(pl.col("stage").str.starts_with("dq_silver_"))
        assert added in set(quarantined.select("source_sha256", "source_row").iter_rows())
    if kind == "hide":
        check_hidden_rejected(landing, lake, expected=1)
    if kind == "corrupt" and args[0] == "dm.csv":
        assert not report.complete and [h.table for h in report.held_back] == ["silver/subjects", "gold"]
        assert read_table(lake, "silver/ct_volumetry").height == read_table(clean, "silver/ct_volumetry").height  # imaging went on
    if kind in ("before_consent",) or (kind == "drop"):
        assert report.complete


def check_unaffected(lake: Lake, clean: Lake, touched: set[str]) -> None:
    for table in COMPARED:
        if table not in touched:
            assert _comparable(lake, table).equals(_comparable(clean, table)), table


def check_hidden_rejected(landing: Path, lake: Lake, *, expected: int) -> None:
    hidden = [p for p in landing.rglob("*") if p.is_file() and any(part.startswith(".") for part in p.relative_to(landing).parts)]
    reasons = set(read_table(lake, "silver/rejections").filter(pl.col("reason") == HIDDEN_REASON)["source_sha256"])
    assert len(hidden) == expected and all(_sha(p) in reasons for p in hidden)


def test_a_failed_stage_leaves_the_other_branch_published_and_the_next_run_completes(
    trials: Trials, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A lake where the DICOM copies cannot be written (a file sits where their folder goes): the
    DICOM chunks fail, the clinical branch and gold still publish, the run exits 1 naming the stage
    in one line; once the folder can be written, the next run ingests the files it could not."""
    from trialake.cli import main

    out, clean = trials.get(SEED)
    lake = open_lake(str(tmp_path / "lake"))
    write_object(lake, SECRET_OBJECT, read_object(clean, SECRET_OBJECT))
    write_object(lake, "bronze/dicom", b"not a folder")
    argv = ["run", "nightly", "--landing", str(out / "landing"), "--lake", lake.url]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("trialake run nightly: incomplete: stage ingest DICOM chunk failed (1 of 1 task(s) failed")
    assert err.endswith("everything else was published")
    for table in DOMAIN_TABLES.values():
        assert _comparable(lake, table).equals(_comparable(clean, table)), table
    assert read_table(lake, "bronze/dicom_instances").is_empty()
    # gold built from what was published: no CT yet, so the FAS is the dosed subjects with a
    # functional baseline (every generated subject is dosed by default)
    adsl, adft = read_table(lake, "gold/adsl"), read_table(lake, "gold/adft")
    assert read_table(lake, "gold/adct").is_empty() and adsl.height == TINY["subjects"]
    assert set(adsl.filter(pl.col("FASFL") == "Y")["USUBJID"]) == set(adft.filter(pl.col("ABLFL") == "Y")["USUBJID"])
    if lake.fs.isfile(lake.path("bronze/dicom")):  # a fresh lake's first run re-ingests all and may have removed it
        lake.fs.rm(lake.path("bronze/dicom"))
    assert main(argv) == 0
    for table in COMPARED:
        assert _comparable(lake, table).equals(_comparable(clean, table)), table


@pytest.mark.slow
def test_the_issue_s_12_subject_seed_7_trial_completes_with_its_early_rows_quarantined(tmp_path: Path) -> None:
    """``trialake generate --subjects 12 --seed 7`` then ``trialake run nightly`` exited 1: a few
    baseline rows dated before consent held back four silver tables, gold and all of imaging. The
    generator no longer dates rows before consent by itself, so the trial carries its deliberate
    copies before consent (as ``generate`` writes the trial, with that one kind of mess)."""
    import subprocess
    import sys

    from trialake.synth import SynthParams, generate_trial
    from trialake.synth.params import MessParams

    cli = [sys.executable, "-m", "trialake.cli"]
    generate_trial(tmp_path / "trial", subjects=12, seed=7, params=SynthParams(mess=MessParams(**EARLY)))
    landing, lake_dir = tmp_path / "trial" / "landing", tmp_path / "lake"
    run = subprocess.run([*cli, "run", "nightly", "--landing", str(landing), "--lake", str(lake_dir)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    lake = open_lake(str(lake_dir))
    shas = {p.name: _sha(p) for p in (landing / "clinical").iterdir()}
    truth = pl.read_csv(tmp_path / "trial" / "truth" / "quarantine.csv").with_columns(pl.col("file").replace_strict(shas).alias("source_sha256"))
    assert truth.filter(pl.col("rule") == "not_before_consent").height > 0
    rejected = read_table(lake, "silver/rejections").filter(pl.col("source_row").is_not_null())
    assert sorted(rejected.select("source_sha256", "source_row", "stage").iter_rows()) == sorted(
        truth.select("source_sha256", "source_row", "stage").iter_rows())
    n_files = sum(1 for p in (landing / "dicom").rglob("*") if p.is_file())
    assert read_table(lake, "bronze/dicom_instances").height == n_files
    assert read_table(lake, "gold/adsl").height == 12 and read_table(lake, "gold/endpoints").height > 0


@pytest.mark.slow
def test_the_demo_at_the_reference_trial_s_size_completes(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "trialake.cli", "demo", "--subjects", "100", "--out", str(tmp_path / "demo")],
                         capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Endpoints at Day 28" in run.stdout and "Traceback" not in run.stderr
    assert read_table(open_lake(str(tmp_path / "demo" / "lake")), "gold/adsl").height == 100


def test_a_landing_area_never_seen_minimal_exports_and_strange_dicom(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Minimal DM/EX/LB exports (only the variables the contract names) and DICOM files as other
    writers make them: exit 0 or 1, every file and row published or rejected, never a traceback."""
    import datetime as dt

    from pydicom.uid import ImplicitVRLittleEndian, SecondaryCaptureImageStorage

    from dicom_factory import encode, synthesize_ct_series
    from trialake.cli import main

    landing = tmp_path / "landing"
    files: dict[str, bytes] = {
        "keys/subject_key.csv": b"SITEID,PATIENT_ID,USUBJID\n01,A1,X-001\n01,A2,X-002\n",
        "clinical/dm.csv": b"USUBJID,ARMCD,ARM,RFSTDTC\nX-001,UCMSC,UC-MSC,2020-03-01\nX-002,PBO,Placebo,2020-03-02\n",
        "clinical/ex.csv": b"USUBJID,EXTRT,EXSTDTC\nX-001,UC-MSC,2020-03-01\nX-002,PLACEBO,2020-03-02\n",
        "clinical/lb.csv": b"USUBJID,LBTESTCD,LBORRES,LBORRESU,LBDTC\nX-001,CRP,12,mg/L,2020-02-28\nX-002,CRP,3,mg/L,2020-03-02\n"
                           b"X-001,CRP,<0.5,mg/L,2020-03-20\nX-002,HGB,13,g/dL,2020-03\n",
    }
    series = synthesize_ct_series(patient_id="A1", study_date=dt.date(2020, 3, 1))
    for i, ds in enumerate(series):
        files[f"dicom/A1/{i:03d}"] = encode(ds)
    odd = synthesize_ct_series(patient_id="A2", n_slices=4, seed="other writer")
    implicit = odd[0]
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    files["dicom/A2/implicit.dcm"] = encode(implicit)
    files["dicom/A2/no_preamble.dcm"] = encode(odd[1], preamble=False)
    files["dicom/A2/truncated.dcm"] = encode(odd[2])[:700]
    capture = odd[3]
    capture.SOPClassUID = capture.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    capture.Modality = "OT"
    files["dicom/A2/capture.dcm"] = encode(capture)
    files["dicom/A2/empty.dcm"] = b""
    files["dicom/A2/notes.dcm"] = b"this is not DICOM\n"
    files["dicom/A9/unknown_patient.dcm"] = encode(synthesize_ct_series(patient_id="A9", n_slices=1)[0])
    for relpath, data in files.items():
        (landing / relpath).parent.mkdir(parents=True, exist_ok=True)
        (landing / relpath).write_bytes(data)

    status = main(["run", "nightly", "--landing", str(landing), "--lake", str(tmp_path / "lake")])
    out, err = capfd.readouterr()
    assert status in (0, 1) and "Traceback" not in out + err, err[-3000:]
    lake = open_lake(str(tmp_path / "lake"))
    rejections = read_table(lake, "silver/rejections")
    accepted = set(read_table(lake, "bronze/dicom_instances")["source_sha256"])
    for relpath, data in files.items():
        if relpath.startswith("dicom/"):
            assert hashlib.sha256(data).hexdigest() in accepted | set(rejections["source_sha256"]), relpath
    assert len(accepted) >= len(series)
    assert read_table(lake, "gold/adsl").height == 2
    labs = read_table(lake, "silver/labs")  # the month-only date is quarantined; nothing checks consent (no RFICDTC)
    assert sorted(labs["source_row"]) == [1, 2, 3]
    assert rejections.filter(pl.col("stage") == "dq_silver_labs")["source_row"].to_list() == [4]



#: The smallest landing area the contract allows: a subject key and DM/EX exports of two subjects.
MINIMAL_LANDING = {
    "keys/subject_key.csv": b"SITEID,PATIENT_ID,USUBJID\n01,A1,X-001\n01,A2,X-002\n",
    "clinical/dm.csv": b"USUBJID,ARMCD,ARM,RFSTDTC\nX-001,UCMSC,UC-MSC,2020-03-01\nX-002,PBO,Placebo,2020-03-02\n",
    "clinical/ex.csv": b"USUBJID,EXTRT,EXSTDTC\nX-001,UC-MSC,2020-03-01\nX-002,PLACEBO,2020-03-02\n",
}


def _write_landing(landing: Path, files: dict[str, bytes]) -> None:
    for relpath, data in files.items():
        (landing / relpath).parent.mkdir(parents=True, exist_ok=True)
        (landing / relpath).write_bytes(data)


def test_a_run_whose_every_dicom_file_is_rejected_completes_with_its_summary(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Every DICOM file is unreadable or of a patient the key does not have: no instance is
    accepted, so silver/ct_series is never published; the run still completes (exit 0), every
    file is rejected, the clinical side and gold publish, and the run summary is written (it once
    failed here with "column status not found")."""
    from dicom_factory import encode, synthesize_ct_series
    from trialake.cli import main
    from trialake.pipeline.dicom import INGEST_STAGES
    from trialake.pipeline.run_report import SUMMARY

    landing = tmp_path / "landing"
    files = {**MINIMAL_LANDING, "dicom/A1/empty.dcm": b"", "dicom/A1/notes.dcm": b"this is not DICOM\n"}
    for i, ds in enumerate(synthesize_ct_series(patient_id="A9", n_slices=3)):  # A9 is in no subject key
        files[f"dicom/A9/{i:03d}.dcm"] = encode(ds)
    _write_landing(landing, files)

    status = main(["run", "nightly", "--landing", str(landing), "--lake", str(tmp_path / "lake")])
    out, err = capfd.readouterr()
    assert status == 0 and "Traceback" not in out + err, err[-3000:]
    lake = open_lake(str(tmp_path / "lake"))
    rejections = read_table(lake, "silver/rejections").filter(pl.col("stage").is_in(INGEST_STAGES))
    dicom = {relpath: hashlib.sha256(data).hexdigest() for relpath, data in files.items() if relpath.startswith("dicom/")}
    assert set(dicom.values()) <= set(rejections["source_sha256"])
    assert read_table(lake, "bronze/dicom_instances").is_empty() and read_table(lake, "silver/ct_series").is_empty()
    assert read_table(lake, "silver/ct_dicom_results").is_empty()
    assert sorted(read_table(lake, "gold/adsl")["USUBJID"]) == ["X-001", "X-002"]
    summary = read_object(lake, SUMMARY).decode()
    assert "complete: everything publishable was published" in summary and "Every series was measured." in summary


def test_a_pacs_that_fails_during_the_run_fails_the_imaging_branch_only(tmp_path: Path) -> None:
    """The configured PACS stops answering after start-up (a closed port; the flow itself has no
    start-up check): planning the DICOM ingest fails, the clinical branch and gold still publish,
    the run ends Failed naming the stage, and the landing area's DICOM files wait for the next run,
    which (without the PACS) ingests them."""
    import socket

    from dicom_factory import encode, synthesize_ct_series
    from trialake_flows.nightly import nightly
    from trialake.config import default_trial_config_path

    landing = tmp_path / "landing"
    series = {f"dicom/A1/{i:03d}.dcm": encode(ds) for i, ds in enumerate(synthesize_ct_series(patient_id="A1", n_slices=3))}
    _write_landing(landing, {**MINIMAL_LANDING, **series})
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    config = tmp_path / "trial.yaml"
    config.write_text(default_trial_config_path().read_text() + "\npacs:\n  retries: 0\n  timeout_s: 5\n")
    lake = open_lake(str(tmp_path / "lake"))

    state = nightly(landing=str(landing), lake=lake.url, config=str(config), pacs=f"dicomweb+http://127.0.0.1:{closed}/dw",
                    return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, RunIncomplete)
    assert [f.stage for f in error.report.failures] == ["plan DICOM ingest"], error.report.failures
    assert error.report.dicom is None and error.report.clinical is not None
    assert sorted(read_table(lake, "silver/subjects")["USUBJID"]) == ["X-001", "X-002"]
    assert read_table(lake, "gold/adsl").height == 2
    assert read_table(lake, "bronze/dicom_instances").is_empty()

    report = nightly(landing=str(landing), lake=lake.url, config=str(config))
    assert report.complete
    accepted = set(read_table(lake, "bronze/dicom_instances")["source_sha256"])
    assert accepted == {hashlib.sha256(data).hexdigest() for data in series.values()}
