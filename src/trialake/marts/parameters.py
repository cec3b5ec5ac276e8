"""The efficacy parameters of the endpoint marts (ADCT and ADFT) and their reporting order."""
from __future__ import annotations

from functools import cache
from typing import NamedTuple

from trialake.clinical.mapping import TestSpec, load_test_mapping


class CtParameter(NamedTuple):
    """A volumetry parameter: its code, label, unit and silver/ct_volumetry column."""

    paramcd: str
    param: str
    unit: str
    column: str


CT_PARAMETERS = (
    CtParameter("LUNGVOL", "Whole-Lung Volume (mL)", "mL", "lung_volume_ml"),
    CtParameter("LESVOL", "Lesion Volume (mL)", "mL", "lesion_volume_ml"),
    CtParameter("GGOVOL", "Ground-Glass Opacity Volume (mL)", "mL", "ggo_volume_ml"),
    CtParameter("SOLVOL", "Solid Component Volume (mL)", "mL", "solid_volume_ml"),
    CtParameter("LESPCT", "Lesion Volume, % of Lung Volume (%)", "%", "lesion_pct"),
    CtParameter("GGOPCT", "Ground-Glass Opacity Volume, % of Lung Volume (%)", "%", "ggo_pct"),
    CtParameter("SOLPCT", "Solid Component Volume, % of Lung Volume (%)", "%", "solid_pct"),
)
FUNCTION_MAPPINGS = ("ft_mapping.yaml", "re_mapping.yaml")


@cache
def function_tests() -> dict[str, TestSpec]:
    """Test code -> standard name and unit of the functional tests (packaged FT and RE mappings)."""
    return {code: spec for name in FUNCTION_MAPPINGS for code, spec in load_test_mapping(name).tests.items()}


def efficacy_parameter_codes() -> frozenset[str]:
    """Every PARAMCD the efficacy marts can hold: the CT volumetry parameters and the functional tests."""
    return frozenset(p.paramcd for p in CT_PARAMETERS) | frozenset(function_tests())


def parameter_order() -> dict[str, int]:
    """PARAMN of each efficacy parameter: CT parameters in their listed order, then the
    functional tests in mapping order (1-based, stable across runs)."""
    codes = [p.paramcd for p in CT_PARAMETERS] + list(function_tests())
    return {code: number for number, code in enumerate(codes, start=1)}
