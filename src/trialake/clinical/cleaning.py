"""Free text in the allow-listed clinical columns, cleaned before it reaches bronze.

Only SDTM variables on the domain's allow-list leave restricted/ (see ``bronze.py``), but their
cells can still carry free text: a visit named after a person, a lab result typed as a note, a
severity with a comment. Each allow-listed column has a policy (:data:`COLUMN_POLICIES`):

- ``clean``: the vocabulary rule of the DICOM descriptors (``trialake.freetext``): vocabulary
  words and short numbers only (VISIT, EPOCH, AESEV).
- ``result``: a number or censored number is kept as sent (results, ranges, doses, sequence
  numbers), unless it reads as a date (``19610412``); any other text goes through ``clean``.
- ``code`` (every other column): a coded value is kept whole unless it carries a word of the
  file's identifying columns (names, patient IDs, and every PATIENT_ID of the subject key), a
  date, or a run of five or more digits; then those are taken out and the rest kept.
- ``identifier``: as ``code``, but long numbers are codes there (STUDYID, MedDRA, LOINC).

AGE is capped as HIPAA Safe Harbor requires: an age of 90 years or more (in whatever AGEU) is
written as 90 years, one "90 or older" category, in bronze and so in every table derived from it.
A value that cleaning empties becomes null.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import polars as pl

from trialake.clinical.numbers import parse_number
from trialake.freetext import compute_clean_text, compute_stripped_text, fold, is_identifying_text, split_words

CLEAN, RESULT, CODE, IDENTIFIER = "clean", "result", "code", "identifier"

COLUMN_POLICIES: Mapping[str, str] = {
    **dict.fromkeys(("VISIT", "EPOCH", "AESEV"), CLEAN),
    **dict.fromkeys(("LBORRES", "FTORRES", "REORRES", "LBORNRLO", "LBORNRHI", "VISITNUM", "EXDOSE", "AGE",
                     "LBSEQ", "EXSEQ", "FTSEQ", "RESEQ", "AESEQ"), RESULT),
    **dict.fromkeys(("STUDYID", "AEPTCD", "LBLOINC"), IDENTIFIER),
}
#: Column names (or parts of names) whose values identify a person.
_IDENTIFYING_COLUMNS = ("PATIENT_ID", "SUBJID", "MRN")
_IDENTIFYING_PARTS = ("NAM", "NOM", "APELLIDO", "GIVEN", "FAMILY", "INIT", "ADDR", "PHONE", "TEL", "EMAIL", "MAIL")
_MIN_TOKEN = 3  # shorter words of names ("Li", "de") are too common to block elsewhere
OLDEST_AGE = 90
#: Years per AGEU unit (SDTM AGEU codelist); an unknown unit is read as years, the safe side.
_YEARS_PER_UNIT = {"YEARS": 1.0, "YEAR": 1.0, "Y": 1.0, "YRS": 1.0, "MONTHS": 1 / 12, "MONTH": 1 / 12,
                   "WEEKS": 7 / 365.25, "WEEK": 7 / 365.25, "DAYS": 1 / 365.25, "DAY": 1 / 365.25,
                   "HOURS": 1 / 8766, "HOUR": 1 / 8766}


def identifying_columns(columns: Iterable[str]) -> list[str]:
    """Columns of an export whose values identify a person (never allow-listed themselves)."""
    return [c for c in columns if c in _IDENTIFYING_COLUMNS or any(part in c for part in _IDENTIFYING_PARTS)]


def compute_phi_tokens(values: Iterable[str | None]) -> frozenset[str]:
    """Words (upper case, unaccented, at least three characters) of identifying values."""
    return frozenset(
        folded for value in values if value for word in split_words(value) if len(folded := fold(word)) >= _MIN_TOKEN
    )


def derive_clean_columns(frame: pl.DataFrame, columns: Iterable[str], *, phi_tokens: frozenset[str],
                         vocabulary: frozenset[str], decimal_mark: str,
                         policies: Mapping[str, str] = COLUMN_POLICIES) -> pl.DataFrame:
    """``frame`` with each of ``columns`` cleaned by its policy and AGE capped; other columns
    unchanged. Values are decided once per distinct value, never per row."""
    cleaned = []
    for column in columns:
        policy = policies.get(column, CODE)
        values = frame.get_column(column).drop_nulls().unique().to_list()
        numbers = _parse_numbers(values, decimal_mark) if policy == RESULT else [None] * len(values)
        changes = {}
        for value, number in zip(values, numbers):
            kept = _clean_value(value, number, policy, phi_tokens, vocabulary)
            if kept != value:
                changes[value] = kept
        if changes:
            cleaned.append(pl.col(column).replace_strict(changes, default=pl.col(column), return_dtype=pl.String))
    frame = frame.with_columns(cleaned) if cleaned else frame
    return _with_capped_age(frame, decimal_mark) if "AGE" in frame.columns else frame


def _clean_value(value: str, number: float | None, policy: str, phi_tokens: frozenset[str],
                 vocabulary: frozenset[str]) -> str | None:
    if policy == RESULT and number is not None and not is_identifying_text(value, long_numbers=True):
        return value
    if policy in (CODE, IDENTIFIER):
        long_numbers = policy == IDENTIFIER
        if not is_identifying_text(value, phi_tokens=phi_tokens, long_numbers=long_numbers):
            return value
        return compute_stripped_text(value, phi_tokens=phi_tokens, long_numbers=long_numbers) or None
    return compute_clean_text(value, vocabulary=vocabulary, phi_tokens=phi_tokens) or None


def _parse_numbers(values: list[str], decimal_mark: str) -> list[float | None]:
    if not values:
        return []
    parsed = pl.DataFrame({"v": values}, schema={"v": pl.String}).select(
        parse_number(pl.col("v"), pl.lit(decimal_mark), allow_operator=True))
    return parsed.to_series().to_list()


def _with_capped_age(frame: pl.DataFrame, decimal_mark: str) -> pl.DataFrame:
    """AGE of 90 years or more -> "90" (and AGEU -> YEARS when the unit was another)."""
    unit = pl.col("AGEU").str.strip_chars().str.to_uppercase() if "AGEU" in frame.columns else pl.lit(None, pl.String)
    years_per_unit = unit.replace_strict(_YEARS_PER_UNIT, default=1.0, return_dtype=pl.Float64).fill_null(1.0)
    years = parse_number(pl.col("AGE"), pl.lit(decimal_mark), allow_operator=False) * years_per_unit
    old = years.fill_nan(None).ge(OLDEST_AGE).fill_null(False)
    capped = [pl.when(old).then(pl.lit(str(OLDEST_AGE))).otherwise(pl.col("AGE")).alias("AGE")]
    if "AGEU" in frame.columns:
        capped.append(pl.when(old).then(pl.lit("YEARS")).otherwise(pl.col("AGEU")).alias("AGEU"))
    return frame.with_columns(capped)
