"""The database lock end to end: nightly run, `trialake lock`, a later run that changes the data,
`trialake vacuum`, then `trialake endpoints --as-of` and the rebuild-marts flow with the lock
reproduce the endpoints and the report of the day byte for byte."""
from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from trialake.cli import main
from trialake.lake import Lake, read_lock, read_object, read_table, table_history

pytestmark = pytest.mark.xdist_group("prefect-crash")


def _walk_further(landing: Path) -> None:
    """Every subject's last 6-minute walk 100 m longer: a later export that changes the endpoints."""
    path = landing / "clinical" / "ft.csv"
    ft = pl.read_csv(path, infer_schema=False)
    last = pl.col("FTSEQ").cast(pl.Int64) == pl.col("FTSEQ").cast(pl.Int64).max().over("USUBJID")
    ft.with_columns(pl.when(last).then((pl.col("FTORRES").cast(pl.Int64) + 100).cast(pl.String))
                    .otherwise(pl.col("FTORRES")).alias("FTORRES")).write_csv(path)


def test_a_lock_reproduces_the_endpoints_of_the_day_after_the_data_changed(
    small_trial: Path, fresh_run: Lake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trialake_flows.adhoc import rebuild_marts
    from trialake_flows.nightly import nightly

    landing = tmp_path / "landing"
    shutil.copytree(small_trial / "landing", landing)
    lake = fresh_run  # the nightly run of the day
    report_of_the_day = read_object(lake, "reports/endpoints.html")
    endpoints_of_the_day = read_table(lake, "gold/endpoints")
    gold_run = table_history(lake, "gold/endpoints")[0].info["run_id"]

    assert main(["lock", "primary", "--lake", lake.url]) == 0
    assert "lock primary:" in capsys.readouterr().out
    locked = read_lock(lake, "primary")
    assert locked.tables["gold/endpoints"].run_id == gold_run
    assert main(["lock", "primary", "--lake", lake.url]) == 2  # a lock is never replaced
    assert "exists already" in capsys.readouterr().err

    _walk_further(landing)
    nightly(landing=str(landing), lake=lake.url)
    now = read_table(lake, "gold/endpoints")
    sixmw = (pl.col("PARAMCD") == "SIXMW") & (pl.col("AVAR") == "CHG")
    assert not now.filter(sixmw).equals(endpoints_of_the_day.filter(sixmw))  # the data did change
    assert main(["vacuum", "--lake", lake.url, "--retention-hours", "0"]) == 0
    assert "removed" in capsys.readouterr().out

    assert main(["history", "gold/endpoints", "--lake", lake.url]) == 0
    history = capsys.readouterr().out.splitlines()
    assert len(history) == 2 + 2  # title, header, the two versions (both kept: nothing for vacuum to remove)
    assert any(line.startswith("0 ") and gold_run in line and line.rstrip().endswith("primary") for line in history)

    out = tmp_path / "as-of"
    assert main(["endpoints", "--lake", lake.url, "--as-of", "primary", "--out", str(out)]) == 0
    assert "reproduced, every gold table identical" in capsys.readouterr().out
    assert (out / "endpoints.html").read_bytes() == report_of_the_day
    assert pl.read_csv(out / "endpoints.csv").equals(pl.read_csv(endpoints_of_the_day.write_csv().encode()))

    result = rebuild_marts(landing=str(landing), lake=lake.url, lock="primary")
    assert result.reproduced and set(result.identical) >= {"gold/adsl", "gold/adct", "gold/endpoints"}
    assert read_object(lake, "reports/locks/primary/endpoints.html") == report_of_the_day
    assert read_table(lake, "gold/endpoints").equals(now)  # the lake's own tables are left alone
