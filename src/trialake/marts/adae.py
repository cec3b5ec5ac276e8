"""ADAE (OCCDS): adverse events with imputed dates, treatment emergence and occurrence flags.

Rules (admiral's ADAE template and OCCDS vignette):

- ``ASTDT`` is AESTDTC as a date; a partial date is imputed to the first possible day, and to
  the first dose when the first dose lies in its possible range (``min_dates = TRTSDT``);
  ``ASTDTF`` says what was imputed ("D" the day, "M" month and day). ``AENDT`` likewise from
  AEENDTC, imputed to the last possible day and capped by the death date and the end of study
  (``max_dates = DTHDT, EOSDT``), with ``AENDTF``. An event without a start year has a null
  ASTDT; it is kept, never dropped. ``ASTDY``/``AENDY`` are study days from ADSL TRTSDT.
- ``TRTEMFL = "Y"`` (admiral's ``derive_var_trtemfl``) for a dosed subject's event that did not
  end before the first dose and either has no start date or starts on or after the first dose
  and at most ``window_days`` (default 30) after the last dose; null otherwise.
- ``ASEV``/``ASEVN``: AESEV and its rank (MILD 1, MODERATE 2, SEVERE 3); other values are errors.
- ``AREL``: "RELATED" when AEREL (standardized in silver) is one of ``related_values``
  (default RELATED, PROBABLY RELATED, POSSIBLY RELATED) or is missing (a missing causality counts
  as related, the conservative reading); "NOT RELATED" otherwise.
- ``TRTA``/``TRTAN``: the actual treatment (ADSL TRT01A/TRT01AN).
- Occurrence flags on treatment-emergent events, "Y" on the first record of each group:
  ``AOCCFL`` per subject, ``AOCCSFL`` per subject and body system (AEBODSYS), ``AOCCPFL`` per
  subject, body system and preferred term, ordered by ASTDT then AESEQ; ``AOCCIFL`` per subject
  and ``AOCCPIFL`` per subject and preferred term on the worst severity (ASEVN descending, then
  ASTDT, AESEQ). Remaining ties: source file and row.
- Lineage: ``SRCDOM = "AE"``, ``SRCSEQ`` = AESEQ, ``source_sha256``, ``source_row``.
"""
from __future__ import annotations

from collections.abc import Collection

import polars as pl

from trialake.visits import study_day
from trialake.marts.checks import check_columns, check_unique
from trialake.marts.dates import imputed_date

SEVERITY_RANK = {"MILD": 1, "MODERATE": 2, "SEVERE": 3}
RELATED_VALUES = frozenset({"RELATED", "PROBABLY RELATED", "POSSIBLY RELATED"})
AE_CATEGORIES = {
    "Any TEAE": pl.lit(True),
    "Serious TEAE": pl.col("AESER") == "Y",
    "Severe TEAE": pl.col("ASEV") == "SEVERE",
    "Related TEAE": pl.col("AREL") == "RELATED",
    "Fatal TEAE": pl.col("AEOUT") == "FATAL",
}
ADAE_COLUMNS = (
    "STUDYID", "USUBJID", "SITEID", "TRTA", "TRTAN", "TRT01A", "TRTSDT", "TRTEDT", "SAFFL", "AESEQ", "AEDECOD",
    "AEBODSYS", "AESEV", "ASEV", "ASEVN", "AESER", "AEREL", "AREL", "AEOUT", "AESTDTC", "ASTDT", "ASTDTF", "ASTDY",
    "AEENDTC", "AENDT", "AENDTF", "AENDY", "TRTEMFL", "AOCCFL", "AOCCSFL", "AOCCPFL", "AOCCIFL", "AOCCPIFL",
    "SRCDOM", "SRCSEQ", "source_sha256", "source_row",
)
_AE_COLUMNS = {
    "USUBJID": "text", "AEDECOD": "text", "AEBODSYS": "text", "AESEV": "text", "AESER": "text",
    "AEREL": "text", "source_sha256": "text", "source_row": "number",
}
_ADSL_COLUMNS = {"USUBJID": "text", "STUDYID": "text", "SITEID": "text", "TRT01A": "text",
                 "TRTSDT": "date", "TRTEDT": "date", "SAFFL": "text"}
_OPTIONAL_ADSL = {"TRT01AN": pl.Int64, "DTHDT": pl.Date, "EOSDT": pl.Date}


def derive_adae(
    adverse_events: pl.DataFrame,
    adsl: pl.DataFrame,
    *,
    related_values: Collection[str] = RELATED_VALUES,
    window_days: int | None = 30,
) -> pl.DataFrame:
    """ADAE from silver/adverse_events and ADSL (rules in the module docstring).

    AESTDTC/AEENDTC (text dates) are used when present, else AESTDT/AEENDT; AESEQ and AEOUT are
    optional. ``window_days``: days after the last dose an event may start and still be
    treatment-emergent (None: no limit).
    """
    check_columns(adverse_events, "adverse_events", _AE_COLUMNS)
    check_columns(adsl, "adsl", _ADSL_COLUMNS)
    check_unique(adsl, "adsl", ["USUBJID"])
    unknown = sorted(set(adverse_events["AESEV"].drop_nulls().unique()) - SEVERITY_RANK.keys())
    if unknown:
        raise ValueError(f"adverse_events: AESEV {unknown} not in {list(SEVERITY_RANK)}")
    events = _with_text_dates(adverse_events)
    adsl = adsl.with_columns(pl.lit(None, t).alias(c) for c, t in _OPTIONAL_ADSL.items() if c not in adsl.columns)
    start, start_flag = imputed_date("AESTDTC", imputation="first", bounds=["TRTSDT"])
    end, end_flag = imputed_date("AEENDTC", imputation="last", bounds=["DTHDT", "EOSDT"])
    adae = (
        events.join(adsl.select(*_ADSL_COLUMNS, *_OPTIONAL_ADSL), on="USUBJID", how="left")
        .with_columns(ASTDT=start, ASTDTF=start_flag, AENDT=end, AENDTF=end_flag, ASEV="AESEV",
                      TRTA="TRT01A", TRTAN="TRT01AN", SRCDOM=pl.lit("AE"), SRCSEQ="AESEQ")
        .with_columns(
            ASTDY=study_day("ASTDT", "TRTSDT"),
            AENDY=study_day("AENDT", "TRTSDT"),
            ASEVN=pl.col("ASEV").replace_strict(SEVERITY_RANK, default=None, return_dtype=pl.Int64),
            AREL=pl.when(pl.col("AEREL").is_null() | pl.col("AEREL").is_in(list(related_values)))
            .then(pl.lit("RELATED")).otherwise(pl.lit("NOT RELATED")),
            TRTEMFL=_treatment_emergent(window_days),
            source_row=pl.col("source_row").cast(pl.Int64),
        )
    )
    return _flag_occurrences(adae).select(ADAE_COLUMNS).sort(
        "USUBJID", "ASTDT", "AEDECOD", "source_sha256", "source_row", nulls_last=True
    )


def _with_text_dates(events: pl.DataFrame) -> pl.DataFrame:
    """AESTDTC/AEENDTC (from AESTDT/AEENDT when absent), AESEQ and AEOUT, typed."""
    for text, date in (("AESTDTC", "AESTDT"), ("AEENDTC", "AEENDT")):
        if text not in events.columns:
            source = pl.col(date).cast(pl.Date).dt.strftime("%Y-%m-%d") if date in events.columns else pl.lit(None)
            events = events.with_columns(source.cast(pl.String).alias(text))
    return events.with_columns(
        (pl.col("AESEQ") if "AESEQ" in events.columns else pl.lit(None)).cast(pl.Int64).alias("AESEQ"),
        (pl.col("AEOUT") if "AEOUT" in events.columns else pl.lit(None)).cast(pl.String).alias("AEOUT"),
    ).drop("AESTDT", "AEENDT", strict=False)


def _treatment_emergent(window_days: int | None) -> pl.Expr:
    """admiral's derive_var_trtemfl: no start date counts, an end before first dose does not."""
    in_window = pl.lit(True) if window_days is None else (
        pl.col("TRTEDT").is_null() | (pl.col("ASTDT") <= pl.col("TRTEDT") + pl.duration(days=window_days))
    )
    return (
        pl.when(pl.col("TRTSDT").is_null()).then(None)
        .when((pl.col("AENDT") < pl.col("TRTSDT")).fill_null(False)).then(None)
        .when(pl.col("ASTDT").is_null()).then(pl.lit("Y"))
        .when((pl.col("ASTDT") >= pl.col("TRTSDT")) & in_window).then(pl.lit("Y"))
    )


_FIRST = {"ASTDT": False, "AESEQ": False, "source_sha256": False, "source_row": False}
_WORST_FIRST = {"ASEVN": True, **_FIRST}
_OCCURRENCES = {
    "AOCCFL": (_FIRST, ("USUBJID",)),
    "AOCCSFL": (_FIRST, ("USUBJID", "AEBODSYS")),
    "AOCCPFL": (_FIRST, ("USUBJID", "AEBODSYS", "AEDECOD")),
    "AOCCIFL": (_WORST_FIRST, ("USUBJID",)),
    "AOCCPIFL": (_WORST_FIRST, ("USUBJID", "AEDECOD")),
}


def _flag_occurrences(adae: pl.DataFrame) -> pl.DataFrame:
    """The occurrence flags of the module rules, each on its own ordering of the records."""
    teae = pl.col("TRTEMFL") == "Y"
    for flag, (order, by) in _OCCURRENCES.items():
        adae = adae.sort(list(order), descending=list(order.values()), nulls_last=True).with_columns(
            pl.when(teae & pl.struct(*by, teae.alias("_teae")).is_first_distinct()).then(pl.lit("Y")).alias(flag)
        )
    return adae


def summarize_ae_incidence(adae: pl.DataFrame, adsl: pl.DataFrame, *, arm_variable: str | None = "TRT01A") -> pl.DataFrame:
    """Subjects with at least one TEAE per actual arm (safety set): any, serious, severe,
    related, fatal.

    Returns one row per category and arm (column ``arm_variable``) with ``n`` (subjects with an
    event), ``n_safety`` (subjects in the arm's safety set) and ``pct`` (100 n / n_safety); arms with no
    events count 0. ``arm_variable=None`` pools every subject (no arm column: a blinded table).
    """
    check_columns(
        adae, "adae", {"USUBJID": "text", "TRTEMFL": None, "AESER": "text", "ASEV": "text", "AREL": "text", "AEOUT": None}
    )
    arm = arm_variable or "_all"
    safety = _safety_set(adsl, arm_variable)
    arms = safety.group_by(arm).agg(n_safety=pl.len())
    teae = adae.filter(pl.col("TRTEMFL") == "Y").select("USUBJID", "AESER", "ASEV", "AREL", "AEOUT").join(safety, on="USUBJID")
    counts = pl.concat(
        [
            teae.filter(condition).group_by(arm)
            .agg(n=pl.col("USUBJID").n_unique()).with_columns(category=pl.lit(name))
            for name, condition in AE_CATEGORIES.items()
        ]
    )
    categories = pl.DataFrame({"category": list(AE_CATEGORIES), "_order": range(len(AE_CATEGORIES))})
    summary = (
        categories.join(arms, how="cross")
        .join(counts, on=["category", arm], how="left")
        .with_columns(n=pl.col("n").fill_null(0).cast(pl.Int64), n_safety=pl.col("n_safety").cast(pl.Int64))
        .with_columns(pct=100.0 * pl.col("n") / pl.col("n_safety"))
        .sort("_order", arm)
    )
    return summary.select("category", *([arm_variable] if arm_variable else []), "n", "n_safety", "pct")


def summarize_ae_by_term(
    adae: pl.DataFrame, adsl: pl.DataFrame, *, arm_variable: str | None = "TRT01A", condition: pl.Expr = pl.lit(True)
) -> pl.DataFrame:
    """Subjects with a treatment-emergent event by body system and preferred term, per arm
    (safety set), among the events meeting ``condition`` (e.g. serious ones).

    One row per AEBODSYS (``AEDECOD`` null: any term of the body system) and per AEBODSYS x
    AEDECOD, with ``n``, ``n_safety`` and ``pct`` per arm in long form (column ``arm_variable``; None
    pools every subject). Body systems by decreasing total count, terms within them likewise.
    """
    check_columns(adae, "adae", {"USUBJID": "text", "TRTEMFL": None, "AEBODSYS": "text", "AEDECOD": "text"})
    arm = arm_variable or "_all"
    safety = _safety_set(adsl, arm_variable)
    arms = safety.group_by(arm).agg(n_safety=pl.len())
    teae = adae.filter((pl.col("TRTEMFL") == "Y") & condition).select("USUBJID", "AEBODSYS", "AEDECOD").join(safety, on="USUBJID")
    by_soc = teae.group_by("AEBODSYS", arm).agg(n=pl.col("USUBJID").n_unique()).with_columns(pl.lit(None, pl.String).alias("AEDECOD"))
    by_pt = teae.group_by("AEBODSYS", "AEDECOD", arm).agg(n=pl.col("USUBJID").n_unique())
    counts = pl.concat([by_soc.select("AEBODSYS", "AEDECOD", arm, "n"), by_pt.select("AEBODSYS", "AEDECOD", arm, "n")])
    terms = counts.group_by("AEBODSYS", "AEDECOD").agg(_total=pl.col("n").sum())
    soc_total = terms.filter(pl.col("AEDECOD").is_null()).select("AEBODSYS", _soc_total="_total")
    table = (
        terms.join(arms, how="cross")
        .join(counts, on=["AEBODSYS", "AEDECOD", arm], how="left", nulls_equal=True)
        .join(soc_total, on="AEBODSYS", how="left", nulls_equal=True)
        .with_columns(n=pl.col("n").fill_null(0).cast(pl.Int64), n_safety=pl.col("n_safety").cast(pl.Int64))
        .with_columns(pct=100.0 * pl.col("n") / pl.col("n_safety"))
        .sort(["_soc_total", "AEBODSYS", pl.col("AEDECOD").is_not_null(), "_total", "AEDECOD", arm],
              descending=[True, False, False, True, False, False], nulls_last=True)
    )
    return table.select("AEBODSYS", "AEDECOD", *([arm_variable] if arm_variable else []), "n", "n_safety", "pct")


def _safety_set(adsl: pl.DataFrame, arm_variable: str | None) -> pl.DataFrame:
    check_columns(adsl, "adsl", {"USUBJID": "text", "SAFFL": "text"} | ({arm_variable: "text"} if arm_variable else {}))
    safety = adsl.filter(pl.col("SAFFL") == "Y")
    return safety.select("USUBJID", arm_variable) if arm_variable else safety.select("USUBJID", pl.lit("All")).rename({"literal": "_all"})

