"""Silver tables for the non-lab domains: subjects, exposure, visits, 6MWD, lung function, AEs."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from trialake.clinical.common import (
    LINEAGE_COLUMNS,
    join_reasons,
    presence,
    rejections_from,
    require_columns,
    split_exact_duplicates,
    split_rejected,
    with_sdtm_columns,
    with_study_day,
)
from trialake.clinical.mapping import normalize_test_name
from trialake.clinical.numbers import with_number
from trialake.clinical.standardize import MeasurementStandards, default_standards, derive_standardized

__all__ = [
    "REQUIRED_ONE_OF",
    "VARIABLE_ROLES",
    "AdverseEventConfig",
    "absent_variables",
    "missing_required_variables",
    "SubjectConfig",
    "derive_adverse_events",
    "derive_exposure",
    "derive_lung_function",
    "derive_sixmwt",
    "derive_subjects",
    "derive_visits",
]

_MARK = pl.col("decimal_mark")

Role = Literal["Required", "Expected", "Permissible"]


def _roles(required: tuple[str, ...], expected: tuple[str, ...], permissible: tuple[str, ...]) -> dict[str, Role]:
    return {**dict.fromkeys(permissible, "Permissible"), **dict.fromkeys(expected, "Expected"),
            **dict.fromkeys(required, "Required")}


_IDENTIFIERS = ("STUDYID", "DOMAIN", "SITEID", "VISITNUM", "VISIT", "EPOCH")
#: SDTM variable roles per domain, as this lake applies them (SDTMIG v3.4 core designations, adapted):
#:
#: - Required: a file of the domain without the variable is rejected as a whole, naming it: no row
#:   can be used without it.
#: - Expected: when no file of the domain sends it, the checks that need it are skipped and the run
#:   summary says so; the rows are published.
#: - Permissible: used when sent, nothing said when not.
#:
#: Departures from the SDTMIG, because the lake derives or does without some variables and cannot
#: use a row without others: identifiers (STUDYID, DOMAIN, --SEQ, SUBJID) are Permissible, since the
#: file name gives the domain and the subject key the subject (a row names its subject by USUBJID or
#: by SITEID + PATIENT_ID, checked when the file is read); SEX, COUNTRY, ACTARMCD and ACTARM
#: (Required in the SDTMIG) are Expected; the date of a finding or event and a result's unit
#: (Expected in the SDTMIG) are Required, because results are placed in time and standardized.
VARIABLE_ROLES: Mapping[str, Mapping[str, Role]] = {
    "DM": _roles(
        required=("ARMCD", "ARM"),
        expected=("RFSTDTC", "RFENDTC", "RFICDTC", "SEX", "AGE", "AGEU", "ACTARMCD", "ACTARM", "COUNTRY", "RACE", "SITEID"),
        permissible=(*_IDENTIFIERS, "RFXSTDTC", "RFXENDTC", "DTHFL", "ETHNIC"),
    ),
    "EX": _roles(
        required=("EXTRT", "EXSTDTC"),
        expected=("EXDOSE", "EXDOSU", "EXENDTC"),
        permissible=(*_IDENTIFIERS, "EXSEQ", "EXDOSFRM", "EXDOSFRQ", "EXROUTE"),
    ),
    "SV": _roles(required=("VISITNUM", "SVSTDTC"), expected=("VISIT", "SVENDTC"), permissible=("STUDYID", "DOMAIN", "SITEID", "EPOCH")),
    "LB": _roles(
        required=("LBORRES", "LBORRESU", "LBDTC"),
        expected=("LBORNRLO", "LBORNRHI", "LBTESTCD", "LBTEST"),
        permissible=(*_IDENTIFIERS, "LBSEQ", "LBCAT", "LBSCAT", "LBSPEC", "LBMETHOD", "LBLOINC", "LBSTAT", "LBFAST"),
    ),
    "FT": _roles(
        required=("FTORRES", "FTORRESU", "FTDTC"),
        expected=("FTTESTCD", "FTTEST"),
        permissible=(*_IDENTIFIERS, "FTSEQ", "FTSTAT"),
    ),
    "RE": _roles(
        required=("REORRES", "REORRESU", "REDTC"),
        expected=("RETESTCD", "RETEST"),
        permissible=(*_IDENTIFIERS, "RESEQ", "RESTAT"),
    ),
    "AE": _roles(
        required=("AEDECOD", "AESTDTC"),
        expected=("AESER", "AEREL", "AEENDTC", "AEBODSYS"),
        permissible=(*_IDENTIFIERS, "AESEQ", "AESOC", "AEPTCD", "AELLT", "AESEV", "AETOXGR", "AEACN", "AEOUT"),
    ),
}
#: Groups of which a file must send at least one (the test's code or its name: either identifies it).
REQUIRED_ONE_OF: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "LB": (("LBTESTCD", "LBTEST"),), "FT": (("FTTESTCD", "FTTEST"),), "RE": (("RETESTCD", "RETEST"),),
}


def missing_required_variables(domain: str, columns: Collection[str]) -> list[str]:
    """The Required variables (and one-of groups, as ``A or B``) of ``domain`` not in ``columns``."""
    roles = VARIABLE_ROLES.get(domain, {})
    missing = [v for v, role in roles.items() if role == "Required" and v not in columns]
    groups = REQUIRED_ONE_OF.get(domain, ())
    return missing + [" or ".join(group) for group in groups if not set(group) & set(columns)]


def absent_variables(domain: str, columns: Collection[str], role: Role) -> list[str]:
    """The variables of ``role`` in ``domain`` that are not in ``columns`` (bronze: a date variable
    --DTC is there as --DTC and --DT), in the order of the roles table."""
    return [v for v, r in VARIABLE_ROLES.get(domain, {}).items() if r == role and v not in columns]


@dataclass(frozen=True)
class SubjectConfig:
    """sex: accepted SEX spellings (matched case- and accent-insensitively) -> SDTM SEX."""

    sex: Mapping[str, str] = field(
        default_factory=lambda: {
            "M": "M", "MALE": "M", "MAN": "M", "H": "M", "HOMME": "M", "MASCULIN": "M",
            "F": "F", "FEMALE": "F", "WOMAN": "F", "FEMME": "F", "FEMININ": "F",
            "U": "U", "UNKNOWN": "U", "UNDIFFERENTIATED": "UNDIFFERENTIATED",
        }
    )


@dataclass(frozen=True)
class AdverseEventConfig:
    """Accepted spellings (matched case-, accent-, '-'/'_'-insensitively) -> standard value.

    severity: AESEV -> MILD|MODERATE|SEVERE; grade_severity: AETOXGR (CTCAE grade) -> severity,
    used when AESEV is empty (grade 1 mild, 2 moderate, 3-5 severe, the usual CTCAE reading);
    seriousness: AESER -> Y|N; relatedness: AEREL -> standard causality term.
    """

    severity: Mapping[str, str] = field(
        default_factory=lambda: {
            "MILD": "MILD", "LEGER": "MILD", "LEVE": "MILD", "MODERATE": "MODERATE", "MODERE": "MODERATE",
            "MODERADO": "MODERATE", "SEVERE": "SEVERE", "GRAVE": "SEVERE",
        }
    )
    grade_severity: Mapping[str, str] = field(
        default_factory=lambda: {"1": "MILD", "2": "MODERATE", "3": "SEVERE", "4": "SEVERE", "5": "SEVERE"}
    )
    seriousness: Mapping[str, str] = field(
        default_factory=lambda: {"Y": "Y", "YES": "Y", "OUI": "Y", "SI": "Y", "TRUE": "Y", "1": "Y",
                                 "N": "N", "NO": "N", "NON": "N", "FALSE": "N", "0": "N"}
    )
    relatedness: Mapping[str, str] = field(
        default_factory=lambda: {
            "RELATED": "RELATED", "Y": "RELATED", "YES": "RELATED", "DEFINITELY RELATED": "RELATED",
            "PROBABLY RELATED": "PROBABLY RELATED", "PROBABLE": "PROBABLY RELATED",
            "POSSIBLY RELATED": "POSSIBLY RELATED", "POSSIBLE": "POSSIBLY RELATED",
            "UNLIKELY RELATED": "UNLIKELY RELATED", "UNLIKELY": "UNLIKELY RELATED",
            "NOT RELATED": "NOT RELATED", "UNRELATED": "NOT RELATED", "N": "NOT RELATED", "NO": "NOT RELATED",
        }
    )


def derive_exposure(bronze_ex: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """silver/exposure and rejections (stage "clinical_ex"). EXSTDY counts from the subject's
    first accepted EXSTDT (the first-dose date). Rejects: empty EXTRT, missing/partial EXSTDTC,
    non-numeric EXDOSE, exact duplicates."""
    require_columns(bronze_ex, ["USUBJID", "EXTRT", "EXSTDT", *LINEAGE_COLUMNS], argument="bronze_ex")
    frame = with_sdtm_columns(bronze_ex, ["USUBJID", "EXTRT", "EXSTDT", "EXDOSE", "EXDOSU", "EXENDT", "decimal_mark"])
    frame, duplicates = split_exact_duplicates(frame, stage="clinical_ex")
    frame = with_number(frame, "EXDOSE", decimal_mark=_MARK.fill_null("."), alias="_dose").with_columns(
        join_reasons(
            _empty_reason("EXTRT"),
            _missing_date_reason("EXSTDT"),
            _not_number_reason("EXDOSE", "_dose"),
        ).alias("_reason")
    )
    frame, rejected = split_rejected(frame, "_reason", stage="clinical_ex")
    first_dose = frame.group_by("USUBJID").agg(pl.col("EXSTDT").min().alias("RFSTDT"))
    exposure = with_study_day(frame, first_dose, date="EXSTDT", day="EXSTDY").select(
        "USUBJID", "EXTRT", pl.col("_dose").alias("EXDOSE"), "EXDOSU", "EXSTDT", "EXSTDY", "EXENDT", *LINEAGE_COLUMNS
    )
    return exposure, pl.concat([duplicates, rejected])


def derive_subjects(
    bronze_dm: pl.DataFrame, *, exposure: pl.DataFrame, config: SubjectConfig = SubjectConfig()
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """silver/subjects and rejections (stage "clinical_dm"), one row per USUBJID.

    exposure: silver/exposure; RFSTDT is the first EXSTDT when the subject has exposure, else
    DM RFSTDTC; RFENDT the last EXENDT/EXSTDT, else DM RFENDTC. Rejects: exact duplicates, a
    second row for a USUBJID, AGE not a whole number, SEX not in ``config.sex``.
    """
    require_columns(bronze_dm, ["USUBJID", *LINEAGE_COLUMNS], argument="bronze_dm")
    require_columns(exposure, ["USUBJID", "EXSTDT", "EXENDT"], argument="exposure")
    optional = ["USUBJID", "STUDYID", "SITEID", "SEX", "AGE", "AGEU", "RACE", "ARMCD", "ARM", "ACTARMCD", "ACTARM",
                "RFICDT", "RFSTDT", "RFENDT", "decimal_mark"]
    frame = with_sdtm_columns(bronze_dm, optional)
    frame, duplicates = split_exact_duplicates(frame, stage="clinical_dm")
    frame = with_number(frame, "AGE", decimal_mark=_MARK.fill_null("."), alias="_age")
    frame = frame.sort("source_sha256", "source_row").with_columns(
        _normalized(frame, "SEX", config.sex).alias("_sex"),
        pl.struct("source_sha256", "source_row").first().over("USUBJID").alias("_first"),
        (pl.int_range(pl.len()).over("USUBJID") > 0).alias("_repeat"),
    )
    frame = frame.with_columns(
        join_reasons(
            pl.when(pl.col("_repeat")).then(
                pl.format(
                    "USUBJID appears more than once in DM (kept row {})", pl.col("_first").struct.field("source_row")
                )
            ),
            _not_number_reason("AGE", "_age"),
            pl.when(pl.col("_age").is_not_null() & (pl.col("_age") != pl.col("_age").round(0)))
            .then(pl.lit("AGE is not a whole number")),
            pl.when(pl.col("SEX").is_not_null() & pl.col("_sex").is_null())
            .then(pl.lit("SEX is not a recognised value")),
        ).alias("_reason")
    )
    frame, rejected = split_rejected(frame, "_reason", stage="clinical_dm")
    doses = exposure.group_by("USUBJID").agg(
        pl.col("EXSTDT").min().alias("_first_dose"), pl.coalesce("EXENDT", "EXSTDT").max().alias("_last_dose")
    )
    subjects = frame.join(doses, on="USUBJID", how="left").select(
        "USUBJID", "STUDYID", "SITEID", pl.col("_sex").alias("SEX"), pl.col("_age").cast(pl.Int64).alias("AGE"),
        "AGEU", "RACE", "ARMCD", "ARM", "ACTARMCD", "ACTARM", "RFICDT",
        pl.coalesce("_first_dose", "RFSTDT").alias("RFSTDT"),
        pl.coalesce("_last_dose", "RFENDT").alias("RFENDT"),
        *LINEAGE_COLUMNS,
    )
    return subjects, pl.concat([duplicates, rejected])


def derive_visits(bronze_sv: pl.DataFrame, *, subjects: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """silver/visits and rejections (stage "clinical_sv"). Rejects: exact duplicates, VISITNUM
    not a number, empty VISIT (when the export has the variable), missing or partial SVSTDTC."""
    require_columns(bronze_sv, ["USUBJID", "VISITNUM", "SVSTDT", *LINEAGE_COLUMNS], argument="bronze_sv")
    visit_sent = "VISIT" in bronze_sv.columns  # Expected: without it visits are known by number only
    frame = with_sdtm_columns(bronze_sv, ["USUBJID", "VISITNUM", "VISIT", "SVSTDT", "decimal_mark"])
    frame, duplicates = split_exact_duplicates(frame, stage="clinical_sv")
    frame = with_number(frame, "VISITNUM", decimal_mark=_MARK.fill_null("."), alias="_visitnum").with_columns(
        join_reasons(
            _not_number_reason("VISITNUM", "_visitnum"),
            pl.when(pl.col("VISITNUM").is_null()).then(pl.lit("VISITNUM is empty")),
            _empty_reason("VISIT") if visit_sent else pl.lit(None, pl.String),
            _missing_date_reason("SVSTDT"),
        ).alias("_reason")
    )
    frame, rejected = split_rejected(frame, "_reason", stage="clinical_sv")
    visits = with_study_day(frame, subjects, date="SVSTDT", day="SVSTDY").select(
        "USUBJID", pl.col("_visitnum").alias("VISITNUM"), "VISIT", "SVSTDT", "SVSTDY", *LINEAGE_COLUMNS
    )
    return visits, pl.concat([duplicates, rejected])


def derive_sixmwt(
    bronze_ft: pl.DataFrame, *, subjects: pl.DataFrame, standards: MeasurementStandards | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """silver/sixmwt (distance in m) and rejections (stage "clinical_ft"). standards: None uses the
    packaged FT mapping; FT tests not in it, units not convertible to m and non-numeric or
    censored results are rejected with the reason."""
    frame, rejected = _derive_function_tests(bronze_ft, "FT", subjects, standards or default_standards("FT"))
    sixmwt = frame.select(
        "USUBJID", pl.col("_code").alias("FTTESTCD"), pl.col("_stresn").alias("FTSTRESN"),
        pl.col("_stunit").alias("FTSTRESU"), "FTDT", "FTDY", "VISIT", *LINEAGE_COLUMNS,
    )
    return sixmwt, rejected


def derive_lung_function(
    bronze_re: pl.DataFrame, *, subjects: pl.DataFrame, standards: MeasurementStandards | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """silver/lung_function and rejections (stage "clinical_re"): FVC and MVC in L, DLCO in
    mmol/min/kPa (mL/min/mmHg converted, see re_mapping.yaml). standards: None uses the packaged
    RE mapping."""
    frame, rejected = _derive_function_tests(bronze_re, "RE", subjects, standards or default_standards("RE"))
    lung = frame.select(
        "USUBJID", pl.col("_code").alias("RETESTCD"), pl.col("_name").alias("RETEST"),
        pl.col("_stresn").alias("RESTRESN"), pl.col("_stunit").alias("RESTRESU"), "REDT", "REDY", "VISIT",
        *LINEAGE_COLUMNS,
    )
    return lung, rejected


def derive_adverse_events(
    bronze_ae: pl.DataFrame, *, subjects: pl.DataFrame, config: AdverseEventConfig = AdverseEventConfig()
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """silver/adverse_events and rejections (stage "clinical_ae"). Severity from AESEV, else from
    AETOXGR; seriousness Y/N; relatedness standardized (may be empty). Rejects: exact
    duplicates, empty AEDECOD, missing/partial AESTDTC, unrecognised severity, seriousness or
    relatedness (the value is named). An export without AESEV and AETOXGR, or without AESER
    (Expected/Permissible variables), leaves severity or seriousness empty instead."""
    require_columns(bronze_ae, ["USUBJID", "AEDECOD", "AESTDT", *LINEAGE_COLUMNS], argument="bronze_ae")
    severity_sent = bool({"AESEV", "AETOXGR"} & set(bronze_ae.columns))
    seriousness_sent = "AESER" in bronze_ae.columns
    frame = with_sdtm_columns(
        bronze_ae, ["USUBJID", "AEDECOD", "AEBODSYS", "AESEV", "AETOXGR", "AESER", "AEREL", "AESTDT", "AEENDT"]
    )
    frame, duplicates = split_exact_duplicates(frame, stage="clinical_ae")
    severity = pl.coalesce(
        _normalized(frame, "AESEV", config.severity), _normalized(frame, "AETOXGR", config.grade_severity)
    )
    frame = frame.with_columns(
        severity.alias("_sev"),
        _normalized(frame, "AESER", config.seriousness).alias("_ser"),
        _normalized(frame, "AEREL", config.relatedness).alias("_rel"),
    ).with_columns(
        join_reasons(
            _empty_reason("AEDECOD"),
            _missing_date_reason("AESTDT"),
            pl.when(pl.col("_sev").is_null() & pl.lit(severity_sent)).then(
                pl.format("severity not recognised (AESEV {}, AETOXGR {})", presence("AESEV"), presence("AETOXGR"))
            ),
            pl.when(pl.col("_ser").is_null() & pl.lit(seriousness_sent)).then(
                pl.format("AESER {} is not Y or N", presence("AESER"))
            ),
            pl.when(pl.col("AEREL").is_not_null() & pl.col("_rel").is_null())
            .then(pl.lit("AEREL is not a recognised causality")),
        ).alias("_reason")
    )
    frame, rejected = split_rejected(frame, "_reason", stage="clinical_ae")
    events = with_study_day(frame, subjects, date="AESTDT", day="AESTDY").select(
        "USUBJID", pl.col("AEDECOD").str.strip_chars(), "AEBODSYS", pl.col("_sev").alias("AESEV"),
        pl.col("_ser").alias("AESER"), pl.col("_rel").alias("AEREL"), "AESTDT", "AESTDY", "AEENDT", *LINEAGE_COLUMNS,
    )
    return events, pl.concat([duplicates, rejected])


def _derive_function_tests(
    bronze: pl.DataFrame, domain: str, subjects: pl.DataFrame, standards: MeasurementStandards
) -> tuple[pl.DataFrame, pl.DataFrame]:
    prefix, stage = domain, f"clinical_{domain.lower()}"
    argument = f"bronze_{domain.lower()}"
    require_columns(bronze, ["USUBJID", f"{prefix}ORRES", f"{prefix}ORRESU", *LINEAGE_COLUMNS], argument=argument)
    frame = with_sdtm_columns(
        bronze,
        ["USUBJID", *[f"{prefix}{v}" for v in ("TESTCD", "TEST", "ORRES", "ORRESU", "DT")], "VISIT"],
    )
    frame, duplicates = split_exact_duplicates(frame, stage=stage)
    frame, failed = derive_standardized(
        frame,
        test_columns=(f"{prefix}TESTCD", f"{prefix}TEST"),
        result=f"{prefix}ORRES",
        unit=f"{prefix}ORRESU",
        range_columns=None,
        standards=standards,
        allow_censored=False,
    )
    frame = with_study_day(frame, subjects, date=f"{prefix}DT", day=f"{prefix}DY")
    return frame, pl.concat([duplicates, rejections_from(failed, "_reason", stage=stage)])


def _normalized(frame: pl.DataFrame, column: str, spellings: Mapping[str, str]) -> pl.Expr:
    """Standard value of ``column`` via ``spellings`` (case/accent/'-'/'_' insensitive), null if
    unknown; the lookup is built from the column's distinct values."""
    table = {_spelling_key(k): v for k, v in spellings.items()}
    values = frame.get_column(column).drop_nulls().unique().to_list()
    lookup = {value: standard for value in values if (standard := table.get(_spelling_key(value))) is not None}
    return pl.col(column).replace_strict(lookup, default=None, return_dtype=pl.String)


def _spelling_key(value: str) -> str:
    return normalize_test_name(value.replace("-", " ").replace("_", " ")).upper()


def _empty_reason(column: str) -> pl.Expr:
    return pl.when(pl.col(column).str.strip_chars().fill_null("") == "").then(pl.lit(f"{column} is empty"))


def _missing_date_reason(date_column: str) -> pl.Expr:
    return pl.when(pl.col(date_column).is_null()).then(pl.lit(f"{date_column}C is missing or not a complete date"))


def _not_number_reason(column: str, parsed: str) -> pl.Expr:
    return pl.when(pl.col(column).is_not_null() & pl.col(parsed).is_null()).then(pl.lit(f"{column} is not a number"))
