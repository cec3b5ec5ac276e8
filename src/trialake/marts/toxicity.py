"""Laboratory toxicity grades (CTCAE style) for ADLB, from a criteria file (``lb_toxicity.yaml``).

The file format is described in the packaged file. :func:`plan_toxicity_grading` matches the
criteria to the trial's lab tests (converting numeric thresholds to each test's standard unit)
and says which tests cannot be graded and why; :func:`toxicity_grade` is the grade expression.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import polars as pl
import yaml

from trialake.clinical.mapping import TestSpec
from trialake.clinical.units import UnitConversionError, compute_conversion_factor, load_unit_catalog

_CONDITION = re.compile(r"^\s*([<>])\s*(?:(\d+(?:\.\d+)?)\s*\*\s*)?(LLN|ULN)?\s*$|^\s*([<>])\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class GradeCondition:
    """Grade ``grade`` applies when the result is ``op`` (< or >) the threshold: ``factor`` times
    the reference limit (LLN/ULN), or ``factor`` in the criteria's unit when ``limit`` is None."""

    grade: int
    op: Literal["<", ">"]
    factor: float
    limit: Literal["LLN", "ULN"] | None


@dataclass(frozen=True)
class ToxicityCriteria:
    """The grading of one test: CTCAE term, direction (low/high), unit of absolute thresholds."""

    code: str
    term: str
    direction: Literal["low", "high"]
    unit: str | None
    grades: tuple[GradeCondition, ...]


@dataclass(frozen=True)
class ToxicityGrading:
    """A criteria file: its version and the criteria by test code."""

    version: str
    tests: Mapping[str, ToxicityCriteria]


def default_toxicity_path() -> Path:
    """The packaged CTCAE v5.0 laboratory subset."""
    return Path(str(resources.files("trialake.marts") / "lb_toxicity.yaml"))


def load_toxicity_criteria(path: str | Path | None = None) -> ToxicityGrading:
    """Read a criteria file (default: the packaged one); errors name the file and the test."""
    source = Path(path) if path is not None else default_toxicity_path()
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{source}: cannot read toxicity criteria ({exc.strerror})") from exc
    if not isinstance(raw, dict) or not raw.get("version") or not isinstance(raw.get("tests"), dict):
        raise ValueError(f"{source}: toxicity criteria need 'version' and a 'tests' mapping")
    return ToxicityGrading(str(raw["version"]), {code: _criteria(code, entry, source) for code, entry in raw["tests"].items()})


def _criteria(code: str, entry: object, source: Path) -> ToxicityCriteria:
    where = f"{source}: tests.{code}"
    if not isinstance(entry, dict) or entry.get("direction") not in ("low", "high") or not isinstance(entry.get("grades"), dict):
        raise ValueError(f"{where}: needs direction (low or high) and a grades mapping")
    grades = []
    for grade, text in sorted(entry["grades"].items()):
        match = _CONDITION.match(str(text))
        if not isinstance(grade, int) or not 1 <= grade <= 5 or match is None:
            raise ValueError(f"{where}: grade {grade!r}: expected 1..5 and '<x', '>x', '<LLN' or '>k*ULN', got {text!r}")
        if match.group(1):
            op, factor, limit = match.group(1), float(match.group(2) or 1.0), match.group(3)
            if limit is None:
                raise ValueError(f"{where}: grade {grade}: {text!r} has no number")
        else:
            op, factor, limit = match.group(4), float(match.group(5)), None
        if op != {"low": "<", "high": ">"}[entry["direction"]]:
            raise ValueError(f"{where}: grade {grade}: {text!r} goes against direction {entry['direction']}")
        grades.append(GradeCondition(grade, op, factor, limit))
    if any(g.limit is None for g in grades) and not entry.get("unit"):
        raise ValueError(f"{where}: absolute thresholds need a unit")
    return ToxicityCriteria(code, str(entry.get("term") or code), entry["direction"], entry.get("unit"), tuple(grades))


def plan_toxicity_grading(
    grading: ToxicityGrading, tests: Mapping[str, TestSpec]
) -> tuple[dict[str, tuple[ToxicityCriteria, float]], dict[str, str]]:
    """(code -> (criteria, factor from the criteria's unit to the test's standard unit), code ->
    why the test is not graded) for the tests in ``tests`` that have criteria."""
    catalog = load_unit_catalog()
    graded: dict[str, tuple[ToxicityCriteria, float]] = {}
    skipped: dict[str, str] = {}
    for code, criteria in grading.tests.items():
        spec = tests.get(code)
        if spec is None:
            continue
        if criteria.unit is None or criteria.unit == spec.unit:
            graded[code] = (criteria, 1.0)
            continue
        try:
            factor = compute_conversion_factor(criteria.unit, spec.unit, catalog=catalog, per_mole=spec.per_mole)
        except UnitConversionError as exc:
            skipped[code] = f"criteria in {criteria.unit}, results in {spec.unit}: {exc}"
            continue
        graded[code] = (criteria, factor)
    return graded, skipped


def toxicity_grade(criteria: ToxicityCriteria, factor: float) -> pl.Expr:
    """The grade (Int64) of AVAL against A1LO/A1HI: the highest grade met, else 0; null without a
    result, or when no grade is met and a limit a condition needs is unknown."""
    value = pl.col("AVAL")
    expression = pl.when(value.is_null()).then(None)
    for condition in sorted(criteria.grades, key=lambda g: -g.grade):
        threshold = (
            pl.lit(condition.factor * factor) if condition.limit is None
            else condition.factor * pl.col("A1LO" if condition.limit == "LLN" else "A1HI")
        )
        met = value < threshold if condition.op == "<" else value > threshold
        expression = expression.when(met).then(pl.lit(condition.grade))
    needs = [pl.col("A1LO" if c.limit == "LLN" else "A1HI") for c in criteria.grades if c.limit is not None]
    unknown = pl.any_horizontal([n.is_null() for n in needs]) if needs else pl.lit(False)
    return expression.when(unknown).then(None).otherwise(pl.lit(0)).cast(pl.Int64)
