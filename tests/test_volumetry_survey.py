"""The mixed volumetry survey's draws: reproducible, valid phantom specs whose variants are the ones named."""
from __future__ import annotations

import pytest

from bench.volumetry_survey import MIXED_VARIANTS, draw_mixed_spec
from trialake.synth.phantom import PhantomSpec, _validate

# the spec field each variant sets, and the value that means "off"
VARIANT_FIELDS = {"basal": ("basal_consolidation", False), "lobar": ("lobar_consolidation", False),
                  "paracardiac": ("paracardiac_consolidation", False), "effusion": ("effusion_mm", 0.0),
                  "pneumothorax": ("pneumothorax_mm", 0.0), "dependent": ("dependent_density_mm", 0.0),
                  "dome": ("dome_shift", 0.0), "emphysema": ("emphysema_pct", 0.0)}


def test_every_variant_names_its_field() -> None:
    assert set(VARIANT_FIELDS) == set(MIXED_VARIANTS)


@pytest.mark.parametrize("seed", range(1000, 1060))
def test_a_draw_is_a_valid_spec_with_the_variants_it_names(seed: int) -> None:
    spec, variants = draw_mixed_spec(seed)
    assert draw_mixed_spec(seed) == (spec, variants)  # reproducible
    phantom_spec = PhantomSpec(**spec)  # every key is a field
    _validate(phantom_spec)  # every value in range (the generator raises ValueError otherwise)
    for name, (field, off) in VARIANT_FIELDS.items():
        on = getattr(phantom_spec, field) != off
        assert on == (name in variants), (name, spec)
    assert len(variants) <= 2 and len(set(variants)) == len(variants)
    assert -880.0 <= phantom_spec.lung_hu <= -770.0 and phantom_spec.seed == seed
