"""ADCT derivation, admiral style: the expected table is written by hand first, then compared.

Reference config: Baseline days -30..1 (latest valid wins), Day 10 days 7..13 (target 10),
Day 28 days 21..35 (target 28). Study day 1 = TRTSDT, no day 0.
"""
from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trialake.marts import AnalysisConfig, derive_adct

CONFIG = AnalysisConfig()
T0 = date(2020, 3, 10)  # TRTSDT of S1..S4
ADSL = pl.DataFrame(
    {
        "STUDYID": ["ST"] * 5,
        "USUBJID": ["S1", "S2", "S3", "S4", "S5"],
        "SITEID": ["01", "01", "02", "02", "03"],
        "TRT01P": ["UC-MSC", "Placebo", "UC-MSC", "Placebo", "UC-MSC"],
        "TRT01A": ["UC-MSC", "Placebo", "UC-MSC", "Placebo", "UC-MSC"],
        "TRTSDT": [T0, T0, T0, T0, date(2021, 1, 1)],
    }
)
VOLUMETRY_SCHEMA = {
    "USUBJID": pl.String, "series_id": pl.String, "ADT": pl.Date, "status": pl.String,
    "reason": pl.String, "lung_volume_ml": pl.Float64, "lesion_volume_ml": pl.Float64, "ggo_volume_ml": pl.Float64,
    "solid_volume_ml": pl.Float64, "lesion_pct": pl.Float64, "ggo_pct": pl.Float64, "solid_pct": pl.Float64,
    "method": pl.String, "method_version": pl.String, "params_hash": pl.String,
}


def scan(usubjid: str, series: str, adt: date, lesion_pct: float, *, failed: bool = False) -> dict[str, object]:
    """One silver/ct_volumetry row; a failed row still carries numbers, which must not become AVAL."""
    return {
        "USUBJID": usubjid, "series_id": series, "ADT": adt,
        "status": "failed" if failed else "measured", "reason": "lung mask empty" if failed else None,
        "lung_volume_ml": 4000.0, "lesion_volume_ml": 40.0 * lesion_pct, "ggo_volume_ml": 1.0, "solid_volume_ml": 2.0,
        "lesion_pct": lesion_pct, "ggo_pct": 3.0, "solid_pct": 4.0,
        "method": "classical", "method_version": "1.0", "params_hash": "h",
    }


VOLUMETRY = pl.DataFrame(
    [
        # S1: two pre-dose scans (the day-1 scan is the later one), Day 10, an unscheduled day 18,
        # and a missed Day 28.
        scan("S1", "s1-c", date(2020, 3, 19), 15.0),
        scan("S1", "s1-a", date(2020, 3, 7), 30.0),
        scan("S1", "s1-b", date(2020, 3, 10), 20.0),
        scan("S1", "s1-d", date(2020, 3, 27), 12.0),
        # S2: two scans in Day 10 (day 11 is nearer 10 than day 8), and a tie in Day 28
        # (days 26 and 30 both 2 days from 28: the later scan wins).
        scan("S2", "s2-a", date(2020, 3, 9), 40.0),
        scan("S2", "s2-b", date(2020, 3, 17), 36.0),
        scan("S2", "s2-c", date(2020, 3, 20), 30.0),
        scan("S2", "s2-d", date(2020, 4, 4), 20.0),
        scan("S2", "s2-e", date(2020, 4, 8), 10.0),
        # S3: a scan before the baseline window, a failed day-1 scan (baseline falls back to the
        # last valid one, day -2), a failed scan on day 10 (day 12 wins), two scans on day 28
        # (same day: series_id ascending, s3-a wins).
        scan("S3", "s3-0", date(2020, 1, 30), 50.0),
        scan("S3", "s3-1", date(2020, 3, 8), 44.0),
        scan("S3", "s3-2", date(2020, 3, 10), 99.0, failed=True),
        scan("S3", "s3-3", date(2020, 3, 19), 99.0, failed=True),
        scan("S3", "s3-4", date(2020, 3, 21), 33.0),
        scan("S3", "s3-b", date(2020, 4, 6), 11.0),
        scan("S3", "s3-a", date(2020, 4, 6), 22.0),
        # S4: no baseline scan.
        scan("S4", "s4-a", date(2020, 3, 18), 25.0),
        # S5: zero baseline (PCHG undefined), own first-dose date 2021-01-01.
        scan("S5", "s5-a", date(2021, 1, 1), 0.0),
        scan("S5", "s5-b", date(2021, 1, 28), 5.0),
    ],
    schema=VOLUMETRY_SCHEMA,
)

EXPECTED_COLUMNS = ["USUBJID", "TRTP", "AVAL", "ADT", "ADY", "AVISIT", "AVISITN", "ABLFL", "ANL01FL",
                    "BASE", "CHG", "PCHG", "series_id", "status"]
N = None
EXPECTED_LESPCT = pl.DataFrame(
    [
        ("S1", "UC-MSC", 30.0, date(2020, 3, 7), -3, "Baseline", 0.0, N, N, 20.0, N, N, "s1-a", "measured"),
        ("S1", "UC-MSC", 20.0, date(2020, 3, 10), 1, "Baseline", 0.0, "Y", "Y", 20.0, N, N, "s1-b", "measured"),
        ("S1", "UC-MSC", 15.0, date(2020, 3, 19), 10, "Day 10", 10.0, N, "Y", 20.0, -5.0, -25.0, "s1-c", "measured"),
        ("S1", "UC-MSC", 12.0, date(2020, 3, 27), 18, N, N, N, N, 20.0, -8.0, -40.0, "s1-d", "measured"),
        ("S2", "Placebo", 40.0, date(2020, 3, 9), -1, "Baseline", 0.0, "Y", "Y", 40.0, N, N, "s2-a", "measured"),
        ("S2", "Placebo", 36.0, date(2020, 3, 17), 8, "Day 10", 10.0, N, N, 40.0, -4.0, -10.0, "s2-b", "measured"),
        ("S2", "Placebo", 30.0, date(2020, 3, 20), 11, "Day 10", 10.0, N, "Y", 40.0, -10.0, -25.0, "s2-c", "measured"),
        ("S2", "Placebo", 20.0, date(2020, 4, 4), 26, "Day 28", 28.0, N, N, 40.0, -20.0, -50.0, "s2-d", "measured"),
        ("S2", "Placebo", 10.0, date(2020, 4, 8), 30, "Day 28", 28.0, N, "Y", 40.0, -30.0, -75.0, "s2-e", "measured"),
        ("S3", "UC-MSC", 50.0, date(2020, 1, 30), -40, N, N, N, N, 44.0, N, N, "s3-0", "measured"),
        ("S3", "UC-MSC", 44.0, date(2020, 3, 8), -2, "Baseline", 0.0, "Y", "Y", 44.0, N, N, "s3-1", "measured"),
        ("S3", "UC-MSC", N, date(2020, 3, 10), 1, "Baseline", 0.0, N, N, 44.0, N, N, "s3-2", "failed"),
        ("S3", "UC-MSC", N, date(2020, 3, 19), 10, "Day 10", 10.0, N, N, 44.0, N, N, "s3-3", "failed"),
        ("S3", "UC-MSC", 33.0, date(2020, 3, 21), 12, "Day 10", 10.0, N, "Y", 44.0, -11.0, -25.0, "s3-4", "measured"),
        ("S3", "UC-MSC", 22.0, date(2020, 4, 6), 28, "Day 28", 28.0, N, "Y", 44.0, -22.0, -50.0, "s3-a", "measured"),
        ("S3", "UC-MSC", 11.0, date(2020, 4, 6), 28, "Day 28", 28.0, N, N, 44.0, -33.0, -75.0, "s3-b", "measured"),
        ("S4", "Placebo", 25.0, date(2020, 3, 18), 9, "Day 10", 10.0, N, "Y", N, N, N, "s4-a", "measured"),
        ("S5", "UC-MSC", 0.0, date(2021, 1, 1), 1, "Baseline", 0.0, "Y", "Y", 0.0, N, N, "s5-a", "measured"),
        ("S5", "UC-MSC", 5.0, date(2021, 1, 28), 28, "Day 28", 28.0, N, "Y", 0.0, 5.0, N, "s5-b", "measured"),
    ],
    schema={"USUBJID": pl.String, "TRTP": pl.String, "AVAL": pl.Float64, "ADT": pl.Date, "ADY": pl.Int64,
            "AVISIT": pl.String, "AVISITN": pl.Float64, "ABLFL": pl.String, "ANL01FL": pl.String,
            "BASE": pl.Float64, "CHG": pl.Float64, "PCHG": pl.Float64, "series_id": pl.String, "status": pl.String},
    orient="row",
)


def test_lesion_percentage_matches_hand_derived_table() -> None:
    adct = derive_adct(VOLUMETRY, ADSL, config=CONFIG)
    got = adct.filter(pl.col("PARAMCD") == "LESPCT").select(EXPECTED_COLUMNS)
    assert_frame_equal(got, EXPECTED_LESPCT)


def test_every_parameter_comes_from_its_volumetry_column_with_label_and_unit() -> None:
    row = scan("S1", "s1-x", date(2020, 3, 10), 2.5) | {"ggo_volume_ml": 7.0, "solid_volume_ml": 3.0}
    adct = derive_adct(pl.DataFrame([row], schema=VOLUMETRY_SCHEMA), ADSL, config=CONFIG)
    expected = pl.DataFrame(
        {
            "PARAMCD": ["GGOPCT", "GGOVOL", "LESPCT", "LESVOL", "LUNGVOL", "SOLPCT", "SOLVOL"],
            "PARAM": [
                "Ground-Glass Opacity Volume, % of Lung Volume (%)", "Ground-Glass Opacity Volume (mL)",
                "Lesion Volume, % of Lung Volume (%)", "Lesion Volume (mL)", "Whole-Lung Volume (mL)",
                "Solid Component Volume, % of Lung Volume (%)", "Solid Component Volume (mL)",
            ],
            "AVAL": [3.0, 7.0, 2.5, 100.0, 4000.0, 4.0, 3.0],
            "AVALU": ["%", "mL", "%", "mL", "mL", "%", "mL"],
            "AVALC": ["3.0", "7.0", "2.5", "100.0", "4000.0", "4.0", "3.0"],
            "PARAMN": [6, 3, 5, 2, 1, 7, 4],  # the order of CT_PARAMETERS
            "SRCDOM": [None] * 7,  # derived from images: no SDTM source domain
        },
        schema_overrides={"SRCDOM": pl.String},
    )
    assert_frame_equal(adct.select(expected.columns), expected)


def test_lineage_and_adsl_variables_are_carried() -> None:
    adct = derive_adct(VOLUMETRY.filter(pl.col("series_id") == "s3-2"), ADSL, config=CONFIG)
    first = adct.row(0, named=True)
    assert (first["STUDYID"], first["SITEID"], first["TRT01A"], first["TRTSDT"]) == ("ST", "02", "UC-MSC", T0)
    assert (first["series_id"], first["reason"], first["method_version"]) == ("s3-2", "lung mask empty", "1.0")
    assert adct["AVAL"].null_count() == 7


def test_subject_missing_from_adsl_is_kept_without_study_day() -> None:
    adct = derive_adct(pl.DataFrame([scan("S9", "s9", T0, 1.0)], schema=VOLUMETRY_SCHEMA), ADSL, config=CONFIG)
    assert adct.height == 7
    assert adct.select(pl.col("ADY", "AVISIT", "TRTP", "ANL01FL").null_count()).row(0) == (7, 7, 7, 7)


def test_missing_column_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"ct_volumetry: missing column\(s\) \['lesion_pct'\]"):
        derive_adct(VOLUMETRY.drop("lesion_pct"), ADSL, config=CONFIG)


def test_wrong_date_type_is_named_in_the_error() -> None:
    bad = VOLUMETRY.with_columns(pl.col("ADT").cast(pl.String))
    with pytest.raises(ValueError, match="ct_volumetry: wrong column type.*ADT is String, expected date"):
        derive_adct(bad, ADSL, config=CONFIG)


def test_duplicated_adsl_subject_is_an_error() -> None:
    with pytest.raises(ValueError, match="adsl: 1 duplicated key"):
        derive_adct(VOLUMETRY, pl.concat([ADSL, ADSL.head(1)]), config=CONFIG)
