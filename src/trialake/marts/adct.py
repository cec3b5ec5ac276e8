"""ADCT: CT lung volumetry as an ADaM BDS, one row per measured or failed series and parameter.

Measured series (status ``measured`` or ``measured-with-flags``: a flag asks the core lab to look,
the numbers stand) give analysis values; a failed series is kept with a null
``AVAL`` (its ``status`` and ``reason`` say why) so that it never becomes a baseline or analysis
record but stays traceable. Same-day scans are ordered by ``series_id`` (first wins). Lineage:
``series_id`` (to silver/ct_series and the DICOM files) and the volumetry method, version and
parameter hash (``SRCDOM`` is null: the values are derived from images, not an SDTM domain).
``PARAMN`` follows :func:`trialake.marts.parameters.parameter_order`. Windows, baseline and
change follow :mod:`trialake.marts.bds`.
"""
from __future__ import annotations

import polars as pl

from trialake.marts.bds import derive_bds
from trialake.marts.checks import check_columns
from trialake.marts.config import AnalysisConfig
from trialake.marts.parameters import CT_PARAMETERS, parameter_order


_LINEAGE = ("series_id", "status", "reason", "method", "method_version", "params_hash")


def derive_adct(ct_volumetry: pl.DataFrame, adsl: pl.DataFrame, *, config: AnalysisConfig) -> pl.DataFrame:
    """ADCT from silver/ct_volumetry and ADSL (rules in the module docstring and bds)."""
    check_columns(
        ct_volumetry,
        "ct_volumetry",
        {"USUBJID": "text", "series_id": "text", "ADT": "date", "status": "text"}
        | {name: None for name in _LINEAGE}
        | {p.column: "number" for p in CT_PARAMETERS},
    )
    measured = pl.col("status").is_in(["measured", "measured-with-flags"])
    records = pl.concat(
        [
            ct_volumetry.select(
                "USUBJID",
                PARAMCD=pl.lit(p.paramcd),
                PARAM=pl.lit(p.param),
                AVAL=pl.when(measured).then(pl.col(p.column).cast(pl.Float64)),
                AVALU=pl.lit(p.unit),
                ADT="ADT",
                *_LINEAGE,
            )
            for p in CT_PARAMETERS
        ]
    )
    return derive_bds(
        records, adsl, config=config, argument="ct_volumetry", tiebreak=("series_id",), param_order=parameter_order()
    )
