"""The endpoint report's figures as PNG bytes (matplotlib's object API on the Agg canvas).

No figure carries a subject identifier: subjects are drawn, never labelled. Every function takes
analysis records with the columns ``arm``, ``PARAMCD``, ``PARAM``, ``AVISIT``, ``AVISITN`` and
the plotted variable, already restricted to the analysis population.
"""
from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from trialake.marts.endpoints import parameter_labels

ARM_COLOURS = ("#1b6ca8", "#d1495b")
"""Treatment, control (colour-blind safe pair)."""
_PANEL = (3.2, 2.6)


def render_box_strip_png(
    records: pl.DataFrame, *, arms: Sequence[str], visits: Sequence[str], variable: str, dpi: int
) -> bytes:
    """Box plot with the individual values (jittered strip) per arm; a panel per PARAMCD x visit."""
    params = parameter_labels(records)
    figure = Figure(figsize=(_PANEL[0] * len(visits), _PANEL[1] * len(params)), dpi=dpi, layout="constrained")
    axes = figure.subplots(len(params), len(visits), squeeze=False, sharey="row")  # one scale per parameter
    jitter = np.random.default_rng(0)
    for row, (paramcd, param) in enumerate(params):
        for column, visit in enumerate(visits):
            ax = axes[row][column]
            panel = records.filter((pl.col("PARAMCD") == paramcd) & (pl.col("AVISIT") == visit))
            samples = [_finite(panel.filter(pl.col("arm") == arm), variable) for arm in arms]
            present = [position for position, sample in enumerate(samples, start=1) if sample.size]
            if present:
                ax.boxplot([samples[p - 1] for p in present], positions=present, widths=0.5, showfliers=False,
                           medianprops={"color": "black"}, manage_ticks=False)
            for position, (sample, colour) in enumerate(zip(samples, ARM_COLOURS), start=1):
                ax.scatter(position + jitter.uniform(-0.12, 0.12, sample.size), sample, s=9, alpha=0.6, color=colour)
            ax.axhline(0, color="grey", linewidth=0.6, linestyle=":")
            ax.set_xticks(range(1, len(arms) + 1), list(arms))
            ax.set_xlim(0.4, len(arms) + 0.6)
            ax.set_title(f"{wrap_title(param)}\n{visit}", fontsize=8)
            ax.set_ylabel(variable, fontsize=8)
            ax.tick_params(labelsize=7)
    return _png(figure)


def render_waterfall_png(
    records: pl.DataFrame, *, arms: Sequence[str], variable: str, title: str, dpi: int
) -> bytes:
    """One bar per subject, sorted from the largest increase to the largest decrease, coloured by arm."""
    ordered = records.filter(pl.col(variable).is_not_null() & pl.col(variable).is_finite()).sort(variable, descending=True, maintain_order=True)
    figure = Figure(figsize=(8, 3.2), dpi=dpi, layout="constrained")
    ax = figure.subplots()
    values = ordered.get_column(variable).to_numpy()
    colours = ordered.get_column("arm").replace_strict(dict(zip(arms, ARM_COLOURS)), default="grey").to_list()
    left = np.arange(values.size) - 0.425
    bars = np.stack(  # one rectangle per subject, drawn as one collection (fast for thousands of subjects)
        [np.c_[left, np.zeros_like(values)], np.c_[left, values], np.c_[left + 0.85, values], np.c_[left + 0.85, np.zeros_like(values)]],
        axis=1,
    )
    ax.add_collection(PolyCollection(bars, facecolors=colours, edgecolors="none"))
    ax.set_xlim(-1, max(values.size, 1))
    ax.set_ylim(*_padded(values))
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks([])
    ax.set_xlabel("subjects, sorted")
    ax.set_ylabel(variable)
    ax.set_title(wrap_title(title, 90), fontsize=9)
    ax.legend(handles=[Patch(color=c, label=a) for a, c in zip(arms, ARM_COLOURS)], fontsize=8, frameon=False)
    return _png(figure)


def render_spaghetti_png(records: pl.DataFrame, *, arms: Sequence[str], max_lines: int, dpi: int) -> bytes:
    """AVAL over AVISITN, a thin line per subject and the median per arm in bold; a panel per PARAMCD.

    At most ``max_lines`` subjects per arm are drawn as lines (a fixed-seed random sample, so
    the picture stays readable and fast for large trials); the medians use every subject.
    """
    params = parameter_labels(records)
    drawn = pl.concat(
        [
            records.filter(pl.col("arm") == arm).select("USUBJID").unique().sort("USUBJID")
            .pipe(lambda ids: ids.sample(min(max_lines, ids.height), seed=0))
            for arm in arms
        ]
    )
    columns = min(3, max(1, len(params)))
    rows = -(-len(params) // columns)
    figure = Figure(figsize=(_PANEL[0] * columns, _PANEL[1] * rows), dpi=dpi, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (paramcd, param) in zip(axes, params):
        panel = records.filter(pl.col("PARAMCD") == paramcd)
        for arm, colour in zip(arms, ARM_COLOURS):
            subjects = panel.filter(pl.col("arm") == arm)
            lines = subjects.join(drawn, on="USUBJID", how="semi").sort("USUBJID", "AVISITN")
            starts = np.flatnonzero(lines.get_column("USUBJID").is_first_distinct().to_numpy())
            ax.add_collection(
                LineCollection(np.split(lines.select("AVISITN", "AVAL").to_numpy(), starts[1:]), colors=colour,
                               alpha=0.2, linewidths=0.6)
            )
            medians = subjects.group_by("AVISITN").agg(pl.col("AVAL").median()).sort("AVISITN")
            ax.plot(medians["AVISITN"], medians["AVAL"], color=colour, linewidth=2.5, marker="o", zorder=3,
                    label=f"{arm} median")
        ax.autoscale_view()
        visits = panel.group_by("AVISITN").agg(pl.col("AVISIT").first()).sort("AVISITN")
        ax.set_xticks(visits["AVISITN"].to_list(), visits["AVISIT"].to_list())
        ax.set_title(wrap_title(param), fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, frameon=False)
    for ax in axes[len(params):]:
        ax.set_axis_off()
    return _png(figure)


def render_forest_png(rows: Sequence[dict], *, dpi: int) -> bytes:
    """One line per comparison: the estimate and its CI against a line at no difference. Each
    line has its own scale (the parameters have different units), centred on no difference so
    that the side of zero the interval lies on reads alike on every line; labelled on the left
    with the parameter, visit, analysed change and its unit; the primary endpoint's label is bold.

    ``rows``: dicts with label, unit, estimate, ci_low, ci_high, primary (bool)."""
    height = 0.55 * max(len(rows), 1) + 0.6
    figure = Figure(figsize=(8.5, height), dpi=dpi, layout="constrained")
    axes = figure.subplots(max(len(rows), 1), 1, squeeze=False).ravel()
    for ax, row in zip(axes, rows):
        reach = 1.1 * (max(abs(row["ci_low"]), abs(row["ci_high"])) or 1.0)
        ax.set_xlim(-reach, reach)
        ax.axvline(0, color="grey", linewidth=0.8, linestyle=":")
        ax.errorbar([row["estimate"]], [0], xerr=[[row["estimate"] - row["ci_low"]], [row["ci_high"] - row["estimate"]]],
                    fmt="s", color=ARM_COLOURS[0], markersize=5, capsize=3)
        ax.set_yticks([0], [textwrap.fill(row["label"], 48)], fontsize=7,
                       fontweight="bold" if row.get("primary") else "normal")
        ax.set_xlabel(row["unit"] or "", fontsize=7, labelpad=1)
        ax.tick_params(axis="x", labelsize=7)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    return _png(figure)


def wrap_title(text: str, width: int = 40) -> str:
    """A panel title on as many lines as it needs (never cut)."""
    return textwrap.fill(text, width)


def _padded(values: np.ndarray) -> tuple[float, float]:
    """y limits that include 0 and every value, with a 5% margin."""
    low, high = min(0.0, float(values.min(initial=0.0))), max(0.0, float(values.max(initial=0.0)))
    margin = 0.05 * (high - low or 1.0)
    return low - margin, high + margin


def _finite(frame: pl.DataFrame, variable: str) -> np.ndarray:
    values = frame.get_column(variable).drop_nulls().cast(pl.Float64).to_numpy()
    return values[np.isfinite(values)]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer, metadata={"Software": None})
    return buffer.getvalue()
