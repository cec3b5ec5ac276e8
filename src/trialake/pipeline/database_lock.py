"""The database lock of a trial, and the endpoints recomputed as of it.

`lock_database` records the version of every table under a name (`trialake.lake.create_lock`),
with the state of every derived stage (which run derived it, from which input versions, with which
configuration), and refuses while a stage is not derived from its inputs' current versions (a run
stopped half-way): a lock is taken on a settled lake.

`rebuild_endpoints_as_of` recomputes the gold marts, the endpoints and the endpoint report from
exactly the locked versions, with the configuration and run id of the gold build that was locked,
in a private scratch lake, and says whether every gold table came out byte for byte as locked (the
data files are named by the hash of their bytes, so equal names are equal bytes).
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from trialake.config import Settings
from trialake.lake import (
    Lake,
    LockRecord,
    create_lock,
    open_lake,
    read_lock,
    read_object,
    list_tables,
    read_table,
    write_object,
    write_table,
)
from trialake.lake.tables import delta_table, file_names
from trialake.pipeline.context import RunContext, code_version, read_config
from trialake.pipeline.freshness import input_versions, read_stage_states
from trialake.pipeline.gold import REPORT, build_gold
from trialake.pipeline.quality import load_quality_gate

GOLD_STAGE = "gold"
#: Zones not copied for a recomputation: gold is what is recomputed, bronze is never read by it.
NOT_INPUTS = ("bronze", "gold")


class LakeNotSettled(RuntimeError):
    """A derived stage is not derived from the current versions of its inputs."""


def lock_database(lake: Lake, name: str, *, run_id: str, created_by: str) -> LockRecord:
    """Lock every table of the lake under ``name`` (hold the lake's lease while calling this)."""
    states = read_stage_states(lake)
    for stage, state in sorted(states.items()):
        current = input_versions(lake, list(state.inputs))
        moved = [t for t in sorted(state.inputs) if current[t] != state.inputs[t]]
        if moved:
            raise LakeNotSettled(
                f"stage {stage} was derived by run {state.run_id} from other versions of {', '.join(moved)} "
                "than there are now (a run stopped half-way?); run the nightly flow, then lock"
            )
    extra = {"code_version": code_version(), "stages": {stage: asdict(state) for stage, state in states.items()}}
    return create_lock(lake, name, run_id=run_id, created_by=created_by, extra=extra)


@dataclass(frozen=True)
class EndpointsAsOf:
    """Endpoints recomputed as of a lock: the table, the report (HTML), and per gold table
    whether it came out identical to the locked version (None: not in the lock)."""

    lock: str
    endpoints: pl.DataFrame
    report_html: str
    identical: dict[str, bool | None]
    gold_run_id: str

    @property
    def reproduced(self) -> bool:
        """Every gold table identical to its locked version."""
        return all(self.identical.values())


def rebuild_endpoints_as_of(lake: Lake, name: str, *, expectations_dir: Path) -> EndpointsAsOf:
    """Recompute gold (marts, endpoints, report) from the tables as lock ``name`` recorded them."""
    lock = read_lock(lake, name)
    gold = lock.extra.get("stages", {}).get(GOLD_STAGE)
    if gold is None:
        raise LookupError(f"lock {name!r}: the gold marts had not been built when it was made")
    trial = read_config(lake, gold["config_sha256"])
    with tempfile.TemporaryDirectory(prefix="trialake-as-of-") as scratch_dir:  # private (0700): restricted tables go there
        scratch = open_lake(scratch_dir)
        for table, entry in sorted(lock.tables.items()):
            if table.split("/", 1)[0] not in NOT_INPUTS:
                partition_by = delta_table(lake, table, entry.version).metadata().partition_columns
                write_table(scratch, table, read_table(lake, table, as_of=entry.version), partition_by=partition_by)
        settings = Settings(landing=scratch.url, lake=scratch.url, trial=trial, expectations_dir=expectations_dir)
        ctx = RunContext(settings=settings, lake=scratch.with_commit_info(run_id=gold["run_id"]), landing=scratch,
                         run_id=gold["run_id"], secret=b"")
        build_gold(ctx, load_quality_gate(ctx, expectations_dir))
        identical = {
            table: file_names(lake, table, lock.tables[table].version) == file_names(scratch, table) if table in lock.tables else None
            for table in list_tables(scratch) if table.startswith("gold/")
        }
        return EndpointsAsOf(name, read_table(scratch, "gold/endpoints"), read_object(scratch, REPORT).decode(), identical, gold["run_id"])


def publish_as_of(lake: Lake, result: EndpointsAsOf) -> str:
    """Write the recomputed endpoints (CSV) and report into ``reports/locks/<lock>/``; returns
    the folder (lake-relative)."""
    folder = f"reports/locks/{result.lock}"
    write_object(lake, f"{folder}/endpoints.csv", result.endpoints.write_csv().encode())
    write_object(lake, f"{folder}/endpoints.html", result.report_html.encode())
    return folder
