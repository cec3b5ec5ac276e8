"""Summaries people read: the data-quality Markdown for a stage's Prefect artifact, and the nightly
data-manager summary (what arrived, what was rejected and why, what failed data quality, which CT
series cannot be measured) as HTML for reports/ and Markdown for Prefect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import polars as pl

from trialake.pages import render_page
from trialake.quality.gx import ValidationOutcome


@dataclass(frozen=True)
class IntakeCounts:
    """New landing files of one area (``dicom``, ``clinical`` ...) seen by this run, and those
    already in the lake (ingested or rejected by an earlier run)."""

    area: str
    files_new: int
    files_accepted: int
    files_rejected: int
    files_known: int = 0


@dataclass(frozen=True)
class NightlySummary:
    """The same summary twice: a standalone HTML page and Markdown for a Prefect artifact."""

    html: str
    markdown: str


@dataclass(frozen=True)
class _Section:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: str


def render_nightly_summary(
    *,
    run_id: str,
    intake: Sequence[IntakeCounts],
    rejections: pl.DataFrame,
    outcomes: Sequence[ValidationOutcome],
    ct_series: pl.DataFrame,
    ct_volumetry: pl.DataFrame,
    links: Mapping[str, str] = MappingProxyType({}),
    versions: Mapping[str, Sequence[int]] = MappingProxyType({}),
    status: str = "",
    held_back: Sequence[tuple[str, str, str]] = (),
    failures: Sequence[tuple[str, str]] = (),
    not_sent: Sequence[str] = (),
    rederived: Sequence[tuple[str, str]] = (),
    link_base: str = "",
) -> NightlySummary:
    """Summarise one nightly run for the data manager.

    rejections: ``silver/rejections`` (only rows with this ``run_id`` are counted);
    outcomes: this run's validation outcomes; ct_series / ct_volumetry: the current silver tables
    (every series not measurable is listed, whichever run found it); links: label -> relative URL
    (data docs, QC pictures, endpoint report ...); status: the run's one-line status;
    held_back: (table, why, what its readers do meanwhile) of tables not published; failures: (stage, message) of stages that failed; not_sent: Expected SDTM variables
    no export sent (``DM.RFICDTC``); versions: {table: versions this run committed}; rederived:
    (derived tables, why) of derived stages this run derived again; link_base: prefix that makes
    the links absolute in the Markdown (a Prefect artifact is read away from the reports folder;
    the HTML page keeps them relative, beside it).
    """
    sections = (
        _held_back_section(held_back),
        _failure_section(failures),
        _intake_section(intake),
        _rejection_section(rejections, run_id),
        _status_section(outcomes),
        _dq_section(outcomes),
        _not_checked_section(outcomes, not_sent),
        _unmeasurable_section(ct_series, ct_volumetry),
        _rederived_section(rederived),
        _versions_section(versions),
    )
    title = f"Trialake nightly summary, run {run_id}"
    absolute = {label: link_base + url for label, url in links.items()}
    return NightlySummary(html=_to_html(title, sections, links, status), markdown=_to_markdown(title, sections, absolute, status))


def render_dq_summary_markdown(outcomes: Sequence[ValidationOutcome]) -> str:
    """Markdown for a Prefect artifact: per-table publish status, then every failed expectation."""
    run_ids = sorted({o.run_id for o in outcomes})
    return _to_markdown(f"Data quality, run {', '.join(run_ids)}", (_status_section(outcomes), _dq_section(outcomes)), {})


def _status_section(outcomes: Sequence[ValidationOutcome]) -> _Section:
    rows = tuple(
        (
            o.name,
            "published" if o.should_publish else "NOT published",
            ", ".join(o.failed_errors) or "-",
            ", ".join(o.failed_warnings) or "-",
            str(len(o.quarantined)),
        )
        for o in outcomes
    )
    header = ("table", "status", "failed errors", "failed warnings", "rows quarantined")
    return _Section("Tables", header, rows, "No table validated.")


def _held_back_section(held_back: Sequence[tuple[str, str, str]]) -> _Section:
    return _Section("Held back this run", ("table", "why", "meanwhile"), tuple(held_back), "Nothing held back.")


def _rederived_section(rederived: Sequence[tuple[str, str]]) -> _Section:
    return _Section("Derived again", ("tables", "because"), tuple(rederived), "No derived table needed deriving again.")


def _failure_section(failures: Sequence[tuple[str, str]]) -> _Section:
    return _Section("Stages failed", ("stage", "error"), tuple(failures), "No stage failed.")


def _not_checked_section(outcomes: Sequence[ValidationOutcome], not_sent: Sequence[str]) -> _Section:
    rows = tuple((o.name, name, why) for o in outcomes for name, why in o.not_checked)
    rows += tuple((variable.split(".")[0], "-", f"Expected SDTM variable {variable.split('.')[1]} not sent by any export")
                  for variable in not_sent)
    return _Section("Checks not run (warnings)", ("table or domain", "expectation", "why"), rows, "Every check ran.")


def _intake_section(intake: Sequence[IntakeCounts]) -> _Section:
    rows = tuple((i.area, str(i.files_new), str(i.files_accepted), str(i.files_rejected), str(i.files_known)) for i in intake)
    return _Section("New files", ("area", "new", "accepted", "rejected", "already in the lake"), rows, "No new files.")


def _rejection_section(rejections: pl.DataFrame, run_id: str) -> _Section:
    counts = (
        rejections.filter(pl.col("run_id") == run_id)
        .group_by("stage", "reason")
        .agg(pl.len().alias("n"), pl.col("source_row").is_null().sum().alias("files"))
        .sort(["n", "stage", "reason"], descending=[True, False, False])
    )
    rows = tuple(
        (r["stage"], r["reason"], str(r["n"] - r["files"]), str(r["files"])) for r in counts.iter_rows(named=True)
    )
    return _Section("Rejected this run, by reason", ("stage", "reason", "rows", "whole files"), rows, "Nothing rejected.")


def _dq_section(outcomes: Sequence[ValidationOutcome]) -> _Section:
    rows = tuple(
        (
            o.name,
            r["expectation"],
            r["severity"],
            "-" if r["unexpected_count"] is None else str(r["unexpected_count"]),
            r["sample_keys"] or r["details"] or "",
        )
        for o in outcomes
        for r in o.results.filter(~pl.col("success")).iter_rows(named=True)
    )
    empty = f"All expectations passed on {len(outcomes)} table(s)."
    return _Section("Expectations failed", ("table", "expectation", "severity", "rows", "sample keys / details"), rows, empty)


def _unmeasurable_section(ct_series: pl.DataFrame, ct_volumetry: pl.DataFrame) -> _Section:
    """Series QC found unusable and series volumetry failed on (tables not published yet: none)."""
    parts = [
        frame.filter(pl.col("status") == status).select(
            "USUBJID", "series_id", pl.lit(step).alias("step"), pl.col(why).cast(pl.String).alias("why"))
        for frame, status, step, why in ((ct_series, "unusable", "series QC", "qc_reasons"), (ct_volumetry, "failed", "volumetry", "reason"))
        if "status" in frame.columns
    ]
    rows = tuple(pl.concat(parts).sort("USUBJID", "series_id").fill_null("").iter_rows()) if parts else ()
    return _Section("Series not measurable", ("USUBJID", "series_id", "step", "why"), rows, "Every series was measured.")


def _versions_section(versions: Mapping[str, Sequence[int]]) -> _Section:
    rows = tuple(
        (table, ", ".join(str(v) for v in sorted(numbers)), f'scan_table(lake, "{table}", as_of={max(numbers)})', f"trialake history {table}")
        for table, numbers in sorted(versions.items()) if numbers
    )
    return _Section("Table versions this run committed", ("table", "versions", "read it", "who, what, when"), rows,
                    "No table changed.")


def _to_markdown(title: str, sections: Sequence[_Section], links: Mapping[str, str], status: str = "") -> str:
    def cell(value: str) -> str:
        return value.replace("|", "\\|").replace("\n", " ")

    lines = [f"# {title}", ""] + ([f"**Status**: {status}", ""] if status else [])
    for s in sections:
        lines += [f"## {s.title}", ""]
        if not s.rows:
            lines += [s.empty, ""]
            continue
        lines += ["| " + " | ".join(s.header) + " |", "|" + "---|" * len(s.header)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in s.rows]
        lines.append("")
    if links:
        lines += ["## Links", ""] + [f"- [{label}]({url})" for label, url in links.items()]
    return "\n".join(lines).rstrip() + "\n"


def _to_html(title: str, sections: Sequence[_Section], links: Mapping[str, str], status: str = "") -> str:
    return render_page("nightly_summary.html.j2", title=title, sections=sections, links=links, status=status)
