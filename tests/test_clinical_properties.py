"""Property tests: nothing is lost, numbers survive site formatting, standardizing is reversible."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialake.clinical import compute_conversion_factor, default_standards, derive_bronze_clinical, derive_labs
from trialake.visits import study_day
from trialake.clinical.numbers import parse_number
from trialake.clinical.readers import parse_clinical_file

SUBJECTS = pl.DataFrame({"USUBJID": ["TL-001", "TL-002"], "RFSTDT": [dt.date(2020, 3, 5), None]})
LB = default_standards("LB")

names = st.sampled_from(["Créatinine", "CRP", "Glucose", "PLAT", "D-dimer", "ALT", "Hb", "Unknown test", None])
units = st.sampled_from(["mg/dL", "mg/L", "umol/L", "/uL", "10^9/L", "ukat/L", "ng/mL FEU", "ng/mL DDU", "furlong", None])
results = st.one_of(
    st.none(),
    st.sampled_from(["<0,5", ">1000", "1,234", "1.234,5", "abc", "", "  7 "]),
    st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda v: f"{v:.3f}"),
)
lab_rows = st.lists(
    st.tuples(st.sampled_from(["TL-001", "TL-002"]), names, results, units,
              st.sampled_from([None, "1", "x"]), st.sampled_from([".", ","])),
    min_size=0,
    max_size=40,
)


def _bronze(rows: list[tuple]) -> pl.DataFrame:
    frame = pl.DataFrame(
        rows, schema=["USUBJID", "LBTEST", "LBORRES", "LBORRESU", "LBORNRHI", "decimal_mark"], orient="row"
    )
    return frame.with_columns(
        pl.lit(dt.date(2020, 3, 6)).alias("LBDT"),
        pl.lit("c" * 64).alias("source_sha256"),
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("source_row"),
        pl.lit("run").alias("run_id"),
    )


@settings(max_examples=40, deadline=None)
@given(rows=lab_rows)
def test_lab_rows_in_equal_rows_out_plus_rejected(rows: list[tuple]) -> None:
    labs, rejected = derive_labs(_bronze(rows), subjects=SUBJECTS)
    assert labs.height + rejected.height == len(rows)
    assert sorted(labs.get_column("source_row").to_list() + rejected.get_column("source_row").to_list()) == list(
        range(1, len(rows) + 1)
    )
    assert rejected.get_column("reason").null_count() == 0
    # a kept numeric result always has a value; a censored one keeps its operator in LBSTRESC only
    censored = labs.filter(pl.col("LBSTRESC").str.contains(r"^[<>]"))
    assert censored.get_column("LBSTRESN").null_count() == censored.height
    assert labs.filter(~pl.col("LBSTRESC").str.contains(r"^[<>]")).get_column("LBSTRESN").null_count() == 0


@settings(max_examples=100, deadline=None)
@given(value=st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False),
       comma_decimal=st.booleans(), grouped=st.booleans())
def test_site_formatted_numbers_parse_back(value, comma_decimal: bool, grouped: bool) -> None:
    text = f"{value:,.2f}" if grouped else f"{value:.2f}"  # e.g. 1,234,567.89 or 1234567.89
    if comma_decimal:
        text = text.translate(str.maketrans(",.", ".,"))  # European style: 1.234.567,89
    mark = "," if comma_decimal else "."
    parsed = pl.select(parse_number(pl.lit(text), pl.lit(mark))).item()
    assert parsed == pytest.approx(float(value), rel=1e-12, abs=1e-12)


PAIRS = [("CREAT", "mg/dL"), ("GLUC", "mg/dL"), ("BILI", "mg/dL"), ("ALT", "ukat/L"), ("PLAT", "/uL"),
         ("WBC", "10*3/uL"), ("HGB", "g/dL"), ("DDIMER", "ng/mL FEU"), ("CRP", "mg/L")]


@settings(max_examples=40, deadline=None)
@given(pair=st.sampled_from(PAIRS), value=st.floats(min_value=1e-3, max_value=1e6))
def test_standardized_lab_value_converts_back_to_the_original(pair, value: float) -> None:
    code, unit = pair
    spec = LB.mapping.tests[code]
    bronze = _bronze([("TL-001", code, repr(value), unit, None, ".")])
    labs, rejected = derive_labs(bronze, subjects=SUBJECTS)
    assert rejected.height == 0
    back = labs.item(0, "LBSTRESN") * compute_conversion_factor(
        spec.unit, unit, catalog=LB.units, per_mole=spec.per_mole
    )
    assert back == pytest.approx(value, rel=1e-5)  # LBSTRESN keeps 6 significant digits


KEY = pl.DataFrame({"SITEID": ["01"], "PATIENT_ID": ["P1"], "USUBJID": ["TL-001"]})


@settings(max_examples=40, deadline=None)
@given(cells=st.lists(st.tuples(st.sampled_from(["P1", "P2", ""]),
                                st.sampled_from(["2020-03-05", "2020-03", "43895", "31/12/2020", "", "2020-02-30"])),
                      min_size=1, max_size=20))
def test_bronze_rows_in_equal_bronze_plus_rejected(cells: list[tuple[str, str]]) -> None:
    text = "SITEID,PATIENT_ID,LBDTC,LBORRES\n" + "".join(f"01,{p},{d},1\n" for p, d in cells)
    parsed = parse_clinical_file("lb.csv", text.encode())
    bronze, rejected = derive_bronze_clinical(parsed, key=KEY, date_shift=None, source_sha256="s", run_id="r")
    assert bronze.height + rejected.height == len(cells)
    assert "PATIENT_ID" not in bronze.columns


@settings(max_examples=100, deadline=None)
@given(reference=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2040, 1, 1)),
       offset=st.integers(min_value=-400, max_value=400))
def test_study_day_has_no_day_zero_and_counts_calendar_days(reference: dt.date, offset: int) -> None:
    date = reference + dt.timedelta(days=offset)
    day = pl.select(study_day(pl.lit(date), pl.lit(reference))).item()
    assert day != 0
    assert day == (offset + 1 if offset >= 0 else offset)  # tables.md: +1 on/after first dose
