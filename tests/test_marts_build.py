"""build_marts end to end on the benchmark's synthetic silver tables (small here, 10k when slow)."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from bench.marts import GOALS_S, make_silver_frames, run_marts_benchmark
from trialake.marts import MART_INPUTS, AnalysisConfig, build_marts


def test_build_marts_grain_on_synthetic_trial() -> None:
    silver = make_silver_frames(40, seed=3)
    marts = build_marts(silver, config=AnalysisConfig())
    assert marts["adsl"].height == 40
    assert marts["adct"].height == 7 * silver["ct_volumetry"].height
    assert marts["adft"].height == silver["sixmwt"].height + silver["lung_function"].height
    assert marts["adlb"].height == silver["labs"].height
    assert marts["adae"].height == silver["adverse_events"].height
    for name in ("adct", "adft", "adlb"):
        analysed = marts[name].filter(pl.col("ANL01FL") == "Y")
        assert not analysed.select("USUBJID", "PARAMCD", "AVISITN").is_duplicated().any(), name
        assert analysed["AVAL"].null_count() == 0, name
    # the generator fails 2% of the scans: none of them may carry an analysis value
    failed = marts["adct"].filter(pl.col("status") == "failed")
    assert failed["AVAL"].null_count() == failed.height


def test_missing_silver_table_is_named() -> None:
    silver = dict(make_silver_frames(5))
    del silver["labs"]
    with pytest.raises(ValueError, match=r"silver: missing table\(s\) \['labs'\]"):
        build_marts(silver, config=AnalysisConfig())
    assert "labs" in MART_INPUTS


@pytest.mark.slow
def test_benchmark_meets_goals() -> None:
    timings = run_marts_benchmark()
    assert all(timings[n] < GOALS_S[n] for n in GOALS_S), timings


def test_gold_uses_the_configured_lab_mapping_and_checks_its_units(tmp_path) -> None:
    """A trial whose CRP standard is mg/dL: the marts take the configured mapping (the packaged
    one, mg/L, would refuse these results), and a unit the mapping does not expect is still refused."""
    import yaml

    from trialake.config import default_trial_config_path, load_trial_config
    from trialake.marts.toxicity import load_toxicity_criteria, plan_toxicity_grading
    from trialake.pipeline.gold import derive_gold
    from trialake.pipeline.params import lab_standards

    packaged = yaml.safe_load((Path(__file__).parents[1] / "src/trialake/clinical/lb_mapping.yaml").read_text())
    for test in packaged["tests"]:
        if test["code"] == "CRP":
            test["unit"] = "mg/dL"
        if test["code"] == "HGB":
            test["unit"] = "g/dL"
    mapping = tmp_path / "lb_mapping.yaml"
    mapping.write_text(yaml.safe_dump(packaged, allow_unicode=True))
    raw = yaml.safe_load(default_trial_config_path().read_text())
    raw["labs"]["mapping"] = str(mapping)
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(raw))
    trial = load_trial_config(config)
    silver = make_silver_frames(12, seed=5)
    crp = pl.col("LBTESTCD") == "CRP"
    silver["labs"] = silver["labs"].with_columns(
        LBSTRESU=pl.when(crp).then(pl.lit("mg/dL")).when(pl.col("LBTESTCD") == "HGB").then(pl.lit("g/dL")).otherwise("LBSTRESU"),
        LBSTRESN=pl.when(crp).then(pl.col("LBSTRESN") / 10).otherwise("LBSTRESN"),
    )
    adlb = derive_gold(silver, trial)["adlb"]
    assert set(adlb.filter(pl.col("PARAMCD") == "CRP")["PARAM"]) == {"C Reactive Protein (mg/dL)"}
    # CTCAE anaemia thresholds (g/L) are converted to the configured g/dL: 100 g/L is 10 g/dL
    graded, skipped = plan_toxicity_grading(load_toxicity_criteria(), lab_standards(trial.labs).mapping.tests)
    assert graded["HGB"][1] == pytest.approx(0.1) and skipped == {}
    with pytest.raises(ValueError, match=r"labs: PARAMCD 'CRP' in unit\(s\) \['mg/dL'\], expected 'mg/L'"):
        derive_gold(silver, load_trial_config())
