"""GX Data Docs: one validation page per table plus an index, rendered offline by GX."""

from __future__ import annotations

import html
from collections.abc import Sequence

from trialake.quality.gx import ValidationOutcome


def docs_page_name(table: str) -> str:
    """File name of a table's Data Docs page: ``silver/labs`` -> ``silver__labs.html``."""
    return table.replace("/", "__") + ".html"


def render_data_docs(outcomes: Sequence[ValidationOutcome]) -> dict[str, str]:
    """GX Data Docs HTML per validated table plus an ``index.html``: {relative file name: html}.

    Pages are rendered with GX's own Data Docs renderers (the ones its site builder uses), from
    results whose row values were stripped at validation, so pages show counts and never data.
    Rendering is offline; a browser viewing the pages loads GX's CSS/JS from public CDNs.
    The caller writes the files (e.g. under ``reports/data_docs/``) through the lake module.
    """
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    renderer, view = ValidationResultsPageRenderer(), DefaultJinjaPageView()
    pages = {
        docs_page_name(o.table): view.render(renderer.render(o.gx_result))
        for o in outcomes
        if o.gx_result is not None
    }
    pages["index.html"] = _render_index(outcomes)
    return pages


def _render_index(outcomes: Sequence[ValidationOutcome]) -> str:
    rows = []
    for o in outcomes:
        name = html.escape(o.table)
        link = f'<a href="{docs_page_name(o.table)}">{name}</a>' if o.gx_result is not None else name
        status = "published" if o.should_publish else "NOT published"
        failed = html.escape(", ".join(o.failed_errors + o.failed_warnings)) or "-"
        rows.append(f"<tr><td>{link}</td><td>{status}</td><td>{failed}</td></tr>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Trialake data quality</title></head>"
        "<body><h1>Trialake data quality</h1><table border='1' cellpadding='4'>"
        "<tr><th>table</th><th>status</th><th>failed expectations</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
