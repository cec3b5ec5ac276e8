"""Is a derived stage up to date with its inputs? Crash-safe re-derivation, and what a commit
records about its inputs.

A stage records, when it finishes, the versions of its input tables (each table's Delta id and
version) and the trial configuration in ``_state/<stage>``. The next run re-derives it when that
fingerprint differs, so a run killed between publishing inputs and deriving from them is completed
by the next run, and a changed trial configuration (windows, thresholds, lab conversions)
re-derives as well. Reading a version costs a look at the table's log, never its data.
"""
from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from trialake.lake import Lake, list_folder, read_object, table_version, write_object
from trialake.pipeline.context import RunContext, config_sha256

STATE = "_state"
#: Landing files named one by one in a commit's inputs up to this many (a digest always).
LISTED_LANDING_FILES = 16


@dataclass(frozen=True)
class StageState:
    """What ``_state/<stage>`` says: the fingerprint, the run that derived the stage, when, the
    configuration and the input table versions ({table: {"table_id", "version"}}; absent: None)."""

    fingerprint: str
    run_id: str
    derived_at: str
    config_sha256: str
    inputs: Mapping[str, Mapping[str, object] | None]


def input_versions(lake: Lake, tables: Sequence[str]) -> dict[str, dict[str, object] | None]:
    """{table: {"table_id", "version"}} of each input table (None for a table that does not exist)."""
    versions = {}
    for table in sorted(tables):
        version = table_version(lake, table)
        versions[table] = None if version is None else {"table_id": version.table_id, "version": version.version}
    return versions


def compute_fingerprint(ctx: RunContext, tables: Sequence[str]) -> str:
    """sha256 over the trial configuration and the id and version of every table of ``tables``."""
    return _fingerprint(config_sha256(ctx.settings.trial), input_versions(ctx.lake, tables))


def _fingerprint(config: str, versions: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps({"config": config, "inputs": versions}, sort_keys=True).encode()).hexdigest()


def read_stage_state(lake: Lake, stage: str) -> StageState | None:
    """The stage's recorded state (None if never derived, or recorded by an earlier lake format)."""
    try:
        return StageState(**json.loads(read_object(lake, f"{STATE}/{stage}")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):  # a marker of an earlier lake format
        return None


def read_stage_states(lake: Lake) -> dict[str, StageState]:
    """Every derived stage's recorded state, by stage."""
    states = {name: read_stage_state(lake, name) for name, is_folder in list_folder(lake, STATE) if not is_folder}
    return {stage: state for stage, state in states.items() if state is not None}


def is_stale(ctx: RunContext, stage: str, tables: Sequence[str]) -> bool:
    """Whether ``stage`` was never completed on the current version of ``tables``."""
    state = read_stage_state(ctx.lake, stage)
    return state is None or state.fingerprint != compute_fingerprint(ctx, tables)


def mark_fresh(ctx: RunContext, stage: str, tables: Sequence[str]) -> None:
    """Record that ``stage`` is derived from the current version of ``tables`` by this run."""
    config = config_sha256(ctx.settings.trial)
    versions = input_versions(ctx.lake, tables)
    state = StageState(
        fingerprint=_fingerprint(config, versions), run_id=ctx.run_id,
        derived_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), config_sha256=config, inputs=versions,
    )
    write_object(ctx.lake, f"{STATE}/{stage}", json.dumps(state.__dict__, sort_keys=True).encode())


def forget_stage(ctx: RunContext, stage: str) -> None:
    """Make ``stage`` stale, so that it is derived again (an ad hoc rebuild)."""
    marker = ctx.lake.path(f"{STATE}/{stage}")
    if ctx.lake.fs.exists(marker):
        ctx.lake.fs.rm(marker)


def with_inputs(ctx: RunContext, *, tables: Sequence[str] = (), landing_sha256: Iterable[str] = ()) -> RunContext:
    """The context whose table commits record these inputs: the id and version of each input
    table, and the landing files read (count, digest of their sorted sha256, and the sha256
    themselves when there are at most `LISTED_LANDING_FILES`; never their paths)."""
    inputs: dict[str, object] = {}
    if tables:
        inputs["tables"] = input_versions(ctx.lake, tables)
    shas = sorted(set(landing_sha256))
    if shas:
        inputs["landing_files"] = len(shas)
        inputs["landing_sha256_digest"] = hashlib.sha256("\n".join(shas).encode()).hexdigest()
        if len(shas) <= LISTED_LANDING_FILES:
            inputs["landing_sha256"] = shas
    return replace(ctx, lake=ctx.lake.with_commit_info(inputs=inputs))
