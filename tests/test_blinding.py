"""A blinded nightly run end to end (CLI, in process with its own Prefect database), then the
recorded unblinding: no arm code, arm name or arm-level efficacy number outside unblinded/ and
restricted/, in any table, report, artifact, log line or Prefect record; the analysis defects of
issue 18 checked against the generator's truth on a trial with deaths, a subject never dosed,
partial AE dates and missing causality; and the unblinded endpoints double-programmed in R."""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from phi_scan import find_phi_leaks
from r_double import assert_equal_to_r, recompute_in_r
from trialake.config import default_trial_config_path
from trialake.lake import Lake, open_lake, read_table

pytestmark = pytest.mark.xdist_group("prefect-flows")

ARMS = ["UCMSC", "UC-MSC", "PBO", "Placebo"]
UNBLINDER = "Ada Statistician-Independent"
DIES, UNDOSED = "NCT04288102-S01-1003", "NCT04288102-S02-2002"  # of the small_trial fixture (seed 7)


def _make_messy(landing: Path, truth: Path) -> dict:
    """Edit a copy of the small trial's landing area: one placebo subject dies on study day 20
    (DM and DS; the Day 28 scan is gone), one subject is randomized but never dosed (no EX rows,
    ACTARM Not Treated, withdrawn), one AE start date is partial, one is missing, one AE has no
    causality. Returns what was changed."""
    clinical = landing / "clinical"

    def edit(name: str, change) -> None:
        frame = pl.read_csv(clinical / name, infer_schema_length=0)
        change(frame).write_csv(clinical / name)

    dm = pl.read_csv(clinical / "dm.csv", infer_schema_length=0)
    first_dose = dm.filter(pl.col("USUBJID") == DIES)["RFSTDTC"].str.to_date()[0]
    death = (first_dose + dt.timedelta(days=19)).isoformat()
    dies, undosed = pl.col("USUBJID") == DIES, pl.col("USUBJID") == UNDOSED
    edit("dm.csv", lambda f: f.with_columns(
        DTHFL=pl.when(dies).then(pl.lit("Y")).otherwise("DTHFL"), DTHDTC=pl.when(dies).then(pl.lit(death)).otherwise("DTHDTC"),
        ACTARMCD=pl.when(undosed).then(pl.lit("NOTTRT")).otherwise("ACTARMCD"),
        ACTARM=pl.when(undosed).then(pl.lit("Not Treated")).otherwise("ACTARM"),
        RFSTDTC=pl.when(undosed).then(None).otherwise("RFSTDTC"), RFENDTC=pl.when(undosed).then(None).otherwise("RFENDTC"),
    ))
    edit("ex.csv", lambda f: f.filter(~undosed))
    end = pl.col("DSCAT") == "DISPOSITION EVENT"
    edit("ds.csv", lambda f: f.with_columns(
        DSDECOD=pl.when(end & dies).then(pl.lit("DEATH")).when(end & undosed).then(pl.lit("WITHDRAWAL BY SUBJECT")).otherwise("DSDECOD"),
        DSSTDTC=pl.when(end & dies).then(pl.lit(death)).otherwise("DSSTDTC"),
    ))
    row = pl.int_range(pl.len())
    edit("ae.csv", lambda f: f.with_columns(
        AESTDTC=pl.when(row == 0).then(pl.col("AESTDTC").str.head(7)).when(row == 1).then(None).otherwise("AESTDTC"),
        AEREL=pl.when(row == 2).then(None).otherwise("AEREL"),
    ))
    scans = pl.read_csv(truth / "ct_series.csv")
    gone = scans.filter((pl.col("USUBJID") == DIES) & (pl.col("window") == "Day 28"))["folder"].to_list()
    for folder in gone:
        shutil.rmtree(landing / folder)
    return {"removed_scans": len(gone)}


@pytest.fixture(scope="module")
def blinded(small_trial: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the nightly flow blinded through the CLI on the edited small trial (console and its
    own Prefect database kept), then unblind it."""
    work = tmp_path_factory.mktemp("blinded")
    landing = work / "landing"
    shutil.copytree(small_trial / "landing", landing)
    changes = _make_messy(landing, small_trial / "truth")
    raw = yaml.safe_load(default_trial_config_path().read_text())
    raw.pop("blinding")  # a new trial's configuration starts blinded
    config = work / "trial.yaml"
    config.write_text(yaml.safe_dump(raw))
    prefect_home = work / "prefect"
    env = os.environ | {"PREFECT_HOME": str(prefect_home), "PREFECT_LOGGING_LEVEL": "DEBUG"}
    console = work / "console.log"
    lake_dir = work / "lake"
    with console.open("wb") as out:
        run = [sys.executable, "-m", "trialake.cli", "run", "nightly", "--landing", str(landing), "--lake", str(lake_dir),
               "--config", str(config)]
        subprocess.run(run, stdout=out, stderr=subprocess.STDOUT, check=True, env=env)
    public_snapshot = _public_files(lake_dir)
    unblind = subprocess.run(
        [sys.executable, "-m", "trialake.cli", "unblind", "--lake", str(lake_dir), "--by", UNBLINDER, "--reason", "DMC 1",
         "--config", str(config)],
        capture_output=True, text=True, check=True, env=env,
    )
    return {"work": work, "lake": open_lake(str(lake_dir)), "console": console, "prefect": prefect_home,
            "truth": small_trial / "truth", "landing": landing, "unblind_output": unblind.stdout,
            "public_before_unblinding": public_snapshot, "config": config, "changes": changes}


def _public_files(lake_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(lake_dir)): p.read_bytes() for p in lake_dir.rglob("*")
            if p.is_file() and p.relative_to(lake_dir).parts[0] not in ("restricted", "unblinded")}


def test_no_arm_is_named_outside_the_unblinded_zone(blinded: dict) -> None:
    """Every object of the lake outside unblinded/ and restricted/, the console of the run and
    Prefect's database (logs, parameters, artifacts)."""
    lake_dir = Path(blinded["lake"].url)
    databases = list(blinded["prefect"].rglob("*.db"))
    assert databases, "Prefect's database should be scanned too"
    leaks = find_phi_leaks([lake_dir, blinded["console"], *databases], ARMS, excluded_zones=("restricted", "unblinded"))
    assert leaks == []
    # the scan is not blind: the unblinded zone does name the arms, and the run reached gold
    assert find_phi_leaks([lake_dir / "unblinded"], ARMS, excluded_zones=())
    assert (lake_dir / "gold" / "endpoints").exists() and (lake_dir / "reports" / "endpoints.html").exists()


def test_the_blinded_report_carries_a_banner_and_pools_the_arms(blinded: dict) -> None:
    page = (Path(blinded["lake"].url) / "reports" / "endpoints.html").read_text()
    assert "BLINDED" in page and "All subjects" in page and "Methods" in page and "Forest plot" not in page
    endpoints = read_table(blinded["lake"], "gold/endpoints")
    arm_level = ["trt_arm", "ctl_arm", "n_trt", "n_ctl", "median_trt", "median_ctl", "estimate", "ci_low", "p_value"]
    assert endpoints.select(arm_level).null_count().row(0) == (endpoints.height,) * len(arm_level)
    assert endpoints["n_all"].max() > 0
    adsl = read_table(blinded["lake"], "gold/adsl")
    assert not {"ARM", "ARMCD", "ACTARM", "TRT01P", "TRT01A", "TRT01PN"} & set(adsl.columns)
    assert not {"EXTRT", "EXDOSE"} & set(read_table(blinded["lake"], "silver/exposure").columns)
    assert not {"ARMCD", "ARM"} & set(read_table(blinded["lake"], "bronze/dm").columns)


def _shifts_by_an_unchanged_subject(adct: pl.DataFrame, relative: pl.DataFrame) -> set[float]:
    """Differences x - y of relative changes where y (or x) is exactly 0: they equal the other
    subject's own value, which the blinded marts hold by design."""
    own: set[float] = set()
    analysed = adct.filter((pl.col("ANL01FL") == "Y") & pl.col("PCHG").is_not_null())
    for row in relative.iter_rows(named=True):
        values = analysed.filter((pl.col("PARAMCD") == row["PARAMCD"]) & (pl.col("AVISIT") == row["AVISIT"]))
        trt = values.filter(pl.col("TRT01P") == row["trt_arm"])["PCHG"].to_list()
        ctl = values.filter(pl.col("TRT01P") == row["ctl_arm"])["PCHG"].to_list()
        own |= {round(x, 9) for x in trt} if 0.0 in ctl else set()
        own |= {round(-y, 9) for y in ctl} if 0.0 in trt else set()
    return own


def test_no_arm_level_efficacy_number_outside_the_unblinded_zone(blinded: dict) -> None:
    """The unblinding's estimates, CIs and P values appear nowhere outside unblinded/: neither as
    a number in any Parquet column nor as report text, and neither do the per-arm median (IQR)
    texts. Numbers searched: every P, and the estimates and limits of relative changes (PCHG).
    A median, or a shift of volumes (which are whole numbers of voxels, so differences of
    volumes are on the same grid as the volumes the marts hold), may equal a subject's own value,
    and so may a shift x - y whose other term is exactly 0 (a subject whose value did not change:
    two identical phantoms give identical volumes)."""
    unblinded = read_table(blinded["lake"], "unblinded/endpoints")
    compared = unblinded.filter(pl.col("estimate").is_not_null())
    assert compared.height > 0
    relative = compared.filter(pl.col("AVAR") == "PCHG")
    numbers = {round(v, 9) for v in compared["p_value"].to_list() + relative["estimate"].to_list()
               + relative["ci_low"].to_list() + relative["ci_high"].to_list() if not float(v).is_integer()}
    numbers -= _shifts_by_an_unchanged_subject(read_table(blinded["lake"], "unblinded/adct"), relative)
    texts = {f"{r['estimate']:.2f} ({r['ci_low']:.2f} to {r['ci_high']:.2f})" for r in compared.iter_rows(named=True)}
    texts |= {f"{r[f'median_{a}']:.2f} ({r[f'q1_{a}']:.2f} to {r[f'q3_{a}']:.2f})"
              for r in compared.iter_rows(named=True) for a in ("trt", "ctl")}
    assert numbers and texts
    public = {name: data for name, data in _public_files(Path(blinded["lake"].url)).items()}
    assert public.keys() == blinded["public_before_unblinding"].keys(), "unblinding wrote outside unblinded/"
    found = []
    for name, data in public.items():
        if name.endswith(".parquet"):
            frame = pl.read_parquet(data)
            for column in frame.columns:
                if frame.schema[column].is_float():
                    hit = {round(v, 9) for v in frame[column].drop_nulls().to_list() if math.isfinite(v)} & numbers
                    found += [(name, column, v) for v in hit]
        else:
            text = re.sub(rb"data:image/png;base64,[A-Za-z0-9+/=]+", b"", data).decode("utf-8", "ignore")
            found += [(name, t) for t in texts if t in text]
    assert found == []
    # the same numbers are in the unblinded zone's report
    report = (Path(blinded["lake"].url) / "unblinded" / "reports" / "endpoints.html").read_text()
    assert all(t in report for t in texts)


def test_unblinding_is_a_recorded_event(blinded: dict) -> None:
    log = read_table(blinded["lake"], "unblinded/unblinding_log")
    assert log.select("by", "reason").rows() == [(UNBLINDER, "DMC 1")]
    event = log.row(0, named=True)
    assert event["run_id"].startswith("unblind-") and event["run_id"] in blinded["unblind_output"]
    assert re.match(r"\d{4}-\d{2}-\d{2}T", event["at"])
    adsl = read_table(blinded["lake"], "unblinded/adsl")
    assert set(adsl["TRT01P"].drop_nulls()) == {"UC-MSC", "Placebo"}
    truth = pl.read_csv(blinded["truth"] / "subjects.csv")
    assert adsl.join(truth, on="USUBJID").select((pl.col("ARMCD") == pl.col("ARMCD_right")).all()).item()
    # who unblinded is named in the unblinded zone only
    assert find_phi_leaks([Path(blinded["lake"].url)], [UNBLINDER], excluded_zones=("unblinded",)) == []
    define = json.loads((Path(blinded["lake"].url) / "unblinded" / "define.json").read_text())
    codelists = {c["name"]: c["terms"] for c in define["codelists"]}
    assert codelists["TRT"] == ["Placebo", "UC-MSC"]
    public_define = json.loads((Path(blinded["lake"].url) / "gold" / "define.json").read_text())
    assert "TRT" not in {c["name"] for c in public_define["codelists"]}


def test_unblinding_an_unblinded_trial_is_refused(blinded: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from trialake.cli import main

    assert main(["unblind", "--lake", blinded["lake"].url, "--by", "someone"]) == 2  # the reference trial: unblinded
    assert "the trial configuration is unblinded" in capsys.readouterr().err


def test_analysis_defects_are_fixed(blinded: dict) -> None:
    lake: Lake = blinded["lake"]
    adsl = read_table(lake, "unblinded/adsl")
    # the death before Day 28 is carried from DM and DS through silver
    died = adsl.filter(pl.col("DTHFL") == "Y").with_columns(day=(pl.col("DTHDT") - pl.col("TRTSDT")).dt.total_days() + 1)
    assert died.select("USUBJID", "day", "EOSSTT", "DCSREAS", "FASFL").rows() == [(DIES, 20, "DISCONTINUED", "DEATH", "Y")]
    # the subject never dosed: randomized (ITT), not in the safety set, records windowed from RANDDT
    undosed = adsl.filter(pl.col("USUBJID") == UNDOSED)
    assert undosed.select("ITTFL", "SAFFL", "FASFL", "TRT01A", "DCSREAS").rows() == [("Y", "N", "N", None, "WITHDRAWAL BY SUBJECT")]
    adct = read_table(lake, "unblinded/adct").filter(pl.col("USUBJID") == UNDOSED)
    assert adct.height > 0 and adct["ADY"].null_count() == 0 and adct["AVISIT"].null_count() < adct.height
    # every AE of the landing file is in ADAE, whatever its start date; a missing causality is related
    landing_ae = pl.read_csv(blinded["landing"] / "clinical" / "ae.csv", infer_schema_length=0)
    adae = read_table(lake, "unblinded/adae")
    assert adae.height == landing_ae.height > 2
    assert adae.filter(pl.col("AESTDTC").str.len_chars() == 7)["ASTDTF"].to_list() == ["D"]
    no_start = adae.filter(pl.col("AESTDTC").is_null())
    assert no_start.height == 1 and no_start["ASTDT"].null_count() == 1 and no_start["TRTEMFL"].to_list() == ["Y"]
    assert adae.filter(pl.col("AEREL").is_null())["AREL"].to_list() == ["RELATED"]
    # the worst-rank analysis ranks the death, which left no Day 28 value, worst
    assert blinded["changes"]["removed_scans"] == 1
    primary = read_table(lake, "unblinded/endpoints_sensitivity").filter(pl.col("PARAMCD") == "LESPCT").row(0, named=True)
    assert (primary["n_died_trt"], primary["n_died_ctl"]) == (0, 1)
    endpoints = read_table(lake, "unblinded/endpoints").filter(pl.col("primary") == "Y").row(0, named=True)
    assert primary["n_ctl"] == endpoints["n_ctl"] + 1  # complete cases leave the death out


def test_unblinded_endpoints_equal_r(blinded: dict, tmp_path: Path) -> None:
    lake = blinded["lake"]
    efficacy = pl.concat([read_table(lake, "unblinded/adct"), read_table(lake, "unblinded/adft")], how="diagonal_relaxed")
    endpoints = read_table(lake, "unblinded/endpoints")
    windows = {"Day 10": 13, "Day 28": 35}  # the reference trial's windows
    r_endpoints, r_sensitivity = recompute_in_r(
        tmp_path, read_table(lake, "unblinded/adsl"), efficacy, endpoints, read_table(lake, "unblinded/endpoints_sensitivity"), windows
    )
    assert assert_equal_to_r(endpoints, r_endpoints) == endpoints.height
    ours = read_table(lake, "unblinded/endpoints_sensitivity").join(r_sensitivity, on=["PARAMCD", "AVISIT", "AVAR"], suffix="_r")
    assert ours.select(((pl.col("p_value") - pl.col("p_value_r")).abs() <= 1e-12).all()).item()
