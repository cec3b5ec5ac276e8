"""Conversion factors, each worked out by hand from its source (cited per case)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialake.clinical import UnitConversionError, compute_conversion_factor, default_standards

LB = default_standards("LB")
RE = default_standards("RE")
FT = default_standards("FT")


def _factor(standards, code: str, unit: str, **kwargs) -> float:
    spec = standards.mapping.tests[code]
    return compute_conversion_factor(unit, spec.unit, catalog=standards.units, per_mole=spec.per_mole, **kwargs)


# (test, site unit, expected factor to the DESIGN.md standard unit, how the factor was worked out)
EXPECTED_FACTORS = [
    ("CRP", "mg/dL", 10.0),                        # 1 dL = 0.1 L
    ("CRP", "mg/L", 1.0),
    ("HGB", "g/dL", 10.0),                         # 1 dL = 0.1 L
    ("ALB", "g/dL", 10.0),
    ("CREAT", "mg/dL", 10_000 / 113.12),           # 10 mg/L / 113.12 g/mol (PubChem CID 588) = 88.40 umol/L
    ("CREAT", "mmol/L", 1000.0),
    ("CREAT", "µmol/L", 1.0),                      # micro sign U+00B5
    ("CREAT", "μmol/L", 1.0),                      # Greek mu U+03BC
    ("GLUC", "mg/dL", 10 / 180.16),                # 10 mg/L / 180.16 g/mol (PubChem CID 5793) = 0.05551 mmol/L
    ("BILI", "mg/dL", 10_000 / 584.66),            # 10 mg/L / 584.66 g/mol (PubChem CID 5280352) = 17.10 umol/L
    ("ALT", "ukat/L", 60.0),                       # 1 ukat = 1 umol/s = 60 umol/min = 60 U
    ("AST", "µkat/L", 60.0),
    ("LDH", "IU/L", 1.0),                          # IUB 1961: 1 IU of enzyme activity = 1 umol/min = 1 U
    ("WBC", "10^3/uL", 1.0),                       # 10^3 / 10^-6 L = 10^9/L
    ("WBC", "10*3/uL", 1.0),                       # UCUM spelling of 10^3
    ("WBC", "x10^9/L", 1.0),
    ("WBC", "G/L", 1.0),                           # giga = 10^9
    ("PLAT", "/uL", 1e-3),                         # 1/uL = 10^6/L = 10^-3 x 10^9/L
    ("PLAT", "/mm3", 1e-3),                        # 1 mm3 = 1 uL
    ("PLAT", "cells/uL", 1e-3),
    ("LYM", "10^6/L", 1e-3),
    ("DDIMER", "ug/mL FEU", 1.0),                  # 1 ug/mL = 1 mg/L, same basis
    ("DDIMER", "ng/mL FEU", 1e-3),
    ("FERRITIN", "ng/mL", 1.0),                    # 1 ng/mL = 1 ug/L
    ("IL6", "pg/mL", 1.0),                         # 1 pg/mL = 1 ng/L
    ("PCT", "ng/mL", 1.0),
    ("TROPI", "pg/mL", 1.0),
]


@pytest.mark.parametrize(("code", "unit", "expected"), EXPECTED_FACTORS)
def test_lab_factors_match_hand_worked_values(code: str, unit: str, expected: float) -> None:
    assert _factor(LB, code, unit) == pytest.approx(expected, rel=1e-12)


def test_dlco_factor_is_the_ers_ats_0_3348() -> None:
    # 1 mL/min/mmHg = (1/22.4 mmol) / min / (1/7.50062 kPa) = 0.33485 mmol/min/kPa (STPD molar
    # volume 22.4 L/mol; 1 kPa = 7.50062 mmHg); ERS/ATS (Macintyre 2005) quotes 0.3348 / 0.335.
    assert _factor(RE, "DLCO", "mL/min/mmHg") == pytest.approx(7.50062 / 22.4, rel=1e-5)
    assert _factor(RE, "DLCO", "mL/min/mmHg") == pytest.approx(0.3348, abs=1e-4)


def test_volume_and_distance_factors() -> None:
    assert _factor(RE, "FVC", "mL") == pytest.approx(1e-3, rel=1e-12)
    assert _factor(RE, "MVC", "L") == 1.0
    assert _factor(FT, "SIXMW", "ft") == pytest.approx(0.3048, rel=1e-12)  # international foot, 1959
    assert _factor(FT, "SIXMW", "km") == pytest.approx(1000.0, rel=1e-12)


@pytest.mark.parametrize(
    ("code", "unit", "message"),
    [
        ("DDIMER", "ng/mL DDU", "unit 'ng/mL DDU' is DDU, standard is FEU; not converted without a configured factor"),
        ("DDIMER", "mg/L", "unit 'mg/L' is without a basis, standard is FEU; not converted without a configured factor"),
        ("CRP", "mg/banana", "unknown unit 'mg/banana'"),
        ("CRP", "1000", "unit '1000' cannot be converted to 'mg/L'"),  # a bare number is dimensionless
        ("WBC", "mg/dL", "unit 'mg/dL' cannot be converted to '10^9/L'"),
        ("LYM", "%", "unit '%' cannot be converted to '10^9/L'"),
        ("HGB", "mmol/L", "unit 'mmol/L' cannot be converted to 'g/L'"),  # no molar mass configured for HGB
    ],
)
def test_unconvertible_units_raise_with_a_reason(code: str, unit: str, message: str) -> None:
    with pytest.raises(UnitConversionError) as caught:
        _factor(LB, code, unit)
    assert str(caught.value) == message


def test_ddu_to_feu_only_with_a_configured_factor() -> None:
    assert _factor(LB, "DDIMER", "ng/mL DDU", basis_factor=2.0) == pytest.approx(2e-3, rel=1e-12)


ROUND_TRIP_PAIRS = [(LB, code, unit) for code, unit, _ in EXPECTED_FACTORS] + [
    (RE, "DLCO", "mL/min/mmHg"), (RE, "FVC", "mL"), (FT, "SIXMW", "ft"),
]


@settings(max_examples=100, deadline=None)
@given(pair=st.sampled_from(ROUND_TRIP_PAIRS), value=st.floats(min_value=1e-6, max_value=1e7))
def test_to_standard_and_back_is_the_identity(pair, value: float) -> None:
    standards, code, unit = pair
    spec = standards.mapping.tests[code]
    there = value * _factor(standards, code, unit)
    back = there * compute_conversion_factor(spec.unit, unit, catalog=standards.units, per_mole=spec.per_mole)
    assert back == pytest.approx(value, rel=1e-12)
