"""Ad hoc flows of the data manager: rebuild the marts, re-measure with other thresholds, backfill."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from trialake.config import load_trial_config
from trialake.config.settings import Settings
from trialake.lake import Lake, read_table
from trialake.pipeline import list_landing_areas
from trialake.pipeline.gold import current_params_hash

pytestmark = pytest.mark.xdist_group("prefect-crash")


def test_landing_areas_of_a_backfill_are_the_subfolders_with_a_key_in_name_order(tmp_path: Path) -> None:
    for name in ("2020-03-02", "2020-03-01", "notes"):
        (tmp_path / name / "keys").mkdir(parents=True)
    for name in ("2020-03-02", "2020-03-01"):
        (tmp_path / name / "keys" / "subject_key.csv").write_text("SITEID,PATIENT_ID,USUBJID\n")
    settings = Settings(landing=str(tmp_path), lake=str(tmp_path / "lake"), trial=load_trial_config())
    assert list_landing_areas(settings) == [f"{tmp_path}/2020-03-01", f"{tmp_path}/2020-03-02"]


def test_remeasure_keeps_both_results_and_rebuild_marts_uses_the_configured_ones(small_trial: Path, fresh_run: Lake) -> None:
    from trialake_flows.adhoc import rebuild_marts, remeasure_volumetry

    landing, lake = str(small_trial / "landing"), fresh_run  # after a nightly run
    series = read_table(lake, "silver/ct_series").filter(pl.col("status") == "usable").height
    adct = read_table(lake, "gold/adct")

    remeasured = remeasure_volumetry(landing=landing, lake=lake.url, lesion_low_hu=-650.0, solid_split_hu=-250.0)
    assert remeasured.measured + remeasured.failed == series and remeasured.held_back == ()
    volumetry = read_table(lake, "silver/ct_volumetry")
    assert volumetry.group_by("params_hash").len()["len"].sort().to_list() == [series, series]
    # a stricter opacity bound (-650 instead of -700 HU) can only find less lesion, never more
    current = current_params_hash(load_trial_config())
    pairs = volumetry.with_columns((pl.col("params_hash") == current).alias("configured")).pivot(
        on="configured", index="series_id", values="lesion_pct"
    )
    assert (pairs["false"] <= pairs["true"] + 1e-9).all() and (pairs["false"] < pairs["true"]).any()

    summary = rebuild_marts(landing=landing, lake=lake.url)
    assert summary is not None and summary.tables["gold/adct"] == adct.height
    assert read_table(lake, "gold/adct").drop("run_id", strict=False).sort("USUBJID", "PARAMCD", "ADY").equals(
        adct.drop("run_id", strict=False).sort("USUBJID", "PARAMCD", "ADY")
    )


def test_reprocess_subject_ingests_and_measures_that_subject_again(small_trial: Path, fresh_run: Lake) -> None:
    from trialake_flows.adhoc import reprocess_subject

    landing, lake = str(small_trial / "landing"), fresh_run  # after a nightly run
    volumetry = read_table(lake, "silver/ct_volumetry")
    subject = volumetry["USUBJID"][0]
    mine = volumetry.filter(pl.col("USUBJID") == subject)
    report = reprocess_subject(landing=landing, lake=lake.url, usubjid=subject)
    files = read_table(lake, "bronze/dicom_instances").filter(pl.col("USUBJID") == subject).height
    assert report.dicom.files_new == files > 0  # only that subject's files were read again
    assert report.volumetry.measured + report.volumetry.failed == mine.height
    again = read_table(lake, "silver/ct_volumetry").filter(pl.col("USUBJID") == subject)
    assert again.drop("run_id").sort("series_id").equals(mine.drop("run_id").sort("series_id"))
    assert (again["run_id"] != mine["run_id"][0]).all()
