"""gold/endpoints and the adverse-event incidence table: the trial's between-arm comparisons.

``derive_endpoints`` compares the two arms on every parameter of a BDS mart (adct, adft, ...) at
every requested post-baseline visit, for ``AVAR`` in ``CHG`` and ``PCHG``:

- analysis records are ``ANL01FL = "Y"`` of subjects in the population (ADSL flag, default
  ``FASFL = "Y"``) whose arm (ADSL ``TRT01P`` by default) is the treatment or the control arm;
- missing data: complete cases (a subject without a value at the visit is left out);
- per arm: n, median, Q1, Q3 (quartiles by linear interpolation, R's default ``type = 7``);
- ``estimate`` is the Hodges-Lehmann shift, treatment minus control, with its CI and the
  two-sided Wilcoxon rank-sum P, exactly as R's ``wilcox.test(conf.int = TRUE)``
  (:func:`trialake.stats.hodges_lehmann`);
- a row whose comparison cannot be made (an empty arm, all values identical) keeps its n and
  medians, has null estimate/CI/P and says why in ``method``.

``derive_ae_comparison`` turns the AE incidence per arm (``summarize_ae_incidence``: subjects
with at least one treatment-emergent event per category, safety set, actual arm) into the
difference in proportions, treatment minus control, with Newcombe's hybrid score CI and
Fisher's exact P.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from trialake.marts.checks import check_columns, check_unique
from trialake.stats import NotEstimableError, compute_incidence_difference, hodges_lehmann

AVARS = ("CHG", "PCHG")
MISSING_DATA = "complete cases"

ENDPOINT_SCHEMA: dict[str, pl.DataType] = {
    "PARAMCD": pl.String(),
    "PARAM": pl.String(),
    "AVISIT": pl.String(),
    "AVISITN": pl.Float64(),
    "AVAR": pl.String(),
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
    "estimate": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "conf_level": pl.Float64(),
    "p_value": pl.Float64(),
    "method": pl.String(),
    "missing_data": pl.String(),
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
) -> pl.DataFrame:
    """gold/endpoints rows for every PARAMCD of ``bds`` x ``visits`` x AVAR (CHG, PCHG).

    ``treatment_arm``/``control_arm`` are values of ADSL ``arm_variable`` (default TRT01P, the
    planned arm); subjects need ``population_flag`` (default FASFL) = "Y". Call once per BDS
    mart and ``pl.concat`` the results.
    """
    check_columns(
        bds,
        "bds",
        {"USUBJID": "text", "PARAMCD": "text", "PARAM": "text", "AVISIT": "text", "AVISITN": "number",
         "ANL01FL": "text", "CHG": "number", "PCHG": "number"},
    )
    visits = _check_visits(visits)
    subjects = derive_population(
        adsl, treatment_arm=treatment_arm, control_arm=control_arm, arm_variable=arm_variable,
        population_flag=population_flag,
    )
    _check_conf_level(conf_level)
    records = (
        bds.filter((pl.col("ANL01FL") == "Y") & pl.col("AVISIT").is_in(list(visits)))
        .select("USUBJID", "PARAMCD", "AVISIT", *AVARS)
        .join(subjects, on="USUBJID", how="inner")
    )
    check_unique(records, "bds (ANL01FL = 'Y' records)", ["USUBJID", "PARAMCD", "AVISIT"])
    groups = records.partition_by("PARAMCD", "AVISIT", ARM, as_dict=True)
    visit_numbers = _visit_numbers(bds, visits)
    rows = []
    for paramcd, param in parameter_labels(bds):
        for visit in visits:
            for avar in AVARS:
                trt = _values(groups.get((paramcd, visit, treatment_arm)), avar)
                ctl = _values(groups.get((paramcd, visit, control_arm)), avar)
                rows.append(
                    {"PARAMCD": paramcd, "PARAM": param, "AVISIT": visit, "AVISITN": visit_numbers.get(visit),
                     "AVAR": avar, "trt_arm": treatment_arm, "ctl_arm": control_arm,
                     **_compare(trt, ctl, treatment_arm, control_arm, conf_level), "missing_data": MISSING_DATA}
                )
    return pl.DataFrame(rows, schema=ENDPOINT_SCHEMA)


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


def _compare(trt: np.ndarray, ctl: np.ndarray, trt_arm: str, ctl_arm: str, conf_level: float) -> dict[str, Any]:
    summaries = {**_summary(trt, "trt"), **_summary(ctl, "ctl")}
    missing = [arm for arm, values in ((trt_arm, trt), (ctl_arm, ctl)) if values.size == 0]
    if missing:
        return {**summaries, **_not_estimable(f"no {' or '.join(missing)} subjects with a value", conf_level)}
    try:
        result = hodges_lehmann(trt, ctl, conf_level)
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


def _not_estimable(reason: str, conf_level: float) -> dict[str, Any]:
    return {"estimate": None, "ci_low": None, "ci_high": None, "conf_level": conf_level, "p_value": None,
            "method": f"not estimable: {reason}"}


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
