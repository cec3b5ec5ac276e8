"""silver/labs: bronze LB rows standardized to one test code, value and unit per result."""

from __future__ import annotations

import polars as pl

from trialake.clinical.common import (
    LINEAGE_COLUMNS,
    require_columns,
    rejections_from,
    split_exact_duplicates,
    with_sdtm_columns,
    with_study_day,
)
from trialake.clinical.standardize import MeasurementStandards, default_standards, derive_standardized

__all__ = ["LAB_COLUMNS", "derive_labs"]

LAB_COLUMNS = (
    "USUBJID", "LBTEST", "LBTESTCD", "LBLOINC", "LBORRES", "LBORRESU", "LBORNRLO", "LBORNRHI", "LBSTRESC",
    "LBSTRESN", "LBSTRESU", "LBSTNRLO", "LBSTNRHI", "LBNRIND", "LBDT", "LBDY", "VISIT", *LINEAGE_COLUMNS,
)


def derive_labs(
    bronze_lb: pl.DataFrame,
    *,
    subjects: pl.DataFrame,
    standards: MeasurementStandards | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """silver/labs rows and rejections (stage "labs") from bronze LB rows.

    subjects: (USUBJID, RFSTDT) for LBDY. standards: None uses the packaged LB mapping and
    units. Exact duplicate rows are rejected except the first; unknown test, unknown unit,
    unconvertible pair, basis mismatch (D-dimer FEU/DDU), empty or non-numeric result or range
    reject the row with the reason. Censored results ("<0.5") keep the operator in LBSTRESC
    (converted, e.g. "<5") with LBSTRESN null. Every input row is in exactly one output.
    """
    require_columns(bronze_lb, ["USUBJID", "LBORRES", "LBORRESU", *LINEAGE_COLUMNS], argument="bronze_lb")
    if "LBTEST" not in bronze_lb.columns and "LBTESTCD" not in bronze_lb.columns:
        raise ValueError("bronze_lb: needs LBTEST or LBTESTCD")
    frame = with_sdtm_columns(
        bronze_lb, ["USUBJID", "LBTEST", "LBTESTCD", "LBORRES", "LBORRESU", "LBORNRLO", "LBORNRHI", "LBDT", "VISIT"]
    )
    frame, duplicates = split_exact_duplicates(frame, stage="labs")
    frame, failed = derive_standardized(
        frame,
        test_columns=("LBTEST", "LBTESTCD"),
        result="LBORRES",
        unit="LBORRESU",
        range_columns=("LBORNRLO", "LBORNRHI"),
        standards=standards or default_standards("LB"),
        allow_censored=True,
    )
    labs = with_study_day(frame, subjects, date="LBDT", day="LBDY").select(
        "USUBJID",
        pl.coalesce("LBTEST", "LBTESTCD").alias("LBTEST"),
        pl.col("_code").alias("LBTESTCD"),
        pl.col("_loinc").alias("LBLOINC"),
        "LBORRES",
        "LBORRESU",
        "LBORNRLO",
        "LBORNRHI",
        pl.col("_stresc").alias("LBSTRESC"),
        pl.col("_stresn").alias("LBSTRESN"),
        pl.col("_stunit").alias("LBSTRESU"),
        pl.col("_stnrlo").alias("LBSTNRLO"),
        pl.col("_stnrhi").alias("LBSTNRHI"),
        pl.col("_nrind").alias("LBNRIND"),
        "LBDT",
        "LBDY",
        "VISIT",
        *LINEAGE_COLUMNS,
    )
    return labs, pl.concat([duplicates, rejections_from(failed, "_reason", stage="labs")])
