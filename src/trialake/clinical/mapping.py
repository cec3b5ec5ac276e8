"""Versioned test mappings (site test name -> standard test code, LOINC, standard unit) as data."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

__all__ = ["TestSpec", "TestMapping", "load_test_mapping", "normalize_test_name"]


@dataclass(frozen=True)
class TestSpec:
    """One standard test: code (--TESTCD), name, loinc (nullable), unit (standard --STRESU),
    per_mole (amount of analyte per mole, e.g. "113.12 g"; None when not needed), plausible
    ((low, high) limits of a result in the standard unit: outside them is a unit or entry error;
    None when not range-checked)."""

    __test__ = False  # not a pytest test class

    code: str
    name: str
    loinc: str | None
    unit: str
    per_mole: str | None
    plausible: tuple[float, float] | None = None


@dataclass(frozen=True)
class TestMapping:
    """A versioned mapping for one domain: tests by code, and normalized site name -> code."""

    __test__ = False

    version: str
    domain: str
    tests: Mapping[str, TestSpec]
    names: Mapping[str, str]

    def lookup(self, name: str | None) -> str | None:
        """Standard code for a site test name (or code), None when unknown."""
        return None if name is None else self.names.get(normalize_test_name(name))


def normalize_test_name(name: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form of a test name
    ("Lymphocytes, absolute" -> "lymphocytes absolute", "Créatinine " -> "creatinine")."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[\W_]+", " ", stripped.casefold()).split())


def packaged_mapping_path(name: str) -> Path:
    """A mapping shipped with the package (``lb_mapping.yaml``)."""
    return Path(str(resources.files("trialake.clinical") / name))


def load_test_mapping(source: str | Path) -> TestMapping:
    """Load a mapping YAML: a packaged name ("lb_mapping.yaml") or a path to one.

    Raises ValueError naming the file when the version is missing, a code repeats, or one site
    name points at two codes.
    """
    path = Path(source)
    packaged = packaged_mapping_path(str(source))
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    elif packaged.is_file():
        text = packaged.read_text(encoding="utf-8")
    else:
        raise FileNotFoundError(f"{source}: no such test mapping (neither a file nor a packaged mapping)")
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not data.get("version") or not data.get("domain"):
        raise ValueError(f"{source}: a test mapping needs 'version', 'domain' and 'tests'")
    tests: dict[str, TestSpec] = {}
    names: dict[str, str] = {}
    for number, entry in enumerate(data.get("tests") or (), start=1):
        missing = [k for k in ("code", "name", "unit") if not isinstance(entry, dict) or not entry.get(k)]
        if missing:
            raise ValueError(f"{source}: test #{number} lacks {', '.join(missing)}")
        spec = TestSpec(
            code=str(entry["code"]),
            name=str(entry["name"]),
            loinc=str(entry["loinc"]) if entry.get("loinc") else None,
            unit=str(entry["unit"]),
            per_mole=str(entry["per_mole"]) if entry.get("per_mole") else None,
            plausible=_plausible(entry.get("plausible"), f"{source}: test {entry['code']}: plausible"),
        )
        if spec.code in tests:
            raise ValueError(f"{source}: test code {spec.code} appears twice")
        tests[spec.code] = spec
        for name in [spec.code, *entry.get("names", ())]:
            key = normalize_test_name(str(name))
            if names.setdefault(key, spec.code) != spec.code:
                raise ValueError(f"{source}: name {name!r} maps to both {names[key]} and {spec.code}")
    return TestMapping(version=str(data["version"]), domain=str(data["domain"]), tests=tests, names=names)


def _plausible(raw: object, where: str) -> tuple[float, float] | None:
    """(low, high) from a two-number list, low < high; None when absent."""
    if raw is None:
        return None
    numbers = raw if isinstance(raw, list | tuple) else ()
    if len(numbers) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers) \
            or not numbers[0] < numbers[1]:
        raise ValueError(f"{where}: expected [low, high] with low < high, got {raw!r}")
    return float(numbers[0]), float(numbers[1])
