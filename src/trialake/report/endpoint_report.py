"""The endpoint report: one self-contained HTML page for the DSMB and the trial statistician.

Sections: header (study, data cut, lake version; a BLINDED banner in a blinded lake), methods
(every choice of the analysis plan), CONSORT flow, baseline characteristics, endpoint results
(primary first and marked, the hierarchy's decisions, descriptive-only parameters without a
comparison), the worst-rank sensitivity analysis, a forest plot, box/strip, waterfall and
spaghetti plots, adverse events (summary, by body system and term, serious events, deaths), lab
shift tables (reference range and toxicity grade), provenance. Rendered with Jinja2
(autoescaping on); the figures are PNGs embedded as base64, so the file needs nothing else.

A blinded report pools every subject in one column ("All subjects") and shows no comparison:
it can be read by anyone the blinded lake is shared with. No identifier reaches the page: the
inputs are reduced to the columns the report shows, and subjects appear only as anonymous
points, bars and lines.
"""
from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

import jinja2
import polars as pl

from trialake.marts.checks import check_columns
from trialake.marts.endpoints import ENDPOINT_SCHEMA
from trialake.report.plots import (
    ARM_COLOURS,
    render_box_strip_png,
    render_forest_png,
    render_spaghetti_png,
    render_waterfall_png,
)
from trialake.report.tables import (
    GROUP,
    TOTAL,
    Row,
    build_ae_term_rows,
    build_baseline_characteristics,
    build_consort,
    build_lab_shift_tables,
    subject_groups,
)

ALL_SUBJECTS = "All subjects"
_BDS_COLUMNS = {"USUBJID": "text", "PARAMCD": "text", "PARAM": "text", "AVISIT": "text", "AVISITN": "number",
                "ANL01FL": "text", "AVAL": "number", "CHG": "number", "PCHG": "number"}


@dataclass(frozen=True)
class ReportInputs:
    """The gold tables the report reads (the unblinded ones, or a blinded lake's pooled ones)."""

    endpoints: pl.DataFrame
    adsl: pl.DataFrame
    adct: pl.DataFrame
    adft: pl.DataFrame
    adlb: pl.DataFrame
    adae: pl.DataFrame
    ae_incidence: pl.DataFrame
    ae_comparison: pl.DataFrame | None = None
    sensitivity: pl.DataFrame | None = None


@dataclass(frozen=True)
class ReportOptions:
    """What the report shows and how.

    Attributes:
        title: page title and heading.
        study_id: the trial's identifier.
        blinded: pool every subject and compare nothing (a blinded lake).
        methods: (topic, text) pairs printed in the methods section: the analysis plan.
        primary: (PARAMCD, AVISIT, AVAR) of the primary endpoint (None: none declared).
        primary_window: the primary visit's window in study days (CONSORT reasons).
        population_flag: the primary analysis population (ADSL flag).
        baseline_end: last study day of the baseline window (lab shifts).
        data_cut: the data-cut statement printed in the header.
        provenance: run_id, code_version, lake_version and input_checksums (name -> SHA-256);
            printed as given, so free of identifying data.
        waterfall_paramcd, waterfall_avar: the per-subject change of the waterfall (at the
            primary visit).
        plot_avar: the variable of the box/strip plots (default CHG).
        arm_variable, safety_arm_variable: ADSL planned (efficacy) and actual (safety) arms.
        spaghetti_max_subjects: subjects per arm drawn as lines in the spaghetti plots.
        dpi: resolution of the embedded PNGs.
    """

    title: str = "Endpoint report"
    study_id: str = ""
    blinded: bool = False
    methods: Sequence[tuple[str, str]] = ()
    primary: tuple[str, str, str] | None = ("LESPCT", "Day 28", "CHG")
    primary_window: tuple[int, int] = (21, 35)
    population_flag: str = "FASFL"
    baseline_end: int = 1
    data_cut: str = ""
    provenance: Mapping[str, object] = field(default_factory=dict)
    waterfall_paramcd: str = "LESPCT"
    waterfall_avar: str = "CHG"
    plot_avar: str = "CHG"
    arm_variable: str = "TRT01P"
    safety_arm_variable: str = "TRT01A"
    spaghetti_max_subjects: int = 100
    dpi: int = 80


def render_endpoint_report(inputs: ReportInputs, options: ReportOptions = ReportOptions()) -> str:
    """The endpoint report as one HTML string (UTF-8, self-contained); see the module docstring."""
    check_columns(inputs.endpoints, "endpoints", {name: None for name in ENDPOINT_SCHEMA})
    for name, frame in (("adct", inputs.adct), ("adft", inputs.adft)):
        check_columns(frame, name, _BDS_COLUMNS)
    provenance = _check_provenance(options.provenance)
    arms = (ALL_SUBJECTS,) if options.blinded else _arms(inputs.endpoints)
    efficacy_arm = None if options.blinded else options.arm_variable
    safety_arm = None if options.blinded else options.safety_arm_variable
    population = subject_groups(inputs.adsl, efficacy_arm, options.population_flag).filter(pl.col(GROUP).is_in(arms))
    primary_visit = options.primary[1] if options.primary else _last_visit(inputs.endpoints)
    marts = {name: _analysis_records(frame, population) for name, frame in (("CT imaging", inputs.adct), ("Function", inputs.adft))}
    extra = ["ABLFL", *(["PARAMN"] if {"PARAMN"} <= set(inputs.adct.columns) & set(inputs.adft.columns) else [])]
    efficacy = pl.concat([inputs.adct.select(*_BDS_COLUMNS, *extra), inputs.adft.select(*_BDS_COLUMNS, *extra)])
    randomized = subject_groups(inputs.adsl, efficacy_arm, "RANDFL").filter(pl.col(GROUP).is_in(arms))
    safety = subject_groups(inputs.adsl, safety_arm, "SAFFL").filter(pl.col(GROUP).is_in(arms))
    context = {
        "title": options.title,
        "study_id": options.study_id,
        "blinded": options.blinded,
        "arms": arms,
        "columns": [*arms, *([] if options.blinded else [TOTAL])],
        "colours": dict(zip(arms, ARM_COLOURS)),
        "data_cut": options.data_cut,
        "provenance": provenance,
        "methods": options.methods,
        "population_flag": options.population_flag,
        "population_counts": dict(population.group_by(GROUP).len().iter_rows()),
        "consort": build_consort(
            inputs.adsl, _primary_records(inputs, options), arm_variable=efficacy_arm, labels=arms,
            primary_visit=primary_visit, primary_window=options.primary_window, population_flag=options.population_flag,
        ),
        "baseline": build_baseline_characteristics(
            inputs.adsl, efficacy.filter(pl.col("ABLFL") == "Y"), randomized, labels=arms, total=not options.blinded,
        ),
        "results": _result_rows(inputs.endpoints, options),
        "conf_level": _percent(inputs.endpoints.get_column("conf_level").drop_nulls().mode().first() or 0.95),
        "notes": _result_notes(inputs.endpoints),
        "sensitivity": _sensitivity_rows(inputs.sensitivity),
        "forest": None if options.blinded else _forest(inputs.endpoints, options, primary_visit),
        "box_strip": [_box_strip(name, records, arms, options) for name, records in marts.items()],
        "waterfall": _waterfall(marts["CT imaging"], arms, primary_visit, options),
        "spaghetti": [_spaghetti(name, records, arms, options) for name, records in marts.items()],
        "ae_summary": _ae_summary(inputs.ae_incidence, arms, safety_arm),
        "ae_comparison": None if options.blinded or inputs.ae_comparison is None else _ae_comparison_rows(inputs.ae_comparison),
        "ae_terms": build_ae_term_rows(inputs.adae, inputs.adsl, arm_variable=safety_arm, labels=arms, condition=pl.lit(True)),
        "ae_serious": build_ae_term_rows(inputs.adae, inputs.adsl, arm_variable=safety_arm, labels=arms,
                                         condition=pl.col("AESER") == "Y"),
        "ae_fatal": build_ae_term_rows(inputs.adae, inputs.adsl, arm_variable=safety_arm, labels=arms,
                                       condition=pl.col("AEOUT") == "FATAL"),
        "deaths": _deaths(inputs.adsl, safety, arms),
        "lab_shifts": build_lab_shift_tables(inputs.adlb, safety, labels=arms, baseline_end=options.baseline_end),
        "grades": [str(g) for g in range(5)],
        "indicators": ["LOW", "NORMAL", "HIGH"],
    }
    return _template().render(**context)


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("trialake.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("endpoints.html.j2")


def _check_provenance(provenance: Mapping[str, object]) -> dict[str, object]:
    if not isinstance(provenance, Mapping):
        raise TypeError(f"provenance: expected a mapping, got {type(provenance).__name__}")
    missing = [key for key in ("run_id", "code_version", "input_checksums") if key not in provenance]
    if missing:
        raise ValueError(f"provenance: missing key(s) {missing}")
    if not isinstance(provenance["input_checksums"], Mapping):
        raise ValueError("provenance: input_checksums must map input names to SHA-256 checksums")
    return {"run_id": str(provenance["run_id"]), "code_version": str(provenance["code_version"]),
            "lake_version": str(provenance.get("lake_version", "")),
            "input_checksums": sorted((str(k), str(v)) for k, v in provenance["input_checksums"].items())}


def _arms(endpoints: pl.DataFrame) -> tuple[str, str]:
    pairs = endpoints.select("trt_arm", "ctl_arm").unique().rows()
    if len(pairs) != 1 or None in pairs[0]:
        raise ValueError(f"endpoints: expected one treatment/control pair, found {len(pairs)}: {pairs}")
    return pairs[0]


def _last_visit(endpoints: pl.DataFrame) -> str:
    return endpoints.sort("AVISITN", nulls_last=True).get_column("AVISIT").drop_nulls().last() or ""


def _primary_records(inputs: ReportInputs, options: ReportOptions) -> pl.DataFrame:
    paramcd = options.primary[0] if options.primary else options.waterfall_paramcd
    both = pl.concat([f.select("USUBJID", "PARAMCD", "ADY", "AVISIT", "AVAL", "ANL01FL") for f in (inputs.adct, inputs.adft)])
    return both.filter(pl.col("PARAMCD") == paramcd)


def _analysis_records(bds: pl.DataFrame, population: pl.DataFrame) -> pl.DataFrame:
    """ANL01FL records of the population, reduced to the columns the figures use (``arm`` = group)."""
    return (
        bds.filter(pl.col("ANL01FL") == "Y")
        .select(*_BDS_COLUMNS)
        .join(population.rename({GROUP: "arm"}), on="USUBJID", how="inner")
    )


def change_label(avar: str, unit: str | None) -> str:
    """What an analysed change is, unambiguously: absolute change in its unit (percentage points
    for a percentage), or relative change in % of the baseline value."""
    if avar == "PCHG":
        return "relative change from baseline (% of the baseline value)"
    return f"change from baseline ({unit})" if unit else "change from baseline"


def _result_rows(endpoints: pl.DataFrame, options: ReportOptions) -> list[dict]:
    """The endpoint rows in reading order: primary, the hierarchy, the other comparisons, the
    descriptive parameters; rows without any subject are left out."""
    n_columns = ["n_all"] if options.blinded else ["n_trt", "n_ctl"]
    shown = endpoints.filter(pl.sum_horizontal([pl.col(c).fill_null(0) for c in n_columns]) > 0).with_columns(
        _group=pl.when(pl.col("primary") == "Y").then(0).when(pl.col("hierarchy_rank").is_not_null()).then(1)
        .when(pl.col("method").str.starts_with("descriptive")).then(3).otherwise(2)
    ).sort("_group", "hierarchy_rank", "PARAMN", "PARAMCD", "AVISITN", "AVAR", nulls_last=True)
    rows = []
    for row in shown.iter_rows(named=True):
        rows.append({
            "primary": row["primary"] == "Y",
            "parameter": row["PARAM"] or row["PARAMCD"],
            "visit": row["AVISIT"],
            "outcome": change_label(row["AVAR"], row["unit"]),
            "population": row["population"],
            "trt": _median_iqr(row, "trt"), "n_trt": row["n_trt"],
            "ctl": _median_iqr(row, "ctl"), "n_ctl": row["n_ctl"],
            "all": _median_iqr(row, "all"), "n_all": row["n_all"],
            "difference": _difference(row),
            "p": format_p(row["p_value"]),
            "rank": row["hierarchy_rank"],
            "decision": row["hierarchy_decision"] or "",
            "descriptive": (row["method"] or "").startswith("descriptive"),
        })
    return rows


def _result_notes(endpoints: pl.DataFrame) -> list[str]:
    methods = sorted(set(endpoints.get_column("method").drop_nulls()))
    missing = sorted(set(endpoints.get_column("missing_data").drop_nulls()))
    return [*methods, *(f"Missing data: {m}" for m in missing)]


def _median_iqr(row: Mapping[str, object], arm: str) -> str:
    if row[f"median_{arm}"] is None:
        return "–"
    return f"{format_number(row[f'median_{arm}'])} ({format_number(row[f'q1_{arm}'])} to {format_number(row[f'q3_{arm}'])})"


def _difference(row: Mapping[str, object]) -> str:
    if row["estimate"] is None:
        return "–"
    return f"{format_number(row['estimate'])} ({format_number(row['ci_low'])} to {format_number(row['ci_high'])})"


def _sensitivity_rows(sensitivity: pl.DataFrame | None) -> list[dict]:
    if sensitivity is None or sensitivity.is_empty():
        return []
    return [
        {"parameter": r["PARAM"] or r["PARAMCD"], "visit": r["AVISIT"], "outcome": change_label(r["AVAR"], None),
         "better": r["better"], "population": r["population"],
         "trt": f"{r['n_trt']} ({r['n_observed_trt']} observed, {r['n_died_trt']} died, {r['n_missing_trt']} missing)",
         "ctl": f"{r['n_ctl']} ({r['n_observed_ctl']} observed, {r['n_died_ctl']} died, {r['n_missing_ctl']} missing)",
         "p": format_p(r["p_value"]), "method": r["method"]}
        for r in sensitivity.iter_rows(named=True)
    ]


def _forest(endpoints: pl.DataFrame, options: ReportOptions, visit: str) -> str | None:
    """The comparisons at the primary visit: the tested ones, then per other parameter its
    absolute change."""
    tested = pl.col("hierarchy_rank").is_not_null() | (pl.col("primary") == "Y")
    untested_params = endpoints.filter(tested).get_column("PARAMCD").to_list()
    chosen = tested | ((pl.col("AVISIT") == visit) & (pl.col("AVAR") == "CHG") & ~pl.col("PARAMCD").is_in(untested_params))
    compared = endpoints.filter(chosen & pl.col("estimate").is_not_null()).with_columns(
        _order=pl.when(pl.col("primary") == "Y").then(0).when(pl.col("hierarchy_rank").is_not_null()).then(1).otherwise(2)
    ).sort("_order", "hierarchy_rank", "PARAMN", "AVISITN", "AVAR", nulls_last=True)
    if compared.is_empty():
        return None
    rows = [
        {"label": f"{'PRIMARY: ' if r['primary'] == 'Y' else ''}{r['PARAM']}, {r['AVISIT']}, {change_label(r['AVAR'], r['unit'])}",
         "unit": r["unit"], "estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
         "primary": r["primary"] == "Y"}
        for r in compared.iter_rows(named=True)
    ]
    return _img(render_forest_png(rows, dpi=options.dpi))


def _box_strip(name: str, records: pl.DataFrame, arms: Sequence[str], options: ReportOptions) -> dict:
    post = records.filter(pl.col("AVISITN") > 0, pl.col(options.plot_avar).is_not_null())
    if post.is_empty():
        return {"name": name, "image": None}
    visits = post.select("AVISIT", "AVISITN").unique().sort("AVISITN")["AVISIT"].to_list()
    png = render_box_strip_png(post, arms=arms, visits=visits, variable=options.plot_avar, dpi=options.dpi)
    return {"name": name, "image": _img(png)}


def _waterfall(records: pl.DataFrame, arms: Sequence[str], visit: str, options: ReportOptions) -> dict:
    chosen = records.filter((pl.col("PARAMCD") == options.waterfall_paramcd) & (pl.col("AVISIT") == visit))
    caption = f"{options.waterfall_paramcd} {options.waterfall_avar} at {visit}, one bar per subject"
    if chosen.get_column(options.waterfall_avar).drop_nulls().is_empty():
        return {"caption": caption, "image": None}
    param = chosen.get_column("PARAM").first() or options.waterfall_paramcd
    title = f"{param}: {change_label(options.waterfall_avar, 'percentage points' if '%' in param else None)} at {visit}"
    png = render_waterfall_png(chosen, arms=arms, variable=options.waterfall_avar, title=title, dpi=options.dpi)
    return {"caption": caption, "image": _img(png)}


def _spaghetti(name: str, records: pl.DataFrame, arms: Sequence[str], options: ReportOptions) -> dict:
    values = records.filter(pl.col("AVAL").is_not_null() & pl.col("AVISITN").is_not_null())
    if values.is_empty():
        return {"name": name, "image": None, "sampled": []}
    png = render_spaghetti_png(values, arms=arms, max_lines=options.spaghetti_max_subjects, dpi=options.dpi)
    per_arm = dict(values.group_by("arm").agg(pl.col("USUBJID").n_unique()).iter_rows())
    sampled = [arm for arm in arms if per_arm.get(arm, 0) > options.spaghetti_max_subjects]
    return {"name": name, "image": _img(png), "sampled": sampled, "max": options.spaghetti_max_subjects}


def _ae_summary(incidence: pl.DataFrame, arms: Sequence[str], arm_variable: str | None) -> list[Row]:
    column = arm_variable if arm_variable in incidence.columns else None
    rows = []
    for (category,), part in incidence.group_by("category", maintain_order=True):
        if column is None:
            cells = {arms[0]: _n_of_n(part["n"][0], part["n_safety"][0])}
        else:
            cells = {arm: _n_of_n(n, total) for arm, n, total in part.select(column, "n", "n_safety").iter_rows()}
        rows.append(Row(category, cells))
    return rows


def _ae_comparison_rows(comparison: pl.DataFrame) -> list[dict]:
    return [
        {"category": r["category"],
         "difference": "–" if r["estimate"] is None else (
             f"{format_number(100 * r['estimate'], 1)} ({format_number(100 * r['ci_low'], 1)} to "
             f"{format_number(100 * r['ci_high'], 1)})"),
         "p": format_p(r["p_value"]), "method": r["method"]}
        for r in comparison.iter_rows(named=True)
    ]


def _deaths(adsl: pl.DataFrame, safety: pl.DataFrame, arms: Sequence[str]) -> Row:
    died = safety.join(adsl.filter(pl.col("DTHFL") == "Y").select("USUBJID"), on="USUBJID", how="semi")
    sizes = dict(safety.group_by(GROUP).len().iter_rows())
    counts = dict(died.group_by(GROUP).len().iter_rows())
    return Row("Deaths (safety set)", {arm: _n_of_n(counts.get(arm, 0), sizes.get(arm, 0)) for arm in arms})


def _n_of_n(n: int, total: int) -> str:
    return f"{n}/{total} ({format_number(100 * n / total, 1)}%)" if total else f"{n}/{total}"


def format_number(value: float | None, digits: int = 2) -> str:
    """Fixed decimals; an en dash for a missing or non-finite value."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def format_p(value: float | None) -> str:
    """P as a journal prints it: three decimals, ``<0.001`` below that."""
    if value is None or not math.isfinite(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _percent(level: float) -> str:
    return f"{100 * level:.4g}%"


def _img(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
