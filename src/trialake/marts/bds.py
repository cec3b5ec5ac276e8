"""The generic ADaM basic data structure (BDS) derivation shared by adct, adft and adlb.

Rules (all configuration comes from :class:`AnalysisConfig`):

- ``ADY`` is the study day of ``ADT`` relative to ADSL ``TRTSDT``: ``ADT - TRTSDT + 1`` on or
  after the first dose, ``ADT - TRTSDT`` before it (there is no day 0). A subject never dosed
  counts from ``RANDDT`` instead, so that an intention-to-treat analysis can window the
  subject's records. Null when both are null.
- ``AVISIT``/``AVISITN``: the configured window whose ``[low_day, high_day]`` contains ``ADY``;
  null (unscheduled) when none does. Every record keeps its window, valid or not. With
  ``config.outside_window = "nearest"`` a post-baseline record outside every window gets the
  nearest post-baseline window (by days to its edge; the later window on a tie) and is used
  only when that window has no valid record inside it. ``AWTARGET`` is the window's target day,
  ``AWTDIFF`` the days between ADY and it.
- A record is *valid* when its ``valid_column`` (default ``AVAL``; NaN counts as null) is not
  null. Invalid records (failed measurements) stay in the table for traceability but are never
  flagged. ADLB uses ``AVALC`` so that a censored result ("<0.5") is a valid observation.
- ``ANL01FL = "Y"`` on one valid record per subject, parameter and window. In the baseline window
  the latest record wins; in a post-baseline window a record inside the window beats one from
  outside, then the record nearest the target day wins, and on equal distance the later record
  wins. Records on the same day are ordered by the ``tiebreak`` columns ascending (CT:
  ``series_id``; clinical: ``source_sha256``, ``source_row``) and the first one wins.
- ``ABLFL = "Y"`` on the baseline window's ``ANL01FL`` record: the last valid value on or before
  the end of the baseline window (default study day 1, the day of first dose).
- ``BASE`` is the baseline ``AVAL`` on every record of the subject and parameter (null when the
  subject has no baseline). ``CHG = AVAL - BASE`` and ``PCHG = 100 * CHG / BASE`` are derived on
  post-baseline records (``ADY`` after the baseline window) only; ``PCHG`` is null when ``BASE``
  is 0 or null.
- ``ONTRTFL = "Y"`` when ADT is on the day of first dose, or after it and at most
  ``config.treatment_window_days`` after the last dose (admiral's ``derive_var_ontrtfl``).
- ``TRTP``/``TRTPN`` and ``TRTA``/``TRTAN`` are ADSL TRT01P/TRT01PN and TRT01A/TRT01AN (one
  period). ``PARAMN`` orders the parameters (``param_order``); ``AVALC`` is the record's own text
  result when it has one, else AVAL as text; ``SRCDOM``/``SRCSEQ`` name the SDTM domain and
  --SEQ of the source record (null for derived data such as CT volumetry).
- Records whose subject is not in ADSL are kept with null ADSL variables (so null ``ADY``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import polars as pl

from trialake.clinical.mapping import TestSpec
from trialake.marts.checks import check_columns, check_unique
from trialake.marts.config import AnalysisConfig, VisitWindow
from trialake.visits import study_day

ADSL_VARIABLES = ("STUDYID", "SITEID", "TRT01P", "TRT01A", "TRTSDT")
OPTIONAL_ADSL_VARIABLES = {"TRT01PN": pl.Int64, "TRT01AN": pl.Int64, "TRTEDT": pl.Date, "RANDDT": pl.Date}
BDS_COLUMNS = (
    "STUDYID", "USUBJID", "SITEID", "TRTP", "TRTPN", "TRTA", "TRTAN", "TRT01P", "TRT01A", "TRTSDT",
    "PARAMCD", "PARAM", "PARAMN", "AVAL", "AVALC", "AVALU", "ADT", "ADY", "AVISIT", "AVISITN", "AWTARGET", "AWTDIFF",
    "ONTRTFL", "ABLFL", "ANL01FL", "BASE", "CHG", "PCHG", "SRCDOM", "SRCSEQ",
)
RECORD_COLUMNS = {
    "USUBJID": "text", "PARAMCD": "text", "PARAM": "text", "AVAL": "number", "AVALU": "text", "ADT": "date",
}
_GROUP = ("USUBJID", "PARAMCD")


def derive_param(records: pl.DataFrame, argument: str, *, tests: Mapping[str, TestSpec]) -> pl.DataFrame:
    """Add PARAM ("<test name> (<unit>)") after asserting every PARAMCD is a known test whose
    results (AVALU of non-null AVAL) are all in the test's standard unit."""
    codes = set(records["PARAMCD"].unique())
    unknown = sorted(codes - tests.keys(), key=str)
    if unknown:
        raise ValueError(f"{argument}: unknown test code(s) {unknown}; known: {sorted(tests)}")
    units = records.filter(pl.col("AVAL").is_not_null()).group_by("PARAMCD").agg(pl.col("AVALU").unique())
    for paramcd, found in units.sort("PARAMCD").iter_rows():
        wrong = sorted(str(unit) for unit in found if unit != tests[paramcd].unit)
        if wrong:
            raise ValueError(
                f"{argument}: PARAMCD {paramcd!r} in unit(s) {wrong}, expected {tests[paramcd].unit!r}"
            )
    labels = {code: f"{spec.name} ({spec.unit})" for code, spec in tests.items() if code in codes}
    return records.with_columns(PARAM=pl.col("PARAMCD").replace_strict(labels, return_dtype=pl.String))


def derive_bds(
    records: pl.DataFrame,
    adsl: pl.DataFrame,
    *,
    config: AnalysisConfig,
    argument: str = "records",
    tiebreak: Sequence[str] = (),
    base_columns: Sequence[tuple[str, str]] = (),
    valid_column: str = "AVAL",
    param_order: Mapping[str, int] | None = None,
) -> pl.DataFrame:
    """Add ADSL variables, ADY, analysis visits and windows, ANL01FL, ABLFL, ONTRTFL, BASE, CHG
    and PCHG (module rules).

    Args:
        records: one row per measurement with USUBJID, PARAMCD, PARAM, AVAL (null = not an
            analysis value), AVALU and ADT; optional AVALC, SRCDOM, SRCSEQ; any other column
            is carried through (lineage).
        adsl: ADSL with USUBJID and the variables in ``ADSL_VARIABLES`` (those of
            ``OPTIONAL_ADSL_VARIABLES`` are used when present).
        config: analysis visits, baseline window, outside-window rule, treatment window.
        argument: the caller's argument name, used in error messages.
        tiebreak: columns ordering records of the same day in one window (first wins).
        base_columns: extra (source, target) pairs copied from the baseline record like
            AVAL -> BASE, e.g. ("ANRIND", "BNRIND").
        valid_column: a record is a valid observation when this column is not null.
        param_order: PARAMCD -> PARAMN (None: alphabetical order of the codes present).
    """
    check_columns(records, argument, RECORD_COLUMNS | {name: None for name in (*tiebreak, valid_column)})
    check_columns(adsl, "adsl", {"USUBJID": "text", "TRTSDT": "date"} | {v: None for v in ADSL_VARIABLES})
    check_unique(adsl, "adsl", ["USUBJID"])
    adsl = adsl.with_columns(pl.lit(None, t).alias(c) for c, t in OPTIONAL_ADSL_VARIABLES.items() if c not in adsl.columns)
    order = dict(param_order) if param_order is not None else {c: n for n, c in enumerate(sorted(set(records["PARAMCD"])), 1)}
    own_text = pl.col("AVALC") if "AVALC" in records.columns else pl.lit(None, pl.String)
    frame = (
        records.with_columns(
            pl.col("AVAL").cast(pl.Float64).fill_nan(None),
            *(pl.lit(None, pl.String).alias(c) for c in ("SRCDOM",) if c not in records.columns),
            *(pl.lit(None, pl.Int64).alias(c) for c in ("SRCSEQ",) if c not in records.columns),
        )
        .with_columns(AVALC=pl.coalesce(own_text, pl.col("AVAL").cast(pl.String)),
                      PARAMN=pl.col("PARAMCD").replace_strict(order, default=None, return_dtype=pl.Int64))
        .join(adsl.select("USUBJID", *ADSL_VARIABLES, *OPTIONAL_ADSL_VARIABLES), on="USUBJID", how="left")
        .with_columns(_reference=pl.coalesce("TRTSDT", "RANDDT"))
        .with_columns(
            TRTP=pl.col("TRT01P"), TRTPN=pl.col("TRT01PN"), TRTA=pl.col("TRT01A"), TRTAN=pl.col("TRT01AN"),
            ADY=study_day("ADT", "_reference"),
            ONTRTFL=_on_treatment(config.treatment_window_days),
        )
        .pipe(_assign_windows, config)
    )
    frame = _flag_analysis_records(frame, baseline=config.baseline, tiebreak=tiebreak, valid_column=valid_column)
    post_baseline = pl.col("ADY") > config.baseline.high_day
    frame = (
        frame.with_columns(_from_baseline(source, target) for source, target in (("AVAL", "BASE"), *base_columns))
        .with_columns(CHG=pl.when(post_baseline).then(pl.col("AVAL") - pl.col("BASE")))
        .with_columns(PCHG=pl.when(pl.col("BASE") != 0).then(pl.col("CHG") / pl.col("BASE") * 100.0))
    )
    standard = [*BDS_COLUMNS, *(target for _, target in base_columns)]
    carried = [name for name in records.columns if name not in standard and name not in OPTIONAL_ADSL_VARIABLES]
    return frame.select(*standard, *carried).sort(
        "USUBJID", "PARAMCD", "ADT", *tiebreak, nulls_last=True, maintain_order=True
    )


def _on_treatment(window_days: int | None) -> pl.Expr:
    """ONTRTFL: on the first-dose day, or after it up to ``window_days`` after the last dose."""
    after_start = pl.col("ADT") > pl.col("TRTSDT")
    before_end = pl.lit(True) if window_days is None else (
        pl.col("TRTEDT").is_null() | (pl.col("ADT") <= pl.col("TRTEDT") + pl.duration(days=window_days))
    )
    on = (pl.col("ADT") == pl.col("TRTSDT")) | (after_start & before_end)
    return pl.when(on.fill_null(False)).then(pl.lit("Y"))


def _assign_windows(frame: pl.DataFrame, config: AnalysisConfig) -> pl.DataFrame:
    """AVISIT, AVISITN, AWTARGET, AWTDIFF and ``_outside`` (a record placed in the nearest window)."""
    inside = [(w, pl.col("ADY").is_between(w.low_day, w.high_day)) for w in config.visits]
    nearest: list[tuple[VisitWindow, pl.Expr]] = []
    if config.outside_window == "nearest":
        post = pl.col("ADY") > config.baseline.high_day
        gaps = {w.name: pl.max_horizontal(w.low_day - pl.col("ADY"), pl.col("ADY") - w.high_day) for w in config.post_baseline}
        best = pl.min_horizontal(*gaps.values())
        # the later window wins a tie: test the windows from the last one
        nearest = [(w, post & (gaps[w.name] == best)) for w in reversed(config.post_baseline)]

    def by_window(value: Callable[[VisitWindow], Any], dtype: pl.DataType) -> pl.Expr:
        chain: Any = pl  # pl.when(...) starts the chain, .when(...) continues it
        for window, condition in [*inside, *nearest]:
            chain = chain.when(condition).then(pl.lit(value(window)))
        return chain.otherwise(None).cast(dtype)

    in_any = pl.any_horizontal([condition for _, condition in inside])
    return frame.with_columns(
        AVISIT=by_window(lambda w: w.name, pl.String),
        AVISITN=by_window(lambda w: w.avisitn, pl.Float64),
        AWTARGET=by_window(lambda w: w.target_day, pl.Int64),
        _outside=~in_any.fill_null(False),
    ).with_columns(AWTDIFF=(pl.col("ADY") - pl.col("AWTARGET")).abs())


def _flag_analysis_records(
    frame: pl.DataFrame, *, baseline: VisitWindow, tiebreak: Sequence[str], valid_column: str
) -> pl.DataFrame:
    """ANL01FL on the best valid record per subject, parameter and window; ABLFL on baseline's."""
    in_baseline = pl.col("AVISITN") == baseline.avisitn
    distance = (
        pl.when(in_baseline)
        .then(baseline.high_day - pl.col("ADY"))  # latest first
        .otherwise(pl.col("AWTDIFF"))
    )
    candidate = pl.col(valid_column).is_not_null() & pl.col("AVISITN").is_not_null()
    ranked = frame.with_columns(_candidate=candidate, _distance=distance).sort(
        [*_GROUP, "AVISITN", "_candidate", "_outside", "_distance", "ADY", *tiebreak],
        descending=[False, False, False, True, False, False, True, *(False for _ in tiebreak)],
        nulls_last=True,
    )
    first = pl.struct(*_GROUP, "AVISITN").is_first_distinct()  # the best record, rows being sorted
    anl = pl.when(pl.col("_candidate") & first).then(pl.lit("Y"))
    return ranked.with_columns(ANL01FL=anl).with_columns(
        ABLFL=pl.when((pl.col("ANL01FL") == "Y") & in_baseline).then(pl.lit("Y"))
    ).drop("_candidate", "_distance", "_outside")


def _from_baseline(source: str, target: str) -> pl.Expr:
    """Column ``source`` of the subject's ABLFL record for the parameter, on every record."""
    return pl.col(source).filter(pl.col("ABLFL") == "Y").first().over(_GROUP).alias(target)
