"""Benchmark: build every ADaM mart from synthetic silver-shaped frames.

Goal on 2 cores: 100 subjects under 2 s, 10,000 under 30 s. ``make bench`` calls
:func:`run_marts_benchmark`; ``python -m bench.marts`` prints the ratios.
"""
from __future__ import annotations

import datetime as dt
import time

import numpy as np
import polars as pl

from trialake.marts import AnalysisConfig, build_marts

GOALS_S = {100: 2.0, 10_000: 30.0}
_START = dt.date(2020, 2, 1)
_VISIT_DAYS = (-1, 10, 28)
_LAB_DAYS = (-1, 3, 7, 14, 28)
# code: (unit, low, high, mean)
_LAB_TESTS = {
    "CRP": ("mg/L", 0.0, 10.0, 30.0), "LYM": ("10^9/L", 1.1, 3.2, 0.9), "LDH": ("U/L", 120.0, 250.0, 300.0),
    "DDIMER": ("mg/L FEU", 0.0, 0.5, 1.2), "IL6": ("ng/L", 0.0, 7.0, 20.0), "ALT": ("U/L", 7.0, 40.0, 35.0),
}
_FT_TESTS = {"SIXMW": ("m", 400.0), "FVC": ("L", 3.2), "MVC": ("L", 3.4), "DLCO": ("mmol/min/kPa", 7.5)}


def _with_lineage(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    return frame.with_columns(
        source_sha256=pl.lit(f"{name}-sha"), source_row=pl.int_range(1, pl.len() + 1), run_id=pl.lit("bench")
    )


def _subjects(n: int, rng: np.random.Generator) -> pl.DataFrame:
    """silver/subjects plus _dosed and _effect helper columns; 2:1 randomization, ~1% never dosed."""
    treated = rng.random(n) < 2 / 3
    first = np.datetime64(_START, "D") + rng.integers(0, 300, n)
    frame = pl.DataFrame(
        {
            "USUBJID": [f"BENCH-{i:06d}" for i in range(n)], "STUDYID": "BENCH",
            "SITEID": [f"S{i % 7:02d}" for i in range(n)], "SEX": rng.choice(["F", "M"], n),
            "AGE": rng.integers(18, 90, n), "AGEU": "YEARS",
            "ARMCD": np.where(treated, "UCMSC", "PBO"), "ARM": np.where(treated, "UC-MSC", "Placebo"),
            "ACTARMCD": np.where(treated, "UCMSC", "PBO"), "ACTARM": np.where(treated, "UC-MSC", "Placebo"),
            "RFICDT": first - 3, "RFSTDT": first, "RFENDT": first + 6,
            "_dosed": rng.random(n) > 0.01, "_effect": np.where(treated, -5.0, 0.0),
        }
    )
    return _with_lineage(frame.with_columns(pl.col("RFICDT", "RFSTDT", "RFENDT").cast(pl.Date)), "dm")


def _exposure(subjects: pl.DataFrame) -> pl.DataFrame:
    """Infusions on days 1, 4 and 7 for dosed subjects."""
    days = pl.DataFrame({"EXSTDY": [1, 4, 7]})
    frame = subjects.filter("_dosed").select("USUBJID", "RFSTDT").join(days, how="cross").select(
        "USUBJID", EXTRT=pl.lit("UC-MSC"), EXDOSE=pl.lit(4e7), EXDOSU=pl.lit("cells"),
        EXSTDT=pl.col("RFSTDT") + (pl.col("EXSTDY") - 1) * pl.duration(days=1), EXSTDY="EXSTDY",
    )
    return _with_lineage(frame.with_columns(EXENDT="EXSTDT"), "ex")


def _per_visit(subjects: pl.DataFrame, days: tuple[int, ...], rng: np.random.Generator, jitter: int) -> pl.DataFrame:
    """One row per subject and nominal day (post-dose days jittered): _date and _visit index 0/1/2."""
    frame = subjects.select("USUBJID", "RFSTDT", "_effect").join(pl.DataFrame({"_nominal": list(days)}), how="cross")
    nominal = frame["_nominal"].to_numpy()
    study_day = np.where(nominal > 1, nominal + rng.integers(-jitter, jitter + 1, frame.height), nominal)
    offset = pl.Series(np.where(study_day > 0, study_day - 1, study_day))
    return frame.with_columns(
        _date=pl.col("RFSTDT") + offset * pl.duration(days=1),
        _visit=(pl.col("_nominal") > 1).cast(pl.Int64) + (pl.col("_nominal") > 14).cast(pl.Int64),
    )


def _ct_volumetry(subjects: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Three scans per subject; the lesion share falls by 5 points per visit under treatment; 2% fail."""
    scans = _per_visit(subjects, _VISIT_DAYS, rng, jitter=3)
    n = scans.height
    lung = rng.normal(3500, 400, n)
    pct = np.clip(rng.normal(20, 6, n) + scans["_effect"].to_numpy() * scans["_visit"].to_numpy(), 0, 90)
    ggo = rng.uniform(0.5, 0.9, n)
    failed = pl.Series(rng.random(n) < 0.02)
    values = {
        "lung_volume_ml": lung, "lesion_volume_ml": lung * pct / 100, "ggo_volume_ml": lung * pct / 100 * ggo,
        "solid_volume_ml": lung * pct / 100 * (1 - ggo), "lesion_pct": pct, "ggo_pct": pct * ggo,
        "solid_pct": pct * (1 - ggo),
    }
    return scans.select("USUBJID", ADT="_date").with_columns(
        series_id=pl.Series([f"2.25.{i}" for i in range(n)]),
        status=pl.when(failed).then(pl.lit("failed")).otherwise(pl.lit("measured")),
        reason=pl.when(failed).then(pl.lit("no lung found")),
        **{name: pl.when(~failed).then(pl.Series(column)) for name, column in values.items()},
        method=pl.lit("classical"), method_version=pl.lit("1"), params_hash=pl.lit("bench"), run_id=pl.lit("bench"),
    )


def _function_tests(subjects: pl.DataFrame, rng: np.random.Generator) -> tuple[pl.DataFrame, pl.DataFrame]:
    """silver/sixmwt and silver/lung_function at the three visits."""
    tests = _per_visit(subjects, _VISIT_DAYS, rng, jitter=2).join(pl.DataFrame({"_test": list(_FT_TESTS)}), how="cross")
    tests = tests.with_columns(
        _unit=pl.col("_test").replace_strict({k: v[0] for k, v in _FT_TESTS.items()}),
        _value=pl.col("_test").replace_strict({k: v[1] for k, v in _FT_TESTS.items()})
        * pl.Series(rng.uniform(0.7, 1.2, tests.height)),
    )
    no_visit = pl.lit(None, pl.String)
    sixmwt = tests.filter(pl.col("_test") == "SIXMW").select(
        "USUBJID", FTTESTCD="_test", FTSTRESN="_value", FTSTRESU="_unit", FTDT="_date", VISIT=no_visit
    )
    lung = tests.filter(pl.col("_test") != "SIXMW").select(
        "USUBJID", RETESTCD="_test", RETEST="_test", RESTRESN="_value", RESTRESU="_unit", REDT="_date", VISIT=no_visit
    )
    return _with_lineage(sixmwt, "ft"), _with_lineage(lung, "re")


def _labs(subjects: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Six tests on five days, log-normal around each test's mean."""
    codes = pl.DataFrame({"LBTESTCD": list(_LAB_TESTS)})
    labs = _per_visit(subjects, _LAB_DAYS, rng, jitter=1).join(codes, how="cross")
    spec = {
        name: pl.col("LBTESTCD").replace_strict({code: values[i] for code, values in _LAB_TESTS.items()})
        for i, name in enumerate(("LBSTRESU", "LBSTNRLO", "LBSTNRHI", "_mean"))
    }
    labs = labs.with_columns(**spec).with_columns(
        LBSTRESN=pl.col("_mean") * pl.Series(rng.lognormal(0, 0.5, labs.height))
    )
    indicator = (
        pl.when(pl.col("LBSTRESN") < pl.col("LBSTNRLO")).then(pl.lit("LOW"))
        .when(pl.col("LBSTRESN") > pl.col("LBSTNRHI")).then(pl.lit("HIGH")).otherwise(pl.lit("NORMAL"))
    )
    return _with_lineage(
        labs.select(
            "USUBJID", "LBTESTCD", "LBSTRESN", "LBSTRESU", "LBSTNRLO", "LBSTNRHI", LBTEST="LBTESTCD",
            LBSTRESC=pl.col("LBSTRESN").round(2).cast(pl.String), LBNRIND=indicator, LBDT="_date",
            VISIT=pl.lit(None, pl.String),
        ),
        "lb",
    )


def _adverse_events(subjects: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """A Poisson(1.5) number of events per subject from day -5 to day 28."""
    events = subjects.select("USUBJID", "RFSTDT").select(
        pl.all().repeat_by(pl.Series(rng.poisson(1.5, subjects.height))).explode()
    )
    n = events.height
    events = events.with_columns(
        AEDECOD=pl.Series(rng.choice(["Headache", "Fever", "Nausea", "Rash", "Diarrhoea"], n)),
        AEBODSYS=pl.lit("General disorders"),
        AESEV=pl.Series(rng.choice(["MILD", "MODERATE", "SEVERE"], n, p=[0.6, 0.3, 0.1])),
        AESER=pl.Series(rng.choice(["Y", "N"], n, p=[0.1, 0.9])),
        AEREL=pl.Series(rng.choice(["RELATED", "NOT RELATED"], n)),
        AESTDT=pl.col("RFSTDT") + pl.Series(rng.integers(-5, 28, n)) * pl.duration(days=1),
    )
    return _with_lineage(events.with_columns(AEENDT=pl.col("AESTDT") + pl.duration(days=3)).drop("RFSTDT"), "ae")


def make_silver_frames(n_subjects: int, *, seed: int = 0) -> dict[str, pl.DataFrame]:
    """Synthetic silver tables (tables.md shapes) for ``n_subjects`` subjects, keyed as ``MART_INPUTS``."""
    rng = np.random.default_rng(seed)
    subjects = _subjects(n_subjects, rng)
    sixmwt, lung_function = _function_tests(subjects, rng)
    return {
        "subjects": subjects.drop("_dosed", "_effect"),
        "exposure": _exposure(subjects),
        "ct_volumetry": _ct_volumetry(subjects, rng),
        "sixmwt": sixmwt,
        "lung_function": lung_function,
        "labs": _labs(subjects, rng),
        "adverse_events": _adverse_events(subjects, rng),
    }


def run_marts_benchmark(sizes: tuple[int, ...] = tuple(GOALS_S), *, seed: int = 0) -> dict[int, float]:
    """Seconds to build all marts (adsl, adct, adft, adlb, adae, ae_incidence) per subject count.

    Data generation is not timed. Returns {n_subjects: seconds}; compare with ``GOALS_S``.
    """
    timings = {}
    for n in sizes:
        silver = make_silver_frames(n, seed=seed)
        start = time.perf_counter()
        build_marts(silver, config=AnalysisConfig())
        timings[n] = time.perf_counter() - start
    return timings


if __name__ == "__main__":
    for size, seconds in run_marts_benchmark().items():
        goal = GOALS_S[size]
        print(f"marts {size:>6} subjects: {seconds:6.2f} s (goal {goal:.0f} s, ratio {seconds / goal:.3f})")
