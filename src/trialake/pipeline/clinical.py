"""Clinical stage: new or changed exports into bronze (one partition per source file), then silver."""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from trialake.clinical import (
    ClinicalFileError,
    derive_adverse_events,
    derive_bronze_clinical,
    derive_disposition,
    derive_exposure,
    derive_labs,
    derive_lung_function,
    derive_sixmwt,
    derive_subjects,
    derive_visits,
    parse_clinical_file,
)
from trialake.clinical.bronze import BRONZE_VERSION
from trialake.clinical.common import split_unknown_subjects
from trialake.clinical.readers import domain_from_name
from trialake.lake import compute_sha256, delete_partition, read_landing_bytes
from trialake.pipeline.blinding import blind_existing, delete_unblinded_partition, publish_blinded, read_with_treatment
from trialake.pipeline.context import RunContext
from trialake.pipeline.params import lab_standards
from trialake.pipeline.quality import QualityGate, forget_source_results, outcomes_of, raise_if_blocked
from trialake.quality import ValidationOutcome
from trialake.pipeline.freshness import is_stale, mark_fresh
from trialake.pipeline.inventory import derive_manifest, list_area, read_manifest, select_new, write_manifest
from trialake.pipeline.rejections import SCHEMA as REJECTION_SCHEMA
from trialake.pipeline.rejections import publish_rejections
from trialake.pipeline.rules_state import is_written_under_other_rules, mark_rules

AREA = "clinical"
STAGE = "clinical_read"
BRONZE_KEYS = ("USUBJID", "source_sha256", "source_row")
"""The columns that join a clinical row's treatment variables back to it (blinded lakes)."""


@dataclass(frozen=True)
class ClinicalBronzeSummary:
    """What the bronze clinical step did (``changed_domains``: domains loaded or dropped)."""

    files_new: int
    files_rejected: int
    rows_loaded: int
    rows_rejected: int
    changed_domains: tuple[str, ...]
    quality: tuple[ValidationOutcome, ...] = ()


def ingest_clinical_bronze(
    ctx: RunContext, gate: QualityGate, key: pl.DataFrame, shifts: pl.DataFrame
) -> ClinicalBronzeSummary:
    """Load new or changed clinical exports into ``bronze/<domain>``; drop those that left landing."""
    manifest = read_manifest(ctx)
    listed = list_area(ctx, AREA)
    reread = is_written_under_other_rules(ctx, AREA, BRONZE_VERSION)  # every export again (see rules_state)
    new = listed if reread else select_new(listed, manifest)
    contents = read_landing_bytes(ctx.landing, [f.relpath for f in new])
    hashed = {path: compute_sha256(data) for path, data in contents.items()}
    shift_frame = shifts if ctx.settings.trial.deidentification.shift_dates else None
    rejections, changed, loaded, files_rejected, outcomes = [], set(), 0, 0, []
    for relpath, data in contents.items():
        bronze, rejected, domain = _bronze_of_file(relpath, data, hashed[relpath], key, shift_frame, ctx.run_id)
        rejections.append(rejected)
        files_rejected += bronze is None
        if bronze is not None:
            table = f"bronze/{domain.lower()}"
            outcomes += publish_blinded(ctx, gate, table, bronze, keys=BRONZE_KEYS, source_sha256=hashed[relpath],
                                        partition_by=["source_sha256"], mode="replace_partitions")
            loaded += bronze.height
            changed.add(domain)
    updated = derive_manifest(manifest, AREA, listed, hashed)
    changed |= _drop_sources_gone(ctx, manifest, updated)
    changed |= {d for d in DOMAINS if blind_existing(ctx, f"bronze/{d.lower()}", keys=BRONZE_KEYS)}
    new_rejections = pl.concat(rejections) if rejections else pl.DataFrame(schema=REJECTION_SCHEMA)
    publish_rejections(ctx, new_rejections, stages=[STAGE], reprocessed=None if reread else set(hashed.values()))
    write_manifest(ctx, updated)
    rows_rejected = new_rejections.filter(pl.col("source_row").is_not_null()).height
    raise_if_blocked(outcomes)
    mark_rules(ctx, AREA, BRONZE_VERSION)
    return ClinicalBronzeSummary(len(new), files_rejected, loaded, rows_rejected, tuple(sorted(changed)), tuple(outcomes_of(outcomes)))


def _bronze_of_file(
    relpath: str, data: bytes, sha256: str, key: pl.DataFrame, shifts: pl.DataFrame | None, run_id: str
) -> tuple[pl.DataFrame | None, pl.DataFrame, str]:
    """Bronze rows and rejections of one export; a file that cannot be read is one rejection."""
    name = relpath.rsplit("/", 1)[-1]
    try:
        parsed = parse_clinical_file(name, data)
        bronze, rejected = derive_bronze_clinical(parsed, key=key, date_shift=shifts, source_sha256=sha256, run_id=run_id)
    except ClinicalFileError as exc:
        whole = pl.DataFrame(
            [{"source_sha256": sha256, "source_row": None, "stage": STAGE, "reason": str(exc), "run_id": run_id}],
            schema=REJECTION_SCHEMA,
        )
        return None, whole, ""
    rejected = rejected.with_columns(pl.lit(sha256).alias("source_sha256"), pl.lit(run_id).alias("run_id"))
    return bronze, rejected.select(list(REJECTION_SCHEMA)).cast(REJECTION_SCHEMA), parsed.domain


def _drop_sources_gone(ctx: RunContext, before: pl.DataFrame, after: pl.DataFrame) -> set[str]:
    """Remove bronze partitions of exports no longer in landing (a replaced export's old version);
    returns the domains touched."""
    current = set(after.filter(pl.col("area") == AREA)["sha256"].drop_nulls())
    gone = before.filter((pl.col("area") == AREA) & pl.col("sha256").is_not_null() & ~pl.col("sha256").is_in(list(current)))
    touched: set[str] = set()
    for relpath, sha in gone.select("relpath", "sha256").iter_rows():
        try:
            domain = domain_from_name(relpath.rsplit("/", 1)[-1])
        except ClinicalFileError:
            continue  # never loaded: nothing in bronze
        delete_unblinded_partition(ctx, f"bronze/{domain.lower()}", {"source_sha256": sha})
        if delete_partition(ctx.lake, f"bronze/{domain.lower()}", {"source_sha256": sha}):
            touched.add(domain)
    if not gone.is_empty():
        forget_source_results(ctx, set(gone["sha256"]))
    return touched


def read_bronze_domain(ctx: RunContext, domain: str) -> pl.DataFrame:
    """All bronze rows of one clinical domain (with the treatment variables a blinded lake keeps
    in the unblinded zone)."""
    return read_with_treatment(ctx, f"bronze/{domain.lower()}", keys=BRONZE_KEYS[1:])


@dataclass(frozen=True)
class ClinicalSilverSummary:
    tables: dict[str, int]
    rows_rejected: int
    missing_domains: tuple[str, ...]
    quality: tuple[ValidationOutcome, ...] = ()


SILVER_STAGES = ("clinical_ex", "clinical_dm", "clinical_sv", "labs", "clinical_ft", "clinical_re", "clinical_ae",
                 "clinical_ds")


DOMAINS = ("DM", "EX", "SV", "LB", "FT", "RE", "AE", "DS")
BRONZE_TABLES = tuple(f"bronze/{d.lower()}" for d in DOMAINS)


def derive_clinical_silver(ctx: RunContext, gate: QualityGate) -> ClinicalSilverSummary | None:
    """Re-derive every silver clinical table from bronze when bronze changed since the last time
    (None when it did not). They are small; a table whose bytes do not change is not rewritten.
    Domains with no bronze rows yet are skipped and named in the summary."""
    if not is_stale(ctx, "clinical_silver", BRONZE_TABLES):
        return None
    bronze = {d: read_bronze_domain(ctx, d) for d in DOMAINS}
    missing = tuple(d for d, frame in bronze.items() if frame.is_empty())
    if "DM" in missing:
        return ClinicalSilverSummary({}, 0, missing)
    exposure, rejected_ex = derive_exposure(bronze["EX"]) if "EX" not in missing else (_no_exposure(), _no_rejections())
    subjects, rejected_dm = derive_subjects(bronze["DM"], exposure=exposure)
    exposure, orphans_ex = split_unknown_subjects(exposure, subjects, stage="clinical_ex")
    tables = {"silver/subjects": subjects, "silver/exposure": exposure}
    rejections = [rejected_ex, rejected_dm, orphans_ex]
    per_subject = {
        "SV": ("silver/visits", "clinical_sv", lambda f: derive_visits(f, subjects=subjects)),
        "LB": ("silver/labs", "labs",
               lambda f: derive_labs(f, subjects=subjects, standards=lab_standards(ctx.settings.trial.labs))),
        "FT": ("silver/sixmwt", "clinical_ft", lambda f: derive_sixmwt(f, subjects=subjects)),
        "RE": ("silver/lung_function", "clinical_re", lambda f: derive_lung_function(f, subjects=subjects)),
        "AE": ("silver/adverse_events", "clinical_ae", lambda f: derive_adverse_events(f, subjects=subjects)),
        "DS": ("silver/disposition", "clinical_ds", lambda f: derive_disposition(f, subjects=subjects)),
    }
    for domain, (table, stage, derive) in per_subject.items():
        if domain not in missing:
            derived, rejected = derive(bronze[domain])
            tables[table], orphans = split_unknown_subjects(derived, subjects, stage=stage)
            rejections += [rejected, orphans]
    all_rejections = pl.concat([r.select(list(REJECTION_SCHEMA)).cast(REJECTION_SCHEMA) for r in rejections])
    publish_rejections(ctx, all_rejections, stages=SILVER_STAGES, reprocessed=None)
    # silver/subjects first: the other suites check their subjects against it.
    outcomes = [o for t, f in tables.items() if not f.is_empty()
                for o in publish_blinded(ctx, gate, t, f.sort("USUBJID", maintain_order=True), keys=BRONZE_KEYS)]
    raise_if_blocked(outcomes)
    mark_fresh(ctx, "clinical_silver", BRONZE_TABLES)
    counts = {t: f.height for t, f in tables.items()}
    return ClinicalSilverSummary(counts, all_rejections.height, missing, tuple(outcomes_of(outcomes)))


def _no_exposure() -> pl.DataFrame:
    return pl.DataFrame(schema={"USUBJID": pl.String, "EXSTDT": pl.Date, "EXENDT": pl.Date})


def _no_rejections() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECTION_SCHEMA)
