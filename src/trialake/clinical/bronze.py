"""Bronze clinical rows: subject mapped to USUBJID, allow-listed SDTM columns only, free text
cleaned (``cleaning.py``), ages over 89 capped, dates shifted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from trialake.clinical.cleaning import COLUMN_POLICIES, compute_phi_tokens, derive_clean_columns, identifying_columns
from trialake.clinical.common import join_reasons, split_rejected
from trialake.clinical.dates import PRECISION_DAY, dtc_parts, shifted_dtc
from trialake.clinical.readers import ClinicalFileError, ParsedFile
from trialake.freetext import CLINICAL_VOCABULARY

__all__ = ["BronzeConfig", "DEFAULT_DOMAIN_VARIABLES", "derive_bronze_clinical"]

_COMMON = ("STUDYID", "DOMAIN", "SITEID", "VISITNUM", "VISIT", "EPOCH")
# SDTM variables that may leave restricted/, per domain. Everything else (PATIENT_ID, names,
# BRTHDTC, SUBJID, INVNAM, verbatim free text such as AETERM or --COM, any site extra) is dropped.
DEFAULT_DOMAIN_VARIABLES: Mapping[str, frozenset[str]] = {
    "DM": frozenset(_COMMON + (
        "RFSTDTC", "RFENDTC", "RFXSTDTC", "RFXENDTC", "RFICDTC", "DTHFL", "AGE", "AGEU", "SEX", "RACE",
        "ETHNIC", "ARMCD", "ARM", "ACTARMCD", "ACTARM", "COUNTRY")),
    "EX": frozenset(_COMMON + (
        "EXSEQ", "EXTRT", "EXDOSE", "EXDOSU", "EXDOSFRM", "EXDOSFRQ", "EXROUTE", "EXSTDTC", "EXENDTC")),
    "SV": frozenset(_COMMON + ("SVSTDTC", "SVENDTC")),
    "LB": frozenset(_COMMON + (
        "LBSEQ", "LBTESTCD", "LBTEST", "LBCAT", "LBSCAT", "LBSPEC", "LBMETHOD", "LBLOINC", "LBORRES",
        "LBORRESU", "LBORNRLO", "LBORNRHI", "LBSTAT", "LBFAST", "LBDTC")),
    "FT": frozenset(_COMMON + (
        "FTSEQ", "FTTESTCD", "FTTEST", "FTORRES", "FTORRESU", "FTSTAT", "FTDTC")),
    "RE": frozenset(_COMMON + (
        "RESEQ", "RETESTCD", "RETEST", "REORRES", "REORRESU", "RESTAT", "REDTC")),
    "AE": frozenset(_COMMON + (
        "AESEQ", "AEDECOD", "AEBODSYS", "AESOC", "AEPTCD", "AELLT", "AESEV", "AETOXGR", "AESER", "AEREL",
        "AEACN", "AEOUT", "AESTDTC", "AEENDTC")),
}


#: The version of the bronze rules; a lake whose bronze was written by another version re-reads its exports.
BRONZE_VERSION = "2"


@dataclass(frozen=True)
class BronzeConfig:
    """domain_variables: allow-list of SDTM variables per domain code (default
    DEFAULT_DOMAIN_VARIABLES); a domain not listed is refused as a whole file.
    column_policies / vocabulary: how allow-listed text is cleaned (see ``cleaning.py``)."""

    domain_variables: Mapping[str, frozenset[str]] = field(default_factory=lambda: DEFAULT_DOMAIN_VARIABLES)
    column_policies: Mapping[str, str] = field(default_factory=lambda: COLUMN_POLICIES)
    vocabulary: frozenset[str] = CLINICAL_VOCABULARY


def derive_bronze_clinical(
    parsed: ParsedFile,
    *,
    key: pl.DataFrame,
    date_shift: pl.DataFrame | None,
    source_sha256: str,
    run_id: str,
    config: BronzeConfig = BronzeConfig(),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bronze rows and row rejections (stage "clinical_read") for one parsed file.

    key: subject key (SITEID, PATIENT_ID, USUBJID). A row names its subject by USUBJID or by
    SITEID + PATIENT_ID; a subject not in the key (or both given and disagreeing) is rejected.
    date_shift: (USUBJID, shift_days) to add to every date, or None when shifting is off.
    Each --DTC column becomes the shifted ISO text at its original precision, plus --DT
    (pl.Date, null for partial dates); a date that does not parse rejects the row.
    Values stay strings; ``decimal_mark`` carries the file's decimal separator for later parsing.
    Raises ClinicalFileError for an unsupported domain or no subject columns.
    """
    allowed = config.domain_variables.get(parsed.domain)
    if allowed is None:
        raise ClinicalFileError(f"domain {parsed.domain} is not supported")
    normalized_key = _normalized_key(key)
    frame = _with_subject(parsed, normalized_key)
    keep = [c for c in parsed.frame.columns if c in allowed and c != "USUBJID"]
    phi = compute_phi_tokens([*normalized_key["PATIENT_ID"].to_list(), *(
        v for c in identifying_columns(parsed.frame.columns) for v in parsed.frame[c].cast(pl.String).unique().to_list())])
    frame = derive_clean_columns(frame, [c for c in keep if not c.endswith("DTC")], phi_tokens=phi,
                                 vocabulary=config.vocabulary, decimal_mark=parsed.decimal_mark,
                                 policies=config.column_policies)
    frame = _with_shift(frame, date_shift)
    dtc_columns = [c for c in keep if c.endswith("DTC")]
    date_exprs, date_reasons = [], []
    for column in dtc_columns:
        parts = dtc_parts(column, excel_epoch=parsed.excel_epoch)
        shifted = parts.date + pl.duration(days=pl.col("_shift"))
        date_exprs += [
            shifted_dtc(shifted, parts.precision, parts.time).alias(column),
            pl.when(parts.precision == PRECISION_DAY).then(shifted).alias(column[:-1]),
        ]
        invalid = f"{column} is not an ISO 8601 date or Excel date serial"
        date_reasons.append(pl.when(parts.invalid).then(pl.lit(invalid)))
    no_shift = pl.when(pl.col("_shift").is_null() & pl.col("USUBJID").is_not_null() & pl.any_horizontal(
        [pl.col(c).is_not_null() for c in dtc_columns] or [pl.lit(False)]
    )).then(pl.lit("no date shift for this subject"))
    frame = frame.with_columns(
        *date_exprs,
        join_reasons(pl.col("_subject_reason"), *date_reasons, no_shift).alias("_reason"),
        pl.lit(parsed.decimal_mark).alias("decimal_mark"),
        pl.lit(source_sha256).alias("source_sha256"),
        pl.lit(run_id).alias("run_id"),
    )
    ordered = ["USUBJID"] + [out for c in keep for out in ((c, c[:-1]) if c in dtc_columns else (c,))]
    frame = frame.select(*ordered, "decimal_mark", "source_sha256", "source_row", "run_id", "_reason")
    return split_rejected(frame, "_reason", stage="clinical_read")


def _normalized_key(key: pl.DataFrame) -> pl.DataFrame:
    missing = {"SITEID", "PATIENT_ID", "USUBJID"} - set(key.columns)
    if missing:
        raise ValueError(f"key: missing column(s) {', '.join(sorted(missing))}")
    key = key.select(pl.col("SITEID", "PATIENT_ID", "USUBJID").cast(pl.String).str.strip_chars())
    if key.select(pl.struct("SITEID", "PATIENT_ID").is_duplicated().any()).item():
        raise ValueError("key: a SITEID + PATIENT_ID pair appears more than once")
    return key


def _with_subject(parsed: ParsedFile, key: pl.DataFrame) -> pl.DataFrame:
    """Adds USUBJID (from the file or the key) and _subject_reason (null when the subject is known)."""
    frame, columns = parsed.frame, set(parsed.frame.columns)
    by_site = {"SITEID", "PATIENT_ID"} <= columns
    if "USUBJID" not in columns and not by_site:
        raise ClinicalFileError("no subject columns; need USUBJID or SITEID and PATIENT_ID")
    sent = pl.col("USUBJID").str.strip_chars() if "USUBJID" in columns else pl.lit(None, pl.String)
    frame = frame.with_columns(sent.alias("_sent"))
    if by_site:
        frame = frame.join(
            key.rename({"USUBJID": "_keyed"}),
            left_on=[pl.col("SITEID").str.strip_chars(), pl.col("PATIENT_ID").str.strip_chars()],
            right_on=["SITEID", "PATIENT_ID"],
            how="left",
            validate="m:1",
            maintain_order="left",
            suffix="_key",
        )
    else:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("_keyed"))
    known = pl.col("_sent").is_in(key.get_column("USUBJID").implode())
    reason = (
        pl.when(pl.col("_sent").is_not_null() & ~known).then(pl.lit("USUBJID not in the subject key"))
        .when(pl.col("_sent").is_not_null() & pl.col("_keyed").is_not_null() & (pl.col("_sent") != pl.col("_keyed")))
        .then(pl.lit("USUBJID disagrees with SITEID + PATIENT_ID in the subject key"))
        .when(pl.col("_sent").is_null() & pl.col("_keyed").is_null())
        .then(pl.lit("subject (SITEID + PATIENT_ID) not in the subject key" if by_site else "USUBJID is empty"))
    )
    return frame.with_columns(
        pl.when(reason.is_null()).then(pl.coalesce("_sent", "_keyed")).alias("USUBJID"),
        reason.alias("_subject_reason"),
    )


def _with_shift(frame: pl.DataFrame, date_shift: pl.DataFrame | None) -> pl.DataFrame:
    if date_shift is None:
        return frame.with_columns(pl.lit(0, pl.Int64).alias("_shift"))
    missing = {"USUBJID", "shift_days"} - set(date_shift.columns)
    if missing:
        raise ValueError(f"date_shift: missing column(s) {', '.join(sorted(missing))}")
    shifts = date_shift.select(pl.col("USUBJID").cast(pl.String), pl.col("shift_days").cast(pl.Int64).alias("_shift"))
    if shifts.get_column("USUBJID").is_duplicated().any():
        raise ValueError("date_shift: a USUBJID appears more than once")
    return frame.join(shifts, on="USUBJID", how="left", maintain_order="left")
