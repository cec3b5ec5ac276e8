"""HTML pages of the lake's reports folder, rendered from the Jinja2 templates shipped in
``trialake/templates/`` with autoescaping on: every value is escaped unless a template marks it
safe, so a table name, reason or description that carries markup is shown, never run."""
from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

#: Style shared by the plain pages (nightly summary, Data Docs index, QC index, data dictionary).
STYLESHEET = "page.css"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("trialake", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(template: str, **context: Any) -> str:
    """The page ``template`` (a file of ``trialake/templates/``) rendered with ``context``."""
    return _environment().get_template(template).render(**context)


def read_asset(name: str) -> str:
    """The text of a file shipped beside the templates (a stylesheet to inline)."""
    loader = _environment().loader
    assert loader is not None
    source, _, _ = loader.get_source(_environment(), name)
    return source
