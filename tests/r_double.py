"""Run the R double programming of gold/endpoints (tests/r_reference/endpoints.R) on marts and
compare every row with the lake's. R comes from the Debian package r-base-core (``make test``
installs it); where Rscript is absent the calling test is skipped with a message."""
from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

SCRIPT = Path(__file__).parent / "r_reference" / "endpoints.R"
NUMBERS = ("median_trt", "q1_trt", "q3_trt", "median_ctl", "q1_ctl", "q3_ctl", "median_all", "q1_all", "q3_all",
           "estimate", "ci_low", "ci_high", "p_value")
COUNTS = ("n_trt", "n_ctl", "n_all")
KEY = ["PARAMCD", "AVISIT", "AVAR"]


def require_r() -> str:
    """The Rscript executable; without it the test fails saying how to get it (never skipped)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.fail("Rscript not found: install the Debian package r-base-core (make test does) to double-program in R")
    return rscript


def recompute_in_r(
    workdir: Path, adsl: pl.DataFrame, efficacy: pl.DataFrame, endpoints: pl.DataFrame,
    sensitivity: pl.DataFrame | None = None, window_end: dict[str, int] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """R's gold/endpoints rows (and worst-rank rows) recomputed from ``adsl`` and the efficacy
    BDS records (``efficacy``: ADCT and ADFT together)."""
    rscript = require_r()
    workdir.mkdir(parents=True, exist_ok=True)
    columns = [c for c in adsl.columns if c in ("USUBJID", "TRT01P", "TRTSDT", "RANDDT", "DTHDT") or c.endswith("FL")]
    adsl.select(columns).write_csv(workdir / "adsl.csv")
    efficacy.select("USUBJID", "PARAMCD", "AVISIT", "ANL01FL", "ABLFL", "CHG", "PCHG").write_csv(workdir / "bds.csv", float_precision=17)
    endpoints.select(*KEY, "population", "trt_arm", "ctl_arm", "conf_level", "method").write_csv(workdir / "endpoints.csv")
    if sensitivity is not None:
        sensitivity.select(*KEY, "population", "better", "trt_arm", "ctl_arm").with_columns(
            window_end=pl.col("AVISIT").replace_strict(window_end or {}, return_dtype=pl.Int64)
        ).write_csv(workdir / "sensitivity.csv")
    subprocess.run([rscript, str(SCRIPT), str(workdir)], check=True, capture_output=True, timeout=300)
    r_sensitivity = pl.read_csv(workdir / "r_sensitivity.csv", null_values="NA") if sensitivity is not None else None
    return pl.read_csv(workdir / "r_endpoints.csv", null_values="NA"), r_sensitivity


def assert_equal_to_r(ours: pl.DataFrame, theirs: pl.DataFrame, *, tol: float = 1e-8) -> int:
    """Every row of ``ours`` equals R's: counts exactly, numbers to ``tol`` (relative to the
    value's size when larger than 1), nulls where R has NA. Returns the rows compared."""
    both = ours.join(theirs, on=KEY, how="left", suffix="_r")
    assert both.height == ours.height == theirs.height
    mismatches = []
    for row in both.iter_rows(named=True):
        for column in COUNTS:
            if row[column] is not None and row[column] != row[f"{column}_r"]:
                mismatches.append((row["PARAMCD"], row["AVISIT"], row["AVAR"], column, row[column], row[f"{column}_r"]))
        for column in NUMBERS:
            if column not in ours.columns:
                continue
            mine, r = row[column], row[f"{column}_r"]
            r = None if r is None or (isinstance(r, float) and math.isnan(r)) else r
            if (mine is None) != (r is None) or (mine is not None and abs(mine - r) > tol * max(1.0, abs(r))):
                mismatches.append((row["PARAMCD"], row["AVISIT"], row["AVAR"], column, mine, r))
    assert mismatches == [], mismatches[:10]
    return both.height
