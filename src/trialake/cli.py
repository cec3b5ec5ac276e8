"""The `trialake` command: generate a synthetic trial, run a flow, measure a series, run the demo."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trialake.lake import Lake, Lease

# Quiet, offline defaults for Prefect when the CLI starts it (the environment still wins).
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


class CommandError(Exception):
    """The command could not run; the message is the one line the user sees."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows every option's default (options without one, or off by default, say nothing)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.option_strings and not action.required and "%(default)" not in text
                and action.default is not None and action.default is not False and action.default != argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


_EXIT_OTHER = "exit codes:\n  0  done\n  2  could not run: one line on stderr says why"


def _exit_epilog(codes: dict[int, str]) -> str:
    return "exit codes:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in codes.items())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from trialake.console import EXIT_CODES

    parser = argparse.ArgumentParser(prog="trialake", description=__doc__, formatter_class=_HelpFormatter,
                                     epilog=_EXIT_OTHER + "\n  1  `run`: incomplete run; `endpoints --as-of`: not reproduced")
    subparsers = parser.add_subparsers(dest="command", required=True)

    class _Commands:
        """add_parser with the help formatter and exit codes of every subcommand."""

        @staticmethod
        def add_parser(name: str, *, epilog: str = _EXIT_OTHER, **kwargs: object) -> argparse.ArgumentParser:
            return subparsers.add_parser(name, formatter_class=_HelpFormatter, epilog=epilog, description=kwargs.get("help"),
                                         **kwargs)

    commands = _Commands()

    generate = commands.add_parser("generate", help="write a synthetic trial: OUT_DIR/landing and OUT_DIR/truth")
    generate.add_argument("out_dir", type=Path, help="folder to write landing/ and truth/ into")
    generate.add_argument("--subjects", type=int, default=100, help="randomized subjects")
    generate.add_argument("--seed", type=int, default=0, help="random seed (same seed, same trial)")
    generate.add_argument("--matrix", type=int, default=64, help="in-plane CT matrix, up to 512")
    generate.add_argument("--slices", type=int, default=40, help="CT slices per series")
    generate.add_argument("--sites", type=int, default=3, choices=(2, 3), help="sites, each with its own export habits")
    generate.add_argument("--mess", type=float, default=0.0, metavar="RATE",
                          help="rate (0-1) of every kind of deliberate mess in the clinical exports (truth/quarantine.csv)")

    run = commands.add_parser("run", help="run a flow once, in process", epilog=_exit_epilog(EXIT_CODES))
    run.add_argument("flow", choices=("nightly",), help="the flow to run")
    run.add_argument("--landing", required=True, help="landing area: local path or s3://bucket/prefix")
    run.add_argument("--lake", required=True, help="lake: local path or s3://bucket/prefix")
    run.add_argument("--config", default=None, help="trial configuration YAML (default: reference trial)")
    run.add_argument("--json", action="store_true", help="print the run report as JSON instead of the summary")
    run.add_argument("--lease-wait", type=float, default=300.0, help="seconds to wait while another run writes the lake")
    run.add_argument("--lease-ttl", type=float, default=120.0, help="seconds a crashed run keeps the lake locked")
    run.add_argument("--task-runner", choices=("thread", "dask"), default="thread", help="where per-chunk and per-series tasks run")
    run.add_argument("--dask-address", default=None, help="scheduler of an existing Dask cluster (default: a local cluster)")
    run.add_argument("--workers", type=int, default=2, help="threads, or local Dask worker processes")
    run.add_argument("--pacs", default=None, help="also pull the key's patients' images from a PACS: "
                     "dicomweb+http(s)://host/path or dimse://CALLED_AET@host:port?calling=AET")

    receive = commands.add_parser("receive", help="a C-STORE receiver (DICOM SCP) writing into the landing area")
    receive.add_argument("--port", type=int, required=True, help="TCP port to listen on (0: any free port, printed)")
    receive.add_argument("--ae-title", required=True, help="this receiver's AE title")
    receive.add_argument("--landing", required=True, help="landing area: local path or s3://bucket/prefix")
    receive.add_argument("--host", default="0.0.0.0", help="address to listen on (default: every interface)")
    receive.add_argument("--allow", action="append", default=None, metavar="AET",
                         help="accept only these calling AE titles (repeat the option; default: any)")

    volumetry = commands.add_parser("volumetry", help="measure lung and lesion volumes of one CT series")
    volumetry.add_argument("series_dir", type=Path, help="folder of one CT series' DICOM files")
    volumetry.add_argument("--json", action="store_true", help="print one JSON object (full precision) instead of rounded values with units")
    volumetry.add_argument("--config", default=None, help="trial configuration YAML (CT thresholds)")

    lock = commands.add_parser("lock", help="record the current version of every table under NAME (a lock is never changed)")
    lock.add_argument("name")
    _lake_arguments(lock, lease=True)

    history = commands.add_parser("history", help="a table's versions: when, which operation, run, flow, stage and code")
    history.add_argument("table", help="<zone>/<name>, e.g. gold/endpoints")
    _lake_arguments(history, lease=False)
    history.add_argument("--limit", type=int, default=None, help="only the newest N versions")
    history.add_argument("--json", action="store_true", help="one JSON object per version, inputs included")

    endpoints = commands.add_parser("endpoints", help="the endpoint table; with --as-of, recomputed from a lock's versions",
                                    epilog=_EXIT_OTHER + "\n  1  --as-of: a gold table differs from its locked version")
    _lake_arguments(endpoints, lease=False)
    endpoints.add_argument("--as-of", default=None, metavar="LOCK", help="recompute gold, endpoints and report as of this lock")
    endpoints.add_argument("--out", type=Path, default=None, help="write endpoints.csv and endpoints.html into this folder")

    vacuum = commands.add_parser("vacuum", help="remove data files no recent or locked table version needs")
    _lake_arguments(vacuum, lease=True)
    vacuum.add_argument("--retention-hours", type=int, default=168, help="keep every version younger than this many hours")
    vacuum.add_argument("--dry-run", action="store_true", help="list the files, remove nothing")

    upgrade = commands.add_parser("upgrade", help="convert a lake of plain Parquet tables to Delta tables, in place")
    _lake_arguments(upgrade, lease=True)

    unblind = commands.add_parser(
        "unblind", help="unblind a blinded lake: arm-level marts and report into <lake>/unblinded/, recorded")
    unblind.add_argument("--lake", required=True, help="lake: local path or s3://bucket/prefix")
    unblind.add_argument("--by", required=True, help="who unblinds (recorded in unblinded/unblinding_log only)")
    unblind.add_argument("--reason", default="", help="why (e.g. 'DMC meeting 3'), recorded with the event")
    unblind.add_argument("--config", default=None, help="trial configuration YAML (default: reference trial)")
    unblind.add_argument("--lease-wait", type=float, default=300.0, help="seconds to wait while another run writes the lake")

    demo = commands.add_parser("demo", help="generate a synthetic trial and run the nightly flow on it")
    demo.add_argument("--out", type=Path, default=Path("demo"), help="folder of the synthetic trial and its lake")
    demo.add_argument("--subjects", type=int, default=30, help="randomized subjects")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    handlers = {
        "generate": _generate, "run": _run, "receive": _receive, "volumetry": _volumetry, "unblind": _unblind, "demo": _demo, "lock": _lock,
        "history": _history, "endpoints": _endpoints, "vacuum": _vacuum, "upgrade": _upgrade,
    }
    try:
        return handlers[args.command](args)
    except CommandError as exc:
        print(f"trialake {args.command}: {exc}", file=sys.stderr)
        return 2


def _generate(args: argparse.Namespace) -> int:
    from trialake.synth import SynthParams, generate_trial
    from trialake.synth.params import MessParams

    try:
        if not 0.0 <= args.mess <= 1.0:
            raise ValueError(f"--mess: must be in 0..1, got {args.mess}")
        trial = generate_trial(
            args.out_dir, subjects=args.subjects, seed=args.seed, matrix=args.matrix, slices=args.slices, sites=args.sites,
            params=SynthParams(mess=MessParams.uniform(args.mess)),
        )
    except ValueError as exc:
        raise CommandError(_one_line(exc)) from exc
    print(f"landing: {args.out_dir / 'landing'}\ntruth: {args.out_dir / 'truth'}\n{trial.describe()}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from trialake.config import ConfigError, read_settings
    from trialake.pipeline.startup import StartupError, check_can_start

    try:
        settings = read_settings(landing=args.landing, lake=args.lake, environ=os.environ, config_path=args.config,
                                 pacs=args.pacs)
        check_can_start(settings)
    except (ConfigError, StartupError) as exc:
        raise CommandError(_one_line(exc)) from exc
    options = {"lease_wait_s": args.lease_wait, "lease_ttl_s": args.lease_ttl, "pacs": args.pacs}
    runner = {"kind": args.task_runner, "address": args.dask_address, "n_workers": args.workers}
    return _run_nightly(landing=settings.landing, lake=settings.lake, config=args.config, options=options, runner=runner,
                        output="json" if args.json else "summary")


def _receive(args: argparse.Namespace) -> int:
    from trialake.config import storage_options_from_env
    from trialake.pacs.receiver import run_receiver

    try:
        return run_receiver(landing_url=args.landing, storage_options=storage_options_from_env(os.environ),
                            host=args.host, port=args.port, ae_title=args.ae_title, allowed=args.allow)
    except (ValueError, OSError) as exc:
        raise CommandError(_one_line(exc)) from exc


def _run_nightly(
    *, landing: str, lake: str, config: str | None, options: dict | None = None, runner: dict | None = None,
    output: str = "summary",
) -> int:
    """Run the nightly flow with progress on stderr: 0 when everything publishable was published,
    1 when a table was held back or a stage failed (the rest was published; the report is still
    printed), 2 when another run holds the lake. ``output``: "summary" (one screen), "json" (the
    run report) or "none"."""
    from trialake_flows.nightly import nightly
    from trialake_flows.runners import build_task_runner
    from trialake.console import show_progress
    from trialake.lake.lease import LeaseHeld
    from trialake.pipeline.run_report import RunIncomplete

    flow = nightly.with_options(task_runner=build_task_runner(**runner)) if runner else nightly
    with show_progress("prefect", quiet_stages=frozenset({"ingest DICOM chunk", "measure series"})):
        state = flow(landing=landing, lake=lake, config=config, **(options or {}), return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, LeaseHeld):
        print(f"trialake run nightly: {_one_line(result)}", file=sys.stderr)
        return 2
    if isinstance(result, RunIncomplete):
        _print_report(result.report, output, exit_code=1, lake=lake)
        print(f"trialake run nightly: {_one_line(result)}", file=sys.stderr)
        return 1
    if isinstance(result, BaseException):  # the flow run is Failed; say why in one line
        print(f"trialake run nightly: failed: {type(result).__name__}: {_one_line(result)}", file=sys.stderr)
        return 1
    _print_report(result, output, exit_code=0, lake=lake)
    return 0


def _print_report(report: object, output: str, *, exit_code: int, lake: str) -> None:
    from trialake.console import format_run_summary

    if output == "json":
        print(json.dumps(report, default=_jsonable, indent=2))
    elif output == "summary":
        print(format_run_summary(report, exit_code=exit_code, reports_url=lake.rstrip("/") + "/reports"))


def _volumetry(args: argparse.Namespace) -> int:
    from trialake.config import ConfigError, load_trial_config
    from trialake.imaging import NotMeasurable, measure_series_dir
    from trialake.pipeline.params import volumetry_params

    try:
        params = volumetry_params(load_trial_config(args.config).ct)
        result = measure_series_dir(args.series_dir, params)
    except NotMeasurable as exc:  # refused: say so on stdout too, for scripts reading the JSON
        if args.json:
            print(json.dumps({"status": "failed", "reason": _one_line(exc)}))
        raise CommandError(_one_line(exc)) from exc
    except (ConfigError, ValueError, OSError) as exc:
        raise CommandError(_one_line(exc)) from exc
    record = result.to_record()
    if args.json:
        print(json.dumps(record))
    else:
        from trialake.console import format_volumetry

        print(format_volumetry(record))
    return 0


def _unblind(args: argparse.Namespace) -> int:
    """The unblinding event, in process and without Prefect (the name of who unblinds is kept in
    the unblinded zone only, not in an orchestrator's database)."""
    import uuid

    from trialake.config import ConfigError, read_settings
    from trialake.lake.lease import LeaseHeld, acquire_lease
    from trialake.pipeline import open_run, open_storage
    from trialake.pipeline.gold import check_can_unblind, unblind
    from trialake.pipeline.quality import load_quality_gate

    run_id = f"unblind-{uuid.uuid4()}"
    try:
        settings = read_settings(landing=args.lake, lake=args.lake, environ=os.environ, config_path=args.config)
        check_can_unblind(settings.trial)  # before the lake is locked and the suites are loaded
        lake, _ = open_storage(settings)
        with acquire_lease(lake, owner=run_id, ttl_s=120.0, wait_s=args.lease_wait):
            ctx = open_run(settings, run_id)
            event = unblind(ctx, load_quality_gate(ctx, settings.expectations_dir), by=args.by, reason=args.reason)
    except (ConfigError, OSError, ValueError, LeaseHeld) as exc:
        raise CommandError(_one_line(exc)) from exc
    print(f"unblinded by the recorded event of run {event.run_id} at {event.at}: "
          f"{len(event.tables)} tables and {ctx.lake.uri(event.report)}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from trialake.synth import generate_trial

    out: Path = args.out
    generate_trial(out, subjects=args.subjects, seed=0, overwrite=True)
    landing, lake = out / "landing", out / "lake"
    print(f"synthetic trial: {landing} (truth in {out / 'truth'})")
    status = _run_nightly(landing=str(landing.resolve()), lake=str(lake.resolve()), config=None, output="none")
    if (lake / "gold" / "endpoints").exists():  # also after a run that held something back
        print(_endpoint_table(str(lake.resolve()), truth=out / "truth" / "effects.json"))
        for name in ("endpoints.html", "qc/index.html", "data_dictionary.html", "nightly_summary.html"):
            print(f"report: {lake / 'reports' / name}")
    return status


def _endpoint_table(lake: str, *, truth: Path) -> str:
    """The primary and key secondary endpoints at the last visit, with the generator's true
    population effect beside each, as printed by the demo."""
    import polars as pl

    from trialake.lake import scan_table

    endpoints = scan_table(lake, "gold/endpoints").collect()
    if endpoints.get_column("n_trt").is_null().all():
        from trialake.pipeline.gold import endpoints_for_display

        return "Blinded lake: pooled summaries only\n" + str(endpoints_for_display(endpoints))
    effects = json.loads(truth.read_text())["population_effects"] if truth.exists() else {}
    last_visit = endpoints.sort("AVISITN")["AVISIT"][-1]
    keys = [("LESPCT", "CHG"), ("SOLPCT", "PCHG"), ("GGOPCT", "CHG"), ("SIXMW", "CHG"), ("DLCO", "CHG")]
    lines = [f"Endpoints at {last_visit} (estimate = treatment minus control, Hodges-Lehmann, Wilcoxon P)"]
    lines.append(f"{'parameter':<52}{'AVAR':<6}{'n trt/ctl':>10}  {'estimate (95% CI)':<28}{'P':>7}  true effect")
    for paramcd, avar in keys:
        row = endpoints.filter((pl.col("PARAMCD") == paramcd) & (pl.col("AVAR") == avar) & (pl.col("AVISIT") == last_visit))
        if row.is_empty():
            continue
        r = row.row(0, named=True)
        if r["estimate"] is None:
            lines.append(f"{r['PARAM'][:51]:<52}{avar:<6}{r['n_trt']:>5}/{r['n_ctl']:<4}  not estimable")
            continue
        ci = f"{r['estimate']:.2f} ({r['ci_low']:.2f}, {r['ci_high']:.2f})"
        true = effects.get(paramcd, {})
        true_text = f"{true['difference']:.2f}" if true.get("AVAR") == avar else ""
        lines.append(f"{r['PARAM'][:51]:<52}{avar:<6}{r['n_trt']:>5}/{r['n_ctl']:<4}  {ci:<28}{r['p_value']:>7.3f}  {true_text}")
    return "\n".join(lines)


def _lake_arguments(parser: argparse.ArgumentParser, *, lease: bool) -> None:
    parser.add_argument("--lake", required=True, help="lake: local path or s3://bucket/prefix")
    if lease:
        parser.add_argument("--lease-wait", type=float, default=300.0, help="seconds to wait while a run writes the lake")


def _open_lake(url: str) -> Lake:
    from trialake.config import storage_options_from_env
    from trialake.config.settings import normalize_url
    from trialake.lake import open_lake

    try:
        return open_lake(normalize_url(url), storage_options_from_env(os.environ))
    except OSError as exc:
        raise CommandError(_one_line(exc)) from exc


def _holding_lease(lake: Lake, command: str, wait_s: float) -> Lease:
    """The lake's lease for a maintenance command (as a context manager)."""
    import uuid

    from trialake.lake import LeaseHeld, acquire_lease

    try:
        return acquire_lease(lake, owner=f"trialake {command} {uuid.uuid4().hex[:8]}", wait_s=wait_s)
    except LeaseHeld as exc:
        raise CommandError(_one_line(exc)) from exc


def _lock(args: argparse.Namespace) -> int:
    import getpass
    import socket

    from trialake.lake import LockExists
    from trialake.pipeline.database_lock import LakeNotSettled, lock_database

    lake = _open_lake(args.lake)
    with _holding_lease(lake, "lock", args.lease_wait) as lease:
        try:
            record = lock_database(lake, args.name, run_id=lease.record.owner, created_by=f"{getpass.getuser()}@{socket.gethostname()}")
        except (LockExists, LakeNotSettled, ValueError) as exc:
            raise CommandError(_one_line(exc)) from exc
    print(f"lock {record.name}: {len(record.tables)} tables, made {record.created_at} by {record.created_by} ({record.run_id})")
    for table, entry in sorted(record.tables.items()):
        print(f"  {table:<32} version {entry.version:<5} run {entry.run_id or '-'}")
    return 0


def _history(args: argparse.Namespace) -> int:
    from trialake.lake import list_locks, table_history

    lake = _open_lake(args.lake)
    try:
        commits = table_history(lake, args.table, limit=args.limit)
    except ValueError as exc:
        raise CommandError(_one_line(exc)) from exc
    if not commits:
        raise CommandError(f"no table {args.table} in lake {lake.url}")
    locks: dict[int, list[str]] = {}
    for lock in list_locks(lake):
        if args.table in lock.tables:
            locks.setdefault(lock.tables[args.table].version, []).append(lock.name)
    if args.json:
        for c in commits:
            print(json.dumps({"version": c.version, "committed_at": c.timestamp.isoformat(), "operation": c.operation,
                              **c.info, "locks": locks.get(c.version, [])}, default=str))
        return 0
    rows = [("version", "committed (UTC)", "operation", "run", "flow", "stage", "code", "locks")]
    rows += [
        (str(c.version), c.timestamp.strftime("%Y-%m-%d %H:%M:%S"), c.operation, str(c.info.get("run_id", "-")),
         str(c.info.get("flow") or "-"), str(c.info.get("stage") or "-"), str(c.info.get("code_version", "-")),
         ", ".join(locks.get(c.version, [])) or "-")
        for c in commits
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"{args.table} in {lake.url}: {len(commits)} version(s), newest first")
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def _endpoints(args: argparse.Namespace) -> int:
    import polars as pl

    from trialake.config.settings import default_expectations_dir
    from trialake.lake import read_table
    from trialake.pipeline.database_lock import rebuild_endpoints_as_of
    from trialake.pipeline.gold import endpoints_for_display

    lake = _open_lake(args.lake)
    if args.as_of is None:
        endpoints, report, result = read_table(lake, "gold/endpoints"), None, None
        if endpoints.is_empty():
            raise CommandError(f"no gold/endpoints in lake {lake.url} yet")
    else:
        try:
            result = rebuild_endpoints_as_of(lake, args.as_of, expectations_dir=default_expectations_dir())
        except (LookupError, ValueError) as exc:
            raise CommandError(_one_line(exc)) from exc
        endpoints, report = result.endpoints, result.report_html
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200, fmt_str_lengths=60, tbl_hide_dataframe_shape=True):
        print(endpoints_for_display(endpoints))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        endpoints.write_csv(args.out / "endpoints.csv")
        if report is not None:
            (args.out / "endpoints.html").write_text(report, encoding="utf-8")
        print(f"written: {args.out / 'endpoints.csv'}" + ("" if report is None else f", {args.out / 'endpoints.html'}"))
    if result is None:
        return 0
    differ = [t for t, same in result.identical.items() if same is False]
    if differ:
        print(f"as of lock {args.as_of}: NOT reproduced, differs from the locked version: {', '.join(differ)}", file=sys.stderr)
        return 1
    print(f"as of lock {args.as_of}: reproduced, every gold table identical to its locked version "
          f"(gold built by run {result.gold_run_id})")
    return 0


def _vacuum(args: argparse.Namespace) -> int:
    from trialake.lake import vacuum_lake

    lake = _open_lake(args.lake)
    with _holding_lease(lake, "vacuum", args.lease_wait):
        try:
            removed = vacuum_lake(lake, retention_hours=args.retention_hours, dry_run=args.dry_run)
        except ValueError as exc:
            raise CommandError(_one_line(exc)) from exc
    verb = "would remove" if args.dry_run else "removed"
    for table, files in sorted(removed.items()):
        if files:
            print(f"{table}: {verb} {len(files)} file(s)")
    print(f"vacuum: {verb} {sum(len(f) for f in removed.values())} file(s) in {len(removed)} table(s); locked versions kept")
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from trialake.lake import upgrade_lake

    lake = _open_lake(args.lake)
    with _holding_lease(lake, "upgrade", args.lease_wait) as lease:
        done = upgrade_lake(lake.with_commit_info(run_id=lease.record.owner, stage="upgrade"))
    for table in done:
        renamed = "".join(f", column {old} renamed {new}" for old, new in table.renamed)
        print(f"{table.table}: {table.rows} rows, partitioned by {list(table.partition_by) or 'nothing'}{renamed}")
    print(f"upgrade: {len(done)} table(s) converted to Delta tables")
    return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _jsonable(value: object) -> object:
    """JSON for stage summaries: dataclasses as objects, data-quality outcomes by their message."""
    from dataclasses import fields, is_dataclass

    from trialake.quality import ValidationOutcome

    if isinstance(value, ValidationOutcome):
        return value.message
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
