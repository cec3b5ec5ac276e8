"""The statistician's tables as plain rows: CONSORT flow, baseline characteristics, adverse events
by body system and term, lab shift tables. Pure functions of the marts; no formatting beyond
counts and numbers.

Every function takes ``groups``: USUBJID -> column label (the arm, or "All subjects" in a blinded
report) for the subjects the table counts, and ``labels``: the column labels in order.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from trialake.marts.adae import summarize_ae_by_term
from trialake.marts.checks import check_columns

GROUP = "group"
TOTAL = "Total"


@dataclass(frozen=True)
class Row:
    """One table row: a label, its indent level, and a text or number per column label."""

    label: str
    cells: Mapping[str, object] = field(default_factory=dict)
    level: int = 0
    note: str = ""


def subject_groups(adsl: pl.DataFrame, arm_variable: str | None, flag: str) -> pl.DataFrame:
    """USUBJID and ``group`` of the subjects with ``flag`` = Y: their ``arm_variable`` value, or
    "All subjects" when ``arm_variable`` is None (a blinded report)."""
    check_columns(adsl, "adsl", {"USUBJID": "text", flag: "text"})
    chosen = adsl.filter(pl.col(flag) == "Y")
    if arm_variable is None:
        return chosen.select("USUBJID", pl.lit("All subjects").alias(GROUP))
    return chosen.filter(pl.col(arm_variable).is_not_null()).select("USUBJID", pl.col(arm_variable).alias(GROUP))


def _counts(frame: pl.DataFrame, labels: Sequence[str], *, total: bool) -> dict[str, object]:
    """Subjects per group (and in total) of a frame with USUBJID and ``group``."""
    per = dict(frame.group_by(GROUP).agg(pl.col("USUBJID").n_unique()).iter_rows())
    cells: dict[str, object] = {label: int(per.get(label, 0)) for label in labels}
    if total:
        cells[TOTAL] = frame.get_column("USUBJID").n_unique()
    return cells


def build_consort(
    adsl: pl.DataFrame,
    primary_records: pl.DataFrame,
    *,
    arm_variable: str | None,
    labels: Sequence[str],
    primary_visit: str,
    primary_window: tuple[int, int],
    population_flag: str,
) -> list[Row]:
    """The CONSORT flow: enrolled, randomized, dosed, analysis population, end of study by
    reason, and the primary endpoint analysed or not, with the reason for each missing value.

    ``primary_records``: the primary parameter's BDS records (ADY, AVISIT, AVAL, ANL01FL and
    ``status`` when the mart has it); ``primary_window``: the primary visit's [low, high] days.
    """
    check_columns(adsl, "adsl", {"USUBJID": "text", "RANDFL": "text", "SAFFL": "text", population_flag: "text",
                                 "EOSSTT": "text", "DCSREAS": "text", "DTHDT": "date", "TRTSDT": "date"})
    total = arm_variable is not None
    randomized = subject_groups(adsl, arm_variable, "RANDFL")

    def among(condition: pl.Expr, base: pl.DataFrame = randomized) -> pl.DataFrame:
        return base.join(adsl.filter(condition).select("USUBJID"), on="USUBJID", how="semi")

    rows = [
        Row("Enrolled (in the subject-level dataset)", {TOTAL if total else labels[0]: adsl.height}),
        Row("Not randomized", {TOTAL if total else labels[0]: adsl.filter(pl.col("RANDFL") != "Y").height}, level=1),
        Row("Randomized", _counts(randomized, labels, total=total)),
        Row("Never dosed", _counts(among(pl.col("SAFFL") != "Y"), labels, total=total), level=1),
        Row("Dosed (safety set)", _counts(among(pl.col("SAFFL") == "Y"), labels, total=total)),
    ]
    in_population = among(pl.col(population_flag) == "Y")
    rows += [
        Row(f"Dosed, not in the analysis population ({population_flag} = N): no baseline value",
            _counts(among((pl.col("SAFFL") == "Y") & (pl.col(population_flag) != "Y")), labels, total=total), level=1),
        Row(f"Analysis population ({population_flag})", _counts(in_population, labels, total=total)),
        Row("Completed the study", _counts(among(pl.col("EOSSTT") == "COMPLETED"), labels, total=total)),
        Row("Ongoing (no end-of-study record)", _counts(among(pl.col("EOSSTT") == "ONGOING"), labels, total=total)),
        Row("Discontinued", _counts(among(pl.col("EOSSTT") == "DISCONTINUED"), labels, total=total)),
    ]
    reasons = adsl.filter(pl.col("EOSSTT") == "DISCONTINUED").get_column("DCSREAS").fill_null("reason not given")
    for reason in sorted(set(reasons.to_list())):
        gone = among((pl.col("EOSSTT") == "DISCONTINUED") & (pl.col("DCSREAS").fill_null("reason not given") == reason))
        rows.append(Row(reason.capitalize(), _counts(gone, labels, total=total), level=1))
    analysed, missing = _primary_missing(adsl, primary_records, in_population, primary_visit, primary_window)
    rows.append(Row(f"Analysed for the primary endpoint at {primary_visit}", _counts(analysed, labels, total=total)))
    for reason, frame in missing:
        rows.append(Row(reason, _counts(frame, labels, total=total), level=1))
    return rows


def _primary_missing(
    adsl: pl.DataFrame, records: pl.DataFrame, population: pl.DataFrame, visit: str, window: tuple[int, int]
) -> tuple[pl.DataFrame, list[tuple[str, pl.DataFrame]]]:
    """(population subjects with a value at the visit, [(reason, subjects without one)])."""
    check_columns(records, "primary_records", {"USUBJID": "text", "ADY": "number", "AVISIT": "text", "ANL01FL": "text"})
    valid = records.filter((pl.col("AVISIT") == visit) & (pl.col("ANL01FL") == "Y"))
    analysed = population.join(valid.select("USUBJID"), on="USUBJID", how="semi")
    rest = population.join(valid.select("USUBJID"), on="USUBJID", how="anti")
    low, high = window
    reference = adsl.select("USUBJID", "DTHDT", "TRTSDT")
    died = reference.filter(pl.col("DTHDT") <= pl.col("TRTSDT") + pl.duration(days=high - 1))
    in_window = records.filter(pl.col("ADY").is_between(low, high))
    failed = in_window.filter(pl.col("AVAL").is_null()) if "AVAL" in records.columns else in_window.head(0)
    outside = records.filter(pl.col("ADY") > high)
    reasons = [
        ("Died before the end of the visit window", died),
        ("Measurement in the window failed (e.g. scan not measurable)", failed),
        ("Measured only outside the visit window", outside),
    ]
    missing = []
    for reason, subjects in reasons:
        hit = rest.join(subjects.select("USUBJID"), on="USUBJID", how="semi")
        rest = rest.join(hit.select("USUBJID"), on="USUBJID", how="anti")
        missing.append((reason, hit))
    missing.append(("No record in the visit window (visit missed or not yet done)", rest))
    return analysed, missing


def build_baseline_characteristics(
    adsl: pl.DataFrame,
    baselines: pl.DataFrame,
    groups: pl.DataFrame,
    *,
    labels: Sequence[str],
    total: bool,
) -> list[Row]:
    """Age (median (IQR), range), age group, sex, race, ethnicity, and the baseline value of each
    parameter in ``baselines`` (ABLFL records: USUBJID, PARAMCD, PARAM, AVAL) per group."""
    columns = [*labels, *([TOTAL] if total else [])]
    subjects = adsl.join(groups, on="USUBJID", how="inner")
    if total:
        subjects = pl.concat([subjects, subjects.with_columns(pl.lit(TOTAL).alias(GROUP))])
    sizes = dict(subjects.group_by(GROUP).len().iter_rows())
    rows = [Row("Subjects", {c: sizes.get(c, 0) for c in columns})]
    rows.append(Row("Age (years), median (IQR)", {c: _median_iqr(subjects, "AGE", c) for c in columns}))
    rows.append(Row("Age (years), min to max", {c: _range(subjects, "AGE", c) for c in columns}, level=1))
    for variable, title in (("AGEGR1", "Age group"), ("SEX", "Sex"), ("RACE", "Race"), ("ETHNIC", "Ethnicity")):
        rows.append(Row(f"{title}, n (%)"))
        values = subjects.get_column(variable).fill_null("Missing")
        for value in sorted(set(values.to_list()), key=lambda v: (v == "Missing", v)):
            counts = {}
            for c in columns:
                n = subjects.filter((pl.col(GROUP) == c) & (pl.col(variable).fill_null("Missing") == value)).height
                counts[c] = _n_pct(n, sizes.get(c, 0))
            rows.append(Row(value, counts, level=1))
    at_baseline = baselines.join(subjects.select("USUBJID", GROUP), on="USUBJID", how="inner")
    order = ["PARAMN", "PARAMCD"] if "PARAMN" in at_baseline.columns else ["PARAMCD"]
    for paramcd, param in at_baseline.select(*order, "PARAM").unique().sort(order).select("PARAMCD", "PARAM").iter_rows():
        of_param = at_baseline.filter(pl.col("PARAMCD") == paramcd)
        rows.append(Row(f"{param} at baseline, median (IQR) [n]",
                        {c: _median_iqr(of_param, "AVAL", c, with_n=True) for c in columns}))
    return rows


def _values(frame: pl.DataFrame, column: str, group: str) -> np.ndarray:
    values = frame.filter(pl.col(GROUP) == group).get_column(column).drop_nulls().cast(pl.Float64).to_numpy()
    return values[np.isfinite(values)]


def _median_iqr(frame: pl.DataFrame, column: str, group: str, *, with_n: bool = False) -> str:
    values = _values(frame, column, group)
    if values.size == 0:
        return "–"
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    text = f"{median:.1f} ({q1:.1f} to {q3:.1f})"
    return f"{text} [{values.size}]" if with_n else text


def _range(frame: pl.DataFrame, column: str, group: str) -> str:
    values = _values(frame, column, group)
    return "–" if values.size == 0 else f"{values.min():.0f} to {values.max():.0f}"


def _n_pct(n: int, total: int) -> str:
    return f"{n} ({100 * n / total:.1f}%)" if total else str(n)


def build_ae_term_rows(
    adae: pl.DataFrame, adsl: pl.DataFrame, *, arm_variable: str | None, labels: Sequence[str], condition: pl.Expr
) -> list[Row]:
    """Subjects with a treatment-emergent event meeting ``condition`` by body system and
    preferred term, n (%) per group; an empty list when there are none."""
    table = summarize_ae_by_term(adae, adsl, arm_variable=arm_variable, condition=condition)
    column = arm_variable or "_group"
    if arm_variable is None:
        table = table.with_columns(pl.lit(labels[0]).alias(column))
    rows = []
    for (soc, term), part in table.group_by("AEBODSYS", "AEDECOD", maintain_order=True):
        cells = {arm: _n_pct(n, total) for arm, n, total in part.select(column, "n", "n_safety").iter_rows()}
        rows.append(Row(term if term is not None else (soc or "Body system not coded"), cells,
                        level=1 if term is not None else 0))
    return rows


def build_lab_shift_tables(
    adlb: pl.DataFrame, groups: pl.DataFrame, *, labels: Sequence[str], baseline_end: int
) -> list[tuple[str, str, list[Row]]]:
    """Per lab parameter with post-baseline indicators (study day after ``baseline_end``) of
    subjects with a baseline indicator: (title, kind, rows), kind
    "range" (baseline LOW/NORMAL/HIGH x worst post-baseline) and, for graded tests, "grade"
    (baseline grade x worst post-baseline grade). The worst post-baseline indicator is the one
    of the result furthest outside its range (relative to the range's width); NORMAL when none
    is outside. Rows: baseline category x group; cells: counts per post-baseline category."""
    check_columns(adlb, "adlb", {"USUBJID": "text", "PARAMCD": "text", "PARAM": "text", "ABLFL": "text",
                                 "ADY": "number", "ANRIND": "text", "BNRIND": "text", "AVAL": "number",
                                 "A1LO": "number", "A1HI": "number"})
    post = adlb.filter((pl.col("ADY") > baseline_end) & pl.col("ANRIND").is_not_null() & pl.col("BNRIND").is_not_null())
    width = (pl.col("A1HI") - pl.col("A1LO")).abs()
    outside = pl.max_horizontal(pl.col("A1LO") - pl.col("AVAL"), pl.col("AVAL") - pl.col("A1HI"), pl.lit(0.0)) / width
    worst = (
        post.with_columns(_outside=outside.fill_null(0.0))
        .sort("_outside", descending=True)
        .group_by("USUBJID", "PARAMCD", maintain_order=True)
        .agg(pl.col("ANRIND").first().alias("_worst"), pl.col("BNRIND").first(),
             pl.col("ATOXGRN").max().alias("_worst_grade") if "ATOXGRN" in post.columns else pl.lit(None).alias("_worst_grade"),
             pl.col("BTOXGRN").first() if "BTOXGRN" in post.columns else pl.lit(None).alias("BTOXGRN"))
        .join(groups, on="USUBJID", how="inner")
    )
    names = dict(adlb.select("PARAMCD", "PARAM").unique().iter_rows())
    order = (adlb.group_by("PARAMCD").agg(pl.col("PARAMN").first()).sort("PARAMN", "PARAMCD") if "PARAMN" in adlb.columns
             else adlb.select("PARAMCD").unique().sort("PARAMCD"))
    tables = []
    for paramcd in order.get_column("PARAMCD").to_list():
        shifts = worst.filter(pl.col("PARAMCD") == paramcd)
        if shifts.is_empty():
            continue
        tables.append((names.get(paramcd) or paramcd, "range",
                       _shift_rows(shifts, "BNRIND", "_worst", ("LOW", "NORMAL", "HIGH"), labels)))
        graded = shifts.filter(pl.col("_worst_grade").is_not_null())
        if not graded.is_empty():
            grades = tuple(str(g) for g in range(5))
            graded = graded.with_columns(pl.col("_worst_grade").cast(pl.String), pl.col("BTOXGRN").cast(pl.String))
            tables.append((names.get(paramcd) or paramcd, "grade", _shift_rows(graded, "BTOXGRN", "_worst_grade", grades, labels)))
    return tables


def _shift_rows(frame: pl.DataFrame, baseline: str, worst: str, categories: Sequence[str], labels: Sequence[str]) -> list[Row]:
    rows = []
    for label in labels:
        of_group = frame.filter(pl.col(GROUP) == label)
        for category in (*categories, None):
            at = of_group.filter(pl.col(baseline).is_null() if category is None else pl.col(baseline) == category)
            if at.is_empty():
                continue
            cells = {c: at.filter(pl.col(worst) == c).height for c in categories}
            rows.append(Row(f"{label}: baseline {category or 'missing'}", {**cells, TOTAL: at.height}))
    return rows
