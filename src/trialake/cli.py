"""The `trialake` command: generate a synthetic trial, run a flow, measure a series, run the demo."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# Quiet, offline defaults for Prefect when the CLI starts it (the environment still wins).
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


class CommandError(Exception):
    """The command could not run; the message is the one line the user sees."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="trialake", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write a synthetic trial: OUT_DIR/landing and OUT_DIR/truth")
    generate.add_argument("out_dir", type=Path)
    generate.add_argument("--subjects", type=int, default=100)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--matrix", type=int, default=64, help="in-plane CT matrix (64 by default, up to 512)")
    generate.add_argument("--slices", type=int, default=40, help="CT slices per series")
    generate.add_argument("--sites", type=int, default=3, choices=(2, 3))
    generate.add_argument("--mess", type=float, default=0.0, metavar="RATE",
                          help="rate (0-1) of every kind of deliberate mess in the clinical exports (truth/quarantine.csv)")

    run = commands.add_parser("run", help="run a flow once, in process")
    run.add_argument("flow", choices=("nightly",))
    run.add_argument("--landing", required=True, help="landing area: local path or s3://bucket/prefix")
    run.add_argument("--lake", required=True, help="lake: local path or s3://bucket/prefix")
    run.add_argument("--config", default=None, help="trial configuration YAML (default: reference trial)")
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
    volumetry.add_argument("series_dir", type=Path)
    volumetry.add_argument("--json", action="store_true", help="print one JSON object")
    volumetry.add_argument("--config", default=None, help="trial configuration YAML (CT thresholds)")

    demo = commands.add_parser("demo", help="generate a synthetic trial and run the nightly flow on it")
    demo.add_argument("--out", type=Path, default=Path("demo"))
    demo.add_argument("--subjects", type=int, default=30)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    handlers = {"generate": _generate, "run": _run, "receive": _receive, "volumetry": _volumetry, "demo": _demo}
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
    return _run_nightly(landing=settings.landing, lake=settings.lake, config=args.config, options=options, runner=runner)


def _receive(args: argparse.Namespace) -> int:
    from trialake.config import storage_options_from_env
    from trialake.pacs.receiver import run_receiver

    try:
        return run_receiver(landing_url=args.landing, storage_options=storage_options_from_env(os.environ),
                            host=args.host, port=args.port, ae_title=args.ae_title, allowed=args.allow)
    except (ValueError, OSError) as exc:
        raise CommandError(_one_line(exc)) from exc


def _run_nightly(
    *, landing: str, lake: str, config: str | None, options: dict | None = None, runner: dict | None = None, quiet: bool = False
) -> int:
    """Run the nightly flow: 0 when everything publishable was published, 1 when a table was held
    back or a stage failed (the rest was published; the report is still printed), 2 when another
    run holds the lake."""
    from flows.nightly import nightly
    from flows.runners import build_task_runner
    from trialake.lake.lease import LeaseHeld
    from trialake.pipeline.run_report import RunIncomplete

    flow = nightly.with_options(task_runner=build_task_runner(**runner)) if runner else nightly
    state = flow(landing=landing, lake=lake, config=config, **(options or {}), return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, LeaseHeld):
        print(f"trialake run nightly: {_one_line(result)}", file=sys.stderr)
        return 2
    if isinstance(result, RunIncomplete):
        if not quiet:
            print(json.dumps(result.report, default=_jsonable, indent=2))
        print(f"trialake run nightly: {_one_line(result)}", file=sys.stderr)
        return 1
    if isinstance(result, BaseException):  # the flow run is Failed; say why in one line
        print(f"trialake run nightly: failed: {type(result).__name__}: {_one_line(result)}", file=sys.stderr)
        return 1
    if not quiet:
        print(json.dumps(result, default=_jsonable, indent=2))
    return 0


def _volumetry(args: argparse.Namespace) -> int:
    from trialake.config import ConfigError, load_trial_config
    from trialake.imaging import NotMeasurable, measure_series_dir
    from trialake.pipeline.params import volumetry_params

    try:
        params = volumetry_params(load_trial_config(args.config).ct)
        result = measure_series_dir(args.series_dir, params)
    except (ConfigError, NotMeasurable, ValueError, OSError) as exc:
        raise CommandError(_one_line(exc)) from exc
    record = result.to_record()
    print(json.dumps(record) if args.json else "\n".join(f"{k}: {v}" for k, v in record.items()))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from trialake.synth import generate_trial

    out: Path = args.out
    generate_trial(out, subjects=args.subjects, seed=0, overwrite=True)
    landing, lake = out / "landing", out / "lake"
    print(f"synthetic trial: {landing} (truth in {out / 'truth'})")
    status = _run_nightly(landing=str(landing.resolve()), lake=str(lake.resolve()), config=None, quiet=True)
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
