"""ADFT: functional tests (6-minute walk, lung function) as an ADaM BDS.

Parameters and units are asserted, not assumed, against the clinical test mappings
(``ft_mapping.yaml``, ``re_mapping.yaml``: SIXMW in m, FVC and MVC in L, DLCO in mmol/min/kPa):
an unknown test code or another unit is an error. ``PARAM`` is "<test name> (<unit>)" from the
mapping; ``AVAL`` the standardized numeric result (FTSTRESN / RESTRESN). Same-day results are
ordered by ``source_sha256`` then ``source_row`` (first wins). Lineage: ``SRCDOM``
(sixmwt | lung_function), ``source_sha256``, ``source_row``. Windows, baseline and change follow
:mod:`trialake.marts.bds`.
"""
from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from trialake.clinical.mapping import TestSpec, load_test_mapping
from trialake.marts.bds import derive_bds, derive_param
from trialake.marts.checks import check_columns
from trialake.marts.config import AnalysisConfig

CLINICAL_TIEBREAK = ("source_sha256", "source_row")


def _records(frame: pl.DataFrame, argument: str, *, prefix: str) -> pl.DataFrame:
    """Map one SDTM findings domain (FT or RE style columns) onto BDS record columns (no PARAM)."""
    testcd, value, unit, date = f"{prefix}TESTCD", f"{prefix}STRESN", f"{prefix}STRESU", f"{prefix}DT"
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
        SRCDOM=pl.lit(argument),
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
        tests = {**load_test_mapping("ft_mapping.yaml").tests, **load_test_mapping("re_mapping.yaml").tests}
    records = pl.concat(
        [
            derive_param(_records(sixmwt, "sixmwt", prefix="FT"), "sixmwt", tests=tests),
            derive_param(_records(lung_function, "lung_function", prefix="RE"), "lung_function", tests=tests),
        ]
    )
    return derive_bds(records, adsl, config=config, argument="sixmwt/lung_function", tiebreak=CLINICAL_TIEBREAK)
