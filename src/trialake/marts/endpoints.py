"""gold/endpoints and the adverse-event incidence table: the trial's between-arm comparisons.

``derive_endpoints`` compares the two arms on every parameter of a BDS mart (adct, adft, ...) at
every requested post-baseline visit, for ``AVAR`` in ``CHG`` and ``PCHG``:

- analysis records are ``ANL01FL = "Y"`` of subjects in the parameter's analysis population
  (ADSL flag: ``populations[PARAMCD]``, else ``population_flag``, default ``FASFL = "Y"``)
  whose arm (ADSL ``TRT01P`` by default) is the treatment or the control arm;
- missing data: complete cases (a subject without a value at the visit is left out);
- per arm and pooled: n, median, Q1, Q3 (quartiles by linear interpolation, R's ``type = 7``);
- ``estimate`` is the shift of the configured estimator (``hodges_lehmann``, the only one so far:
  the Hodges-Lehmann shift, treatment minus control, with its CI and the two-sided Wilcoxon
  rank-sum P, exactly as R's ``wilcox.test(conf.int = TRUE)``, :func:`trialake.stats.hodges_lehmann`);
- a parameter in ``descriptive_only`` gets summaries only (method "descriptive only");
- a row whose comparison cannot be made (an empty arm, all values identical) keeps its n and
  medians, has null estimate/CI/P and says why in ``method``;
- ``unit`` says what the analysed change is measured in: the parameter's unit for CHG
  ("percentage points" when the parameter is itself a percentage), "% of baseline" for PCHG.

``derive_blinded_endpoints`` gives the same rows with the pooled summaries only (no arm, no
comparison): what a blinded lake may show. ``derive_hierarchy`` marks the primary endpoint and
applies the fixed-sequence testing procedure. ``derive_worst_rank`` is the sensitivity analysis
for missing data: deaths and subjects without a value ranked worst.

``derive_ae_comparison`` turns the AE incidence per arm (``summarize_ae_incidence``: subjects
with at least one treatment-emergent event per category, safety set, actual arm) into the
difference in proportions, treatment minus control, with Newcombe's hybrid score CI and
Fisher's exact P.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from trialake.visits import study_day
from trialake.marts.checks import check_columns, check_unique
from trialake.stats import NotEstimableError, compute_incidence_difference, hodges_lehmann

AVARS = ("CHG", "PCHG")
MISSING_DATA = "complete cases"
ESTIMATORS = {"hodges_lehmann": hodges_lehmann}
"""Estimator name (trial configuration ``endpoints.estimator``) -> function of (x, y, conf_level)."""
DESCRIPTIVE = "descriptive only (no comparison)"
BLINDED = "blinded: pooled over the arms; comparisons only in the unblinded zone"

ENDPOINT_SCHEMA: dict[str, pl.DataType] = {
    "PARAMCD": pl.String(),
    "PARAM": pl.String(),
    "PARAMN": pl.Int64(),
    "AVISIT": pl.String(),
    "AVISITN": pl.Float64(),
    "AVAR": pl.String(),
    "unit": pl.String(),
    "population": pl.String(),
    "trt_arm": pl.String(),
    "ctl_arm": pl.String(),
    "n_trt": pl.Int64(),
    "n_ctl": pl.Int64(),
    "median_trt": pl.Float64(),
    "q1_trt": pl.Float64(),
    "q3_trt": pl.Float64(),
    "median_ctl": pl.Float64(),
    "q1_ctl": pl.Float64(),
    "q3_ctl": pl.Float64(),
    "n_all": pl.Int64(),
    "median_all": pl.Float64(),
    "q1_all": pl.Float64(),
    "q3_all": pl.Float64(),
    "estimate": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "conf_level": pl.Float64(),
    "p_value": pl.Float64(),
    "method": pl.String(),
    "missing_data": pl.String(),
    "primary": pl.String(),
    "hierarchy_rank": pl.Int64(),
    "alpha": pl.Float64(),
    "hierarchy_decision": pl.String(),
}
ARM_COLUMNS = ("trt_arm", "ctl_arm", "n_trt", "n_ctl", "median_trt", "q1_trt", "q3_trt", "median_ctl", "q1_ctl",
               "q3_ctl", "estimate", "ci_low", "ci_high", "p_value")
"""The columns of gold/endpoints that are arm-level (null in a blinded lake)."""

SENSITIVITY_SCHEMA: dict[str, pl.DataType] = {
    "PARAMCD": pl.String(),
    "PARAM": pl.String(),
    "AVISIT": pl.String(),
    "AVAR": pl.String(),
    "population": pl.String(),
    "better": pl.String(),
    "trt_arm": pl.String(),
    "ctl_arm": pl.String(),
    "n_trt": pl.Int64(),
    "n_ctl": pl.Int64(),
    "n_observed_trt": pl.Int64(),
    "n_observed_ctl": pl.Int64(),
    "n_died_trt": pl.Int64(),
    "n_died_ctl": pl.Int64(),
    "n_missing_trt": pl.Int64(),
    "n_missing_ctl": pl.Int64(),
    "p_value": pl.Float64(),
    "method": pl.String(),
}

AE_COMPARISON_SCHEMA: dict[str, pl.DataType] = {
    "category": pl.String(),
    "trt_arm": pl.String(),
    "ctl_arm": pl.String(),
    "events_trt": pl.Int64(),
    "n_trt": pl.Int64(),
    "events_ctl": pl.Int64(),
    "n_ctl": pl.Int64(),
    "proportion_trt": pl.Float64(),
    "proportion_ctl": pl.Float64(),
    "estimate": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "conf_level": pl.Float64(),
    "p_value": pl.Float64(),
    "method": pl.String(),
}

ARM = "arm"
"""Column with the compared arm in :func:`derive_population`'s output."""


def derive_endpoints(
    bds: pl.DataFrame,
    adsl: pl.DataFrame,
    *,
    treatment_arm: str,
    control_arm: str,
    visits: Sequence[str],
    conf_level: float = 0.95,
    arm_variable: str = "TRT01P",
    population_flag: str = "FASFL",
    populations: Mapping[str, str] | None = None,
    descriptive_only: Collection[str] = (),
    estimator: str = "hodges_lehmann",
) -> pl.DataFrame:
    """gold/endpoints rows for every PARAMCD of ``bds`` x ``visits`` x AVAR (CHG, PCHG).

    ``treatment_arm``/``control_arm`` are values of ADSL ``arm_variable`` (default TRT01P, the
    planned arm); subjects need their parameter's population flag (``populations``, else
    ``population_flag``, default FASFL) = "Y". ``estimator`` names one of ``ESTIMATORS``. Call
    once per BDS mart and ``pl.concat`` the results (then :func:`derive_hierarchy`).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: {estimator!r} is not one of {sorted(ESTIMATORS)}")
    _check_conf_level(conf_level)
    arms = (treatment_arm, control_arm)

    def subjects(flag: str) -> pl.DataFrame:
        return derive_population(adsl, treatment_arm=treatment_arm, control_arm=control_arm,
                                 arm_variable=arm_variable, population_flag=flag)

    def compare(paramcd: str, groups: Mapping[str, np.ndarray]) -> dict[str, Any]:
        trt, ctl = groups.get(treatment_arm, np.empty(0)), groups.get(control_arm, np.empty(0))
        pooled = _summary(np.concatenate([trt, ctl]), "all")
        if paramcd in descriptive_only:
            return {**_summary(trt, "trt"), **_summary(ctl, "ctl"), **pooled, **_not_estimable(None, conf_level)}
        return {**_compare(trt, ctl, arms, conf_level, ESTIMATORS[estimator]), **pooled}

    return _endpoint_rows(bds, visits, subjects, compare, population_flag, populations or {},
                          {"trt_arm": treatment_arm, "ctl_arm": control_arm})


def derive_blinded_endpoints(
    bds: pl.DataFrame,
    adsl: pl.DataFrame,
    *,
    visits: Sequence[str],
    population_flag: str = "FASFL",
    populations: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The rows of :func:`derive_endpoints` with the pooled summaries only: every arm-level
    column (``ARM_COLUMNS``) is null and ``method`` says the lake is blinded. Needs no arm."""
    def subjects(flag: str) -> pl.DataFrame:
        check_columns(adsl, "adsl", {"USUBJID": "text", flag: "text"})
        check_unique(adsl, "adsl", ["USUBJID"])
        return adsl.filter(pl.col(flag) == "Y").select("USUBJID", pl.lit("all").alias(ARM))

    def pooled(paramcd: str, groups: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return {**_summary(groups.get("all", np.empty(0)), "all"), "method": BLINDED}

    return _endpoint_rows(bds, visits, subjects, pooled, population_flag, populations or {}, {})


def _endpoint_rows(
    bds: pl.DataFrame,
    visits: Sequence[str],
    subjects_of: Callable[[str], pl.DataFrame],
    statistics: Callable[[str, Mapping[str, np.ndarray]], dict[str, Any]],
    population_flag: str,
    populations: Mapping[str, str],
    constant: Mapping[str, Any],
) -> pl.DataFrame:
    """One row per PARAMCD x visit x AVAR: the values per ``arm`` of each parameter's population
    handed to ``statistics``."""
    check_columns(
        bds,
        "bds",
        {"USUBJID": "text", "PARAMCD": "text", "PARAM": "text", "AVISIT": "text", "AVISITN": "number",
         "ANL01FL": "text", "CHG": "number", "PCHG": "number"},
    )
    visits = _check_visits(visits)
    analysed = bds.filter((pl.col("ANL01FL") == "Y") & pl.col("AVISIT").is_in(list(visits)))
    check_unique(analysed, "bds (ANL01FL = 'Y' records)", ["USUBJID", "PARAMCD", "AVISIT"])
    visit_numbers = _visit_numbers(bds, visits)
    units, numbers = _parameter_units(bds), _parameter_numbers(bds)
    groups_by_flag: dict[str, dict[tuple, pl.DataFrame]] = {}
    rows = []
    for paramcd, param in parameter_labels(bds):
        flag = populations.get(paramcd, population_flag)
        if flag not in groups_by_flag:
            records = analysed.select("USUBJID", "PARAMCD", "AVISIT", *AVARS).join(subjects_of(flag), on="USUBJID", how="inner")
            groups_by_flag[flag] = records.partition_by("PARAMCD", "AVISIT", ARM, as_dict=True)
        groups = groups_by_flag[flag]
        for visit in visits:
            for avar in AVARS:
                values = {arm: _values(frame, avar) for (code, name, arm), frame in groups.items()
                          if code == paramcd and name == visit}
                rows.append(
                    {"PARAMCD": paramcd, "PARAM": param, "PARAMN": numbers.get(paramcd), "AVISIT": visit,
                     "AVISITN": visit_numbers.get(visit), "AVAR": avar, "unit": _unit(avar, units.get(paramcd)),
                     "population": flag, **constant, **statistics(paramcd, values), "missing_data": MISSING_DATA}
                )
    return pl.DataFrame(rows, schema=ENDPOINT_SCHEMA)


def derive_hierarchy(
    endpoints: pl.DataFrame,
    *,
    primary: tuple[str, str, str] | None,
    order: Sequence[tuple[str, str, str]],
    alpha: float,
) -> pl.DataFrame:
    """Mark the primary endpoint and apply fixed-sequence testing to ``endpoints``.

    ``primary`` and the tests of ``order`` are (PARAMCD, AVISIT, AVAR). Each test of ``order``
    gets its ``hierarchy_rank`` and ``alpha``; the tests are taken in order, each at the full
    alpha: P < alpha rejects its null hypothesis and testing goes on, otherwise (or without a
    P) testing stops and every later test is "not tested". In a blinded table (no P values) the
    decisions stay null. A named test without a row has no value yet (gold is built from what
    silver holds; the configuration's names are checked when it is loaded): nothing is marked for
    it, and as it rejects nothing, testing stops there.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must be strictly between 0 and 1, got {alpha!r}")
    keys = {(r[0], r[1], r[2]): i for i, r in enumerate(endpoints.select("PARAMCD", "AVISIT", "AVAR").iter_rows())}
    p_values = endpoints.get_column("p_value").to_list()
    blinded = endpoints.get_column("n_trt").is_null().all()
    ranks, decisions = [None] * endpoints.height, [None] * endpoints.height
    going = True
    for rank, test in enumerate(order, start=1):
        index = keys.get(test)
        if index is None:  # no value yet
            going = False
            continue
        ranks[index] = rank
        if blinded:
            continue
        p = p_values[index]
        if not going:
            decisions[index] = "not tested: an earlier test in the hierarchy was not rejected"
        elif p is not None and p < alpha:
            decisions[index] = f"rejected at alpha {alpha:g} (P < {alpha:g})"
        else:
            decisions[index] = f"not rejected at alpha {alpha:g}{'' if p is not None else ' (not estimable)'}: testing stops"
            going = False
    primary_index = keys.get(primary) if primary else None
    return endpoints.with_columns(
        primary=pl.Series([("Y" if i == primary_index else None) for i in range(endpoints.height)], dtype=pl.String),
        hierarchy_rank=pl.Series(ranks, dtype=pl.Int64),
        alpha=pl.Series([alpha if r is not None else None for r in ranks], dtype=pl.Float64),
        hierarchy_decision=pl.Series(decisions, dtype=pl.String),
    )


def derive_worst_rank(
    bds: pl.DataFrame,
    adsl: pl.DataFrame,
    *,
    tests: Sequence[tuple[str, str, str]],
    better: Mapping[str, str],
    window_end: Mapping[str, int],
    treatment_arm: str,
    control_arm: str,
    arm_variable: str = "TRT01P",
    population_flag: str = "FASFL",
    populations: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Worst-rank sensitivity analysis of ``tests`` ((PARAMCD, AVISIT, AVAR)): the subjects of
    the population with a baseline value of the parameter but no value at the visit are ranked
    below every observed value: first (worst) those who died by the end of the visit's window
    (``window_end``: AVISIT -> last study day), the earlier death the worse, then the others,
    tied. ``better`` (PARAMCD -> "lower" or "higher") says which values are worse. The
    Wilcoxon rank-sum P (normal approximation with ties, as R) compares the arms; there is no
    shift estimate on ranks.
    """
    check_columns(bds, "bds", {"USUBJID": "text", "PARAMCD": "text", "PARAM": "text", "AVISIT": "text",
                               "ANL01FL": "text", "ABLFL": "text", "CHG": "number", "PCHG": "number"})
    check_columns(adsl, "adsl", {"USUBJID": "text", "DTHDT": "date", "TRTSDT": "date"})
    rows = []
    labels = dict(parameter_labels(bds))
    reference = pl.coalesce("TRTSDT", *(["RANDDT"] if "RANDDT" in adsl.columns else []))
    deaths = adsl.with_columns(_reference=reference).select("USUBJID", _death_day=study_day("DTHDT", "_reference"))
    for paramcd, visit, avar in tests:
        if better.get(paramcd) not in ("lower", "higher"):
            raise ValueError(f"better: no direction (lower or higher) for {paramcd}")
        if visit not in window_end:
            raise ValueError(f"window_end: no window for {visit!r}")
        flag = (populations or {}).get(paramcd, population_flag)
        subjects = derive_population(adsl, treatment_arm=treatment_arm, control_arm=control_arm,
                                     arm_variable=arm_variable, population_flag=flag)
        of_param = bds.filter(pl.col("PARAMCD") == paramcd)
        with_base = of_param.filter(pl.col("ABLFL") == "Y").select("USUBJID").unique()
        observed = of_param.filter((pl.col("ANL01FL") == "Y") & (pl.col("AVISIT") == visit)).select("USUBJID", pl.col(avar).alias("_value"))
        frame = (
            subjects.join(with_base, on="USUBJID", how="semi")
            .join(observed.filter(pl.col("_value").is_not_null() & pl.col("_value").is_finite()), on="USUBJID", how="left")
            .join(deaths, on="USUBJID", how="left")
            .with_columns(_died=pl.col("_value").is_null() & (pl.col("_death_day") <= window_end[visit]).fill_null(False))
        )
        values = _worst_rank_values(frame, better[paramcd])
        trt, ctl = (values.filter(pl.col(ARM) == arm) for arm in (treatment_arm, control_arm))
        row = {"PARAMCD": paramcd, "PARAM": labels.get(paramcd), "AVISIT": visit, "AVAR": avar, "population": flag,
               "better": better[paramcd], "trt_arm": treatment_arm, "ctl_arm": control_arm}
        for suffix, part in (("trt", trt), ("ctl", ctl)):
            row |= {f"n_{suffix}": part.height, f"n_observed_{suffix}": part.filter(pl.col("_value").is_not_null()).height,
                    f"n_died_{suffix}": part.filter(pl.col("_died")).height,
                    f"n_missing_{suffix}": part.filter(pl.col("_value").is_null() & ~pl.col("_died")).height}
        try:
            result = hodges_lehmann(trt["_ranked"].to_numpy(), ctl["_ranked"].to_numpy())
            row |= {"p_value": result.p_value, "method": f"worst-rank Wilcoxon rank-sum test; {result.method}"}
        except (NotEstimableError, ValueError) as exc:
            row |= {"p_value": None, "method": f"not estimable: {exc}"}
        rows.append(row)
    return pl.DataFrame(rows, schema=SENSITIVITY_SCHEMA)


def _worst_rank_values(frame: pl.DataFrame, better: str) -> pl.DataFrame:
    """``_ranked``: observed values, then worse ones for the missing (tied), then worse still for
    the deaths (earlier worse). Only ranks matter: the numbers are placed beyond the observed."""
    observed = frame.get_column("_value").drop_nulls()
    sign = 1.0 if better == "lower" else -1.0  # work where larger is worse
    worst = float((observed * sign).max()) if observed.len() else 0.0
    step = float((observed * sign).abs().max() or 0.0) + 1.0
    latest = float(frame.get_column("_death_day").max() or 0) + 1.0
    ranked = (
        pl.when(pl.col("_value").is_not_null()).then(pl.col("_value") * sign)
        .when(pl.col("_died")).then(worst + 2 * step + (latest - pl.col("_death_day").cast(pl.Float64)))
        .otherwise(worst + step)
    )
    return frame.with_columns(_ranked=ranked * sign)


def derive_ae_comparison(
    ae_incidence: pl.DataFrame,
    *,
    treatment_arm: str,
    control_arm: str,
    conf_level: float = 0.95,
    arm_variable: str = "TRT01A",
) -> pl.DataFrame:
    """Treatment versus control for each AE category of ``ae_incidence``, in its row order.

    ``ae_incidence`` is :func:`trialake.marts.summarize_ae_incidence`'s long table (``category``,
    arm column ``arm_variable``, ``n`` subjects with an event, ``n_safety`` subjects in the arm's
    safety set). An arm without rows for a category counts as n_safety = 0: that row gets null
    statistics and says why in ``method``.
    """
    check_columns(ae_incidence, "ae_incidence", {"category": "text", arm_variable: "text", "n": "number", "n_safety": "number"})
    check_unique(ae_incidence, "ae_incidence", ["category", arm_variable])
    _check_conf_level(conf_level)
    counts = {(row[0], row[1]): (int(row[2]), int(row[3]))
              for row in ae_incidence.select("category", arm_variable, "n", "n_safety").iter_rows()}
    categories = ae_incidence.get_column("category").unique(maintain_order=True).to_list()
    rows = [
        _incidence_row(category, counts.get((category, treatment_arm), (0, 0)), counts.get((category, control_arm), (0, 0)),
                       treatment_arm, control_arm, conf_level)
        for category in categories
    ]
    return pl.DataFrame(rows, schema=AE_COMPARISON_SCHEMA)


def derive_population(
    adsl: pl.DataFrame,
    *,
    treatment_arm: str,
    control_arm: str,
    arm_variable: str = "TRT01P",
    population_flag: str = "FASFL",
    argument: str = "adsl",
) -> pl.DataFrame:
    """USUBJID and ``arm`` of the subjects with ``population_flag`` = "Y" in the two compared arms.

    Raises ValueError when an arm is not a value of ``adsl[arm_variable]`` (a configuration
    mistake, e.g. an ARMCD given where the ARM description is stored).
    """
    check_columns(adsl, argument, {"USUBJID": "text", arm_variable: "text", population_flag: "text"})
    check_unique(adsl, argument, ["USUBJID"])
    if treatment_arm == control_arm:
        raise ValueError(f"treatment_arm, control_arm: both are {treatment_arm!r}")
    arms = set(adsl.get_column(arm_variable).drop_nulls().to_list())
    for argument_name, arm in (("treatment_arm", treatment_arm), ("control_arm", control_arm)):
        if arm not in arms:
            raise ValueError(f"{argument_name}: {arm!r} is not a value of {argument}.{arm_variable} {sorted(arms)}")
    in_population = (pl.col(population_flag) == "Y") & pl.col(arm_variable).is_in([treatment_arm, control_arm])
    return adsl.filter(in_population).select("USUBJID", pl.col(arm_variable).alias(ARM))


def parameter_labels(bds: pl.DataFrame) -> list[tuple[str, str]]:
    """(PARAMCD, PARAM) pairs of a BDS frame in PARAMCD order; the first non-null PARAM of each code."""
    pairs = bds.group_by("PARAMCD").agg(pl.col("PARAM").drop_nulls().first()).sort("PARAMCD")
    return [tuple(row) for row in pairs.iter_rows()]


def _check_conf_level(conf_level: float) -> None:
    if not (isinstance(conf_level, (int, float)) and 0 < conf_level < 1):
        raise ValueError(f"conf_level: must be strictly between 0 and 1, got {conf_level!r}")


def _check_visits(visits: Sequence[str]) -> tuple[str, ...]:
    if isinstance(visits, str) or not visits or not all(isinstance(v, str) and v for v in visits):
        raise ValueError(f"visits: expected a non-empty sequence of visit names (AVISIT), got {visits!r}")
    if len(set(visits)) != len(visits):
        raise ValueError(f"visits: names must be unique, got {list(visits)}")
    return tuple(visits)


def _visit_numbers(bds: pl.DataFrame, visits: tuple[str, ...]) -> dict[str, float]:
    numbers = bds.filter(pl.col("AVISIT").is_in(list(visits))).group_by("AVISIT").agg(pl.col("AVISITN").drop_nulls().first())
    return dict(numbers.iter_rows())


def _parameter_units(bds: pl.DataFrame) -> dict[str, str]:
    if "AVALU" not in bds.columns:
        return {}
    units = bds.filter(pl.col("AVALU").is_not_null()).group_by("PARAMCD").agg(pl.col("AVALU").first())
    return dict(units.iter_rows())


def _parameter_numbers(bds: pl.DataFrame) -> dict[str, int]:
    if "PARAMN" not in bds.columns:
        return {}
    numbers = bds.filter(pl.col("PARAMN").is_not_null()).group_by("PARAMCD").agg(pl.col("PARAMN").first())
    return dict(numbers.iter_rows())


def _unit(avar: str, unit: str | None) -> str | None:
    """What a change is measured in: percentage points for a change of a percentage."""
    if avar == "PCHG":
        return "% of baseline"
    return "percentage points" if unit == "%" else unit


def _values(group: pl.DataFrame | None, avar: str) -> np.ndarray:
    """Complete cases: the non-missing, finite values of ``avar``."""
    if group is None:
        return np.empty(0)
    values = group.get_column(avar).drop_nulls().cast(pl.Float64).to_numpy()
    return values[np.isfinite(values)]


def _summary(values: np.ndarray, suffix: str) -> dict[str, Any]:
    if values.size == 0:
        return {f"n_{suffix}": 0, f"median_{suffix}": None, f"q1_{suffix}": None, f"q3_{suffix}": None}
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    return {f"n_{suffix}": values.size, f"median_{suffix}": median, f"q1_{suffix}": q1, f"q3_{suffix}": q3}


def _compare(
    trt: np.ndarray, ctl: np.ndarray, arms: tuple[str, str], conf_level: float,
    estimator: Callable[..., Any] = hodges_lehmann,
) -> dict[str, Any]:
    trt_arm, ctl_arm = arms
    summaries = {**_summary(trt, "trt"), **_summary(ctl, "ctl")}
    missing = [arm for arm, values in ((trt_arm, trt), (ctl_arm, ctl)) if values.size == 0]
    if missing:
        return {**summaries, **_not_estimable(f"no {' or '.join(missing)} subjects with a value", conf_level)}
    try:
        result = estimator(trt, ctl, conf_level)
    except NotEstimableError:
        return {**summaries, **_not_estimable("each arm is a single repeated value", conf_level)}
    return {
        **summaries,
        "estimate": result.estimate,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "conf_level": result.conf_level,
        "p_value": result.p_value,
        "method": f"Hodges-Lehmann shift ({trt_arm} minus {ctl_arm}); {result.method}",
    }


def _not_estimable(reason: str | None, conf_level: float) -> dict[str, Any]:
    """Null comparison; ``reason`` None marks a descriptive-only parameter."""
    return {"estimate": None, "ci_low": None, "ci_high": None, "conf_level": conf_level, "p_value": None,
            "method": DESCRIPTIVE if reason is None else f"not estimable: {reason}"}


def _incidence_row(
    category: str, trt: tuple[int, int], ctl: tuple[int, int], trt_arm: str, ctl_arm: str, conf_level: float
) -> dict[str, Any]:
    row = {"category": category, "trt_arm": trt_arm, "ctl_arm": ctl_arm,
           "events_trt": trt[0], "n_trt": trt[1], "events_ctl": ctl[0], "n_ctl": ctl[1]}
    empty = [arm for arm, (_, n) in ((trt_arm, trt), (ctl_arm, ctl)) if n == 0]
    if empty:
        return {**row, "proportion_trt": None, "proportion_ctl": None,
                **_not_estimable(f"no {' or '.join(empty)} subjects in the safety population", conf_level)}
    result = compute_incidence_difference(trt[0], trt[1], ctl[0], ctl[1], conf_level)
    return {**row, "proportion_trt": result.proportion_trt, "proportion_ctl": result.proportion_ctl,
            "estimate": result.estimate, "ci_low": result.ci_low, "ci_high": result.ci_high,
            "conf_level": conf_level, "p_value": result.p_value, "method": result.method}
