"""Hodges-Lehmann shift estimate with the Wilcoxon rank-sum test, as R's ``wilcox.test``.

``hodges_lehmann(x, y)`` reproduces ``wilcox.test(x, y, conf.int = TRUE, tol.root = tol)`` with
R's other defaults (two-sided, ``mu = 0``, ``correct = TRUE``, ``exact = NULL``), following R
4.2's ``stats:::wilcox.test.default`` step by step. The root tolerance is relative to the data's
scale, ``tol = TOL_REL * (max(x) - min(x) + max(y) - min(y))`` (the width of the interval the
roots are searched in), rather than R's absolute default 1e-4: results do not depend on the
units of the data (R's default gives 6.000008 for a 6 m shift, and nothing useful for data of
order 1e-6).

- exact branch (both groups under 50 observations and no ties in the pooled sample): the
  P value from the exact null distribution of W (R's ``pwilcox``), the estimate is the median
  of the ``n_x * n_y`` differences ``x_i - y_j`` and the CI their order statistics at
  R's ``qwilcox(alpha / 2)``;
- otherwise the normal approximation with tie and continuity corrections; the estimate and
  the CI are the roots of the standardized statistic as a function of the shift, found with a
  port of R's Brent root finder (``R_zeroin2``, the engine of ``uniroot``), so that the
  answers agree with R given the same ``tol.root`` and land on the same point where the
  statistic is flat.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import ndtr, ndtri

EXACT_MAX_N = 50
"""R's cut-off: the exact distribution is used when both groups have fewer observations."""
TOL_REL = 1e-10
"""Root tolerance in the normal branch, relative to the width of the search interval (R's
``tol.root`` is ``TOL_REL * (mumax - mumin)``; see :func:`compute_root_tolerance`)."""
_MAXIT = 1000
_EPS = np.finfo(float).eps


class NotEstimableError(ValueError):
    """The data are valid but carry no information on the shift (every value the same per group)."""


@dataclass(frozen=True)
class HodgesLehmannResult:
    """Shift of x relative to y (x minus y) with its CI and the two-sided rank-sum P value.

    ``conf_level`` is the level R reports for the interval: the requested one unless it is not
    achievable with so few observations (then R's lowered level, see ``method``).
    """

    estimate: float
    ci_low: float
    ci_high: float
    conf_level: float
    p_value: float
    statistic: float
    method: str
    n_x: int
    n_y: int
    exact: bool


def hodges_lehmann(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, conf_level: float = 0.95
) -> HodgesLehmannResult:
    """Hodges-Lehmann estimate of the shift x - y, its CI and the Wilcoxon rank-sum P (as R).

    Raises ValueError naming the argument for empty or non-finite data or a conf_level outside
    (0, 1); NotEstimableError (a ValueError) when x and y are each one repeated value and the
    normal branch applies (R's ``uniroot`` fails there too).
    """
    xs = _as_sample(x, "x")
    ys = _as_sample(y, "y")
    if not (isinstance(conf_level, (int, float)) and 0 < conf_level < 1):
        raise ValueError(f"conf_level: must be a number strictly between 0 and 1, got {conf_level!r}")
    ranks, ties = _rank_with_ties(np.concatenate([xs, ys]))
    n_x, n_y = xs.size, ys.size
    statistic = float(ranks[:n_x].sum() - n_x * (n_x + 1) / 2)
    if n_x < EXACT_MAX_N and n_y < EXACT_MAX_N and not np.any(ties > 1):
        return _exact(xs, ys, statistic, float(conf_level))
    return _normal(xs, ys, statistic, ties, float(conf_level))


def compute_root_tolerance(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """The absolute root tolerance for samples x and y: ``TOL_REL`` times the width of the
    interval ``[min(x) - max(y), max(x) - min(y)]`` the shift is searched in (pass it to R as
    ``tol.root`` to reproduce a result there)."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return TOL_REL * float((xs.max() - ys.min()) - (xs.min() - ys.max()))


def _as_sample(values: Sequence[float] | np.ndarray, argument: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{argument}: expected a one-dimensional sequence of numbers, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{argument}: no observations")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{argument}: {int(np.sum(~np.isfinite(array)))} missing or non-finite value(s); drop them first")
    return array


def _rank_with_ties(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (R's ``rank``) and the sizes of the groups of equal values."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, values.size])
    average = starts + (sizes + 1) / 2.0
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(average, sizes)
    return ranks, sizes


# --- exact branch -------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _wilcox_counts(m: int, n: int) -> tuple[float, ...]:
    """Number of arrangements giving each value 0..m*n of W (R's ``cwilcox``), as doubles."""
    previous = [np.ones(1) for _ in range(n + 1)]  # i = 0 x's: W = 0 in one way
    for i in range(1, m + 1):
        current = [np.ones(1)]  # j = 0 y's: W = 0
        for j in range(1, n + 1):
            counts = np.zeros(i * j + 1)
            counts[j : j + previous[j].size] += previous[j]  # largest value is an x: beats j y's
            counts[: current[j - 1].size] += current[j - 1]  # largest value is a y
            current.append(counts)
        previous = current
    return tuple(float(count) for count in previous[n])


def _pwilcox(q: float, m: int, n: int, *, lower_tail: bool = True) -> float:
    """R's ``pwilcox(q, m, n, lower.tail)``."""
    q = math.floor(q + 1e-7)
    if q < 0:
        return 0.0 if lower_tail else 1.0
    if q >= m * n:
        return 1.0 if lower_tail else 0.0
    counts = _wilcox_counts(m, n)
    total = float(math.comb(m + n, n))
    if q <= m * n / 2:
        p = sum(c / total for c in counts[: q + 1])
    else:
        p = sum(c / total for c in counts[: m * n - q])
        lower_tail = not lower_tail
    return p if lower_tail else 0.5 - p + 0.5


def _qwilcox(prob: float, m: int, n: int) -> int:
    """R's ``qwilcox(prob, m, n)`` (lower tail), including its 10 * eps fuzz."""
    if prob == 0:
        return 0
    if prob == 1:
        return m * n
    counts = _wilcox_counts(m, n)
    total = float(math.comb(m + n, n))
    p, q = 0.0, 0
    if prob <= 0.5:
        target = prob - 10 * _EPS
        while True:
            p += counts[q] / total
            if p >= target:
                return q
            q += 1
    target = 1 - prob + 10 * _EPS
    while True:
        p += counts[q] / total
        if p > target:
            return m * n - q
        q += 1


def _exact(xs: np.ndarray, ys: np.ndarray, statistic: float, conf_level: float) -> HodgesLehmannResult:
    m, n = xs.size, ys.size
    if statistic > m * n / 2:
        p = _pwilcox(statistic - 1, m, n, lower_tail=False)
    else:
        p = _pwilcox(statistic, m, n)
    alpha = 1 - conf_level
    diffs = np.sort(np.subtract.outer(xs, ys).ravel())
    qu = _qwilcox(alpha / 2, m, n) or 1
    ql = m * n - qu
    achieved_alpha = 2 * _pwilcox(qu - 1, m, n)
    method = "Wilcoxon rank sum exact test"
    if achieved_alpha - alpha > alpha / 2:
        conf_level = 1 - achieved_alpha
        method += f"; requested confidence level not achievable, CI level {conf_level:.3g}"
    return HodgesLehmannResult(
        estimate=float(np.median(diffs)),
        ci_low=float(diffs[qu - 1]),
        ci_high=float(diffs[ql]),
        conf_level=conf_level,
        p_value=min(2 * p, 1.0),
        statistic=statistic,
        method=method,
        n_x=m,
        n_y=n,
        exact=True,
    )


# --- normal approximation -----------------------------------------------------------------


def _normal(
    xs: np.ndarray, ys: np.ndarray, statistic: float, ties: np.ndarray, conf_level: float
) -> HodgesLehmannResult:
    m, n = xs.size, ys.size
    mumin = float(xs.min() - ys.max())
    mumax = float(xs.max() - ys.min())
    if not mumin < mumax:
        raise NotEstimableError("x, y: each group is a single repeated value with ties; the shift is not estimable")
    z = statistic - m * n / 2
    z = (z - np.sign(z) * 0.5) / _sigma(m, n, ties)
    p_value = float(2 * min(ndtr(z), ndtr(-z)))

    def w(d: float, correct: bool = True) -> float:
        ranks, tied = _rank_with_ties(np.concatenate([xs - d, ys]))
        dz = ranks[:m].sum() - m * (m + 1) / 2 - m * n / 2
        return float((dz - (np.sign(dz) * 0.5 if correct else 0.0)) / _sigma(m, n, tied))

    w_min, w_max = w(mumin), w(mumax)
    tol = compute_root_tolerance(xs, ys)

    def root(zq: float) -> float:
        f_lower, f_upper = w_min - zq, w_max - zq
        if f_lower <= 0:
            return mumin
        if f_upper >= 0:
            return mumax
        return float(_zeroin(lambda d: w(d) - zq, mumin, mumax, f_lower, f_upper, tol))

    def uncorrected(d: float) -> float:
        return w(d, correct=False)

    alpha = 1 - conf_level
    return HodgesLehmannResult(
        # R sets correct <- FALSE before this uniroot: the estimate is the uncorrected root
        estimate=float(_zeroin(uncorrected, mumin, mumax, uncorrected(mumin), uncorrected(mumax), tol)),
        ci_low=root(-float(ndtri(alpha / 2))),
        ci_high=root(float(ndtri(alpha / 2))),
        conf_level=conf_level,
        p_value=p_value,
        statistic=statistic,
        method="Wilcoxon rank sum test with continuity correction",
        n_x=m,
        n_y=n,
        exact=False,
    )


def _sigma(m: int, n: int, ties: np.ndarray) -> float:
    """SD of W under the null with the tie correction."""
    tie_term = float(np.sum(ties.astype(float) ** 3 - ties)) / ((m + n) * (m + n - 1))
    return math.sqrt((m * n / 12) * ((m + n + 1) - tie_term))


def _zeroin(f: Callable[[float], float], a: float, b: float, fa: float, fb: float, tol: float) -> float:
    """Port of R's ``R_zeroin2`` (Brent's method, as called by ``uniroot``), same arithmetic."""
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(_MAXIT + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * _EPS * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b  # not converged in _MAXIT steps: R warns and returns the last iterate as well
