"""Statistics for the endpoint marts: Hodges-Lehmann / Wilcoxon (as R) and incidence differences."""
from trialake.stats.proportions import (
    IncidenceDifference,
    compute_incidence_difference,
    compute_wilson_interval,
)
from trialake.stats.wilcoxon import HodgesLehmannResult, NotEstimableError, compute_root_tolerance, hodges_lehmann

__all__ = [
    "HodgesLehmannResult",
    "IncidenceDifference",
    "NotEstimableError",
    "compute_incidence_difference",
    "compute_root_tolerance",
    "compute_wilson_interval",
    "hodges_lehmann",
]
