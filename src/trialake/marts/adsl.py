"""ADSL: one row per subject with treatment variables, disposition, deaths and population flags.

Rules (admiral's ADSL template where it has one):

- ``SUBJID``: USUBJID without its ``STUDYID-`` and ``SITEID-`` prefixes (SDTM builds USUBJID
  by joining them to SUBJID), so the site's own subject number never has to leave restricted/.
- ``AGEGR1``/``AGEGR1N``: age group from ``config.age_groups`` (default ``<65``, ``>=65``).
- ``TRT01P`` is the planned arm (DM ``ARM``) for subjects randomized to a configured arm;
  ``TRT01PN`` 1 for the treatment arm, 2 for the control arm.
- ``TRTSDT`` is the first EX ``EXSTDT``; ``TRTEDT`` the last ``EXENDT`` (``EXSTDT`` where
  EXENDT is null or the column is absent). A subject counts as dosed when EX holds at least one
  record with a start date, whatever the dose (a placebo infusion may carry EXDOSE 0).
  ``TRTDURD = TRTEDT - TRTSDT + 1`` (admiral's ``derive_var_trtdurd``).
- ``TRT01A`` is the actual arm (DM ``ACTARM``, falling back to ``ARM`` when ACTARM is null) for
  dosed subjects, null for subjects never dosed; ``TRT01AN`` as TRT01PN (null for another arm).
- ``RANDDT``: the date of the DS record ``DSDECOD = "RANDOMIZED"``.
- ``EOSDT``/``EOSSTT``/``DCSREAS`` from the DS record with ``DSCAT = "DISPOSITION EVENT"``:
  COMPLETED, DISCONTINUED (``DCSREAS`` = its DSDECOD, e.g. DEATH, WITHDRAWAL BY SUBJECT) or,
  without one, ONGOING (admiral's ``format_eosstt``).
- ``DTHFL = "Y"`` when DM says the subject died (DTHFL or a death date) or DS has a DEATH
  disposition; ``DTHDT`` the death date (DM DTHDTC, else the DS DEATH date), a partial date
  imputed to the first possible day (``DTHDTF`` says what was imputed).
- ``RANDFL``/``ITTFL = "Y"`` when ``ARMCD`` is one of the configured arms (intention to treat =
  all randomized subjects, dosed or not), else ``"N"``.
- ``SAFFL = "Y"`` when the subject was dosed, else ``"N"``.
- ``FASFL`` and ``PPROTFL`` are added by :func:`derive_fasfl` once the efficacy marts exist:
  ``FASFL = "Y"`` for randomized, dosed subjects with a baseline value of any efficacy
  parameter (ICH E9: as close to ITT as possible; a subject whose one scan failed stays in);
  ``PPROTFL = "Y"`` for FAS subjects who received their randomized arm (ACTARMCD = ARMCD) in at
  least ``config.per_protocol_min_doses`` dosing records.
- ``ADY`` of a subject never dosed counts from RANDDT (see :mod:`trialake.marts.bds`).
"""
from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from trialake.marts.checks import check_columns, check_unique
from trialake.marts.config import AnalysisConfig
from trialake.marts.dates import imputed_date

ADSL_COLUMNS = (
    "STUDYID", "USUBJID", "SUBJID", "SITEID", "AGE", "AGEU", "AGEGR1", "AGEGR1N", "SEX", "RACE", "ETHNIC",
    "ARMCD", "ARM", "ACTARMCD", "ACTARM", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "RANDDT", "TRTSDT", "TRTEDT",
    "TRTDURD", "EOSDT", "EOSSTT", "DCSREAS", "DTHFL", "DTHDT", "DTHDTF", "RANDFL", "ITTFL", "SAFFL",
)
_SUBJECT_COLUMNS = {
    "STUDYID": "text", "USUBJID": "text", "SITEID": "text", "AGE": "number", "AGEU": "text",
    "SEX": "text", "ARMCD": "text", "ARM": "text", "ACTARMCD": "text", "ACTARM": "text",
}
_OPTIONAL_SUBJECT_COLUMNS = ("RACE", "ETHNIC", "DTHFL", "DTHDTC")
_DISPOSITION_COLUMNS = {"USUBJID": "text", "DSCAT": "text", "DSDECOD": "text", "DSSTDTC": "text"}
EMPTY_DISPOSITION = pl.DataFrame(schema={"USUBJID": pl.String, "DSCAT": pl.String, "DSDECOD": pl.String,
                                         "DSSTDTC": pl.String})


def _yes_no(condition: pl.Expr) -> pl.Expr:
    return pl.when(condition).then(pl.lit("Y")).otherwise(pl.lit("N"))


def derive_adsl(
    subjects: pl.DataFrame,
    exposure: pl.DataFrame,
    disposition: pl.DataFrame = EMPTY_DISPOSITION,
    *,
    config: AnalysisConfig,
) -> pl.DataFrame:
    """ADSL from silver/subjects, silver/exposure and silver/disposition (module rules); no
    FASFL/PPROTFL yet. RACE, ETHNIC, DTHFL and DTHDTC are optional subject columns."""
    check_columns(subjects, "subjects", _SUBJECT_COLUMNS)
    check_columns(exposure, "exposure", {"USUBJID": "text", "EXSTDT": "date"})
    check_columns(disposition, "disposition", _DISPOSITION_COLUMNS)
    check_unique(subjects, "subjects", ["USUBJID"])
    orphans = exposure.join(subjects, on="USUBJID", how="anti")["USUBJID"].unique().sort()
    if orphans.len():
        raise ValueError(f"exposure: {orphans.len()} subject(s) not in subjects, e.g. {orphans[0]!r}")
    subjects = subjects.with_columns(
        pl.lit(None, pl.String).alias(c) for c in _OPTIONAL_SUBJECT_COLUMNS if c not in subjects.columns
    )
    last = pl.coalesce("EXENDT", "EXSTDT") if "EXENDT" in exposure.columns else pl.col("EXSTDT")
    dosing = (
        exposure.filter(pl.col("EXSTDT").is_not_null())
        .group_by("USUBJID")
        .agg(TRTSDT=pl.col("EXSTDT").min(), TRTEDT=last.max())
    )
    randomized = pl.col("ARMCD").is_in([arm.armcd for arm in config.arms])
    dosed = pl.col("TRTSDT").is_not_null()
    died = (pl.col("DTHFL") == "Y") | pl.col("DTHDTC").is_not_null() | pl.col("_ds_death").is_not_null()
    death_date, death_flag = imputed_date("_death_dtc", imputation="first")
    adsl = (
        subjects.join(dosing, on="USUBJID", how="left")
        .join(_disposition(disposition), on="USUBJID", how="left")
        .with_columns(_death_dtc=pl.coalesce("DTHDTC", "_ds_death"))
        .with_columns(
            SUBJID=_subjid(),
            AGE=pl.col("AGE").cast(pl.Int64),
            AGEGR1=_age_group(config, label=True),
            AGEGR1N=_age_group(config, label=False),
            TRT01P=pl.when(randomized).then(pl.col("ARM")),
            TRT01PN=_arm_number(pl.when(randomized).then(pl.col("ARM")), config),
            TRT01A=pl.when(dosed).then(pl.coalesce("ACTARM", "ARM")),
            TRT01AN=_arm_number(pl.when(dosed).then(pl.coalesce("ACTARM", "ARM")), config),
            TRTDURD=((pl.col("TRTEDT") - pl.col("TRTSDT")).dt.total_days() + 1).cast(pl.Int64),
            EOSSTT=pl.when(pl.col("_eos_decod").is_null()).then(pl.lit("ONGOING"))
            .when(pl.col("_eos_decod") == "COMPLETED").then(pl.lit("COMPLETED"))
            .when(pl.col("_eos_decod") != "SCREEN FAILURE").then(pl.lit("DISCONTINUED")),
            DCSREAS=pl.when(~pl.col("_eos_decod").is_in(["COMPLETED", "SCREEN FAILURE"])).then(pl.col("_eos_decod")),
            DTHFL=pl.when(died.fill_null(False)).then(pl.lit("Y")),
            DTHDT=death_date,
            DTHDTF=death_flag,
            RANDFL=_yes_no(randomized),
            ITTFL=_yes_no(randomized),
            SAFFL=_yes_no(dosed),
        )
    )
    return adsl.select(ADSL_COLUMNS).sort("USUBJID")


def _disposition(disposition: pl.DataFrame) -> pl.DataFrame:
    """Per subject: RANDDT, the end-of-study event (EOSDT, its DSDECOD) and a DS death date text."""
    dated = disposition.with_columns(_date=imputed_date("DSSTDTC", imputation="first")[0]).sort("USUBJID", "_date")
    randomization = dated.filter(pl.col("DSDECOD") == "RANDOMIZED").group_by("USUBJID").agg(RANDDT=pl.col("_date").first())
    end = dated.filter(pl.col("DSCAT") == "DISPOSITION EVENT").group_by("USUBJID").agg(
        EOSDT=pl.col("_date").last(), _eos_decod=pl.col("DSDECOD").last(),
        _ds_death=pl.col("DSSTDTC").filter(pl.col("DSDECOD") == "DEATH").first(),
    )
    subjects = disposition.select("USUBJID").unique()
    return subjects.join(randomization, on="USUBJID", how="left").join(end, on="USUBJID", how="left").with_columns(
        pl.col("RANDDT").cast(pl.Date), pl.col("EOSDT").cast(pl.Date), pl.col("_eos_decod").cast(pl.String),
        pl.col("_ds_death").cast(pl.String),
    )


def _subjid() -> pl.Expr:
    """USUBJID without the STUDYID- and SITEID- prefixes it starts with."""
    without_study = pl.col("USUBJID").str.strip_prefix(pl.concat_str(pl.col("STUDYID").fill_null(""), pl.lit("-")))
    return without_study.str.strip_prefix(pl.concat_str(pl.col("SITEID").fill_null(""), pl.lit("-")))


def _age_group(config: AnalysisConfig, *, label: bool) -> pl.Expr:
    labels = config.age_group_labels()
    chain = pl.when(pl.col("AGE").is_null()).then(None)
    for number, (name, cut) in enumerate(zip(labels, config.age_groups), start=1):
        chain = chain.when(pl.col("AGE") < cut).then(pl.lit(name if label else number))
    return chain.otherwise(pl.lit(labels[-1] if label else len(labels))).cast(pl.String if label else pl.Int64)


def _arm_number(arm: pl.Expr, config: AnalysisConfig) -> pl.Expr:
    numbers = {config.treatment.arm: 1, config.control.arm: 2}
    return arm.replace_strict(numbers, default=None, return_dtype=pl.Int64)


def derive_fasfl(
    adsl: pl.DataFrame, efficacy: Sequence[pl.DataFrame], *, exposure: pl.DataFrame, config: AnalysisConfig
) -> pl.DataFrame:
    """Add FASFL and PPROTFL to ADSL (module rules) from the baseline records (ABLFL) of the
    efficacy BDS marts and the dosing records of silver/exposure."""
    check_columns(adsl, "adsl", {"USUBJID": "text", "ITTFL": "text", "SAFFL": "text", "ARMCD": "text", "ACTARMCD": "text"})
    check_columns(exposure, "exposure", {"USUBJID": "text", "EXSTDT": "date"})
    for number, mart in enumerate(efficacy):
        check_columns(mart, f"efficacy[{number}]", {"USUBJID": "text", "ABLFL": None})
    with_baseline = pl.concat([m.filter(pl.col("ABLFL") == "Y").select("USUBJID") for m in efficacy] or [adsl.head(0).select("USUBJID")])
    doses = exposure.filter(pl.col("EXSTDT").is_not_null()).group_by("USUBJID").agg(_doses=pl.len())
    in_fas = (pl.col("ITTFL") == "Y") & (pl.col("SAFFL") == "Y") & pl.col("USUBJID").is_in(with_baseline["USUBJID"].implode())
    per_protocol = in_fas & (pl.col("ACTARMCD") == pl.col("ARMCD")).fill_null(False) & (
        pl.col("_doses").fill_null(0) >= config.per_protocol_min_doses
    )
    return (
        adsl.drop("FASFL", "PPROTFL", strict=False)
        .join(doses, on="USUBJID", how="left")
        .with_columns(FASFL=_yes_no(in_fas), PPROTFL=_yes_no(per_protocol))
        .drop("_doses")
    )
