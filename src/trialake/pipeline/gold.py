"""Gold stage: ADaM marts, endpoints, AE comparison, the endpoint report, the dataset
specification and the data dictionary; and the unblinding of a blinded lake.

In an unblinded lake (the trial configuration says ``blinding: unblinded``) gold holds every mart
with its treatment variables, the comparisons and the full report. In a blinded lake gold holds
the marts without treatment variables, pooled summaries and a blinded report; the arm-level
marts, comparisons and report are made only by :func:`unblind`, a recorded event, in the
unblinded zone.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace

import polars as pl

import trialake
from trialake.blinding import split_treatment
from trialake.config import TrialConfig
from trialake.dictionary import build_data_dictionary, load_descriptions
from trialake.lake import compute_sha256, read_table, table_exists, write_object, write_table
from trialake.lake.tables import file_names
from trialake.marts import build_marts, summarize_ae_incidence
from trialake.marts.build import MART_INPUTS, OPTIONAL_MART_INPUTS
from trialake.marts.define import build_define
from trialake.marts.endpoints import (
    derive_ae_comparison,
    derive_blinded_endpoints,
    derive_endpoints,
    derive_hierarchy,
    derive_worst_rank,
)
from trialake.marts.toxicity import load_toxicity_criteria, plan_toxicity_grading
from trialake.pipeline.blinding import ZONE, publish_public, read_with_treatment, unblinded_table
from trialake.pipeline.context import RunContext, config_sha256
from trialake.pipeline.freshness import StageDependencies, mark_fresh, stale_reasons, with_inputs
from trialake.pipeline.inventory import read_manifest
from trialake.pipeline.params import analysis_config, lab_standards, volumetry_params, volumetry_params_hash
from trialake.pipeline.quality import HeldBack, QualityGate, held_back_of, outcomes_of, publish_checked, suite_files
from trialake.quality import SuiteSpec, ValidationOutcome
from trialake.report import ReportInputs, ReportOptions, change_label, render_endpoint_report

REPORT = "reports/endpoints.html"
UNBLINDED_REPORT = f"{ZONE}/reports/endpoints.html"
DEFINE = "gold/define.json"
UNBLINDING_LOG = f"{ZONE}/unblinding_log"
TREATMENT_KEYS = ("USUBJID", "source_sha256", "source_row")
SILVER_INPUTS = tuple(f"silver/{name}" for name in (*MART_INPUTS, *OPTIONAL_MART_INPUTS))
GOLD_INPUTS = (*SILVER_INPUTS, f"{ZONE}/subjects", f"{ZONE}/exposure")
"""Tables gold is derived from (the unblinded zone's treatment variables of a blinded lake too)."""
REQUIRED_INPUTS = ("subjects",)
"""The inputs gold cannot be built without; the others may have no rows yet (no CT measured, no AE)."""
#: Gold reads the analysis plan and the ADaM choices, the arms and visits, the lab standards, the
#: volumetry settings (which measurements are current) and the blinding; the report names the study.
GOLD = StageDependencies(
    tables=GOLD_INPUTS, config=("adam", "arms", "blinding", "ct", "endpoints", "labs", "study_id", "visits"),
    suites=("gold/",),
    code=("trialake.marts", "trialake.report", "trialake.stats", "trialake.quality"))


@dataclass(frozen=True)
class GoldSummary:
    """What the gold step built. ``missing_inputs``: silver tables without rows (gold is then not
    built); ``held_back``: gold tables not published this run (their previous version stays);
    ``rederived_because``: what changed since gold was last built."""

    tables: dict[str, int]
    missing_inputs: tuple[str, ...]
    report: str | None
    primary: dict | None
    quality: tuple[ValidationOutcome, ...] = ()
    held_back: tuple[HeldBack, ...] = ()
    rederived_because: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnblindingEvent:
    """A recorded unblinding: who asked, when, in which run, and what it wrote."""

    by: str
    at: str
    run_id: str
    reason: str
    tables: dict[str, int]
    report: str


def build_gold(ctx: RunContext, gate: QualityGate) -> GoldSummary | None:
    """Rebuild every gold table, the endpoint report, the dataset specification and the data
    dictionary from the published version of each silver input when silver changed since the last
    build (None when it did not). When a gold table is held back, the report, specification and
    dictionary keep their previous version and the next run builds gold again."""
    suites = suite_files(gate)
    reasons = stale_reasons(ctx, "gold", GOLD, suites)
    if not reasons:
        return None
    trial = ctx.settings.trial
    ctx = with_inputs(ctx, tables=GOLD_INPUTS)
    silver, missing = read_silver(ctx, gate)
    if missing:
        why = f"not built: no rows yet in {', '.join(missing)}"
        return GoldSummary({}, missing, None, None, held_back=(HeldBack("gold", why),))
    derived = derive_gold(silver, trial)
    gold = blind_gold(derived, trial) if trial.blinded else derived
    publish = publish_public if trial.blinded else publish_checked
    # gold/adsl first: the other suites check their subjects against it.
    outcomes = [publish(ctx, gate, f"gold/{name}", frame) for name, frame in gold.items()]
    counts = {f"gold/{n}": f.height for n, f in gold.items()}
    if held := held_back_of(outcomes):
        return GoldSummary(counts, (), None, None, tuple(outcomes_of(outcomes)), held)
    has_endpoints = not gold["endpoints"].is_empty()
    if has_endpoints:  # no CT or functional endpoint value yet: no endpoint report
        report = render_endpoint_report(_report_inputs(gold), _report_options(ctx, blinded=trial.blinded))
        write_object(ctx.lake, REPORT, report.encode())
    write_object(ctx.lake, DEFINE, _define_json(gold, trial, zone="gold"))
    public_silver = {n: split_treatment(f, keys=[])[0] if trial.blinded else f for n, f in silver.items()}
    _publish_data_dictionary(ctx, gold, public_silver)
    mark_fresh(ctx, "gold", GOLD, suites, reasons)
    return GoldSummary(counts, (), REPORT if has_endpoints else None, None if trial.blinded else _primary(gold["endpoints"]),
                       tuple(outcomes_of(outcomes)), rederived_because=reasons)


def unblind(ctx: RunContext, gate: QualityGate, *, by: str, reason: str = "") -> UnblindingEvent:
    """Unblind a blinded lake: derive the arm-level marts, comparisons, specification and report
    from the current silver tables into the unblinded zone, and record who asked, when and in
    which run in ``unblinded/unblinding_log``. Raises ValueError for an unblinded trial, an empty
    ``by``, or silver tables with no rows."""
    trial = ctx.settings.trial
    check_can_unblind(trial)
    if not by.strip():
        raise ValueError("by: name who unblinds (it is recorded)")
    silver, missing = read_silver(ctx, gate)
    if missing:
        raise ValueError(f"cannot unblind before the marts can be built: no rows yet in {', '.join(missing)}")
    gold = derive_gold(silver, trial)
    if gold["endpoints"].is_empty():
        raise ValueError("cannot unblind before there is an endpoint value: no CT or functional result in silver yet")
    suites = {unblinded_table(f"gold/{name}"): _renamed(gate, f"gold/{name}", unblinded_table(f"gold/{name}"))
              for name in gold}
    unblinded_gate = QualityGate({t: s for t, s in suites.items() if s is not None}, gate.config_context)
    outcomes = [publish_checked(ctx, unblinded_gate, unblinded_table(f"gold/{n}"), f) for n, f in gold.items()]
    if held := held_back_of(outcomes):
        raise ValueError("unblinding not recorded: " + "; ".join(f"{h.table} {h.reason}" for h in held))
    report = render_endpoint_report(_report_inputs(gold), _report_options(ctx, blinded=False))
    write_object(ctx.lake, UNBLINDED_REPORT, report.encode())
    write_object(ctx.lake, f"{ZONE}/define.json", _define_json(gold, trial, zone=ZONE))
    event = UnblindingEvent(by=by.strip(), at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                            run_id=ctx.run_id, reason=reason,
                            tables={unblinded_table(f"gold/{n}"): f.height for n, f in gold.items()}, report=UNBLINDED_REPORT)
    log = pl.DataFrame([{"by": event.by, "at": event.at, "run_id": event.run_id, "reason": event.reason,
                         "lake_version": _lake_version(ctx), "report": event.report}])
    write_table(ctx.lake, UNBLINDING_LOG, pl.concat([read_table(ctx.lake, UNBLINDING_LOG), log], how="diagonal_relaxed"))
    return event


def check_can_unblind(trial: TrialConfig) -> None:
    """Raise ValueError unless the trial runs blinded (an unblinded lake has nothing to unblind)."""
    if not trial.blinded:
        raise ValueError("the trial configuration is unblinded: gold/ already holds the arms")


def read_silver(ctx: RunContext, gate: QualityGate) -> tuple[dict[str, pl.DataFrame], tuple[str, ...]]:
    """The published silver tables of the marts and the inputs the marts cannot do without (none
    when they can be built). Treatment variables are joined back from the unblinded zone; a table
    never published yet is empty with its suite's columns; volumetry is of the configured method
    and parameters only; only subjects with a published DM record are kept (imaging does not wait
    for DM: series of other subjects stay in silver only)."""
    silver = {name: read_table(ctx.lake, f"silver/{name}") for name in (*MART_INPUTS, *OPTIONAL_MART_INPUTS)}
    for name in ("subjects", "exposure"):
        silver[name] = read_with_treatment(ctx, f"silver/{name}", keys=TREATMENT_KEYS)
    if not silver["ct_volumetry"].is_empty():  # results of other methods or parameters stay in silver only
        silver["ct_volumetry"] = silver["ct_volumetry"].filter(pl.col("params_hash") == current_params_hash(ctx.settings.trial))
    filled = {name: frame if frame.width else _no_rows(gate, f"silver/{name}") for name, frame in silver.items()}
    missing = tuple(f"silver/{n}" for n, frame in filled.items()
                    if n in MART_INPUTS and (frame is None or (n in REQUIRED_INPUTS and frame.is_empty())))
    if missing:
        return {}, missing
    enrolled = filled["subjects"]["USUBJID"].implode()
    kept = {n: f if n == "subjects" or f is None else f.filter(pl.col("USUBJID").is_in(enrolled)) for n, f in filled.items()}
    return {n: f for n, f in kept.items() if f is not None}, ()


def derive_gold(silver: dict[str, pl.DataFrame], trial: TrialConfig) -> dict[str, pl.DataFrame]:
    """Every gold table with its treatment variables: the marts, the endpoints with the plan's
    hierarchy, the worst-rank sensitivity analysis and the AE comparison."""
    config = analysis_config(trial)
    marts = build_marts(silver, config=config, lab_tests=lab_standards(trial.labs).mapping.tests,
                        toxicity=load_toxicity_criteria(trial.labs.toxicity))
    sap = trial.endpoints
    arms = {"treatment_arm": trial.arms.treatment.arm, "control_arm": trial.arms.control.arm}
    populations = {"population_flag": sap.population, "populations": sap.populations}
    visits = [v.name for v in config.post_baseline]
    endpoints = pl.concat([
        derive_endpoints(marts[m], marts["adsl"], visits=visits, conf_level=sap.conf_level, estimator=sap.estimator,
                         descriptive_only=sap.descriptive_only, **arms, **populations)
        for m in ("adct", "adft")
    ])
    endpoints = _with_plan(endpoints, trial)
    tests = _tested(trial)
    efficacy = pl.concat([marts["adct"], marts["adft"]], how="diagonal_relaxed")
    sensitivity = derive_worst_rank(
        efficacy, marts["adsl"], tests=tests, better=sap.better, window_end={v.name: v.high_day for v in config.post_baseline},
        **arms, **populations,
    ) if sap.missing_data.sensitivity == "worst_rank" else None
    ae_comparison = derive_ae_comparison(marts["ae_incidence"], conf_level=sap.conf_level, **arms)
    return {**marts, "endpoints": endpoints, **({"endpoints_sensitivity": sensitivity} if sensitivity is not None else {}),
            "ae_comparison": ae_comparison}


def blind_gold(gold: dict[str, pl.DataFrame], trial: TrialConfig) -> dict[str, pl.DataFrame]:
    """What a blinded lake's gold holds: the marts without their treatment variables, pooled AE
    incidence and pooled endpoint summaries; no comparison."""
    config = analysis_config(trial)
    sap = trial.endpoints
    visits = [v.name for v in config.post_baseline]
    adsl = gold["adsl"]
    endpoints = pl.concat([
        derive_blinded_endpoints(gold[m], adsl, visits=visits, population_flag=sap.population, populations=sap.populations)
        for m in ("adct", "adft")
    ])
    marts = {name: split_treatment(gold[name], keys=[])[0] for name in ("adsl", "adct", "adft", "adlb", "adae")}
    return {**marts, "ae_incidence": summarize_ae_incidence(gold["adae"], adsl, arm_variable=None),
            "endpoints": _with_plan(endpoints, trial)}


def _tested(trial: TrialConfig) -> list[tuple[str, str, str]]:
    """The primary endpoint and the hierarchy's tests, each once, in order."""
    sap = trial.endpoints
    tests = [sap.primary, *sap.hierarchy.order] if sap.primary else list(sap.hierarchy.order)
    return list(dict.fromkeys((t.paramcd, t.avisit, t.avar) for t in tests))


def _with_plan(endpoints: pl.DataFrame, trial: TrialConfig) -> pl.DataFrame:
    sap = trial.endpoints
    primary = (sap.primary.paramcd, sap.primary.avisit, sap.primary.avar) if sap.primary else None
    order = [(t.paramcd, t.avisit, t.avar) for t in sap.hierarchy.order]
    return derive_hierarchy(endpoints, primary=primary, order=order, alpha=sap.hierarchy.alpha)


def describe_analysis_plan(trial: TrialConfig) -> list[tuple[str, str]]:
    """The methods section: every choice of the analysis plan, in words."""
    sap, adam = trial.endpoints, trial.adam
    baseline = trial.baseline_visit
    windows = "; ".join(
        f"{v.name}: study days {v.low_day} to {v.high_day}" + ("" if v == baseline else f", target day {v.target_day}")
        for v in sorted(trial.visits, key=lambda v: v.avisitn)
    )
    outside = {
        "exclude": "a post-baseline record outside every window is unscheduled and not analysed",
        "nearest": "a post-baseline record outside every window is used for the nearest window when that window has "
                   "no record of its own",
    }[sap.outside_window]
    primary = (f"{sap.primary.paramcd} at {sap.primary.avisit}, {change_label(sap.primary.avar, 'percentage points' if sap.primary.paramcd.endswith('PCT') else None)}"
               if sap.primary else "none declared")
    hierarchy = (
        " then ".join(f"{t.paramcd} {t.avar} at {t.avisit}" for t in sap.hierarchy.order)
        + f"; fixed sequence at two-sided alpha {sap.hierarchy.alpha:g}: each test at the full alpha, testing stops "
          "at the first test not rejected" if sap.hierarchy.order else "none (every P is nominal)"
    )
    populations = f"{sap.population} for every endpoint" + (
        "; " + ", ".join(f"{p}: {f}" for p, f in sorted(sap.populations.items())) if sap.populations else ""
    )
    graded, skipped = plan_toxicity_grading(load_toxicity_criteria(trial.labs.toxicity), lab_standards(trial.labs).mapping.tests)
    toxicity = load_toxicity_criteria(trial.labs.toxicity).version + f": {', '.join(sorted(graded))} graded" + (
        "; not graded: " + "; ".join(f"{c} ({why})" for c, why in sorted(skipped.items())) if skipped else ""
    )
    return [
        ("Blinding", "blinded: pooled summaries only" if trial.blinded else "unblinded: arms compared"),
        ("Primary endpoint", primary),
        ("Testing hierarchy", hierarchy),
        ("Analysis populations", f"{populations}. FASFL: randomized, dosed, with a baseline value of any efficacy "
                                 "parameter; PPROTFL: FAS subjects who received their randomized arm in at least "
                                 f"{adam.per_protocol_min_doses} dosing record(s)."),
        ("Estimator", f"{sap.estimator}: Hodges-Lehmann shift (treatment minus control) with its {100 * sap.conf_level:g}% "
                      "confidence interval and the two-sided Wilcoxon rank-sum P, as R's wilcox.test(conf.int = TRUE); "
                      "roots to 1e-10 of the data's range"),
        ("Descriptive only (no comparison)", ", ".join(sap.descriptive_only) or "none"),
        ("Missing data, primary analysis", "complete cases: a subject without a value at the visit is left out"),
        ("Missing data, sensitivity analysis",
         "worst rank: deaths by the end of the visit window ranked worst (the earlier the worse), then subjects "
         "without a value, tied; Wilcoxon rank-sum P" if sap.missing_data.sensitivity == "worst_rank" else "none"),
        ("Visit windows", f"{windows}; the baseline is the last value in the baseline window, a post-baseline visit "
                          f"takes the value nearest its target day (the later one on a tie); {outside}."),
        ("Treatment-emergent adverse events",
         "starting on or after the first dose and " + (f"at most {adam.treatment_window_days} days after the last dose"
                                                        if adam.treatment_window_days is not None else "at any time after it")
         + "; partial start dates imputed as admiral (first day, not before the first dose); a missing causality counts "
           "as related"),
        ("Laboratory toxicity grades", toxicity),
        ("Age groups", ", ".join(analysis_config(trial).age_group_labels())),
    ]


def _report_inputs(gold: dict[str, pl.DataFrame]) -> ReportInputs:
    return ReportInputs(
        endpoints=gold["endpoints"], adsl=gold["adsl"], adct=gold["adct"], adft=gold["adft"], adlb=gold["adlb"],
        adae=gold["adae"], ae_incidence=gold["ae_incidence"], ae_comparison=gold.get("ae_comparison"),
        sensitivity=gold.get("endpoints_sensitivity"),
    )


def _report_options(ctx: RunContext, *, blinded: bool) -> ReportOptions:
    trial = ctx.settings.trial
    primary = trial.endpoints.primary
    primary_visit = next((v for v in trial.visits if primary and v.name == primary.avisit), max(trial.visits, key=lambda v: v.avisitn))
    cut = dt.datetime.now(dt.timezone.utc).date().isoformat()
    return ReportOptions(
        title=f"Endpoint report{' (BLINDED)' if blinded else ''}: {trial.study_id}",
        study_id=trial.study_id,
        blinded=blinded,
        methods=describe_analysis_plan(trial),
        primary=(primary.paramcd, primary.avisit, primary.avar) if primary else None,
        primary_window=(primary_visit.low_day, primary_visit.high_day),
        population_flag=trial.endpoints.population,
        baseline_end=trial.baseline_visit.high_day,
        data_cut=f"every record received by {cut} (UTC); dates in the lake are shifted per subject",
        provenance=_provenance(ctx),
        waterfall_paramcd=primary.paramcd if primary else "LESPCT",
        waterfall_avar=primary.avar if primary else "CHG",
    )


def _no_rows(gate: QualityGate, table: str) -> pl.DataFrame | None:
    """An empty frame with the columns of the table's suite schema (a table never published yet),
    or None without one."""
    suite = gate.suites.get(table)
    return pl.DataFrame(schema={c: getattr(pl, dtype) for c, dtype in suite.schema.items()}) if suite and suite.schema else None


def endpoints_for_display(endpoints: pl.DataFrame) -> pl.DataFrame:
    """The endpoint table as people read it: the primary endpoint first, one text column per
    journal column (pooled in a blinded lake, whose table has no arm-level number)."""
    def number(column: str) -> pl.Expr:
        return pl.col(column).round(2).cast(pl.String).fill_null("-")

    primary_last = pl.col("primary").ne_missing("Y") if "primary" in endpoints.columns else pl.lit(True)
    ordered = endpoints.sort(primary_last, "PARAMN", "PARAMCD", "AVISITN", "AVAR", nulls_last=True)
    common = [pl.col("PARAM").alias("parameter"), pl.col("AVISIT").alias("visit"), pl.col("AVAR").alias("analysis"),
              pl.col("unit")]
    if endpoints.get_column("n_trt").is_null().all():
        return ordered.select(*common, pl.format("{} ({} to {}), n={}", number("median_all"), number("q1_all"),
                                                 number("q3_all"), "n_all").alias("all subjects"))
    return ordered.select(
        *common,
        pl.format("{}: {} ({} to {}), n={}", "trt_arm", number("median_trt"), number("q1_trt"), number("q3_trt"), "n_trt").alias("treatment"),
        pl.format("{}: {} ({} to {}), n={}", "ctl_arm", number("median_ctl"), number("q1_ctl"), number("q3_ctl"), "n_ctl").alias("control"),
        pl.format("{} ({} to {})", number("estimate"), number("ci_low"), number("ci_high")).alias("difference (CI)"),
        pl.col("p_value").round(3).cast(pl.String).fill_null("-").alias("P"),
        pl.col("hierarchy_decision").fill_null("").alias("hierarchy"),
    )


def endpoints_with_subjects(endpoints: pl.DataFrame) -> pl.DataFrame:
    """The rows of the endpoint table that summarise at least one subject (a visit no subject has
    reached yet has n=0 in every group)."""
    counts = [pl.col(c).fill_null(0) for c in ("n_trt", "n_ctl", "n_all") if c in endpoints.columns]
    return endpoints.filter(pl.sum_horizontal(counts) > 0) if counts else endpoints


def current_params_hash(trial: TrialConfig) -> str:
    """The volumetry method and parameters the trial configuration asks for, as hashed in results."""
    return volumetry_params_hash(volumetry_params(trial.ct))


def _lake_version(ctx: RunContext) -> str:
    """What identifies the data gold was derived from: a digest of the configuration and of the
    content-named data files of every input table, so that the same data gives the same value in
    any lake (a database lock's tables recomputed elsewhere included)."""
    files = [f"{table}:{name}" for table in sorted(GOLD_INPUTS) for name in sorted(file_names(ctx.lake, table))
             if table_exists(ctx.lake, table)]
    return "inputs " + _digest_of([config_sha256(ctx.settings.trial), *files])[:16]


def _provenance(ctx: RunContext) -> dict:
    manifest = read_manifest(ctx)
    # Landing paths may carry PHI: the footer lists input checksums only, by area.
    checksums = {f"{row['area']} #{i + 1}": row["sha256"] for i, row in enumerate(manifest.sort("sha256").iter_rows(named=True)) if row["area"] != "dicom"}
    n_dicom = manifest.filter(pl.col("area") == "dicom").height
    checksums[f"dicom ({n_dicom} files)"] = _digest_of(manifest.filter(pl.col("area") == "dicom")["sha256"].sort().to_list())
    return {"run_id": ctx.run_id, "code_version": f"trialake {trialake.__version__}", "lake_version": _lake_version(ctx),
            "input_checksums": checksums}


def _digest_of(values: list[str]) -> str:
    return compute_sha256("\n".join(v for v in values if v).encode())


def _primary(endpoints: pl.DataFrame) -> dict | None:
    rows = endpoints.filter(pl.col("primary") == "Y")
    return rows.row(0, named=True) if rows.height else None


def _renamed(gate: QualityGate, table: str, new_table: str) -> SuiteSpec | None:
    suite = gate.suites.get(table)
    return None if suite is None else replace(suite, table=new_table)


def _define_json(gold: dict[str, pl.DataFrame], trial: TrialConfig, *, zone: str) -> bytes:
    tables = {f"{zone}/{name}": frame for name, frame in gold.items()}
    define = build_define(tables, load_descriptions(), study_id=trial.study_id, version=trialake.__version__)
    return (json.dumps(define, indent=1) + "\n").encode()


def _publish_data_dictionary(ctx: RunContext, gold: dict[str, pl.DataFrame], silver: dict[str, pl.DataFrame]) -> None:
    schemas = {f"gold/{n}": f.schema for n, f in gold.items()} | {f"silver/{n}": f.schema for n, f in silver.items() if not f.is_empty()}
    markdown, page = build_data_dictionary(schemas, load_descriptions())
    write_object(ctx.lake, "reports/data_dictionary.md", markdown.encode())
    write_object(ctx.lake, "reports/data_dictionary.html", page.encode())
