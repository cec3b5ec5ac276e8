"""derive_bds under a non-default configuration, and study-day properties."""
from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from trialake.marts import AnalysisConfig, ArmSpec, VisitWindow, derive_bds, study_day

T0 = date(2021, 7, 1)
ADSL = pl.DataFrame(
    {"STUDYID": ["X"], "USUBJID": ["B1"], "SITEID": ["9"], "TRT01P": ["Drug"], "TRT01A": ["Drug"], "TRTSDT": [T0]}
)
# Another trial: baseline strictly before dosing (days -14..-1), Week 2 (target 14, days 10..18).
CONFIG = AnalysisConfig(
    treatment=ArmSpec("D", "Drug"),
    control=ArmSpec("P", "Placebo"),
    visits=(VisitWindow("Screening", -1.0, -1, -14, -1), VisitWindow("Week 2", 2.0, 14, 10, 18)),
)


def test_windows_and_baseline_follow_the_configuration() -> None:
    records = pl.DataFrame(
        {
            "USUBJID": ["B1"] * 5,
            "PARAMCD": ["P"] * 5,
            "PARAM": ["Param (u)"] * 5,
            "AVAL": [10.0, 12.0, 15.0, 9.0, 6.0],
            "AVALU": ["u"] * 5,
            # days -20 (outside), -3 (baseline), 1 (dosing day: after this baseline window),
            # 12 and 16 (both 2 days from 14: the later one wins)
            "ADT": [T0 + timedelta(days=offset) for offset in (-20, -3, 0, 11, 15)],
        }
    )
    N = None
    expected = pl.DataFrame(
        [
            (-20, N, N, N, N, 12.0, N),
            (-3, "Screening", -1.0, "Y", "Y", 12.0, N),
            (1, N, N, N, N, 12.0, 3.0),
            (12, "Week 2", 2.0, N, N, 12.0, -3.0),
            (16, "Week 2", 2.0, N, "Y", 12.0, -6.0),
        ],
        schema={"ADY": pl.Int64, "AVISIT": pl.String, "AVISITN": pl.Float64, "ABLFL": pl.String,
                "ANL01FL": pl.String, "BASE": pl.Float64, "CHG": pl.Float64},
        orient="row",
    )
    got = derive_bds(records, ADSL, config=CONFIG).select(expected.columns)
    assert_frame_equal(got, expected)


@given(offset=st.integers(min_value=-400, max_value=400))
def test_study_day_has_no_day_zero(offset: int) -> None:
    frame = pl.DataFrame({"d": [T0 + timedelta(days=offset)], "ref": [T0]})
    day = frame.select(study_day("d", "ref")).item()
    assert day != 0
    assert day == (offset + 1 if offset >= 0 else offset)


def test_outside_window_records_go_to_the_nearest_window_only_when_it_is_empty() -> None:
    """Week 2 is days 10..18 (target 14). A record on day 20 is outside every window: excluded by
    default; with "nearest" it is Week 2's analysis record when Week 2 has no record of its own,
    and loses to a record inside the window otherwise."""
    nearest = AnalysisConfig(treatment=CONFIG.treatment, control=CONFIG.control, visits=CONFIG.visits, outside_window="nearest")

    def records(offsets: list[int]) -> pl.DataFrame:
        n = len(offsets)
        return pl.DataFrame({"USUBJID": ["B1"] * n, "PARAMCD": ["P"] * n, "PARAM": ["Param (u)"] * n,
                             "AVAL": [10.0 + i for i in range(n)], "AVALU": ["u"] * n,
                             "ADT": [T0 + timedelta(days=o) for o in offsets]})

    # days -3 (baseline) and 20
    excluded = derive_bds(records([-3, 19]), ADSL, config=CONFIG)
    assert excluded.select("ADY", "AVISIT", "ANL01FL").rows() == [(-3, "Screening", "Y"), (20, None, None)]
    used = derive_bds(records([-3, 19]), ADSL, config=nearest)
    assert used.select("ADY", "AVISIT", "ANL01FL", "AWTARGET", "AWTDIFF", "CHG").rows() == [
        (-3, "Screening", "Y", -1, 2, None), (20, "Week 2", "Y", 14, 6, 1.0)
    ]
    # a record inside Week 2 (day 11, 3 days from target) beats the closer-looking outside one
    both = derive_bds(records([-3, 10, 19]), ADSL, config=nearest)
    assert both.select("ADY", "ANL01FL").rows() == [(-3, "Y"), (11, "Y"), (20, None)]
