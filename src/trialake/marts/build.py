"""Build every ADaM mart from the silver tables in the right order."""
from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from trialake.marts.adae import derive_adae, summarize_ae_incidence
from trialake.marts.adct import derive_adct
from trialake.marts.adft import derive_adft
from trialake.marts.adlb import derive_adlb
from trialake.marts.adsl import derive_adsl, derive_fasfl
from trialake.marts.config import AnalysisConfig

MART_INPUTS = ("subjects", "exposure", "ct_volumetry", "sixmwt", "lung_function", "labs", "adverse_events")


def build_marts(silver: Mapping[str, pl.DataFrame], *, config: AnalysisConfig) -> dict[str, pl.DataFrame]:
    """Derive adsl, adct, adft, adlb, adae and ae_incidence from the silver tables in ``MART_INPUTS``."""
    missing = [name for name in MART_INPUTS if name not in silver]
    if missing:
        raise ValueError(f"silver: missing table(s) {missing}")
    adsl = derive_adsl(silver["subjects"], silver["exposure"], config=config)
    adct = derive_adct(silver["ct_volumetry"], adsl, config=config)
    adsl = derive_fasfl(adsl, adct, config=config)
    adae = derive_adae(silver["adverse_events"], adsl)
    return {
        "adsl": adsl,
        "adct": adct,
        "adft": derive_adft(silver["sixmwt"], silver["lung_function"], adsl, config=config),
        "adlb": derive_adlb(silver["labs"], adsl, config=config),
        "adae": adae,
        "ae_incidence": summarize_ae_incidence(adae, adsl),
    }
