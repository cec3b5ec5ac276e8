"""ADFT: functional tests (6-minute walk, lung function) as an ADaM BDS.

Parameters and units are asserted, not assumed, against the clinical test mappings
(``ft_mapping.yaml``, ``re_mapping.yaml``: SIXMW in m, FVC and MVC in L, DLCO in mmol/min/kPa):
an unknown test code or another unit is an error. ``PARAM`` is "<test name> (<unit>)" from the
mapping; ``AVAL`` the standardized numeric result (FTSTRESN / RESTRESN). Same-day results are
ordered by ``source_sha256`` then ``source_row`` (first wins). Lineage: ``SRCDOM`` (FT | RE),
``SRCSEQ`` (FTSEQ / RESEQ when the site sent it), ``source_sha256``, ``source_row``. ``PARAMN``
follows :func:`trialake.marts.parameters.parameter_order`. Windows, baseline and change follow
:mod:`trialake.marts.bds`.
"""
from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from trialake.clinical.mapping import TestSpec
from trialake.marts.bds import derive_bds, derive_param
from trialake.marts.checks import check_columns
from trialake.marts.config import AnalysisConfig
from trialake.marts.parameters import function_tests, parameter_order

CLINICAL_TIEBREAK = ("source_sha256", "source_row")


def _records(frame: pl.DataFrame, argument: str, *, prefix: str) -> pl.DataFrame:
    """Map one SDTM findings domain (FT or RE style columns) onto BDS record columns (no PARAM)."""
    testcd, value, unit, date, seq = f"{prefix}TESTCD", f"{prefix}STRESN", f"{prefix}STRESU", f"{prefix}DT", f"{prefix}SEQ"
    check_columns(
        frame, argument,
        {"USUBJID": "text", testcd: "text", value: "number", unit: "text", date: "date"}
        | {"source_sha256": "text", "source_row": "number"},
    )
    return frame.select(
        "USUBJID",
        PARAMCD=testcd,
        AVAL=pl.col(value).cast(pl.Float64),
        AVALU=unit,
        ADT=date,
        SRCDOM=pl.lit(prefix),
        SRCSEQ=pl.col(seq).cast(pl.Int64, strict=False) if seq in frame.columns else pl.lit(None, pl.Int64),
        source_sha256="source_sha256",
        source_row=pl.col("source_row").cast(pl.Int64),
    )


def derive_adft(
    sixmwt: pl.DataFrame,
    lung_function: pl.DataFrame,
    adsl: pl.DataFrame,
    *,
    config: AnalysisConfig,
    tests: Mapping[str, TestSpec] | None = None,
) -> pl.DataFrame:
    """ADFT from silver/sixmwt, silver/lung_function and ADSL (rules in the module docstring).

    ``tests``: test code -> standard name and unit; None uses the packaged FT and RE mappings.
    """
    if tests is None:
        tests = function_tests()
    records = pl.concat(
        [
            derive_param(_records(sixmwt, "sixmwt", prefix="FT"), "sixmwt", tests=tests),
            derive_param(_records(lung_function, "lung_function", prefix="RE"), "lung_function", tests=tests),
        ]
    )
    return derive_bds(
        records, adsl, config=config, argument="sixmwt/lung_function", tiebreak=CLINICAL_TIEBREAK,
        param_order=parameter_order(),
    )
