"""The volumetry's accuracy targets against a phantom's truth, in one place: the tests, the
benchmarks and the survey score against them, and the ``ggo_at_wall`` flag fires where a doubt
exceeds them.

Lung volume within 3 %, lesion percentage within 1 point, ground glass within max(10 mL, 15 %)
and solid within max(10 mL, 30 %) of the truth.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class AccuracyTargets:
    """Tolerances: ``lung_pct`` (% of the true lung volume), ``lesion_points`` (lesion percentage
    points), and max(``*_ml``, ``*_share`` of the truth) for ground glass and solid."""

    lung_pct: float = 3.0
    lesion_points: float = 1.0
    ggo_ml: float = 10.0
    ggo_share: float = 0.15
    solid_ml: float = 10.0
    solid_share: float = 0.30

    def ggo_tolerance_ml(self, ggo_ml: float) -> float:
        """Allowed ground-glass error (mL) for a ground-glass volume of ``ggo_ml``."""
        return max(self.ggo_ml, self.ggo_share * ggo_ml)

    def solid_tolerance_ml(self, solid_ml: float) -> float:
        """Allowed solid error (mL) for a solid volume of ``solid_ml``."""
        return max(self.solid_ml, self.solid_share * solid_ml)

    def compute_misses(self, truth: Mapping[str, float], measured: Mapping[str, float]) -> tuple[str, ...]:
        """The targets (``lung``, ``lesion_pct``, ``ggo``, ``solid``) that ``measured`` misses against
        ``truth``; both map lung_volume_ml, lesion_pct, ggo_volume_ml and solid_volume_ml."""
        errors = {
            "lung": abs(measured["lung_volume_ml"] / truth["lung_volume_ml"] - 1.0) * 100.0 > self.lung_pct,
            "lesion_pct": abs(measured["lesion_pct"] - truth["lesion_pct"]) > self.lesion_points,
            "ggo": (abs(measured["ggo_volume_ml"] - truth["ggo_volume_ml"])
                    > self.ggo_tolerance_ml(truth["ggo_volume_ml"])),
            "solid": (abs(measured["solid_volume_ml"] - truth["solid_volume_ml"])
                      > self.solid_tolerance_ml(truth["solid_volume_ml"])),
        }
        return tuple(name for name, missed in errors.items() if missed)


TARGETS = AccuracyTargets()
