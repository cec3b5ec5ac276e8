"""One benchmark result per row, and the table ``python -m bench`` prints."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Floor:
    """A floor measured in the same run, in the unit of the result it is compared with."""

    name: str
    value: float


@dataclass(frozen=True)
class Result:
    """One measurement: ``value`` in ``unit`` (shown as ``shown`` when given), its floors, its goal.

    ``ok`` is True (pass), False (miss) or None (no goal, or not measured: say why in ``shown``).
    """

    case: str
    measure: str
    value: float | None
    unit: str
    goal: str
    ok: bool | None
    floors: tuple[Floor, ...] = ()
    shown: str | None = None


def format_number(value: float) -> str:
    """3 significant digits, whole numbers from 100 up (thousands grouped), never an exponent."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) >= 1e-3 else f"{value:.6f}"


def format_quantity(value: float, unit: str) -> str:
    return f"{format_number(value)} {unit}".strip()


def format_ratios(result: Result) -> str:
    """``value / floor`` for every floor, e.g. ``8.1x cat; 1.4x dcm2niix``."""
    if result.value is None:
        return "-"
    return "; ".join(f"{format_number(result.value / f.value)}x {f.name}" for f in result.floors if f.value > 0) or "-"


def format_floors(result: Result) -> str:
    return "; ".join(f"{f.name} {format_quantity(f.value, result.unit)}" for f in result.floors) or "-"


def _value_text(result: Result) -> str:
    if result.shown is not None:
        return result.shown
    return "-" if result.value is None else format_quantity(result.value, result.unit)


def _status(ok: bool | None) -> str:
    return {True: "pass", False: "MISS", None: "-"}[ok]


def render_table(results: Sequence[Result]) -> str:
    """A plain-text table: case, measure, value, floors, ratios, goal, pass/miss."""
    header = ("case", "measure", "value", "floor (same run)", "ratio", "goal", "result")
    rows = [
        (r.case, r.measure, _value_text(r), format_floors(r), format_ratios(r), r.goal, _status(r.ok))
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
