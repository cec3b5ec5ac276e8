"""gold/endpoints and the worst-rank sensitivity analysis double-programmed in R, on 70 synthetic
subjects: under 50 per arm, so the continuous CT values take the exact branch, while the ties of
walk distances rounded to 10 m force the normal approximation."""
from __future__ import annotations

from pathlib import Path

import polars as pl

from bench.marts import make_silver_frames
from r_double import assert_equal_to_r, recompute_in_r
from trialake.config import load_trial_config
from trialake.pipeline.gold import derive_gold


def _silver_with_deaths() -> dict[str, pl.DataFrame]:
    """The benchmark's synthetic silver tables, with every 9th subject dead on study day 15 (no
    data after it) and every 7th subject's CT after day 15 missing, so that the worst-rank
    analysis has deaths and other missing values; walk distances to the nearest 10 m, as some
    sites report them (ties)."""
    silver = make_silver_frames(70, seed=4)
    subjects = silver["subjects"].with_row_index("_i").with_columns(
        DTHFL=pl.when(pl.col("_i") % 9 == 4).then(pl.lit("Y")),
        DTHDTC=pl.when(pl.col("_i") % 9 == 4).then((pl.col("RFSTDT") + pl.duration(days=14)).dt.strftime("%Y-%m-%d")),
    )
    dead = subjects.filter(pl.col("DTHFL") == "Y").get_column("USUBJID").implode()
    no_ct = subjects.filter(pl.col("_i") % 7 == 3).get_column("USUBJID").implode()

    def cut(frame: pl.DataFrame, date: str, who: pl.Expr) -> pl.DataFrame:
        late = (pl.col(date) - pl.col("RFSTDT")).dt.total_days() > 14
        return frame.join(subjects.select("USUBJID", "RFSTDT"), on="USUBJID").filter(~(who & late)).drop("RFSTDT")

    sixmwt = silver["sixmwt"].with_columns((pl.col("FTSTRESN") / 10).round(0) * 10)
    return {
        **silver,
        "subjects": subjects.drop("_i"),
        "ct_volumetry": cut(silver["ct_volumetry"], "ADT", pl.col("USUBJID").is_in(dead) | pl.col("USUBJID").is_in(no_ct)),
        "sixmwt": cut(sixmwt, "FTDT", pl.col("USUBJID").is_in(dead)),
        "lung_function": cut(silver["lung_function"], "REDT", pl.col("USUBJID").is_in(dead)),
    }


def test_every_endpoint_row_equals_r(tmp_path: Path) -> None:
    trial = load_trial_config()
    gold = derive_gold(_silver_with_deaths(), trial)
    efficacy = pl.concat([gold["adct"], gold["adft"]], how="diagonal_relaxed")
    windows = {v.name: v.high_day for v in trial.visits}
    r_endpoints, r_sensitivity = recompute_in_r(
        tmp_path, gold["adsl"], efficacy, gold["endpoints"], gold["endpoints_sensitivity"], windows
    )
    compared = assert_equal_to_r(gold["endpoints"], r_endpoints)
    assert compared == gold["endpoints"].height == 11 * 2 * 2  # 11 parameters x 2 visits x CHG, PCHG
    # both branches of the Hodges-Lehmann code were exercised
    methods = set(gold["endpoints"]["method"].drop_nulls())
    assert any("exact" in m for m in methods) and any("continuity correction" in m for m in methods)
    sensitivity = gold["endpoints_sensitivity"].join(r_sensitivity, on=["PARAMCD", "AVISIT", "AVAR"], suffix="_r")
    assert sensitivity.height == 3
    assert (sensitivity["n_died_trt"] + sensitivity["n_died_ctl"]).min() > 0
    assert sensitivity.select(
        (pl.col("n_trt") == pl.col("n_trt_r")).all(), (pl.col("n_died_ctl") == pl.col("n_died_ctl_r")).all(),
        ((pl.col("p_value") - pl.col("p_value_r")).abs() <= 1e-12).all(),
    ).row(0) == (True, True, True)
