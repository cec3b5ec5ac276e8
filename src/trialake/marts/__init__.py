"""ADaM-style marts (gold zone): derive_* take silver frames and return ADaM frames.

Order of derivation: ``derive_adsl`` -> ``derive_adct``, ``derive_adft`` -> ``derive_fasfl``
(adds FASFL and PPROTFL to ADSL) -> ``derive_adlb``, ``derive_adae``; :func:`build_marts` runs
them all.
"""
from trialake.marts.adae import derive_adae, summarize_ae_by_term, summarize_ae_incidence
from trialake.marts.adct import CT_PARAMETERS, derive_adct
from trialake.marts.adft import derive_adft
from trialake.marts.adlb import derive_adlb
from trialake.marts.adsl import derive_adsl, derive_fasfl
from trialake.marts.bds import derive_bds, derive_param
from trialake.marts.build import MART_INPUTS, OPTIONAL_MART_INPUTS, build_marts
from trialake.marts.config import AnalysisConfig, ArmSpec, VisitWindow
from trialake.visits import study_day

__all__ = [
    "CT_PARAMETERS",
    "MART_INPUTS",
    "OPTIONAL_MART_INPUTS",
    "AnalysisConfig",
    "ArmSpec",
    "VisitWindow",
    "build_marts",
    "derive_adae",
    "derive_adct",
    "derive_adft",
    "derive_adlb",
    "derive_adsl",
    "derive_bds",
    "derive_fasfl",
    "derive_param",
    "study_day",
    "summarize_ae_by_term",
    "summarize_ae_incidence",
]
