"""Reports that work offline and look finished: Data Docs that load nothing from the network (also
rendered by headless Chromium with the network off), one page per export of tables validated file
by file, run names set, and every HTML page rendered by Jinja2 with autoescaping."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from test_quality import labs_with_wrong_crp_unit, suites, validate  # noqa: F401  (suites is a fixture)
from trialake.clinical.common import REJECTION_SCHEMA
from trialake.dictionary import Descriptions, TableDescription, build_data_dictionary
from trialake.pipeline.volumetry import SCHEMA as VOLUMETRY_SCHEMA
from trialake.pipeline.volumetry import render_qc_index
from trialake.quality import IntakeCounts, render_data_docs, render_nightly_summary
from trialake.quality.report import make_self_contained

#: A resource the browser would fetch: src=, <link href=, CSS url(), to http(s) or protocol-relative.
#: Written here independently of the module's own check.
FETCHED = re.compile(r"""(?:\bsrc\s*=\s*["']?|<link\b[^>]*?\bhref\s*=\s*["']?|url\(\s*["']?)\s*(?:https?:)?//""", re.I)
SCRIPT = "<script>alert(1)</script>"
SHA_LB_1, SHA_LB_2 = "1" * 64, "2" * 64


@pytest.fixture(scope="module")
def outcomes(suites):  # noqa: F811
    tables = labs_with_wrong_crp_unit()
    labs, subjects = validate(suites, tables, "silver/labs"), validate(suites, tables, "silver/subjects")
    exports = [replace(subjects, table="bronze/lb", source_sha256=sha) for sha in (SHA_LB_1, SHA_LB_2)]
    return [labs, subjects, *exports]


@pytest.fixture(scope="module")
def pages(outcomes) -> dict[str, str]:
    return render_data_docs(outcomes)


def test_gx_pages_as_rendered_by_gx_load_from_cdns(outcomes) -> None:
    """The raw GX page does fetch Bootstrap, Font Awesome and jQuery: what the pages are cleaned of."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    raw = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(outcomes[0].gx_result))
    fetched = FETCHED.findall(raw)
    assert len(fetched) >= 10
    assert "bootstrap" in raw and "font-awesome" in raw and "jquery" in raw


def test_data_docs_pages_load_nothing_from_the_network(pages) -> None:
    for name, page in pages.items():
        assert FETCHED.search(page) is None, (name, FETCHED.search(page))
        assert "<script" not in page.lower(), name  # GX's scripts drive jQuery, which is not there
    labs = pages["silver__labs.html"]
    assert ".fa-check-circle::before" in labs and "base64," not in labs  # icons drawn by the inline stylesheet; no image blobs


def test_a_network_asset_left_in_a_page_is_refused() -> None:
    page = '<html><head></head><body><img src="https://cdn.example.org/chart.png"></body></html>'
    with pytest.raises(ValueError, match="network resource"):
        make_self_contained(page)
    protocol_relative = '<html><head><link rel="stylesheet" href="//cdn.example.org/x.css"></head></html>'
    with pytest.raises(ValueError, match="network resource"):
        make_self_contained(protocol_relative)


def test_each_export_of_a_table_validated_file_by_file_has_its_own_page_and_name(pages) -> None:
    assert {f"bronze__lb__{SHA_LB_1[:12]}.html", f"bronze__lb__{SHA_LB_2[:12]}.html"} <= set(pages)
    index = pages["index.html"]
    assert f"bronze/lb export {SHA_LB_1[:12]}" in index and f"bronze/lb export {SHA_LB_2[:12]}" in index
    assert index.count('href="bronze__lb__') == 2


def test_pages_name_the_run(pages) -> None:
    labs = pages["silver__labs.html"]
    assert "__none__" not in labs
    text = re.sub(r"<[^>]+>", " ", labs)  # the page's text
    assert re.search(r"Run Name\s+run-7\s", text)


def test_summary_names_each_export_and_each_table(outcomes) -> None:
    summary = render_nightly_summary(
        run_id="run-7", intake=[IntakeCounts("dicom", 3, 3, 0, 5)], rejections=pl.DataFrame(schema=REJECTION_SCHEMA),
        outcomes=outcomes, ct_series=pl.DataFrame(), ct_volumetry=pl.DataFrame(),
        links={"Data Docs": "data_docs/index.html"}, link_base="file:///lake/reports/",
    )
    for name in ("silver/labs", "silver/subjects", f"bronze/lb export {SHA_LB_1[:12]}", f"bronze/lb export {SHA_LB_2[:12]}"):
        assert f"| {name} |" in summary.markdown and f"<td>{name}</td>" in summary.html
    assert "| dicom | 3 | 3 | 0 | 5 |" in summary.markdown  # 5 files already in the lake
    assert "- [Data Docs](file:///lake/reports/data_docs/index.html)" in summary.markdown  # absolute in the artifact
    assert '<a href="data_docs/index.html">Data Docs</a>' in summary.html  # relative beside the page


def test_every_page_escapes_markup_in_values(outcomes) -> None:
    """Jinja2 autoescaping: a value carrying a script shows as text in every generated page."""
    hostile = replace(outcomes[0], table=f"silver/{SCRIPT}")
    index = render_data_docs([hostile])["index.html"]
    rejections = pl.DataFrame({"source_sha256": ["c" * 64], "source_row": [1], "stage": ["labs"], "reason": [SCRIPT],
                               "run_id": ["run-7"]}, schema=REJECTION_SCHEMA)
    summary = render_nightly_summary(run_id="run-7", intake=[], rejections=rejections, outcomes=[hostile],
                                     ct_series=pl.DataFrame(), ct_volumetry=pl.DataFrame(), status=SCRIPT)
    row = {name: None for name in VOLUMETRY_SCHEMA} | {"USUBJID": SCRIPT, "ADY": 1, "status": "failed", "reason": SCRIPT,
                                                        "qc_png": f"reports/qc/{SCRIPT}.png", "series_id": "1", "params_hash": "h"}
    qc = render_qc_index(pl.DataFrame([row], schema=VOLUMETRY_SCHEMA))
    table = f"silver/{SCRIPT}"
    _, dictionary = build_data_dictionary({table: pl.Schema({SCRIPT: pl.String})},
                                          Descriptions(tables={table: TableDescription(SCRIPT)}))
    for page in (index, summary.html, qc, dictionary):
        assert SCRIPT not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is needed: `make test-tools` installs Debian's chromium (apt-get install chromium)"
    return found


def _screenshot(page: Path, out: Path) -> np.ndarray:
    """The page as headless Chromium renders it with the network off (every host unresolvable,
    every request through a proxy that is not there)."""
    from PIL import Image

    subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--proxy-server=127.0.0.1:9",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1200,1400", f"--screenshot={out}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


def _pixels_of(pixels: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int((np.abs(pixels - np.array(rgb)).sum(axis=2) < 40).sum())


def test_data_docs_render_styled_in_headless_chromium_with_the_network_off(pages, tmp_path: Path) -> None:
    """Offline, the page is laid out and its status icons are drawn: green ticks (Bootstrap's
    text-success, #28a745) and the blue of the navigation; the same page without the inlined
    stylesheet (what GX's CDN links give offline) draws neither."""
    styled = tmp_path / "styled.html"
    styled.write_text(pages["silver__labs.html"], encoding="utf-8")
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r"<style>\s*/\* The part of Bootstrap.*?</style>", "", pages["silver__labs.html"], flags=re.S),
                    encoding="utf-8")
    shot, unstyled = _screenshot(styled, tmp_path / "styled.png"), _screenshot(bare, tmp_path / "bare.png")
    assert shot.std() > 10  # not a blank page
    green, blue = (0x28, 0xA7, 0x45), (0x00, 0x7B, 0xFF)
    assert _pixels_of(shot, green) > 40  # the passed expectations' ticks (six of them on the first screen)
    assert _pixels_of(shot, blue) > 2000  # the filter buttons, a solid block
    assert _pixels_of(unstyled, green) == 0 and _pixels_of(unstyled, blue) < 200
