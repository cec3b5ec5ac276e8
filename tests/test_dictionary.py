"""Data dictionary: every lake column is described, and the rendering shows types and gaps."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from bench.marts import make_silver_frames
from trialake.dictionary import (
    Descriptions,
    TableDescription,
    build_data_dictionary,
    find_undocumented_columns,
    load_descriptions,
)
from trialake.marts import AnalysisConfig, build_marts
from trialake.marts.endpoints import AE_COMPARISON_SCHEMA, ENDPOINT_SCHEMA

# Columns of the silver tables as specified in tables.md (transcribed by hand).
TABLES_MD = {
    "silver/rejections": "source_sha256 source_row stage reason run_id",
    "silver/subjects": "USUBJID STUDYID SITEID SEX AGE AGEU RACE ARMCD ARM ACTARMCD ACTARM RFICDT RFSTDT RFENDT",
    "silver/exposure": "USUBJID EXTRT EXDOSE EXDOSU EXSTDT EXSTDY",
    "silver/visits": "USUBJID VISITNUM VISIT SVSTDT SVSTDY",
    "silver/labs": "USUBJID LBTEST LBTESTCD LBLOINC LBORRES LBORRESU LBORNRLO LBORNRHI LBSTRESC LBSTRESN "
                   "LBSTRESU LBSTNRLO LBSTNRHI LBNRIND LBDT LBDY VISIT",
    "silver/sixmwt": "USUBJID FTTESTCD FTSTRESN FTSTRESU FTDT FTDY VISIT",
    "silver/lung_function": "USUBJID RETESTCD RETEST RESTRESN RESTRESU REDT REDY VISIT",
    "silver/adverse_events": "USUBJID AEDECOD AEBODSYS AESEV AESER AEREL AESTDT AESTDY AEENDT",
    "silver/ct_series": "USUBJID study_id series_id modality n_instances rows columns pixel_spacing_mm "
                        "pixel_spacing_col_mm slice_spacing_mm slice_thickness_mm orientation gantry_tilt_deg kvp "
                        "convolution_kernel acquisition_date ADY status qc_reasons run_id",
    "silver/ct_volumetry": "USUBJID series_id ADT ADY status reason lung_volume_ml lesion_volume_ml ggo_volume_ml "
                           "solid_volume_ml lesion_pct ggo_pct solid_pct left_lung_volume_ml right_lung_volume_ml "
                           "mean_lung_density_hu method method_version params_hash run_id",
}
LINEAGE = "source_sha256 source_row run_id"


def test_every_column_of_every_derived_mart_is_described() -> None:
    marts = build_marts(make_silver_frames(12, seed=1), config=AnalysisConfig())
    schemas = {f"gold/{name}": frame.schema for name, frame in marts.items()}
    schemas |= {"gold/endpoints": pl.Schema(ENDPOINT_SCHEMA), "gold/ae_comparison": pl.Schema(AE_COMPARISON_SCHEMA)}
    assert find_undocumented_columns(schemas, load_descriptions()) == []


def test_every_column_of_tables_md_is_described() -> None:
    schemas = {
        table: pl.Schema({name: pl.String for name in f"{columns} {LINEAGE}".split()})
        for table, columns in TABLES_MD.items()
    }
    descriptions = load_descriptions()
    assert find_undocumented_columns(schemas, descriptions) == []
    assert all(descriptions.tables[table].description for table in TABLES_MD)


DESCRIPTIONS = Descriptions(
    tables={
        "gold/adx": TableDescription("Mart | with a pipe", columns={"AVAL": "Value <in> units"}, uses=("g",)),
        "silver/raw": TableDescription("Raw rows"),
    },
    groups={"g": {"PARAMCD": "Code from group"}},
    common={"USUBJID": "Subject", "PARAMCD": "Code from common"},
)
SCHEMAS = {
    "gold/adx": pl.Schema({"USUBJID": pl.String, "PARAMCD": pl.String, "AVAL": pl.Float64, "NEW": pl.Date}),
    "silver/raw": pl.Schema({"USUBJID": pl.String}),
}


def test_markdown_lists_tables_by_zone_with_types_and_descriptions() -> None:
    markdown, _ = build_data_dictionary(SCHEMAS, DESCRIPTIONS)
    assert markdown.index("## silver/raw") < markdown.index("## gold/adx")
    assert "Mart \\| with a pipe" in markdown
    assert "| `PARAMCD` | String | Code from group |" in markdown  # the group wins over common
    assert "| `AVAL` | Float64 | Value <in> units |" in markdown
    assert "| `NEW` | Date | UNDOCUMENTED |" in markdown
    assert "Undocumented columns (1): `gold/adx.NEW`" in markdown


def test_html_escapes_text_and_marks_gaps() -> None:
    _, page = build_data_dictionary(SCHEMAS, DESCRIPTIONS)
    assert page.startswith("<!DOCTYPE html>")
    assert "<td>Value &lt;in&gt; units</td>" in page
    assert '<td class="missing">UNDOCUMENTED</td>' in page
    assert '<h2 id="gold-adx">gold/adx</h2>' in page


def test_unknown_group_is_an_error() -> None:
    with pytest.raises(ValueError, match="table 'gold/x' uses unknown group"):
        Descriptions(tables={"gold/x": TableDescription("x", uses=("nope",))})


def test_malformed_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "dd.yaml"
    path.write_text("tables:\n  gold/x:\n    description: X\n    columns:\n      A: ''\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dd.yaml: tables.gold/x.columns: expected a mapping"):
        load_descriptions(path)
