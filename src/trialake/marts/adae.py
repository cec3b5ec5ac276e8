"""ADAE (OCCDS): adverse events with treatment-emergence and worst-severity flags.

Rules:

- ``ASTDT``/``AENDT`` are AESTDT/AEENDT; ``ASTDY``/``AENDY`` their study days from ADSL TRTSDT.
- ``TRTEMFL = "Y"`` for a dosed subject's event starting on or after the first dose (ASTDT >=
  TRTSDT). An event with no start date is treatment-emergent unless it ended before the first
  dose (conservative, as admiral's ``derive_var_trtemfl``). No upper cut-off after last dose.
- ``ASEV``/``ASEVN``: AESEV and its rank (MILD 1, MODERATE 2, SEVERE 3); other values are errors.
- ``AREL``: "RELATED" when AEREL (standardized in silver) is one of ``related_values``
  (default RELATED, PROBABLY RELATED, POSSIBLY RELATED), else "NOT RELATED"; null when AEREL is null.
- ``AOCCIFL = "Y"`` on one treatment-emergent event per subject: the worst severity, then the
  earliest start, then AEDECOD, then source order (the subject's worst-severity occurrence).
  ``AOCPIFL`` is the same per subject and preferred term (AEDECOD).
"""
from __future__ import annotations

from collections.abc import Collection

import polars as pl

from trialake.marts.bds import study_day
from trialake.marts.checks import check_columns, check_unique

SEVERITY_RANK = {"MILD": 1, "MODERATE": 2, "SEVERE": 3}
RELATED_VALUES = frozenset({"RELATED", "PROBABLY RELATED", "POSSIBLY RELATED"})
AE_CATEGORIES = {
    "Any TEAE": pl.lit(True),
    "Serious TEAE": pl.col("AESER") == "Y",
    "Severe TEAE": pl.col("ASEV") == "SEVERE",
    "Related TEAE": pl.col("AREL") == "RELATED",
}
ADAE_COLUMNS = (
    "STUDYID", "USUBJID", "SITEID", "TRT01A", "TRTSDT", "TRTEDT", "SAFFL", "AEDECOD", "AEBODSYS",
    "AESEV", "ASEV", "ASEVN", "AESER", "AEREL", "AREL", "ASTDT", "ASTDY", "AENDT", "AENDY",
    "TRTEMFL", "AOCCIFL", "AOCPIFL", "SRCDOM", "source_sha256", "source_row",
)
_AE_COLUMNS = {
    "USUBJID": "text", "AEDECOD": "text", "AEBODSYS": "text", "AESEV": "text", "AESER": "text",
    "AEREL": "text", "AESTDT": "date", "AEENDT": "date", "source_sha256": "text", "source_row": "number",
}
_ADSL_COLUMNS = {"USUBJID": "text", "STUDYID": "text", "SITEID": "text", "TRT01A": "text",
                 "TRTSDT": "date", "TRTEDT": "date", "SAFFL": "text"}


def derive_adae(
    adverse_events: pl.DataFrame, adsl: pl.DataFrame, *, related_values: Collection[str] = RELATED_VALUES
) -> pl.DataFrame:
    """ADAE from silver/adverse_events and ADSL (rules in the module docstring)."""
    check_columns(adverse_events, "adverse_events", _AE_COLUMNS)
    check_columns(adsl, "adsl", _ADSL_COLUMNS)
    check_unique(adsl, "adsl", ["USUBJID"])
    unknown = sorted(set(adverse_events["AESEV"].drop_nulls().unique()) - SEVERITY_RANK.keys())
    if unknown:
        raise ValueError(f"adverse_events: AESEV {unknown} not in {list(SEVERITY_RANK)}")
    started_after = pl.col("ASTDT") >= pl.col("TRTSDT")
    undated = pl.col("ASTDT").is_null() & ~(pl.col("AENDT") < pl.col("TRTSDT")).fill_null(False)
    adae = (
        adverse_events.join(adsl.select(list(_ADSL_COLUMNS)), on="USUBJID", how="left")
        .with_columns(ASTDT="AESTDT", AENDT="AEENDT", ASEV="AESEV", SRCDOM=pl.lit("adverse_events"))
        .with_columns(
            ASTDY=study_day("ASTDT", "TRTSDT"),
            AENDY=study_day("AENDT", "TRTSDT"),
            ASEVN=pl.col("ASEV").replace_strict(SEVERITY_RANK, default=None, return_dtype=pl.Int64),
            AREL=pl.when(pl.col("AEREL").is_in(list(related_values))).then(pl.lit("RELATED"))
            .when(pl.col("AEREL").is_not_null()).then(pl.lit("NOT RELATED")),
            TRTEMFL=pl.when(pl.col("TRTSDT").is_not_null() & (started_after.fill_null(False) | undated))
            .then(pl.lit("Y")),
            source_row=pl.col("source_row").cast(pl.Int64),
        )
    )
    return _flag_worst_severity(adae).select(ADAE_COLUMNS).sort(
        "USUBJID", "ASTDT", "AEDECOD", "source_sha256", "source_row", nulls_last=True
    )


_WORST_FIRST = {"ASEVN": True, "ASTDT": False, "AEDECOD": False, "source_sha256": False, "source_row": False}


def _flag_worst_severity(adae: pl.DataFrame) -> pl.DataFrame:
    """AOCCIFL/AOCPIFL on the first treatment-emergent record of the worst severity (module rules)."""
    teae = pl.col("TRTEMFL") == "Y"
    ordered = adae.sort(list(_WORST_FIRST), descending=list(_WORST_FIRST.values()), nulls_last=True)

    def first_within(*by: str) -> pl.Expr:
        return pl.when(teae & pl.struct(*by, teae.alias("_teae")).is_first_distinct()).then(pl.lit("Y"))

    return ordered.with_columns(AOCCIFL=first_within("USUBJID"), AOCPIFL=first_within("USUBJID", "AEDECOD"))


def summarize_ae_incidence(adae: pl.DataFrame, adsl: pl.DataFrame) -> pl.DataFrame:
    """Subjects with at least one TEAE per actual arm (safety set): any, serious, severe, related.

    Returns one row per category and TRT01A arm with ``n`` (subjects with an event), ``n_safety``
    (subjects in the arm's safety set) and ``pct`` (100 n / n_safety); arms with no events count 0.
    (Not ``N``: column names differing only in case are one column to Delta Lake, SQL engines
    and Spark.)
    """
    check_columns(
        adae, "adae", {"USUBJID": "text", "TRTEMFL": None, "AESER": "text", "ASEV": "text", "AREL": "text"}
    )
    check_columns(adsl, "adsl", {"USUBJID": "text", "TRT01A": "text", "SAFFL": "text"})
    safety = adsl.filter(pl.col("SAFFL") == "Y").select("USUBJID", "TRT01A")
    arms = safety.group_by("TRT01A").agg(n_safety=pl.len())
    teae = adae.filter(pl.col("TRTEMFL") == "Y").drop("TRT01A", strict=False).join(safety, on="USUBJID")
    counts = pl.concat(
        [
            teae.filter(condition).group_by("TRT01A")
            .agg(n=pl.col("USUBJID").n_unique()).with_columns(category=pl.lit(name))
            for name, condition in AE_CATEGORIES.items()
        ]
    )
    categories = pl.DataFrame({"category": list(AE_CATEGORIES), "_order": range(len(AE_CATEGORIES))})
    return (
        categories.join(arms, how="cross")
        .join(counts, on=["category", "TRT01A"], how="left")
        .with_columns(n=pl.col("n").fill_null(0).cast(pl.Int64), n_safety=pl.col("n_safety").cast(pl.Int64))
        .with_columns(pct=100.0 * pl.col("n") / pl.col("n_safety"))
        .sort("_order", "TRT01A")
        .select("category", "TRT01A", "n", "n_safety", "pct")
    )
