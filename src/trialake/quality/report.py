"""GX Data Docs: one validation page per validated table (per export for tables validated file by
file) plus an index, rendered offline by GX and made self-contained: the pages load nothing from
the network."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from trialake.pages import read_asset, render_page
from trialake.quality.gx import ValidationOutcome

#: <script src="http..."> and <link href="http..."> tags: the CDN assets GX's templates name.
_CDN_TAGS = re.compile(r'<script\b[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>|<link\b[^>]*\bhref="https?://[^"]*"[^>]*>', re.I)
#: GX's inline scripts drive jQuery and bootstrap-table, which are not there any more.
_INLINE_SCRIPTS = re.compile(r"<script\b[^>]*>.*?</script>", re.I | re.S)
#: GX's logo, as an <img> and as a CSS background, from a public bucket. Replaced by text, not
#: inlined: a base64 image is arbitrary text to the scans for identifiers and arm names.
_REMOTE_LOGO_IMG = re.compile(r"""<img\b[^>]*\bsrc="https?://great-expectations-web-assets\.[^"]*"[^>]*>""", re.I | re.S)
_REMOTE_LOGO_CSS = re.compile(r"""url\(\s*'https?://great-expectations-web-assets\.[^']*'\s*\)""", re.I)
#: Links into a GX site layout that these pages do not have (site index, suite pages, static files).
_SITE_LINKS = re.compile(r'href="(?:\.\./)+(?:index\.html|expectations/[^"]*)"')
#: GX's newsletter call to action in the page footer.
_NEWSLETTER = re.compile(r"<p>\s*Stay current on everything GX.*?</p>", re.I | re.S)
_FAVICON = re.compile(r'<link\b[^>]*\bhref="(?:\.\./)+static/images/favicon\.ico"[^>]*>', re.I)
#: Any reference to a network resource left in an asset position (src, link href, CSS url()).
NETWORK_ASSET = re.compile(r"""(?:\bsrc\s*=\s*["']?|<link\b[^>]*\bhref\s*=\s*["']?|url\(\s*["']?)(?:https?:)?//""", re.I)


def docs_page_name(outcome: ValidationOutcome) -> str:
    """File name of a validation's page: ``silver/labs`` -> ``silver__labs.html``; an export of a
    table validated file by file -> ``bronze__lb__<sha256 prefix>.html``."""
    stem = outcome.table.replace("/", "__")
    return f"{stem}__{outcome.source_sha256[:12]}.html" if outcome.source_sha256 else f"{stem}.html"


def render_data_docs(outcomes: Sequence[ValidationOutcome], earlier: Sequence[Mapping[str, Any]] = ()) -> dict[str, str]:
    """GX Data Docs HTML per validation plus an ``index.html``: {relative file name: html}.

    Pages are rendered with GX's own Data Docs renderers (the ones its site builder uses), from
    results whose row values were stripped at validation, so pages show counts and never data.
    GX's templates load Bootstrap, Font Awesome, jQuery and its logo from public CDNs; here those
    references are removed and the page carries its own styles (``templates/data_docs.css``, the
    classes GX uses) inline, so it renders the same offline. The index lists
    these validations and the ``earlier`` index rows (``data_docs_rows`` of earlier runs) of
    tables and exports not validated again. The caller writes the files (e.g. under
    ``reports/data_docs/``) through the lake module.
    """
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    renderer, view = ValidationResultsPageRenderer(), DefaultJinjaPageView()
    pages = {
        docs_page_name(o): make_self_contained(view.render(renderer.render(o.gx_result)))
        for o in outcomes
        if o.gx_result is not None
    }
    pages["index.html"] = render_data_docs_index(merge_data_docs_rows(earlier, data_docs_rows(outcomes)))
    return pages


def data_docs_rows(outcomes: Sequence[ValidationOutcome]) -> list[dict[str, Any]]:
    """One index row per validation: what was validated, its page, run, status and counts."""
    return [
        {
            "table": o.table,
            "name": o.name,
            "page": docs_page_name(o) if o.gx_result is not None else None,
            "run_id": o.run_id,
            "published": o.should_publish,
            "failed": ", ".join(o.failed_errors + o.failed_warnings),
            "quarantined": len(o.quarantined),
            "not_checked": len(o.not_checked),
        }
        for o in outcomes
    ]


def merge_data_docs_rows(earlier: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The index rows after a run: the newest validation of each table and export, in name order."""
    rows = {row["name"]: dict(row) for row in earlier}
    rows.update({row["name"]: dict(row) for row in new})
    return [rows[name] for name in sorted(rows)]


def render_data_docs_index(rows: Sequence[Mapping[str, Any]]) -> str:
    """The index page: the newest validation of every table and export, linked to its page."""
    return render_page("data_docs_index.html.j2", title="Trialake data quality", rows=rows)


def make_self_contained(page: str) -> str:
    """A GX Data Docs page that loads nothing from the network: CDN tags and scripts removed, GX's
    remote logo replaced by the title, Trialake's stylesheet for GX's classes inlined. ValueError
    if a network reference is left in an asset position (a GX upgrade that adds one must be
    handled here, not shipped)."""
    page = _CDN_TAGS.sub("", page)
    page = _INLINE_SCRIPTS.sub("", page)
    page = _REMOTE_LOGO_IMG.sub('<span class="h6">Trialake data quality</span>', page)
    page = _REMOTE_LOGO_CSS.sub("none", page)
    page = _FAVICON.sub("", page)
    page = _NEWSLETTER.sub("", page)
    page = _SITE_LINKS.sub('href="index.html"', page)
    page = page.replace("</head>", f"<style>\n{read_asset('data_docs.css')}</style>\n</head>", 1)
    left = NETWORK_ASSET.search(page)
    if left is not None:
        raise ValueError(f"Data Docs page still loads a network resource: {page[left.start():left.end() + 60]!r}")
    return page
