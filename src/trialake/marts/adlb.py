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

Toxicity (admiral's ``derive_var_atoxgr_dir``): ``ATOXGR``/``ATOXGRN`` the grade 0-4 of the
result under the toxicity criteria (:mod:`trialake.marts.toxicity`; default the packaged CTCAE
v5.0 subset), with ``ATOXDSCL`` or ``ATOXDSCH`` the criteria's term (low or high direction);
``BTOXGR``/``BTOXGRN`` the baseline record's grade. Tests without criteria, or whose criteria
cannot be converted to the test's unit, have null grades. ``PARAMN`` follows the order of the
lab mapping; ``SRCDOM = "LB"``, ``SRCSEQ`` the LBSEQ when the site sent one.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import polars as pl

from trialake.clinical.mapping import TestSpec, load_test_mapping
from trialake.marts.adft import CLINICAL_TIEBREAK
from trialake.marts.bds import derive_bds, derive_param
from trialake.marts.checks import check_columns
from trialake.marts.config import AnalysisConfig
from trialake.marts.toxicity import ToxicityGrading, load_toxicity_criteria, plan_toxicity_grading, toxicity_grade

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
    toxicity: ToxicityGrading | None = None,
) -> pl.DataFrame:
    """ADLB from silver/labs and ADSL (rules in the module docstring).

    ``tests``: test code -> standard name and unit, the mapping silver/labs was standardized
    with (None: the packaged LB mapping); ``toxicity``: grading criteria (None: the packaged
    CTCAE v5.0 subset).
    """
    check_columns(labs, "labs", _LAB_COLUMNS)
    if tests is None:
        tests = load_test_mapping("lb_mapping.yaml").tests
    graded, _ = plan_toxicity_grading(toxicity or load_toxicity_criteria(), tests)
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
        SRCDOM=pl.lit("LB"),
        SRCSEQ=pl.col("LBSEQ").cast(pl.Int64, strict=False) if "LBSEQ" in labs.columns else pl.lit(None, pl.Int64),
        source_sha256="source_sha256",
        source_row=pl.col("source_row").cast(pl.Int64),
    )
    records = derive_param(records, "labs", tests=tests).with_columns(
        ATOXGRN=_by_test(lambda code: toxicity_grade(*graded[code]), graded, pl.Int64),
        ATOXDSCL=_by_test(lambda code: pl.lit(graded[code][0].term), {c: v for c, v in graded.items() if v[0].direction == "low"}, pl.String),
        ATOXDSCH=_by_test(lambda code: pl.lit(graded[code][0].term), {c: v for c, v in graded.items() if v[0].direction == "high"}, pl.String),
    ).with_columns(ATOXGR=pl.col("ATOXGRN").cast(pl.String))
    adlb = derive_bds(
        records, adsl, config=config, argument="labs", tiebreak=CLINICAL_TIEBREAK,
        base_columns=[("ANRIND", "BNRIND"), ("ATOXGR", "BTOXGR"), ("ATOXGRN", "BTOXGRN")], valid_column="AVALC",
        param_order={code: number for number, code in enumerate(tests, start=1)},
    )
    post = pl.col("ADY") > config.baseline.high_day
    columns = adlb.columns
    columns.insert(columns.index("BNRIND") + 1, "SHIFT1")
    return adlb.with_columns(SHIFT1=pl.when(post).then(pl.format("{} to {}", "BNRIND", "ANRIND"))).select(columns)


def _by_test(value: Callable[[str], pl.Expr], codes: Mapping[str, object], dtype: pl.DataType) -> pl.Expr:
    """``value(code)`` on the records of each test in ``codes``; null for other tests."""
    chain = pl.when(pl.lit(False)).then(None)
    for code in codes:
        chain = chain.when(pl.col("PARAMCD") == code).then(value(code))
    return chain.otherwise(None).cast(dtype)
