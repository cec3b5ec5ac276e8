"""Laboratory toxicity grades (CTCAE v5.0 criteria) worked out by hand."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from trialake.clinical.mapping import TestSpec
from trialake.marts.toxicity import load_toxicity_criteria, plan_toxicity_grading, toxicity_grade

CRITERIA = load_toxicity_criteria()


def _grades(code: str, rows: list[tuple[float | None, float | None, float | None]], unit: str) -> list[int | None]:
    spec = {code: TestSpec(code=code, name=code, loinc=None, unit=unit, per_mole=None)}
    graded, _ = plan_toxicity_grading(CRITERIA, spec)
    frame = pl.DataFrame(rows, schema=["AVAL", "A1LO", "A1HI"], orient="row")
    return frame.select(toxicity_grade(*graded[code])).to_series().to_list()


def test_alt_grades_are_multiples_of_the_upper_limit() -> None:
    """ULN 40 U/L: grade 1 above 40, 2 above 3 x 40 = 120, 3 above 200, 4 above 800."""
    rows = [(40.0, 0.0, 40.0), (40.5, 0.0, 40.0), (120.0, 0.0, 40.0), (121.0, 0.0, 40.0), (201.0, 0.0, 40.0),
            (801.0, 0.0, 40.0), (None, 0.0, 40.0), (30.0, 0.0, None)]
    assert _grades("ALT", rows, "U/L") == [0, 1, 1, 2, 3, 4, None, None]


def test_anaemia_grades_use_absolute_thresholds_in_the_tests_unit() -> None:
    """LLN 130 g/L: grade 1 below 130, 2 below 100, 3 below 80 (no lab grade 4)."""
    rows = [(131.0, 130.0, 170.0), (129.0, 130.0, 170.0), (99.0, 130.0, 170.0), (79.0, 130.0, 170.0), (40.0, 130.0, 170.0)]
    assert _grades("HGB", rows, "g/L") == [0, 1, 2, 3, 3]
    # the same results in g/dL: thresholds converted (100 g/L = 10 g/dL)
    in_dl = [(v / 10, lo / 10, hi / 10) for v, lo, hi in rows]
    assert _grades("HGB", in_dl, "g/dL") == [0, 1, 2, 3, 3]
    # a low value is graded by the absolute threshold even without a known range
    assert _grades("HGB", [(70.0, None, None), (120.0, None, None)], "g/L") == [3, None]


def test_a_unit_that_cannot_be_converted_is_not_graded_and_says_why() -> None:
    spec = {"HGB": TestSpec(code="HGB", name="Hemoglobin", loinc=None, unit="mmol/min", per_mole=None)}
    graded, skipped = plan_toxicity_grading(CRITERIA, spec)
    assert graded == {} and "criteria in g/L, results in mmol/min" in skipped["HGB"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: x\ntests: {ALT: {direction: up, grades: {1: '>ULN'}}}", "needs direction"),
        ("version: x\ntests: {ALT: {direction: high, grades: {1: '<ULN'}}}", "goes against direction high"),
        ("version: x\ntests: {HGB: {direction: low, grades: {2: '<100'}}}", "absolute thresholds need a unit"),
        ("version: x\ntests: {ALT: {direction: high, grades: {7: '>ULN'}}}", "expected 1..5"),
    ],
)
def test_bad_criteria_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tox.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        load_toxicity_criteria(path)
    assert str(path) in str(caught.value)
