"""Unit conversion factors with pint, reading UCUM-style spellings as sites send them."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pint
import yaml

__all__ = ["UnitCatalog", "UnitConversionError", "compute_conversion_factor", "load_unit_catalog", "split_basis"]

_POWER_OF_TEN = re.compile(r"10\s*(?:\*|\^|\*\*)\s*([+-]?\d+)")  # UCUM 10*9, common 10^9, Python 10**9
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")


class UnitConversionError(ValueError):
    """A unit cannot be read or converted. The message names the unit (for configuration errors);
    ``reason`` says the same without quoting it (for rejection reasons, which never carry cell
    values)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class UnitCatalog:
    """Unit spellings as data. aliases: site spelling -> pint expression (after micro signs are
    folded to 'u'); bases: qualifiers written after a unit that change what is measured
    (D-dimer FEU/DDU), which are never converted into each other without a configured factor."""

    version: str
    aliases: Mapping[str, str]
    bases: frozenset[str]


def load_unit_catalog(path: str | Path | None = None) -> UnitCatalog:
    """Read a units YAML (version, aliases, bases); None reads the packaged ``units.yaml``."""
    text = (
        Path(path).read_text(encoding="utf-8")
        if path is not None
        else resources.files("trialake.clinical").joinpath("units.yaml").read_text(encoding="utf-8")
    )
    data = yaml.safe_load(text)
    where = str(path or "units.yaml")
    if not isinstance(data, dict) or "version" not in data:
        raise ValueError(f"{where}: expected a mapping with a 'version' field")
    return UnitCatalog(
        version=str(data["version"]),
        aliases={str(k): str(v) for k, v in (data.get("aliases") or {}).items()},
        bases=frozenset(str(b).upper() for b in data.get("bases") or ()),
    )


@functools.cache
def _registry() -> pint.UnitRegistry:
    return pint.UnitRegistry(cache_folder=None)


def split_basis(unit: str, catalog: UnitCatalog) -> tuple[str, str | None]:
    """("mg/L", "FEU") from "mg/L FEU", "mg/L (FEU)" or "mg/L-FEU"; basis None when absent."""
    match = re.match(r"^(.*?)[\s(\-]*\b([A-Za-z]+)\)?\s*$", unit.strip())
    if match and match.group(2).upper() in catalog.bases:
        return match.group(1).strip(), match.group(2).upper()
    return unit.strip(), None


def _quantity(unit: str, catalog: UnitCatalog) -> pint.Quantity:
    spelled = unit.strip().replace("µ", "u").replace("μ", "u")
    spelled = catalog.aliases.get(spelled, spelled).translate(_SUPERSCRIPTS)
    spelled = re.sub(r"^[x×]\s*(?=10)", "", spelled)
    spelled = _POWER_OF_TEN.sub(r"10**\1", spelled)
    spelled = re.sub(r"^/", "1/", spelled)
    try:
        return _registry().parse_expression(spelled)
    except (pint.errors.PintError, SyntaxError, TypeError, ValueError, AttributeError):
        raise UnitConversionError(f"unknown unit {unit!r}", reason="unit not recognised") from None


def compute_conversion_factor(
    unit: str,
    standard_unit: str,
    *,
    catalog: UnitCatalog,
    per_mole: str | None = None,
    basis_factor: float | None = None,
) -> float:
    """Factor f so that value_in_unit * f = value_in_standard_unit.

    per_mole: the amount that makes one mole of the analyte (molar mass "113.12 g" for
    creatinine, molar gas volume "22.4 L" for DLCO), used only when the two units differ by
    amount of substance. basis_factor: allowed factor between different bases (FEU/DDU); without
    it a basis mismatch raises. Raises UnitConversionError with a rejection reason.
    """
    (source, source_basis), (target, target_basis) = split_basis(unit, catalog), split_basis(standard_unit, catalog)
    if source_basis != target_basis and basis_factor is None:
        basis = (f"is {source_basis or 'without a basis'}, standard is {target_basis or 'without a basis'}; "
                 "not converted without a configured factor")
        raise UnitConversionError(f"unit {unit!r} {basis}", reason=f"unit {basis}")
    q_source, q_target = _quantity(source, catalog), _quantity(target, catalog)
    candidates = [q_source]
    if per_mole is not None:
        mole = _registry().Quantity(1, "mol") / _registry().parse_expression(per_mole)
        candidates += [q_source * mole, q_source / mole]
    for candidate in candidates:
        if candidate.dimensionality == q_target.dimensionality:
            factor = float(candidate.to(q_target.units).magnitude / q_target.magnitude)
            return factor * (basis_factor if source_basis != target_basis else 1.0)
    raise UnitConversionError(f"unit {unit!r} cannot be converted to {standard_unit!r}",
                              reason=f"unit cannot be converted to {standard_unit}")
