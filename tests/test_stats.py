"""trialake.stats against R (case names are those of the R scripts).

Every expected number below was computed in R 4.2.2 (Debian r-base-core), not by this code:
Hodges-Lehmann / Wilcoxon cases by ``tests/r_reference/wilcox_hodges_lehmann.R``
(``wilcox.test(x, y, conf.int = TRUE)`` with R's defaults but ``tol.root``, which is the
scale-relative tolerance trialake uses), incidence cases by
``tests/r_reference/incidence_difference.R`` (Newcombe's hybrid score interval from base R's
Wilson intervals ``prop.test(correct = FALSE)``, and ``fisher.test``). The R output was pasted here.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialake.stats import compute_incidence_difference, compute_root_tolerance, compute_wilson_interval, hodges_lehmann

# The generated samples of the normal-branch cases, as R printed them (deparse of the vectors).
EXACT_49_X = [
    -0.62645381, 0.18364332, -0.83562861, 1.5952808, 0.32950777, -0.82046838, 0.48742905, 0.73832471,
    0.57578135, -0.30538839, 1.51178117, 0.38984324, -0.62124058, -2.21469989, 1.12493092, -0.04493361,
    -0.01619026, 0.94383621, 0.8212212, 0.59390132, 0.91897737, 0.7821363, 0.07456498, -1.9893517,
    0.61982575, -0.05612874, -0.15579551, -1.47075238, -0.47815006, 0.41794156, 1.35867955, -0.10278773,
    0.38767161, -0.05380504, -1.37705956, -0.41499456, -0.39428995, -0.0593134, 1.10002537, 0.76317575,
    -0.1645236, -0.25336168, 0.69696338, 0.5566632, -0.68875569, -0.70749516, 0.36458196, 0.76853292,
    -0.11234621,
]
EXACT_49_Y = [
    1.18110773, 0.69810588, -0.31202639, 0.64111969, -0.8293631, 1.7330237, 2.2803999, -0.06722148,
    -0.74413463, 0.86971963, 0.1649454, 2.70161776, 0.26076, 0.98973936, 0.32800216, -0.44327321,
    0.4887923, -1.50495863, 1.76555486, 0.45325334, 2.47261167, 0.77550953, -0.40994643, 0.91072635,
    -0.63409763, -0.9536334, 0.59144624, -0.14329187, 0.30110535, 0.37434132, -0.28952095, -0.26866873,
    0.16482138, 1.478087, -1.2235668, 0.89394619, 0.63295037, 1.36309984, -0.00418392, 0.67001881,
    0.56709879, -0.24252003, 1.50786781, 1.46040262, 1.00021365, 1.88683345, 0.85848643, -0.97659221,
    -0.27326541,
]
NORMAL_LARGE_X = [
    -39.471337, 3.525814, 12.208069, 9.537436, -13.852315, -8.325903, -3.683193, 1.587453, 24.167173,
    -14.86114, -21.817224, -14.389522, 2.682212, -50.913783, -12.525142, -8.241881, -1.178542, 4.996104,
    -19.765141, -14.771747, -1.425671, -5.464079, 12.828494, -18.980692, -25.243499, -48.218225,
    -25.149498, -28.920375, -44.810001, 8.221806, -8.288043, 0.043256, -13.416388, -19.293695, -5.631368,
    0.963705, 31.289941, -21.95701, -8.797407, -1.492115, -5.081892, 5.653236, 5.701172, -6.0136,
    -19.757881, -20.140814, -17.093882, -1.498898, -20.848962, -19.581272, -26.96598, 2.14948, 8.214923,
    -6.924998, -9.868381, -25.067875, 0.827624, 13.034426, -29.954195, -12.212138, -63.748435,
    -13.934795, -29.278853, -61.915555, 8.058728,
]
NORMAL_LARGE_Y = [
    -2.551124, -21.002345, -22.494402, 22.733225, 20.844057, -18.765495, -12.909978, -22.613398,
    20.399068, -18.651767, 37.181771, 16.787577, -0.559663, -12.839922, -15.61915, 9.614057, 11.192327,
    -11.155985, 29.100107, 7.948934, 18.00818, 7.761008, 7.166645, 11.684605, -15.048456, 34.966686,
    35.653451, 26.677601, -19.192744, 4.633428, 4.164128, 8.964984, -1.721262, -4.885528, -27.352963,
]
NORMAL_TIES_X = [
    500, 320, 230, 220, 270, 440, 300, 490, 250, 340, 250, 270, 430, 230, 340, 230, 370, 200, 500, 290,
    390, 290, 500, 470, 500, 220, 390, 350, 490, 310, 400, 280, 260, 260, 310, 450, 350, 440, 450, 340,
    440, 310, 430, 330, 470, 300, 220, 440, 470, 490, 370, 420, 430, 390, 420, 320, 250, 260, 320, 280,
]
NORMAL_TIES_Y = [
    240, 330, 410, 390, 340, 380, 320, 320, 280, 310, 270, 360, 430, 370, 220, 350, 310, 310, 370, 460,
    450, 440, 250, 400, 300, 200, 210, 410, 280, 310, 280, 180, 450, 230, 400, 350, 340, 290, 430, 240,
]

# name: (x, y, (estimate, ci_low, ci_high, p_value, W, conf_level), exact)
R_CASES = {
    "exact_small": (
        [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30],
        [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06 + 0.001, 3.14, 1.29 + 0.002],
        (0.56000000000000005, -0.36999999999999988, 1.1830000000000001, 0.13591114767585355, 58, 0.95),
        True,
    ),
    "exact_unequal_neg": (
        [-13.5, -2.25, 0, -20.75, -7.5, 4.125, -30.5, -11.0, -1.0, -16.25, -9.875, -5.5],
        [-3.0, 2.5, -0.5, 6.75, -8.25, 1.125, -4.0],
        (-7.875, -16.625, -0.5, 0.044931332857029452, 18, 0.95),
        True,
    ),
    "exact_49_vs_49": (
        EXACT_49_X,
        EXACT_49_Y,
        (-0.32061688999999999, -0.70094455, 0.040218830000000039, 0.088193856037245222, 960, 0.95),
        True,
    ),
    # 2 vs 3 observations: 95% is not achievable, R reports the CI at level 0.8
    "exact_tiny": (
        [1.1, 2.2],
        [0.3, 5.4, 3.3],
        (-1.6499999999999997, -4.3000000000000007, 1.9000000000000001, 0.8, 2, 0.8),
        True,
    ),
    "ties_small": (
        [3, 5, 5, 7, 9, 9, 9, 12],
        [1, 2, 2, 5, 6, 8],
        (3.0000000010418097, -4.3716914445508181e-10, 7.0000000008496688, 0.058659738079609842, 39, 0.95),
        False,
    ),
    "normal_large": (
        NORMAL_LARGE_X,
        NORMAL_LARGE_Y,
        (-13.014597993692941, -22.022598995059354, -5.0717050048390906, 0.0017104620027332286, 703, 0.95),
        False,
    ),
    "normal_ties": (
        NORMAL_TIES_X,
        NORMAL_TIES_Y,
        (20.000000031692696, -10.000000019669415, 60.000000018659058, 0.23264953073698219, 1370, 0.95),
        False,
    ),
    # the statistic is flat (zero) around the estimate: only R's own root-finder path gives this point
    "normal_flat": (
        [0.0] * 30 + [1.0] * 30,
        [0.0] * 20 + [1.0] * 22,
        (-2.5462085028881053e-11, -1.585098004484632e-11, 3.9194322424290815e-11, 0.81681258315490923, 1230, 0.95),
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(R_CASES))
def test_hodges_lehmann_matches_r(name: str) -> None:
    x, y, (estimate, ci_low, ci_high, p_value, statistic, conf_level), exact = R_CASES[name]
    result = hodges_lehmann(x, y)
    # both branches to 1e-8 (R was given the same root tolerance)
    assert result.exact is exact
    assert result.estimate == pytest.approx(estimate, abs=1e-8)
    assert result.ci_low == pytest.approx(ci_low, abs=1e-8)
    assert result.ci_high == pytest.approx(ci_high, abs=1e-8)
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert result.statistic == statistic
    assert result.conf_level == pytest.approx(conf_level, abs=1e-12)
    assert (result.n_x, result.n_y) == (len(x), len(y))
    assert result.method.startswith("Wilcoxon rank sum exact test" if exact else "Wilcoxon rank sum test with continuity")


def test_port_of_r_root_finder_lands_where_r_does() -> None:
    """Tighter than the root tolerance: the port follows R's zeroin path step for step."""
    for name in ("ties_small", "normal_large", "normal_flat"):
        x, y, (estimate, ci_low, ci_high, *_), _ = R_CASES[name]
        result = hodges_lehmann(x, y)
        assert result.estimate == pytest.approx(estimate, rel=1e-9, abs=1e-12), name
        assert result.ci_low == pytest.approx(ci_low, rel=1e-9, abs=1e-12), name
        assert result.ci_high == pytest.approx(ci_high, rel=1e-9, abs=1e-12), name


def test_exact_branch_by_hand() -> None:
    """x = (4, 5), y = (1, 2, 3): differences 1..4 (1, 2, 2, 3, 3, 4) -> median 2.5.

    W = 6 (every x above every y); P(W >= 6) = 1 / C(5, 2) = 0.1, two-sided 0.2.
    """
    result = hodges_lehmann([4.0, 5.0], [1.0, 2.0, 3.0])
    assert result.estimate == 2.5
    assert result.statistic == 6
    assert result.p_value == pytest.approx(0.2, abs=1e-15)


def test_exact_requires_no_ties_and_under_50() -> None:
    rng = np.random.default_rng(3)
    assert not hodges_lehmann(rng.normal(size=50), rng.normal(size=10)).exact
    assert hodges_lehmann(rng.normal(size=49), rng.normal(size=49)).exact
    assert not hodges_lehmann([1.0, 2.0, 3.0], [3.0, 4.0]).exact


def test_shift_equivariance() -> None:
    """Adding c to x adds c to the estimate and CI (exact branch: order statistics of x - y)."""
    x, y = R_CASES["exact_small"][:2]
    base = hodges_lehmann(x, y)
    shifted = hodges_lehmann([v + 10.0 for v in x], y)
    assert shifted.estimate == pytest.approx(base.estimate + 10.0, abs=1e-12)
    assert shifted.ci_low == pytest.approx(base.ci_low + 10.0, abs=1e-12)
    assert shifted.p_value != base.p_value


@pytest.mark.parametrize("name", sorted(R_CASES))
@pytest.mark.parametrize("factor", [1e-6, 1e6])
def test_results_do_not_depend_on_the_scale_of_the_data(name: str, factor: float) -> None:
    """Multiplying the data by a factor multiplies the estimate and CI by it; P is unchanged."""
    x, y, *_ = R_CASES[name]
    base = hodges_lehmann(x, y)
    xs, ys = np.array(x) * factor, np.array(y) * factor
    scaled = hodges_lehmann(xs, ys)
    # within the root tolerance at the new scale: 1e-10 of the search interval's width
    width = (xs.max() - ys.min()) - (xs.min() - ys.max())
    assert compute_root_tolerance(xs, ys) == pytest.approx(1e-10 * width, rel=1e-12)
    for field in ("estimate", "ci_low", "ci_high"):
        expected = getattr(base, field) * factor
        assert abs(getattr(scaled, field) - expected) <= 2e-10 * width, field
    assert scaled.p_value == pytest.approx(base.p_value, rel=1e-12)


@pytest.mark.parametrize(
    ("x", "y", "conf_level", "message"),
    [
        ([], [1.0], 0.95, "x: no observations"),
        ([1.0], [float("nan")], 0.95, "y: 1 missing or non-finite"),
        ([1.0, 2.0], [3.0], 1.0, "conf_level"),
        ([[1.0]], [3.0], 0.95, "x: expected a one-dimensional"),
        ([2.0, 2.0, 2.0], [5.0] * 60, 0.95, "not estimable"),
    ],
)
def test_hodges_lehmann_rejects_bad_input(x, y, conf_level, message) -> None:
    with pytest.raises(ValueError, match=message):
        hodges_lehmann(x, y, conf_level)


# (events_trt, n_trt, events_ctl, n_ctl): (difference, ci_low, ci_high, fisher_p), from R.
# The first five also appear in Newcombe (1998), Table II, method 10, to 4 decimals.
R_INCIDENCE = {
    (56, 70, 48, 80): (0.2, 0.0524314724023649, 0.333872654036906, 0.0125211297492092),
    (9, 10, 3, 10): (0.6, 0.170522723934503, 0.809017973535488, 0.0197666110978804),
    (5, 56, 0, 29): (0.0892857142857143, -0.0381371479035369, 0.192560013855112, 0.160621443209471),
    (0, 10, 0, 20): (0, -0.161125158052819, 0.277532799862889, 1),
    (10, 10, 0, 20): (1, 0.679086037141915, 1, 3.32833916042312e-08),
    (12, 65, 5, 35): (0.0417582417582418, -0.127075564907272, 0.17867096829464, 0.781532221474405),
    (0, 65, 2, 35): (-0.0571428571428571, -0.186070574201649, 0.0122974381502117, 0.12020202020202),
    (33, 65, 17, 35): (0.021978021978022, -0.176017068109811, 0.217198298740893, 1),
    (3, 8, 5, 8): (-0.25, -0.586803040944919, 0.201498435443722, 0.619269619269619),
    (4, 8, 4, 8): (0, -0.40274530716315, 0.40274530716315, 1),
    (1, 20, 6, 20): (-0.25, -0.472799978524251, -0.00808657948014793, 0.0914760914760916),
    (10, 65, 2, 35): (0.0967032967032967, -0.0490931054299054, 0.211134658850897, 0.206432308736884),
    (0, 5, 5, 5): (-1, -1, -0.385549005690344, 0.00793650793650794),
}


@pytest.mark.parametrize("counts", sorted(R_INCIDENCE))
def test_incidence_difference_matches_r(counts: tuple[int, int, int, int]) -> None:
    difference, ci_low, ci_high, p_value = R_INCIDENCE[counts]
    result = compute_incidence_difference(*counts)
    assert result.estimate == pytest.approx(difference, abs=1e-12)
    assert result.ci_low == pytest.approx(ci_low, abs=1e-12)
    assert result.ci_high == pytest.approx(ci_high, abs=1e-12)
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert result.proportion_trt == counts[0] / counts[1]


def test_wilson_interval_by_formula() -> None:
    """0 of n: Wilson's interval is [0, z^2 / (n + z^2)]."""
    z = 1.959963984540054
    low, high = compute_wilson_interval(0, 20)
    assert low == 0.0
    assert high == pytest.approx(z * z / (20 + z * z), rel=1e-12)
    assert not math.isnan(high)


@pytest.mark.parametrize(
    ("args", "message"),
    [((3, 0, 1, 5), "n_trt"), ((6, 5, 1, 5), "events_trt"), ((1, 5, -1, 5), "events_ctl"), ((1, 5, 1, 2.5), "n_ctl")],
)
def test_incidence_difference_rejects_bad_counts(args, message) -> None:
    with pytest.raises(ValueError, match=message):
        compute_incidence_difference(*args)


@settings(max_examples=40, deadline=None)
@given(
    x=st.lists(st.integers(-40, 40), min_size=1, max_size=70),
    y=st.lists(st.integers(-40, 40), min_size=1, max_size=70),
    scale=st.sampled_from([1.0, 0.25, 1e-3]),
)
def test_estimate_is_the_median_of_pairwise_differences(x, y, scale) -> None:
    """Both branches: the HL estimate lies between the two middle differences x_i - y_j (equal to
    their median in the exact branch), within the root tolerance; the CI brackets it."""
    xs, ys = np.array(x) * scale, np.array(y) * scale
    if np.ptp(np.r_[xs, ys]) == 0 or (np.ptp(xs) == 0 and np.ptp(ys) == 0 and xs.size + ys.size > 2):
        return  # every value tied: not estimable (tested above)
    result = hodges_lehmann(xs, ys)
    differences = np.sort(np.subtract.outer(xs, ys).ravel())
    k = differences.size
    low, high = differences[(k - 1) // 2], differences[k // 2]
    if result.exact:
        assert result.estimate == pytest.approx((low + high) / 2, abs=1e-12)
    else:
        tol = 1e-9 * max(np.ptp(xs) + np.ptp(ys), 1e-300)
        assert low - tol <= result.estimate <= high + tol
    assert result.ci_low <= result.estimate <= result.ci_high
    assert 0 < result.p_value <= 1
