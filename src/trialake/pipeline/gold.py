"""Gold stage: ADaM marts, endpoints, AE comparison, the endpoint report and the data dictionary."""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

import trialake
from trialake.config import TrialConfig
from trialake.dictionary import build_data_dictionary, load_descriptions
from trialake.lake import compute_sha256, read_table, write_object
from trialake.marts import AnalysisConfig, ArmSpec, VisitWindow, build_marts
from trialake.marts.build import MART_INPUTS
from trialake.marts.endpoints import derive_ae_comparison, derive_endpoints
from trialake.pipeline.context import RunContext
from trialake.imaging import get_segmenter
from trialake.imaging.volumetry import compute_params_hash
from trialake.pipeline.freshness import is_stale, mark_fresh
from trialake.pipeline.params import volumetry_params
from trialake.pipeline.inventory import read_manifest
from trialake.pipeline.quality import HeldBack, QualityGate, held_back_of, outcomes_of, publish_checked
from trialake.quality import ValidationOutcome
from trialake.report import ReportOptions, render_endpoint_report

REPORT = "reports/endpoints.html"


@dataclass(frozen=True)
class GoldSummary:
    """What the gold step built. ``missing_inputs``: silver tables without rows (gold is then not
    built); ``held_back``: gold tables not published this run (their previous version stays)."""

    tables: dict[str, int]
    missing_inputs: tuple[str, ...]
    report: str | None
    primary: dict | None
    quality: tuple[ValidationOutcome, ...] = ()
    held_back: tuple[HeldBack, ...] = ()


def analysis_config(trial: TrialConfig) -> AnalysisConfig:
    """The marts' configuration from the trial configuration."""
    return AnalysisConfig(
        treatment=ArmSpec(armcd=trial.arms.treatment.armcd, arm=trial.arms.treatment.arm),
        control=ArmSpec(armcd=trial.arms.control.armcd, arm=trial.arms.control.arm),
        visits=tuple(VisitWindow(**v.model_dump()) for v in trial.visits),
    )


SILVER_INPUTS = tuple(f"silver/{name}" for name in MART_INPUTS)
#: The inputs gold cannot be built without; the others may have no rows yet (no CT measured, no AE).
REQUIRED_INPUTS = ("subjects",)


def build_gold(ctx: RunContext, gate: QualityGate) -> GoldSummary | None:
    """Rebuild every gold table, the endpoint report and the data dictionary from the published
    version of each silver input when silver changed since the last build (None when it did not).
    When a gold table is held back, the report and dictionary keep their previous version and the
    next run builds gold again."""
    if not is_stale(ctx, "gold", SILVER_INPUTS):
        return None
    silver = {name: read_table(ctx.lake, f"silver/{name}") for name in MART_INPUTS}
    if not silver["ct_volumetry"].is_empty():  # results of other methods or parameters stay in silver only
        silver["ct_volumetry"] = silver["ct_volumetry"].filter(pl.col("params_hash") == current_params_hash(ctx.settings.trial))
    silver = {name: frame if frame.width else _no_rows(gate, f"silver/{name}") for name, frame in silver.items()}
    missing = tuple(f"silver/{n}" for n, frame in silver.items() if frame is None or (n in REQUIRED_INPUTS and frame.is_empty()))
    if missing:
        why = f"not built: no rows yet in {', '.join(missing)}"
        return GoldSummary({}, missing, None, None, held_back=(HeldBack("gold", why),))
    # Imaging does not wait for DM: series of subjects without a published DM record stay in silver only.
    enrolled = silver["subjects"]["USUBJID"].implode()
    silver = {n: f if n == "subjects" else f.filter(pl.col("USUBJID").is_in(enrolled)) for n, f in silver.items()}
    trial = ctx.settings.trial
    marts = build_marts(silver, config=analysis_config(trial))
    arms = {"treatment_arm": trial.arms.treatment.arm, "control_arm": trial.arms.control.arm}
    post_baseline = [v.name for v in sorted(trial.visits, key=lambda v: v.avisitn) if v != trial.baseline_visit]
    conf = trial.endpoints.conf_level
    endpoints = pl.concat(
        [derive_endpoints(marts[m], marts["adsl"], visits=post_baseline, conf_level=conf, **arms) for m in ("adct", "adft")]
    )
    ae_comparison = derive_ae_comparison(marts["ae_incidence"], conf_level=conf, **arms)
    gold = {**marts, "endpoints": endpoints, "ae_comparison": ae_comparison}
    # gold/adsl first: the other suites check their subjects against it.
    outcomes = [publish_checked(ctx, gate, f"gold/{name}", frame) for name, frame in gold.items()]
    counts = {f"gold/{n}": f.height for n, f in gold.items()}
    if held := held_back_of(outcomes):
        return GoldSummary(counts, (), None, None, tuple(outcomes_of(outcomes)), held)
    if not endpoints.is_empty():  # no CT or functional endpoint value yet: no endpoint report
        report = render_endpoint_report(
            endpoints, marts["adsl"], marts["adct"], marts["adft"], ae_comparison,
            _provenance(ctx), options=ReportOptions(waterfall_visit=post_baseline[-1]),
        )
        write_object(ctx.lake, REPORT, report.encode())
    _publish_data_dictionary(ctx, gold, silver)
    mark_fresh(ctx, "gold", SILVER_INPUTS)
    return GoldSummary(counts, (), REPORT if not endpoints.is_empty() else None, _primary(endpoints, post_baseline[-1]),
                       tuple(outcomes_of(outcomes)))


def _no_rows(gate: QualityGate, table: str) -> pl.DataFrame | None:
    """An empty frame with the columns of the table's suite schema (a table never published yet),
    or None without one."""
    suite = gate.suites.get(table)
    return pl.DataFrame(schema={c: getattr(pl, dtype) for c, dtype in suite.schema.items()}) if suite and suite.schema else None


def endpoints_for_display(endpoints: pl.DataFrame) -> pl.DataFrame:
    """The endpoint table as people read it: one text column per journal column."""
    def number(column: str) -> pl.Expr:
        return pl.col(column).round(2).cast(pl.String).fill_null("-")

    return endpoints.sort("PARAMCD", "AVISITN", "AVAR").select(
        pl.col("PARAM").alias("parameter"),
        pl.col("AVISIT").alias("visit"),
        pl.col("AVAR").alias("analysis"),
        pl.format("{}: {} ({} to {}), n={}", "trt_arm", number("median_trt"), number("q1_trt"), number("q3_trt"), "n_trt").alias("treatment"),
        pl.format("{}: {} ({} to {}), n={}", "ctl_arm", number("median_ctl"), number("q1_ctl"), number("q3_ctl"), "n_ctl").alias("control"),
        pl.format("{} ({} to {})", number("estimate"), number("ci_low"), number("ci_high")).alias("difference (CI)"),
        pl.col("p_value").round(3).cast(pl.String).fill_null("-").alias("P"),
    )


def current_params_hash(trial: TrialConfig) -> str:
    """The volumetry method and parameters the trial configuration asks for, as hashed in results."""
    params = volumetry_params(trial.ct)
    return compute_params_hash(params, get_segmenter(params))


def _provenance(ctx: RunContext) -> dict:
    manifest = read_manifest(ctx)
    # Landing paths may carry PHI: the footer lists input checksums only, by area.
    checksums = {f"{row['area']} #{i + 1}": row["sha256"] for i, row in enumerate(manifest.sort("sha256").iter_rows(named=True)) if row["area"] != "dicom"}
    n_dicom = manifest.filter(pl.col("area") == "dicom").height
    checksums[f"dicom ({n_dicom} files)"] = _digest_of(manifest.filter(pl.col("area") == "dicom")["sha256"].sort().to_list())
    return {"run_id": ctx.run_id, "code_version": f"trialake {trialake.__version__}", "input_checksums": checksums}


def _digest_of(values: list[str]) -> str:
    return compute_sha256("\n".join(v for v in values if v).encode())


def _primary(endpoints: pl.DataFrame, visit: str) -> dict | None:
    rows = endpoints.filter((pl.col("PARAMCD") == "LESPCT") & (pl.col("AVISIT") == visit) & (pl.col("AVAR") == "CHG"))
    return rows.row(0, named=True) if rows.height else None


def _publish_data_dictionary(ctx: RunContext, gold: dict[str, pl.DataFrame], silver: dict[str, pl.DataFrame]) -> None:
    schemas = {f"gold/{n}": f.schema for n, f in gold.items()} | {f"silver/{n}": f.schema for n, f in silver.items()}
    markdown, page = build_data_dictionary(schemas, load_descriptions())
    write_object(ctx.lake, "reports/data_dictionary.md", markdown.encode())
    write_object(ctx.lake, "reports/data_dictionary.html", page.encode())
