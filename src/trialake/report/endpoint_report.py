"""The endpoint report: one self-contained HTML page for the DSMB and the trial statistician.

Sections: the results table laid out like a journal's (median (IQR) and n per arm, difference
with its CI, P), box/strip plots per arm, a waterfall of each subject's change in the chosen
parameter, spaghetti plots over visits, the adverse-event table, and a provenance footer. The
figures are PNGs embedded as base64, so the file needs nothing else to open.

No identifier reaches the page: the inputs are reduced to the columns the report shows
(parameters, visits, arms, numbers, coded AE terms), and subjects appear only as anonymous
points, bars and lines.
"""
from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from trialake.marts.checks import check_columns
from trialake.marts.endpoints import AE_COMPARISON_SCHEMA, ENDPOINT_SCHEMA, derive_population
from trialake.report.plots import ARM_COLOURS, render_box_strip_png, render_spaghetti_png, render_waterfall_png

AVAR_LABELS = {"CHG": "change from baseline", "PCHG": "% change from baseline"}
_BDS_COLUMNS = {"USUBJID": "text", "PARAMCD": "text", "PARAM": "text", "AVISIT": "text", "AVISITN": "number",
                "ANL01FL": "text", "AVAL": "number", "CHG": "number", "PCHG": "number"}


@dataclass(frozen=True)
class ReportOptions:
    """What the report shows. Defaults are the reference trial's primary endpoint.

    Attributes:
        title: page title and heading.
        waterfall_paramcd, waterfall_visit, waterfall_avar: the per-subject change shown in the
            waterfall (default LESPCT, "Day 28", CHG: change in lesion percentage at day 28).
        plot_avar: the variable of the box/strip plots (default CHG).
        arm_variable, population_flag: ADSL arm and population of the plotted subjects; use the
            ones ``derive_endpoints`` used (default TRT01P, FASFL).
        spaghetti_max_subjects: subjects per arm drawn as lines in the spaghetti plots
            (default 100, a fixed-seed sample beyond that; medians always use everyone).
        dpi: resolution of the embedded PNGs (default 80: readable, small file).
    """

    title: str = "Endpoint report"
    waterfall_paramcd: str = "LESPCT"
    waterfall_visit: str = "Day 28"
    waterfall_avar: str = "CHG"
    plot_avar: str = "CHG"
    arm_variable: str = "TRT01P"
    population_flag: str = "FASFL"
    spaghetti_max_subjects: int = 100
    dpi: int = 80


def render_endpoint_report(
    endpoints: pl.DataFrame,
    adsl: pl.DataFrame,
    adct: pl.DataFrame,
    adft: pl.DataFrame,
    adae_summary: pl.DataFrame,
    provenance: Mapping[str, object],
    *,
    options: ReportOptions = ReportOptions(),
) -> str:
    """The endpoint report as one HTML string (UTF-8, self-contained).

    ``endpoints`` is gold/endpoints (one treatment/control pair), ``adae_summary`` the output of
    :func:`trialake.marts.endpoints.derive_ae_comparison`, ``provenance`` a mapping with
    ``run_id`` (str), ``code_version`` (str) and ``input_checksums`` (mapping of input name to
    SHA-256); its values are printed as given, so they must be free of identifying data.
    """
    check_columns(endpoints, "endpoints", {name: None for name in ENDPOINT_SCHEMA})
    check_columns(adae_summary, "adae_summary", {name: None for name in AE_COMPARISON_SCHEMA})
    for name, frame in (("adct", adct), ("adft", adft)):
        check_columns(frame, name, _BDS_COLUMNS)
    run_id, code_version, checksums = _check_provenance(provenance)
    arms = _arms(endpoints)
    population = derive_population(
        adsl, treatment_arm=arms[0], control_arm=arms[1], arm_variable=options.arm_variable,
        population_flag=options.population_flag,
    )
    visits = endpoints.select("AVISIT", "AVISITN").unique().sort("AVISITN", nulls_last=True)["AVISIT"].to_list()
    marts = {name: _analysis_records(frame, population) for name, frame in (("CT imaging (adct)", adct), ("Function (adft)", adft))}
    body = [
        f"<h1>{_e(options.title)}</h1>",
        _population_line(population, arms),
        "<h2>Results</h2>",
        _results_table(endpoints, arms),
        "<h2>Distribution by arm</h2>",
        *[_figure_section(name, records, arms, visits, options) for name, records in marts.items()],
        "<h2>Individual change</h2>",
        _waterfall_section(marts["CT imaging (adct)"], arms, options),
        "<h2>Course over visits</h2>",
        *[_spaghetti_section(name, records, arms, options) for name, records in marts.items()],
        "<h2>Adverse events</h2>",
        _ae_table(adae_summary, arms),
        _footer(run_id, code_version, checksums),
    ]
    return _page(options.title, "\n".join(body))


def _check_provenance(provenance: Mapping[str, object]) -> tuple[str, str, Mapping[str, str]]:
    if not isinstance(provenance, Mapping):
        raise TypeError(f"provenance: expected a mapping, got {type(provenance).__name__}")
    missing = [key for key in ("run_id", "code_version", "input_checksums") if key not in provenance]
    if missing:
        raise ValueError(f"provenance: missing key(s) {missing}")
    checksums = provenance["input_checksums"]
    if not isinstance(checksums, Mapping):
        raise ValueError("provenance: input_checksums must map input names to SHA-256 checksums")
    return str(provenance["run_id"]), str(provenance["code_version"]), checksums


def _arms(endpoints: pl.DataFrame) -> tuple[str, str]:
    pairs = endpoints.select("trt_arm", "ctl_arm").unique().rows()
    if len(pairs) != 1:
        raise ValueError(f"endpoints: expected one treatment/control pair, found {len(pairs)}: {pairs}")
    return pairs[0]


def _analysis_records(bds: pl.DataFrame, population: pl.DataFrame) -> pl.DataFrame:
    """ANL01FL records of the population, reduced to the columns the figures use."""
    return (
        bds.filter(pl.col("ANL01FL") == "Y")
        .select(*_BDS_COLUMNS)
        .join(population, on="USUBJID", how="inner")
    )


def _population_line(population: pl.DataFrame, arms: tuple[str, str]) -> str:
    counts = dict(population.group_by("arm").len().iter_rows())
    parts = [f"{_swatch(colour)}{_e(arm)}: N = {counts.get(arm, 0)}" for arm, colour in zip(arms, ARM_COLOURS)]
    return f"<p class='population'>Analysis population: {'; '.join(parts)}.</p>"


def _results_table(endpoints: pl.DataFrame, arms: tuple[str, str]) -> str:
    level = _percent(endpoints.get_column("conf_level").drop_nulls().mode().first() or 0.95)
    head = (
        "<tr><th>Parameter</th><th>Visit</th><th>Outcome</th>"
        f"<th>{_e(arms[0])}<br>median (IQR)</th><th>n</th>"
        f"<th>{_e(arms[1])}<br>median (IQR)</th><th>n</th>"
        f"<th>Difference<br>({level} CI)</th><th>P</th></tr>"
    )
    rows, previous = [], (None, None)
    for row in endpoints.iter_rows(named=True):
        param, visit = row["PARAM"] or row["PARAMCD"], row["AVISIT"]
        # journal layout: a parameter (and a visit) is named once, on the first row of its block
        shown_param = _e(param) if param != previous[0] else ""
        shown_visit = _e(visit) if (param, visit) != previous else ""
        previous = (param, visit)
        rows.append(
            f"<tr{' class=block' if shown_param else ''}>"
            f"<td>{shown_param}</td><td>{shown_visit}</td>"
            f"<td>{_e(AVAR_LABELS.get(row['AVAR'], row['AVAR']))}</td>"
            f"<td>{_median_iqr(row, 'trt')}</td><td>{row['n_trt']}</td>"
            f"<td>{_median_iqr(row, 'ctl')}</td><td>{row['n_ctl']}</td>"
            f"<td>{_difference(row, level)}</td><td>{format_p(row['p_value'])}</td>"
            "</tr>"
        )
    methods = sorted(set(endpoints.get_column("method").drop_nulls()))
    missing = sorted(set(endpoints.get_column("missing_data").drop_nulls()))
    notes = "".join(f"<li>{_e(text)}</li>" for text in methods + [f"Missing data: {m}" for m in missing])
    return (
        f"<table class='results'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
        f"<p class='note'>Difference: {_e(arms[0])} minus {_e(arms[1])}. Methods:</p><ul class='note'>{notes}</ul>"
    )


def _median_iqr(row: Mapping[str, object], arm: str) -> str:
    if row[f"median_{arm}"] is None:
        return "&ndash;"
    return f"{format_number(row[f'median_{arm}'])} ({format_number(row[f'q1_{arm}'])} to {format_number(row[f'q3_{arm}'])})"


def _difference(row: Mapping[str, object], level: str) -> str:
    if row["estimate"] is None:
        return "&ndash;"
    text = f"{format_number(row['estimate'])} ({format_number(row['ci_low'])} to {format_number(row['ci_high'])})"
    row_level = _percent(row["conf_level"])
    return text if row_level == level else f"{text} [{row_level} CI]"


def _figure_section(
    name: str, records: pl.DataFrame, arms: tuple[str, str], visits: list[str], options: ReportOptions
) -> str:
    post = records.filter(pl.col("AVISIT").is_in(visits) & pl.col(options.plot_avar).is_not_null())
    if post.is_empty():
        return f"<h3>{_e(name)}</h3><p>No post-baseline analysis records.</p>"
    shown = [v for v in visits if v in set(post.get_column("AVISIT"))]
    png = render_box_strip_png(post, arms=arms, visits=shown, variable=options.plot_avar, dpi=options.dpi)
    return f"<h3>{_e(name)}: {_e(options.plot_avar)} by arm</h3>{_img(png, f'{name}: box and strip plots by arm')}"


def _waterfall_section(records: pl.DataFrame, arms: tuple[str, str], options: ReportOptions) -> str:
    chosen = records.filter(
        (pl.col("PARAMCD") == options.waterfall_paramcd) & (pl.col("AVISIT") == options.waterfall_visit)
    )
    caption = f"{options.waterfall_paramcd} {options.waterfall_avar} at {options.waterfall_visit}, one bar per subject"
    if chosen.get_column(options.waterfall_avar).drop_nulls().is_empty():
        return f"<p>No {_e(caption)}.</p>"
    param = chosen.get_column("PARAM").first() or options.waterfall_paramcd
    title = f"{param}: {AVAR_LABELS.get(options.waterfall_avar, options.waterfall_avar)} at {options.waterfall_visit}"
    png = render_waterfall_png(chosen, arms=arms, variable=options.waterfall_avar, title=title, dpi=options.dpi)
    return _img(png, caption)


def _spaghetti_section(name: str, records: pl.DataFrame, arms: tuple[str, str], options: ReportOptions) -> str:
    values = records.filter(pl.col("AVAL").is_not_null() & pl.col("AVISITN").is_not_null())
    if values.is_empty():
        return f"<h3>{_e(name)}</h3><p>No analysis records.</p>"
    png = render_spaghetti_png(values, arms=arms, max_lines=options.spaghetti_max_subjects, dpi=options.dpi)
    per_arm = dict(values.group_by("arm").agg(pl.col("USUBJID").n_unique()).iter_rows())
    sampled = [arm for arm in arms if per_arm.get(arm, 0) > options.spaghetti_max_subjects]
    note = (f"<p class='note'>Lines for a random {options.spaghetti_max_subjects} subjects of "
            f"{', '.join(map(_e, sampled))}; medians from all subjects.</p>") if sampled else ""
    return f"<h3>{_e(name)}: AVAL per subject over visits</h3>{_img(png, f'{name}: values over visits by arm')}{note}"


def _ae_table(summary: pl.DataFrame, arms: tuple[str, str]) -> str:
    if summary.is_empty():
        return "<p>No adverse-event summary.</p>"
    level = _percent(summary.get_column("conf_level").drop_nulls().mode().first() or 0.95)
    head = (
        f"<tr><th>Subjects with</th><th>{_e(arms[0])}<br>n/N (%)</th><th>{_e(arms[1])}<br>n/N (%)</th>"
        f"<th>Difference, % points<br>({level} CI)</th><th>P (Fisher)</th></tr>"
    )
    rows = []
    for row in summary.iter_rows(named=True):
        difference = "&ndash;" if row["estimate"] is None else (
            f"{format_number(100 * row['estimate'], 1)} "
            f"({format_number(100 * row['ci_low'], 1)} to {format_number(100 * row['ci_high'], 1)})"
        )
        rows.append(
            f"<tr><td>{_e(row['category'])}</td>"
            f"<td>{_incidence(row['events_trt'], row['n_trt'])}</td><td>{_incidence(row['events_ctl'], row['n_ctl'])}</td>"
            f"<td>{difference}</td><td>{format_p(row['p_value'])}</td></tr>"
        )
    methods = "; ".join(sorted(set(summary.get_column("method").drop_nulls())))
    return (
        f"<table class='results'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
        f"<p class='note'>Treatment-emergent adverse events, subjects counted once per row. {_e(methods)}.</p>"
    )


def _incidence(events: int, n: int) -> str:
    return f"{events}/{n} ({format_number(100 * events / n, 1)}%)" if n else f"{events}/{n}"


def _footer(run_id: str, code_version: str, checksums: Mapping[str, str]) -> str:
    rows = "".join(f"<tr><td>{_e(name)}</td><td><code>{_e(value)}</code></td></tr>" for name, value in sorted(checksums.items()))
    return (
        "<footer><h2>Provenance</h2>"
        f"<p>Run id: <code>{_e(run_id)}</code>. Code version: <code>{_e(code_version)}</code>.</p>"
        f"<table class='provenance'><thead><tr><th>Input</th><th>SHA-256</th></tr></thead><tbody>{rows}</tbody></table>"
        "</footer>"
    )


def format_number(value: float | None, digits: int = 2) -> str:
    """Fixed decimals; an en dash for a missing or non-finite value."""
    if value is None or not math.isfinite(value):
        return "&ndash;"
    return f"{value:.{digits}f}"


def format_p(value: float | None) -> str:
    """P as a journal prints it: three decimals, ``<0.001`` below that."""
    if value is None or not math.isfinite(value):
        return "&ndash;"
    return "&lt;0.001" if value < 0.001 else f"{value:.3f}"


def _percent(level: float) -> str:
    return f"{100 * level:.4g}%"


def _swatch(colour: str) -> str:
    return f"<span class='swatch' style='background:{colour}'></span>"


def _img(png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f"<figure><img alt='{_e(alt)}' src='data:image/png;base64,{encoded}'></figure>"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


_CSS = """
body{font-family:Georgia,'Times New Roman',serif;max-width:1100px;margin:2em auto;color:#111}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #999;margin-top:2em}h3{font-size:1em}
table.results{border-collapse:collapse;font-size:0.85em;width:100%}
table.results th{border-top:2px solid #000;border-bottom:1px solid #000;text-align:left;padding:4px 6px}
table.results td{padding:3px 6px;border-bottom:1px solid #ddd}
table.results tbody tr:last-child td{border-bottom:2px solid #000}
table.results tr.block td{border-top:1px solid #888}
.note{font-size:0.8em;color:#333}
.swatch{display:inline-block;width:0.8em;height:0.8em;margin-right:0.3em}
figure{margin:1em 0}img{max-width:100%}
footer{font-size:0.8em;color:#333}table.provenance td{padding:1px 8px}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
