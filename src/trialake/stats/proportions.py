"""Incidence in two arms: difference in proportions with Newcombe's CI and Fisher's exact P.

The CI is Newcombe's hybrid score interval (Newcombe 1998, Stat Med 17:873, method 10), built
from the two Wilson score intervals without continuity correction (R:
``prop.test(x, n, correct = FALSE)$conf.int``); it is ``DescTools::BinomDiffCI(method = "score")``.
Unlike the Wald interval it stays inside [-1, 1] and behaves with zero events, common for
adverse events. The P value is the two-sided Fisher exact test (R's ``fisher.test``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.special import ndtri
from scipy.stats import fisher_exact

INCIDENCE_METHOD = "Newcombe hybrid score CI (Wilson, no continuity correction); Fisher's exact test, two-sided"


@dataclass(frozen=True)
class IncidenceDifference:
    """Proportions with the event per arm, their difference (treatment minus control) and P."""

    events_trt: int
    n_trt: int
    events_ctl: int
    n_ctl: int
    proportion_trt: float
    proportion_ctl: float
    estimate: float
    ci_low: float
    ci_high: float
    conf_level: float
    p_value: float
    method: str = INCIDENCE_METHOD


def compute_wilson_interval(events: int, n: int, conf_level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (no continuity correction)."""
    _check_count(events, n, "events", "n")
    z = float(ndtri(1 - (1 - conf_level) / 2))
    p = events / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def compute_incidence_difference(
    events_trt: int, n_trt: int, events_ctl: int, n_ctl: int, conf_level: float = 0.95
) -> IncidenceDifference:
    """Difference in proportions (treatment minus control), Newcombe hybrid score CI, Fisher P."""
    _check_count(events_trt, n_trt, "events_trt", "n_trt")
    _check_count(events_ctl, n_ctl, "events_ctl", "n_ctl")
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level: must be strictly between 0 and 1, got {conf_level!r}")
    p1, p2 = events_trt / n_trt, events_ctl / n_ctl
    l1, u1 = compute_wilson_interval(events_trt, n_trt, conf_level)
    l2, u2 = compute_wilson_interval(events_ctl, n_ctl, conf_level)
    difference = p1 - p2
    table = [[events_trt, n_trt - events_trt], [events_ctl, n_ctl - events_ctl]]
    return IncidenceDifference(
        events_trt=events_trt,
        n_trt=n_trt,
        events_ctl=events_ctl,
        n_ctl=n_ctl,
        proportion_trt=p1,
        proportion_ctl=p2,
        estimate=difference,
        ci_low=difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        ci_high=difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
        conf_level=conf_level,
        p_value=float(fisher_exact(table).pvalue),
    )


def _check_count(events: int, n: int, events_name: str, n_name: str) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"{n_name}: must be a positive whole number, got {n!r}")
    if int(events) != events or not 0 <= events <= n:
        raise ValueError(f"{events_name}: must be a whole number between 0 and {n_name} ({n}), got {events!r}")
