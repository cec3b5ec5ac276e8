"""A machine-readable specification of the published marts, in the manner of define-XML:
datasets (label, class, structure, keys), variables (label, type, length, codelist, origin,
derivation) and codelists, as a JSON-ready dict written beside the marts (``gold/define.json``).

Labels, classes and codelists come from ``adam_spec.yaml``; derivations from the data dictionary
(one description per column, shared with ``reports/data_dictionary``); types and lengths from the
published frames. In the ADaM datasets (ADSL, BDS, OCCDS classes) upper-case columns are ADaM
variables and follow the ADaM IG's limits (name at most 8 characters, label at most 40,
character values at most 200); lower-case columns are the lake's lineage (marked
``adam: false``). The analysis-results tables (endpoints, AE incidence) are described, not held
to ADaM's rules. A codelist taken from the data lists the values the
frames hold (so a blinded lake's specification names no arm: its frames have none).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from trialake.dictionary import Descriptions

ADAM_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,7}$")
ADAM_CLASSES = frozenset({"SUBJECT LEVEL ANALYSIS DATASET", "BASIC DATA STRUCTURE", "OCCURRENCE DATA STRUCTURE"})
MAX_LABEL = 40
MAX_TEXT = 200
_TYPES = {pl.String: "text", pl.Date: "date", pl.Boolean: "boolean"}


def default_spec_path() -> Path:
    """The packaged specification of the marts."""
    return Path(str(resources.files("trialake.marts") / "adam_spec.yaml"))


@cache
def load_adam_spec(path: str | None = None) -> dict[str, Any]:
    """The specification YAML (default: the packaged one), checked: every label within the ADaM
    limit and every codelist a variable names defined."""
    source = Path(path) if path else default_spec_path()
    spec = yaml.safe_load(source.read_text(encoding="utf-8"))
    for name, variable in spec["variables"].items():
        if len(variable["label"]) > MAX_LABEL:
            raise ValueError(f"{source}: variables.{name}: label longer than {MAX_LABEL} characters")
        if variable.get("codelist") and variable["codelist"] not in spec["codelists"]:
            raise ValueError(f"{source}: variables.{name}: unknown codelist {variable['codelist']!r}")
    return spec


def build_define(
    tables: Mapping[str, pl.DataFrame], descriptions: Descriptions, *, study_id: str, version: str
) -> dict[str, Any]:
    """The specification of ``tables`` ("zone/name" -> published frame); see the module docstring.

    Raises ValueError for an ADaM variable without a label or over the ADaM IG's limits, so that
    a mart cannot be published with a column the specification does not know.
    """
    spec = load_adam_spec()
    datasets, used = [], {}
    for table, frame in tables.items():
        name = table.split("/", 1)[1]
        meta = spec["datasets"].get(name, {})
        variables = []
        adam_dataset = meta.get("class") in ADAM_CLASSES
        for column, dtype in frame.schema.items():
            variables.append(_variable(table, column, dtype, frame, spec, descriptions, adam_dataset=adam_dataset))
            codelist = variables[-1]["codelist"]
            if codelist:
                used.setdefault(codelist, set()).update(_terms(frame, column))
        datasets.append({
            "name": name.upper() if adam_dataset else name,
            "table": table,
            "label": meta.get("label", ""),
            "class": meta.get("class", ""),
            "structure": meta.get("structure", ""),
            "keys": list(meta.get("keys", [])),
            "records": frame.height,
            "description": _table_description(descriptions, table),
            "variables": variables,
        })
    codelists = []
    for name, values in sorted(used.items()):
        entry = spec["codelists"][name]
        terms = sorted(values, key=str) if entry.get("from_data") else list(entry["terms"])
        codelists.append({"name": name, "terms": [str(t) for t in terms], "source": "data" if entry.get("from_data") else "specification"})
    return {
        "standard": "ADaM-style dataset specification (define-XML concepts as JSON)",
        "study": study_id,
        "specification_version": spec["version"],
        "generated_by": f"trialake {version}",
        "datasets": datasets,
        "codelists": codelists,
    }


def _variable(
    table: str, column: str, dtype: pl.DataType, frame: pl.DataFrame, spec: Mapping[str, Any], descriptions: Descriptions,
    *, adam_dataset: bool,
) -> dict[str, Any]:
    adam = adam_dataset and column.upper() == column
    meta = spec["variables"].get(column)
    if adam and meta is None:
        raise ValueError(f"{table}: {column} has no label in adam_spec.yaml")
    if adam and not ADAM_NAME.match(column):
        raise ValueError(f"{table}: {column} is not a valid ADaM variable name (letters, digits, at most 8)")
    length = None
    if dtype == pl.String:
        length = int(frame.get_column(column).str.len_bytes().max() or 0)
        if adam and length > MAX_TEXT:
            raise ValueError(f"{table}: {column} holds a value of {length} bytes, over the ADaM limit of {MAX_TEXT}")
    derivation = descriptions.column(table, column) or descriptions.column(table.replace("unblinded/", "gold/"), column)
    return {
        "name": column,
        "label": meta["label"] if meta else column.replace("_", " "),
        "type": _TYPES.get(type(dtype), "integer" if dtype.is_integer() else "float" if dtype.is_float() else str(dtype)),
        "length": length,
        "codelist": meta.get("codelist") if meta else None,
        "origin": "Derived" if adam or not adam_dataset else "Lake lineage (not an ADaM variable)",
        "adam": adam,
        "derivation": derivation or "",
    }


def _table_description(descriptions: Descriptions, table: str) -> str:
    for name in (table, table.replace("unblinded/", "gold/")):
        if name in descriptions.tables:
            return descriptions.tables[name].description
    return ""


def _terms(frame: pl.DataFrame, column: str) -> set[object]:
    return set(frame.get_column(column).drop_nulls().unique().to_list())
