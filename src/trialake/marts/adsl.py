"""ADSL: one row per subject with treatment variables and population flags.

Rules:

- ``TRT01P`` is the planned arm (DM ``ARM``) for subjects randomized to a configured arm.
- ``TRTSDT`` is the first EX ``EXSTDT``; ``TRTEDT`` the last ``EXENDT`` (``EXSTDT`` where
  EXENDT is null or the column is absent, as in tables.md). A subject counts as dosed when EX
  holds at least one record with a start date, whatever the dose (a placebo infusion may carry
  EXDOSE 0).
- ``TRT01A`` is the actual arm (DM ``ACTARM``, falling back to ``ARM`` when ACTARM is null) for
  dosed subjects, null for subjects never dosed.
- ``RANDFL``/``ITTFL = "Y"`` when ``ARMCD`` is one of the configured arms (intention to treat =
  all randomized subjects), else ``"N"``.
- ``SAFFL = "Y"`` when the subject was dosed, else ``"N"``.
- ``FASFL`` (added by :func:`derive_fasfl` once ADCT exists) ``= "Y"`` when the subject is in
  ITT and SAFFL and has a baseline (``ABLFL``) and at least one post-baseline analysis value
  (``ANL01FL`` in a later window) of ``config.fas_paramcd`` (default LESPCT), else ``"N"``.
"""
from __future__ import annotations

import polars as pl

from trialake.marts.checks import check_columns, check_unique
from trialake.marts.config import AnalysisConfig

ADSL_COLUMNS = (
    "STUDYID", "USUBJID", "SITEID", "AGE", "AGEU", "SEX", "ARMCD", "ARM", "ACTARMCD", "ACTARM",
    "TRT01P", "TRT01A", "TRTSDT", "TRTEDT", "RANDFL", "ITTFL", "SAFFL",
)
_SUBJECT_COLUMNS = {
    "STUDYID": "text", "USUBJID": "text", "SITEID": "text", "AGE": "number", "AGEU": "text",
    "SEX": "text", "ARMCD": "text", "ARM": "text", "ACTARMCD": "text", "ACTARM": "text",
}


def _yes_no(condition: pl.Expr) -> pl.Expr:
    return pl.when(condition).then(pl.lit("Y")).otherwise(pl.lit("N"))


def derive_adsl(subjects: pl.DataFrame, exposure: pl.DataFrame, *, config: AnalysisConfig) -> pl.DataFrame:
    """ADSL from silver/subjects and silver/exposure (rules in the module docstring); no FASFL yet."""
    check_columns(subjects, "subjects", _SUBJECT_COLUMNS)
    check_columns(exposure, "exposure", {"USUBJID": "text", "EXSTDT": "date"})
    check_unique(subjects, "subjects", ["USUBJID"])
    orphans = exposure.join(subjects, on="USUBJID", how="anti")["USUBJID"].unique().sort()
    if orphans.len():
        raise ValueError(f"exposure: {orphans.len()} subject(s) not in subjects, e.g. {orphans[0]!r}")
    last = pl.coalesce("EXENDT", "EXSTDT") if "EXENDT" in exposure.columns else pl.col("EXSTDT")
    dosing = (
        exposure.filter(pl.col("EXSTDT").is_not_null())
        .group_by("USUBJID")
        .agg(TRTSDT=pl.col("EXSTDT").min(), TRTEDT=last.max())
    )
    randomized = pl.col("ARMCD").is_in([arm.armcd for arm in config.arms])
    dosed = pl.col("TRTSDT").is_not_null()
    return (
        subjects.join(dosing, on="USUBJID", how="left")
        .with_columns(
            AGE=pl.col("AGE").cast(pl.Int64),
            TRT01P=pl.when(randomized).then(pl.col("ARM")),
            TRT01A=pl.when(dosed).then(pl.coalesce("ACTARM", "ARM")),
            RANDFL=_yes_no(randomized),
            ITTFL=_yes_no(randomized),
            SAFFL=_yes_no(dosed),
        )
        .select(ADSL_COLUMNS)
        .sort("USUBJID")
    )


def derive_fasfl(adsl: pl.DataFrame, adct: pl.DataFrame, *, config: AnalysisConfig) -> pl.DataFrame:
    """Add FASFL to ADSL from ADCT's baseline and post-baseline analysis records of config.fas_paramcd."""
    check_columns(adsl, "adsl", {"USUBJID": "text", "ITTFL": "text", "SAFFL": "text"})
    check_columns(adct, "adct", {"USUBJID": "text", "PARAMCD": "text", "ABLFL": None, "ANL01FL": None, "AVISITN": None})
    analysed = adct.filter(pl.col("PARAMCD") == config.fas_paramcd, pl.col("ANL01FL") == "Y")
    evaluable = analysed.group_by("USUBJID").agg(
        _base=(pl.col("ABLFL") == "Y").any(),
        _post=(pl.col("AVISITN") > config.baseline.avisitn).any(),
    )
    in_fas = (pl.col("ITTFL") == "Y") & (pl.col("SAFFL") == "Y") & pl.col("_base") & pl.col("_post")
    return (
        adsl.drop("FASFL", strict=False)
        .join(evaluable, on="USUBJID", how="left")
        .with_columns(FASFL=_yes_no(in_fas.fill_null(False)))
        .drop("_base", "_post")
    )
