"""AnalysisConfig rejects inconsistent visit windows and arms with a clear message."""
from __future__ import annotations

import pytest

from trialake.marts import AnalysisConfig, ArmSpec, VisitWindow

BASELINE = VisitWindow("Baseline", 0.0, 1, -30, 1)


def test_reference_defaults() -> None:
    config = AnalysisConfig()
    assert config.baseline.name == "Baseline"
    assert [(v.name, v.low_day, v.high_day) for v in config.visits[1:]] == [("Day 10", 7, 13), ("Day 28", 21, 35)]
    assert [a.armcd for a in config.arms] == ["UCMSC", "PBO"]


def test_target_outside_window() -> None:
    with pytest.raises(ValueError, match="visit 'Day 10': window 7..13 does not contain target_day 14"):
        VisitWindow("Day 10", 10.0, 14, 7, 13)


def test_overlapping_windows() -> None:
    with pytest.raises(ValueError, match="windows 'Day 10' and 'Day 12' overlap"):
        visits = (BASELINE, VisitWindow("Day 10", 10.0, 10, 7, 13), VisitWindow("Day 12", 12.0, 12, 12, 14))
        AnalysisConfig(visits=visits)


def test_baseline_must_come_first() -> None:
    with pytest.raises(ValueError, match="baseline visit 'Baseline' must come first"):
        AnalysisConfig(visits=(VisitWindow("Baseline", 0.0, 10, 7, 13), VisitWindow("Screening", 1.0, -5, -9, -1)))


def test_duplicate_visit_number() -> None:
    with pytest.raises(ValueError, match="AVISITN.* used twice: 0.0"):
        AnalysisConfig(visits=(BASELINE, VisitWindow("Day 10", 0.0, 10, 7, 13)))


def test_arms_must_differ() -> None:
    with pytest.raises(ValueError, match="share ARMCD 'PBO'"):
        AnalysisConfig(treatment=ArmSpec("PBO", "x"))
