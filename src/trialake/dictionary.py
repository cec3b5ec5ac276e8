"""The data dictionary: every column of every analyst-facing lake table, as Markdown and HTML.

Descriptions are data (``data_dictionary.yaml`` beside this module); types come from the tables'
actual schemas, so the dictionary cannot drift from the lake. A column is described by its
table's ``columns``, else by a group the table ``uses``, else by ``common``; a column with no
description is listed as undocumented rather than hidden.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import polars as pl
import yaml

from trialake.pages import render_page

ZONE_ORDER = ("bronze", "silver", "gold")
UNDOCUMENTED = "UNDOCUMENTED"


@dataclass(frozen=True)
class TableDescription:
    """A table's description, its own column descriptions and the shared groups it uses."""

    description: str
    columns: Mapping[str, str] = field(default_factory=dict)
    uses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Descriptions:
    """All descriptions: per table ("zone/table"), per shared group and common to all tables."""

    tables: Mapping[str, TableDescription]
    groups: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    common: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, table in self.tables.items():
            unknown = [group for group in table.uses if group not in self.groups]
            if unknown:
                raise ValueError(f"descriptions: table {name!r} uses unknown group(s) {unknown}")

    def column(self, table: str, column: str) -> str | None:
        """The description of ``column`` in ``table``, or None."""
        entry = self.tables.get(table, TableDescription(""))
        for source in (entry.columns, *(self.groups[g] for g in entry.uses), self.common):
            if column in source:
                return source[column]
        return None


def default_descriptions_path() -> Path:
    """The packaged descriptions of every Trialake table."""
    return Path(str(resources.files("trialake") / "data_dictionary.yaml"))


def load_descriptions(path: str | Path | None = None) -> Descriptions:
    """Parse a descriptions YAML file (default: the packaged one); errors name the file and key."""
    source = Path(path) if path is not None else default_descriptions_path()
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("tables"), dict):
        raise ValueError(f"{source}: expected a mapping with a 'tables' mapping")
    tables = {}
    for name, entry in raw["tables"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("description"), str):
            raise ValueError(f"{source}: tables.{name}: expected a mapping with a 'description' string")
        columns = _strings(entry.get("columns") or {}, source, f"tables.{name}.columns")
        tables[name] = TableDescription(entry["description"], columns=columns, uses=tuple(entry.get("uses") or ()))
    groups = {name: _strings(group, source, f"groups.{name}") for name, group in (raw.get("groups") or {}).items()}
    return Descriptions(tables=tables, groups=groups, common=_strings(raw.get("common") or {}, source, "common"))


def _strings(mapping: object, source: Path, key: str) -> dict[str, str]:
    if not isinstance(mapping, dict) or not all(isinstance(v, str) and v.strip() for v in mapping.values()):
        raise ValueError(f"{source}: {key}: expected a mapping of column name to a non-empty description")
    return {str(k): v for k, v in mapping.items()}


def find_undocumented_columns(schemas: Mapping[str, pl.Schema], descriptions: Descriptions) -> list[str]:
    """"zone/table.column" for every column of ``schemas`` without a description."""
    return [
        f"{table}.{column}"
        for table, schema in schemas.items()
        for column in schema.names()
        if descriptions.column(table, column) is None
    ]


def _ordered(schemas: Mapping[str, pl.Schema]) -> list[str]:
    def key(table: str) -> tuple[int, str]:
        zone = table.split("/", 1)[0]
        return (ZONE_ORDER.index(zone) if zone in ZONE_ORDER else len(ZONE_ORDER), table)

    return sorted(schemas, key=key)


def _rows(table: str, schema: pl.Schema, descriptions: Descriptions) -> list[tuple[str, str, str]]:
    return [
        (column, str(dtype), descriptions.column(table, column) or UNDOCUMENTED)
        for column, dtype in schema.items()
    ]


def _table_text(descriptions: Descriptions, table: str) -> str:
    entry = descriptions.tables.get(table)
    return entry.description if entry else UNDOCUMENTED


def build_data_dictionary(schemas: Mapping[str, pl.Schema], descriptions: Descriptions) -> tuple[str, str]:
    """(Markdown, HTML) data dictionary of ``schemas`` ("zone/table" -> schema), bronze to gold."""
    tables = _ordered(schemas)
    missing = find_undocumented_columns(schemas, descriptions)
    return _markdown(tables, schemas, descriptions, missing), _html(tables, schemas, descriptions, missing)


def _markdown(
    tables: list[str], schemas: Mapping[str, pl.Schema], descriptions: Descriptions, missing: list[str]
) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["# Trialake data dictionary", "", "Every column of every lake table: name, Polars type, meaning.", ""]
    if missing:
        lines += [f"Undocumented columns ({len(missing)}): " + ", ".join(f"`{m}`" for m in missing), ""]
    lines += [f"- [{t}](#{_anchor(t)})" for t in tables] + [""]
    for table in tables:
        lines += [f'<a id="{_anchor(table)}"></a>', f"## {table}", "", cell(_table_text(descriptions, table)), "",
                  "| Column | Type | Description |", "|---|---|---|"]
        lines += [f"| `{c}` | {cell(t)} | {cell(d)} |" for c, t, d in _rows(table, schemas[table], descriptions)]
        lines.append("")
    return "\n".join(lines)


def _html(
    tables: list[str], schemas: Mapping[str, pl.Schema], descriptions: Descriptions, missing: list[str]
) -> str:
    entries = [
        {"name": t, "anchor": _anchor(t), "text": _table_text(descriptions, t), "rows": list(_rows(t, schemas[t], descriptions))}
        for t in tables
    ]
    return render_page("data_dictionary.html.j2", title="Trialake data dictionary", tables=entries, missing=missing,
                       undocumented=UNDOCUMENTED)


def _anchor(table: str) -> str:
    return table.replace("/", "-").replace("_", "-")
