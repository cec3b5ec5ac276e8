"""ADLB: laboratory results as an ADaM BDS with reference-range indicators and shifts.

``PARAMCD`` is LBTESTCD; ``PARAM`` is "<test name> (<standard unit>)" from the clinical lab
mapping (``lb_mapping.yaml``, e.g. "C Reactive Protein (mg/L)"); an unknown test code or a result
in another unit than the test's standard unit is an error. ``AVAL`` is LBSTRESN (null for
censored results such as "<0.5", whose text stays in ``AVALC``), ``A1LO``/``A1HI`` the standard
range. A censored result is a valid observation (``valid_column="AVALC"``): it can be the
baseline or analysis record, giving BNRIND and SHIFT1, while BASE/CHG stay null as there is no
number. ``ANRIND`` is
silver's LBNRIND (the indicator clinical normalization computed against the standard range),
``BNRIND`` the baseline record's ANRIND, and ``SHIFT1`` "<BNRIND> to <ANRIND>" on post-baseline
records when both are known. Same-day results are ordered by ``source_sha256`` then
``source_row`` (first wins). Windows, baseline and change follow :mod:`trialake.marts.bds`.
"""
from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from trialake.clinical.mapping import TestSpec, load_test_mapping
from trialake.marts.adft import CLINICAL_TIEBREAK
from trialake.marts.bds import derive_bds, derive_param
from trialake.marts.checks import check_columns
from trialake.marts.config import AnalysisConfig

_LAB_COLUMNS = {
    "USUBJID": "text", "LBTESTCD": "text", "LBSTRESC": "text", "LBSTRESN": "number", "LBSTRESU": "text",
    "LBSTNRLO": "number", "LBSTNRHI": "number", "LBNRIND": "text", "LBDT": "date",
    "source_sha256": "text", "source_row": "number",
}


def derive_adlb(
    labs: pl.DataFrame,
    adsl: pl.DataFrame,
    *,
    config: AnalysisConfig,
    tests: Mapping[str, TestSpec] | None = None,
) -> pl.DataFrame:
    """ADLB from silver/labs and ADSL (rules in the module docstring).

    ``tests``: test code -> standard name and unit; None uses the packaged LB mapping.
    """
    check_columns(labs, "labs", _LAB_COLUMNS)
    if tests is None:
        tests = load_test_mapping("lb_mapping.yaml").tests
    records = labs.select(
        "USUBJID",
        PARAMCD="LBTESTCD",
        AVAL=pl.col("LBSTRESN").cast(pl.Float64),
        AVALC="LBSTRESC",
        AVALU="LBSTRESU",
        ADT="LBDT",
        A1LO=pl.col("LBSTNRLO").cast(pl.Float64),
        A1HI=pl.col("LBSTNRHI").cast(pl.Float64),
        ANRIND="LBNRIND",
        SRCDOM=pl.lit("labs"),
        source_sha256="source_sha256",
        source_row=pl.col("source_row").cast(pl.Int64),
    )
    adlb = derive_bds(
        derive_param(records, "labs", tests=tests), adsl, config=config, argument="labs", tiebreak=CLINICAL_TIEBREAK,
        base_columns=[("ANRIND", "BNRIND")], valid_column="AVALC",
    )
    post = pl.col("ADY") > config.baseline.high_day
    columns = adlb.columns
    columns.insert(columns.index("BNRIND") + 1, "SHIFT1")
    return adlb.with_columns(SHIFT1=pl.when(post).then(pl.format("{} to {}", "BNRIND", "ANRIND"))).select(columns)
