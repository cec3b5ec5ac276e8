"""Build every ADaM mart from the silver tables in the right order."""
from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from trialake.clinical.mapping import TestSpec
from trialake.marts.adae import derive_adae, summarize_ae_incidence
from trialake.marts.adct import derive_adct
from trialake.marts.adft import derive_adft
from trialake.marts.adlb import derive_adlb
from trialake.marts.adsl import EMPTY_DISPOSITION, derive_adsl, derive_fasfl
from trialake.marts.config import AnalysisConfig
from trialake.marts.toxicity import ToxicityGrading

MART_INPUTS = ("subjects", "exposure", "ct_volumetry", "sixmwt", "lung_function", "labs", "adverse_events")
OPTIONAL_MART_INPUTS = ("disposition",)
"""Silver tables the marts use when they have rows (a trial without DS exports has no disposition)."""


def build_marts(
    silver: Mapping[str, pl.DataFrame],
    *,
    config: AnalysisConfig,
    lab_tests: Mapping[str, TestSpec] | None = None,
    toxicity: ToxicityGrading | None = None,
) -> dict[str, pl.DataFrame]:
    """Derive adsl, adct, adft, adlb, adae and ae_incidence from the silver tables in
    ``MART_INPUTS`` (and ``OPTIONAL_MART_INPUTS`` when given and not empty).

    ``lab_tests``: the lab mapping silver/labs was standardized with (None: the packaged one);
    ``toxicity``: lab toxicity criteria (None: the packaged CTCAE v5.0 subset).
    """
    missing = [name for name in MART_INPUTS if name not in silver]
    if missing:
        raise ValueError(f"silver: missing table(s) {missing}")
    disposition = silver.get("disposition")
    if disposition is None or disposition.is_empty():
        disposition = EMPTY_DISPOSITION
    adsl = derive_adsl(silver["subjects"], silver["exposure"], disposition, config=config)
    adct = derive_adct(silver["ct_volumetry"], adsl, config=config)
    adft = derive_adft(silver["sixmwt"], silver["lung_function"], adsl, config=config)
    adsl = derive_fasfl(adsl, [adct, adft], exposure=silver["exposure"], config=config)
    adae = derive_adae(silver["adverse_events"], adsl, window_days=config.treatment_window_days)
    return {
        "adsl": adsl,
        "adct": adct,
        "adft": adft,
        "adlb": derive_adlb(silver["labs"], adsl, config=config, tests=lab_tests, toxicity=toxicity),
        "adae": adae,
        "ae_incidence": summarize_ae_incidence(adae, adsl),
    }
