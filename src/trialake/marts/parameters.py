"""The efficacy parameters of the endpoint marts (ADCT and ADFT) and their reporting order."""
from __future__ import annotations

from functools import cache

from trialake.clinical.mapping import TestSpec, load_test_mapping
from trialake.marts.adct import CT_PARAMETERS

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
