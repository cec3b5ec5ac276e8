"""Benchmark: lake tables as Delta tables (issue 17).

In one child process with private Prefect state (``bench.flow_runs``):

- **publication**: every table of the demo trial's lake (after a nightly run, which is timed
  too: the publication goals are shares of it) published into an
  empty lake with ``write_table`` (Delta: one commit per table, files named by their hash) against
  the writer before Delta (one Parquet object per partition: ``tests/legacy_lake.py``), on disk
  and on a SeaweedFS S3 server on 127.0.0.1; then the same tables again, unchanged (Delta: a look
  at each table's log, no commit; the old writer: a byte comparison that downloads every
  partition). Best of 3, each into a new lake.
- **lease**: taking and releasing the lake's lease (what one-writer-per-lake costs a run), on
  disk and on SeaweedFS. Best of 5.
- **read**: ``gold/adct`` with ``pl.scan_delta`` (and ``scan_table``) against the read of the
  same table in the old layout (``pl.scan_parquet`` of ``**/*.parquet`` with Hive partitioning,
  what analysts ran before). Best of 5.
- **no-op nightly**: table commits made by a second nightly run on the same landing (must be 0).
- **lock and as-of** on a 100-subject trial: ``lock_database`` against reading every table's
  version (the least a lock does); ``rebuild_endpoints_as_of`` (copy the locked tables, rebuild
  gold, compare) against a gold rebuild of the live lake (suites loaded, gold forgotten, rebuilt).
"""
from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.floors import best_of
from bench.flow_runs import TrialSize, make_trial, run_in_child, time_empty_flow, time_flow


@dataclass(frozen=True)
class LakeTimings:
    """Seconds (best of several) of each measurement; ``noop_commits`` is a count."""

    n_tables: int
    n_partitions: int
    nightly_s: float
    publish: dict[str, tuple[float, float]]  # store -> (delta, old writer)
    republish: dict[str, tuple[float, float]]  # store -> (delta, old writer), nothing changed
    lease: dict[str, float]  # store -> taking and releasing the lake's lease
    read_delta_s: float
    read_scan_table_s: float
    read_old_s: float
    noop_commits: int
    lock_subjects: int
    lock_s: float
    versions_s: float
    as_of_s: float
    gold_rebuild_s: float
    reproduced: bool
    lock_note: str = ""  # why lock and as-of were measured on the demo trial, if they were


def _publish_all(make_lake: Callable[[], object], frames: dict, writer: Callable, repeat: int = 3) -> tuple[float, float, object]:
    """Best time to publish every table into a new lake, best time to publish them again
    unchanged, and the last lake."""
    best, best_again, lake = float("inf"), float("inf"), None
    for _ in range(repeat):
        lake = make_lake()
        start = time.perf_counter()
        for table, (frame, partition_by) in frames.items():
            writer(lake, table, frame, partition_by=partition_by)
        best = min(best, time.perf_counter() - start)
        start = time.perf_counter()
        for table, (frame, partition_by) in frames.items():
            writer(lake, table, frame, partition_by=partition_by)
        best_again = min(best_again, time.perf_counter() - start)
    return best, best_again, lake


def _measure(demo_landing: str, lock_landing: str, workdir: str, s3_environ: dict[str, str]) -> LakeTimings:
    """In the child: the nightly runs, then every measurement."""
    import polars as pl

    from trialake_flows.nightly import nightly
    from tests.legacy_lake import write_legacy_table
    from trialake.config import Settings, load_trial_config, storage_options_from_env
    from trialake.config.settings import default_expectations_dir
    from trialake.lake import acquire_lease, list_tables, open_lake, read_table, scan_table, table_history, table_version, write_table
    from trialake.lake.tables import delta_table
    from trialake.pipeline.context import RunContext
    from trialake.pipeline.database_lock import lock_database, rebuild_endpoints_as_of
    from trialake.pipeline.freshness import forget_stage
    from trialake.pipeline.gold import build_gold
    from trialake.pipeline.quality import load_quality_gate

    work = Path(workdir)
    demo = open_lake(str(work / "demo-lake"))
    time_empty_flow()  # starts the ephemeral server, untimed
    nightly_s, _ = time_flow(nightly, landing=demo_landing, lake=demo.url)
    tables = list_tables(demo)
    frames = {t: (read_table(demo, t), delta_table(demo, t).metadata().partition_columns) for t in tables}
    n_partitions = sum(max(1, f.select(p).n_unique()) if p else 1 for f, p in frames.values())

    s3_options = storage_options_from_env(s3_environ)
    import s3fs

    s3 = s3fs.S3FileSystem(**s3_options)

    def local_lake() -> object:
        return open_lake(str(work / "publish" / uuid.uuid4().hex))

    def s3_lake() -> object:
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        s3.mkdir(bucket)
        return open_lake(f"s3://{bucket}/lake", s3_options)

    publish, republish, old_lakes, lease = {}, {}, {}, {}
    for store, make in (("disk", local_lake), ("SeaweedFS", s3_lake)):
        delta_s, delta_again_s, _ = _publish_all(make, frames, write_table)
        old_s, old_again_s, old_lakes[store] = _publish_all(make, frames, write_legacy_table)
        publish[store], republish[store] = (delta_s, old_s), (delta_again_s, old_again_s)
        lake = make()
        lease[store] = best_of(lambda: acquire_lease(lake, owner="bench").release(), repeat=5)

    read_delta_s = best_of(lambda: pl.scan_delta(demo.uri("gold/adct")).collect(), repeat=5)
    read_scan_table_s = best_of(lambda: scan_table(demo, "gold/adct").collect(), repeat=5)
    old_adct = old_lakes["disk"].uri("gold/adct", "**/*.parquet")  # how the table was read before
    read_old_s = best_of(lambda: pl.scan_parquet(old_adct, hive_partitioning=True).collect(), repeat=5)

    before = {t: table_history(demo, t, limit=1)[0].version for t in tables}
    nightly(landing=demo_landing, lake=demo.url)
    noop_commits = sum(table_history(demo, t, limit=1)[0].version - v for t, v in before.items())

    lock_lake, lock_note = open_lake(str(work / "lock-lake")), ""
    state = nightly(landing=lock_landing, lake=lock_lake.url, return_state=True)
    if not state.is_completed():  # measured on the demo trial's lake instead, saying why
        lock_note = f"the larger trial's nightly run ended {state.name}: {' '.join(str(state.message).split())[:200]}"
        lock_lake, lock_landing = demo, demo_landing
    subjects = read_table(lock_lake, "silver/subjects").height
    versions_s = best_of(lambda: [table_version(lock_lake, t) for t in list_tables(lock_lake)], repeat=3)
    names = iter(f"bench-{i}" for i in range(10))
    lock_s = best_of(lambda: lock_database(lock_lake, next(names), run_id="bench", created_by="bench"), repeat=3)
    as_of = {}

    def recompute() -> None:
        as_of["result"] = rebuild_endpoints_as_of(lock_lake, "bench-0", expectations_dir=default_expectations_dir())

    as_of_s = best_of(recompute, repeat=2)
    settings = Settings(landing=lock_landing, lake=lock_lake.url, trial=load_trial_config())
    ctx = RunContext(settings=settings, lake=lock_lake, landing=lock_lake, run_id="bench-rebuild", secret=b"")

    def rebuild() -> None:
        gate = load_quality_gate(ctx, default_expectations_dir())
        forget_stage(ctx, "gold")
        build_gold(ctx, gate)

    gold_rebuild_s = best_of(rebuild, repeat=2)
    return LakeTimings(
        n_tables=len(tables), n_partitions=n_partitions, nightly_s=nightly_s, publish=publish, republish=republish, lease=lease,
        read_delta_s=read_delta_s, read_scan_table_s=read_scan_table_s, read_old_s=read_old_s,
        noop_commits=noop_commits, lock_subjects=subjects, lock_s=lock_s, versions_s=versions_s, as_of_s=as_of_s,
        gold_rebuild_s=gold_rebuild_s, reproduced=as_of["result"].reproduced, lock_note=lock_note,
    )


def run(demo: TrialSize, lock: TrialSize, *, workdir: str | None = None) -> LakeTimings:
    """Generate both trials (untimed), start SeaweedFS, measure in a fresh child process."""
    from tests.seaweedfs import start_seaweedfs

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        demo_trial = make_trial(demo, root / "demo")
        lock_trial = make_trial(lock, root / "lock")
        server = start_seaweedfs(root / "seaweedfs")
        try:
            return run_in_child(_measure, str(demo_trial.landing), str(lock_trial.landing), str(root / "work"),
                                server.environ, prefect_home=root / "prefect")
        finally:
            server.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", ".")
    print(run(TrialSize(subjects=6, matrix=48, slices=20), TrialSize(subjects=10, matrix=48, slices=20)))
