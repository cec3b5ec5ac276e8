"""build_marts end to end on the benchmark's synthetic silver tables (small here, 10k when slow)."""
from __future__ import annotations

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
