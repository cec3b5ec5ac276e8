"""What the command line shows: defaults and exit codes in --help, volumetry rounded with units,
progress (rich on a terminal, plain lines otherwise), a one-screen run summary with the exit
status, the run report as JSON behind --json, and honest counts when a run finds nothing new."""
from __future__ import annotations

import io
import json
import logging
import re
import shutil
from pathlib import Path

import pytest

from trialake.cli import main
from trialake.console import DICOM_FILES, SERIES, progress_extra, show_progress
from trialake.synth.phantom import PhantomSpec, make_chest_phantom, render_phantom_dicom

pytestmark = pytest.mark.xdist_group("prefect-flows")

#: The run report's keys before the summary existed (the --json output keeps them all).
REPORT_KEYS = {"clinical", "clinical_silver", "dicom", "volumetry", "gold", "failures", "ct_results"}
STAGE_KEYS = {
    "clinical": {"files_new", "files_rejected", "rows_loaded", "rows_rejected", "changed_domains", "quality", "held_back"},
    "dicom": {"files_new", "instances_accepted", "files_rejected", "series", "series_usable", "quality", "held_back"},
}


def _help(capsys: pytest.CaptureFixture, *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


@pytest.mark.parametrize("argv, defaults", [
    (("run",), ["--lease-wait LEASE_WAIT seconds to wait while another run writes the lake (default: 300.0)",
                "(default: thread)", "(default: 2)"]),
    (("generate",), ["(default: 100)", "random seed (same seed, same trial) (default: 0)", "(default: 64)", "(default: 0.0)"]),
    (("vacuum",), ["(default: 168)"]),
    (("demo",), ["(default: demo)", "(default: 30)"]),
])
def test_help_shows_every_default_and_the_exit_codes(capsys: pytest.CaptureFixture, argv: tuple[str, ...], defaults: list[str]) -> None:
    text = _help(capsys, *argv)
    for default in defaults:
        assert default in text
    assert "(default: None)" not in text and "(default: False)" not in text
    assert re.search(r"exit codes: 0 .* 2 could not", text)


def test_run_help_explains_each_exit_code(capsys: pytest.CaptureFixture) -> None:
    text = _help(capsys, "run")
    assert "0 everything publishable was published" in text
    assert "1 a table was held back or a stage failed" in text
    assert "2 could not start" in text


def test_volumetry_prints_rounded_values_with_units(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    phantom = make_chest_phantom(PhantomSpec(matrix=96, slices=40, lesion_pct=4.0, seed=11))
    series = tmp_path / "series"
    series.mkdir()
    for k, data in enumerate(render_phantom_dicom(phantom, feet_first=False)):
        (series / f"{k:03d}.dcm").write_bytes(data)
    assert main(["volumetry", str(series), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)  # the contract's JSON: full precision
    assert main(["volumetry", str(series)]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert set(lines) == set(record)
    for name, unit, decimals in (("lung_volume_ml", "mL", 1), ("lesion_volume_ml", "mL", 1), ("lesion_pct", "%", 2),
                                 ("ggo_pct", "%", 2), ("mean_lung_density_hu", "HU", 1), ("fov_margin_mm", "mm", 1)):
        number, shown_unit = lines[name].split()
        assert shown_unit == unit, name
        assert len(number.split(".")[1]) == decimals, name
        assert float(number) == pytest.approx(record[name], abs=0.5 * 10 ** -decimals), name
    assert not re.search(r"\d\.\d{4,}", "\n".join(lines.values()))  # nothing unrounded
    assert lines["method"] == record["method"]


def _emit(logger: logging.Logger) -> None:
    """What the stage tasks log, in order, for 6 files in two chunks and 3 series."""
    stage = {"task_name": "plan DICOM ingest"}
    logger.info("plan", extra={**stage, **progress_extra(DICOM_FILES, total=6)})
    for _ in range(2):
        logger.info("chunk", extra={"task_name": "ingest DICOM chunk", **progress_extra(DICOM_FILES, advance=3)})
    logger.info("plan", extra={"task_name": "plan volumetry", **progress_extra(SERIES, total=3)})
    for _ in range(3):
        logger.info("series", extra={"task_name": "measure series", **progress_extra(SERIES, advance=1)})
    logger.info("gold", extra={"task_name": "build gold marts and report"})


def test_progress_is_plain_lines_when_not_a_terminal() -> None:
    stream, logger = io.StringIO(), logging.getLogger("trialake-test.progress.plain")
    logger.setLevel(logging.INFO)
    with show_progress(logger.name, stream=stream, quiet_stages=frozenset({"ingest DICOM chunk", "measure series"})):
        _emit(logger)
    lines = stream.getvalue().splitlines()
    assert "\x1b" not in stream.getvalue()  # no terminal control codes
    assert lines == [
        "progress: stage plan DICOM ingest", "progress: DICOM files ingested: 0 of 6",
        "progress: DICOM files ingested: 3 of 6", "progress: DICOM files ingested: 6 of 6",
        "progress: stage plan volumetry", "progress: CT series measured: 0 of 3", "progress: CT series measured: 1 of 3",
        "progress: CT series measured: 2 of 3", "progress: CT series measured: 3 of 3",
        "progress: stage build gold marts and report",
    ]


def test_progress_is_a_rich_display_on_a_terminal() -> None:
    stream, logger = io.StringIO(), logging.getLogger("trialake-test.progress.rich")
    logger.setLevel(logging.INFO)
    with show_progress(logger.name, stream=stream, tty=True, quiet_stages=frozenset({"ingest DICOM chunk", "measure series"})):
        _emit(logger)
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())  # without the colour and cursor codes
    assert "\x1b[" in stream.getvalue()  # drawn with terminal control codes
    assert re.search(r"DICOM files ingested\s.*6/6", shown) and re.search(r"CT series measured\s.*3/3", shown)
    assert "progress:" not in shown


def _files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def test_a_run_over_files_already_ingested_says_so_in_json_and_in_the_summary(
    small_trial: Path, clean_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(clean_run, lake)
    # the same bytes with new modification times (as a regenerated demo has): every file is read again
    landing = shutil.copytree(small_trial / "landing", tmp_path / "landing", copy_function=shutil.copy)
    n_dicom, n_clinical = _files(landing / "dicom"), _files(landing / "clinical")
    argv = ["run", "nightly", "--landing", str(landing), "--lake", str(lake)]

    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert set(report) == REPORT_KEYS
    for stage, keys in STAGE_KEYS.items():
        assert keys <= set(report[stage]), stage
    assert (report["dicom"]["files_new"], report["dicom"]["files_known"], report["dicom"]["instances_accepted"]) == (0, n_dicom, 0)
    assert (report["clinical"]["files_new"], report["clinical"]["files_known"], report["clinical"]["rows_loaded"]) == (0, n_clinical, 0)
    assert "progress: stage publish DICOM" in captured.err  # plain progress lines: stderr is not a terminal

    assert main(argv) == 0  # nothing changed since: nothing is read
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) < 40
    assert lines[0] == "Nightly run: complete"
    assert lines[-1].startswith("Exit 0: everything publishable was published")
    assert f"DICOM      0 new files (0 rejected), {n_dicom} already ingested; 0 instances accepted" in out
    assert f"clinical   0 new files (0 rejected), {n_clinical} already ingested" in out
    assert f"Reports: {lake}/reports/nightly_summary.html" in out
