"""The nightly flow under non-default trial configurations, each checked against the generator's truth.

One configuration changes several sections at once (date-shift range, visit windows, a lab
mapping with other standard units, other HU thresholds); another switches date shifting off.
Every stage must follow the configuration: CT study days equal the truth's, lab values are in the
configured units, volumes measured under the configured thresholds agree with the phantoms, and
analysis visits use the configured windows.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from trialake.clinical.mapping import packaged_mapping_path
from trialake.config import load_trial_config
from trialake.config.trial import default_trial_config_path
from trialake.lake import Lake, open_lake, read_object, read_table
from trialake.pipeline.context import SECRET_OBJECT
from trialake.pseudonym import compute_pseudo_uid

pytestmark = pytest.mark.xdist_group("nondefault")

#: Changes to the reference trial's YAML: (old text, new text).
SHIFTED = [
    ("max_shift_days: 365", "max_shift_days: 100"),
    ("{name: Day 10, avisitn: 10, target_day: 10, low_day: 7, high_day: 13}",
     "{name: Day 10, avisitn: 10, target_day: 10, low_day: 5, high_day: 15}"),
    ("lesion_low_hu: -700", "lesion_low_hu: -650"),
    ("solid_split_hu: -300", "solid_split_hu: -250"),
]
#: Standard units changed by the custom lab mapping: code -> (unit, factor from the packaged unit).
OTHER_UNITS = {"CRP": ("mg/dL", 0.1), "HGB": ("g/dL", 0.1)}


def _config(tmp_path: Path, changes: list[tuple[str, str]]) -> Path:
    text = default_trial_config_path().read_text(encoding="utf-8")
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "trial.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _mapping_with_other_units(tmp_path: Path) -> Path:
    text = packaged_mapping_path("lb_mapping.yaml").read_text(encoding="utf-8")
    for old, new in (("    unit: mg/L\n    plausible: [0, 1000]", "    unit: mg/dL\n    plausible: [0, 100]"),
                     ("    unit: g/L\n    plausible: [20, 250]", "    unit: g/dL\n    plausible: [2, 25]")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "lb_other_units.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _run(small_trial: Path, tmp_path: Path, config: Path) -> Lake:
    from trialake_flows.nightly import nightly

    lake_dir = tmp_path / "lake"
    nightly(landing=str(small_trial / "landing"), lake=str(lake_dir), config=str(config))
    return open_lake(str(lake_dir))


def _series_truth(small_trial: Path, lake: Lake) -> pl.DataFrame:
    secret = read_object(lake, SECRET_OBJECT)
    truth = pl.read_csv(small_trial / "truth" / "ct_series.csv", try_parse_dates=True).with_columns(
        pl.col("SeriesInstanceUID").map_elements(lambda uid: compute_pseudo_uid(secret, uid), return_dtype=pl.String)
        .alias("series_id"))
    series = read_table(lake, "silver/ct_series").filter(pl.col("volumetry_selected"))
    return truth.join(series, on="series_id", how="inner", suffix="_lake")


def test_shift_range_windows_lab_units_and_hu_thresholds_all_reach_their_stages(small_trial: Path, tmp_path: Path) -> None:
    mapping = _mapping_with_other_units(tmp_path)
    config = _config(tmp_path, [*SHIFTED, ("  mapping: null", f"  mapping: {mapping}")])
    trial = load_trial_config(config)
    lake = _run(small_trial, tmp_path, config)

    series = _series_truth(small_trial, lake)
    assert series.height == pl.read_csv(small_trial / "truth" / "ct_series.csv").height
    assert (series["ADY_lake"] == series["ADY"]).all()  # DICOM and clinical dates moved by the same offset
    offsets = (series["ADT"] - series["acquisition_date"]).dt.total_days()
    assert offsets.abs().max() <= 100

    measured = read_table(lake, "silver/ct_volumetry").join(series.select("series_id", "lung_volume_ml", "lesion_pct"),
                                                            on="series_id", suffix="_truth")
    assert measured.height == series.height
    assert ((measured["lung_volume_ml"] / measured["lung_volume_ml_truth"] - 1).abs() <= 0.03).all()
    assert ((measured["lesion_pct"] - measured["lesion_pct_truth"]).abs() <= 1.0).all()
    from trialake.pipeline.params import volumetry_params, volumetry_params_hash

    assert set(measured["params_hash"]) == {volumetry_params_hash(volumetry_params(trial.ct))}

    shas = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (small_trial / "landing" / "clinical").iterdir()}
    truth = pl.read_csv(small_trial / "truth" / "labs.csv", infer_schema_length=0).filter(
        (pl.col("status") == "ok") & pl.col("quarantine").is_null()).with_columns(
        pl.col("file").replace_strict(shas, default=None).alias("source_sha256"), pl.col("source_row").cast(pl.Int64),
        pl.col("LBSTRESN").cast(pl.Float64))
    labs = truth.join(read_table(lake, "silver/labs"), on=["source_sha256", "source_row"], suffix="_lake")
    assert labs.height == truth.height
    for code, (unit, factor) in OTHER_UNITS.items():
        rows = labs.filter(pl.col("LBTESTCD") == code)
        assert rows.height > 0 and set(rows["LBSTRESU_lake"]) == {unit}
        assert ((rows["LBSTRESN_lake"] - factor * rows["LBSTRESN"]).abs() <= 0.005 * factor * rows["LBSTRESN"].abs() + 1e-9).all()
    others = labs.filter(~pl.col("LBTESTCD").is_in(list(OTHER_UNITS)))
    assert (others["LBSTRESU_lake"] == others["LBSTRESU"]).all()
    adlb = read_table(lake, "gold/adlb")
    assert set(adlb.filter(pl.col("PARAMCD") == "CRP")["AVALU"]) == {"mg/dL"}

    adct = read_table(lake, "gold/adct").filter(pl.col("AVISIT").is_not_null())
    windows = {v.name: (v.low_day, v.high_day) for v in trial.visits}
    inside = adct.with_columns(pl.col("AVISIT").replace_strict(windows, return_dtype=pl.List(pl.Int64)).alias("_w"))
    assert inside.filter((pl.col("ADY") < pl.col("_w").list.get(0)) | (pl.col("ADY") > pl.col("_w").list.get(1))).is_empty()


@pytest.mark.slow  # every change: shift_dates false in tests/test_deid_config.py (DICOM and clinical bronze)
def test_shifting_switched_off_keeps_the_true_dates_everywhere(small_trial: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, [("shift_dates: true", "shift_dates: false")])
    lake = _run(small_trial, tmp_path, config)
    series = _series_truth(small_trial, lake)
    assert series.height > 0 and (series["acquisition_date"] == series["ADT"]).all()
    assert (series["ADY_lake"] == series["ADY"]).all()
    subjects = pl.read_csv(small_trial / "truth" / "subjects.csv", try_parse_dates=True).join(
        read_table(lake, "silver/subjects"), on="USUBJID", suffix="_lake")
    assert subjects.height > 0 and (subjects["RFSTDT"] == subjects["RFSTDTC"]).all()
