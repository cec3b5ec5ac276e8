"""Is a derived stage up to date with everything it depends on? Crash-safe re-derivation, and what
a commit records about its inputs.

A stage (``StageDependencies``) depends on its input tables, the sections of the trial
configuration it reads, the files those sections name (lab mapping, toxicity criteria; the packaged
ones when none is configured), the quality suites of the tables it publishes, and its code (the
source of the library packages that derive it). When it finishes it records a digest of each in
``_state/<stage>``. The next run re-derives it when any of them differs, and says which: a run
killed between publishing inputs and deriving from them is completed by the next run, and a changed
configuration section, mapping file, suite or code re-derives exactly the stages that depend on it.
Reading a table's version costs a look at its log, never its data.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from trialake.clinical.mapping import packaged_mapping_path
from trialake.config.trial import TrialConfig
from trialake.lake import Lake, list_folder, read_object, table_version, write_object
from trialake.marts.toxicity import default_toxicity_path
from trialake.pipeline.context import RunContext, config_sha256

STATE = "_state"
#: Landing files named one by one in a commit's inputs up to this many (a digest always).
LISTED_LANDING_FILES = 16


@dataclass(frozen=True)
class StageDependencies:
    """What a derived stage depends on besides its input ``tables``: ``config`` (top-level keys of
    the trial configuration it reads), ``suites`` (tables whose quality suites it applies; a name
    ending in ``/`` stands for every table of that zone) and ``code`` (library packages whose
    source derives it)."""

    tables: tuple[str, ...]
    config: tuple[str, ...]
    suites: tuple[str, ...]
    code: tuple[str, ...]


@dataclass(frozen=True)
class StageState:
    """What ``_state/<stage>`` says: the fingerprint, the run that derived the stage, when, the
    configuration, the input table versions ({table: {"table_id", "version"}}; absent: None), the
    digest of each dependency (``components``) and why the stage was derived (``reasons``)."""

    fingerprint: str
    run_id: str
    derived_at: str
    config_sha256: str
    inputs: Mapping[str, Mapping[str, object] | None]
    components: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()


def input_versions(lake: Lake, tables: Sequence[str]) -> dict[str, dict[str, object] | None]:
    """{table: {"table_id", "version"}} of each input table (None for a table that does not exist)."""
    versions = {}
    for table in sorted(tables):
        version = table_version(lake, table)
        versions[table] = None if version is None else {"table_id": version.table_id, "version": version.version}
    return versions


def compute_components(ctx: RunContext, deps: StageDependencies, suite_files: Mapping[str, Path]) -> dict[str, dict[str, object]]:
    """A digest of every dependency of a stage, by kind and name (``suite_files``: table -> suite file)."""
    trial = ctx.settings.trial
    dump = trial.model_dump(mode="json")
    return {
        "tables": dict(input_versions(ctx.lake, deps.tables)),
        "config": {key: _digest(json.dumps(dump[key], sort_keys=True).encode()) for key in deps.config},
        "files": {name: _digest(path.read_bytes()) for name, path in named_files(trial, deps.config).items()},
        "suites": {t: _digest(path.read_bytes()) for t, path in sorted(suite_files.items()) if _applies(t, deps.suites)},
        "code": {package: code_digest(package) for package in deps.code},
    }


def _applies(table: str, suites: Sequence[str]) -> bool:
    return any(table == s or (s.endswith("/") and table.startswith(s)) for s in suites)


def named_files(trial: TrialConfig, sections: Sequence[str]) -> dict[str, Path]:
    """The files the given configuration sections name (the packaged ones when none is configured)."""
    if "labs" not in sections:
        return {}
    labs = trial.labs
    return {"labs.mapping": Path(labs.mapping) if labs.mapping else packaged_mapping_path("lb_mapping.yaml"),
            "labs.toxicity": Path(labs.toxicity) if labs.toxicity else default_toxicity_path()}


@functools.cache
def code_digest(package: str) -> str:
    """Digest of the Python source of a package of this library (``trialake.clinical``)."""
    root = resources.files(package)
    sources = sorted((p for p in Path(str(root)).rglob("*.py")), key=lambda p: p.as_posix())
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.relative_to(Path(str(root))).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _fingerprint(components: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(components, sort_keys=True).encode()).hexdigest()


def compute_stale_reasons(previous: StageState | None, components: Mapping[str, Mapping[str, object]]) -> tuple[str, ...]:
    """Why a stage must be derived again (empty when it is up to date), one short line each."""
    if previous is None:
        return ("never derived",)
    if not previous.components:
        return ("recorded by an earlier version of trialake",)
    words = {"tables": "input table", "config": "configuration section", "files": "file", "suites": "quality suite of",
             "code": "code of"}
    reasons = []
    for kind, now in components.items():
        before = previous.components.get(kind, {})
        for name in sorted(set(now) | set(before)):
            if now.get(name) != before.get(name):
                reasons.append(f"{words.get(kind, kind)} {name} changed")
    return tuple(reasons)


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


def stale_reasons(ctx: RunContext, stage: str, deps: StageDependencies, suite_files: Mapping[str, Path]) -> tuple[str, ...]:
    """Why ``stage`` must be derived again (empty: it is derived from the current version of
    everything it depends on)."""
    return compute_stale_reasons(read_stage_state(ctx.lake, stage), compute_components(ctx, deps, suite_files))


def mark_fresh(ctx: RunContext, stage: str, deps: StageDependencies, suite_files: Mapping[str, Path],
               reasons: Sequence[str] = ()) -> None:
    """Record that ``stage`` is derived from the current version of everything it depends on by
    this run, and why it was derived."""
    components = compute_components(ctx, deps, suite_files)
    state = StageState(
        fingerprint=_fingerprint(components), run_id=ctx.run_id,
        derived_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        config_sha256=config_sha256(ctx.settings.trial), inputs=components["tables"], components=components,
        reasons=tuple(reasons),
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
