"""Clinical stage: new or changed exports into bronze (one partition per source file), then silver.

Nothing here stops the run: a file that cannot be read, or lacks a Required SDTM variable, is one
rejection; a row that fails a row rule is quarantined; a table that fails a table rule is held back
(its previous version stays published) and the summary says so, while every other table goes on.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
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
from trialake.clinical.common import LINEAGE_COLUMNS, split_unknown_subjects
from trialake.clinical.domains import absent_variables, missing_required_variables
from trialake.clinical.readers import domain_from_name
from trialake.lake import compute_sha256, delete_partition, is_hidden, read_landing_bytes, read_table
from trialake.lineage import REJECTION_SCHEMA
from trialake.pipeline.blinding import blind_existing, delete_unblinded_partition, publish_blinded, read_with_treatment
from trialake.pipeline.context import RunContext
from trialake.pipeline.freshness import StageDependencies, mark_fresh, stale_reasons, with_inputs
from trialake.pipeline.inventory import derive_manifest, hidden_rejection, list_area, read_manifest, select_new, write_manifest
from trialake.pipeline.params import measurement_standards
from trialake.pipeline.quality import HeldBack, QualityGate, forget_source_results, held_back_of, outcomes_of, suite_files
from trialake.pipeline.rejections import publish_rejections
from trialake.pipeline.rules_state import is_written_under_other_rules, mark_rules
from trialake.quality import ValidationOutcome

AREA = "clinical"
STAGE = "clinical_read"
BRONZE_KEYS = ("USUBJID", "source_sha256", "source_row")
"""The columns that join a clinical row's treatment variables back to it (blinded lakes)."""
SUBJECTS = "silver/subjects"
SILVER_TABLES = (SUBJECTS, "silver/exposure", "silver/visits", "silver/labs", "silver/sixmwt", "silver/lung_function",
                 "silver/adverse_events", "silver/disposition")


@dataclass(frozen=True)
class ClinicalBronzeSummary:
    """What the bronze clinical step did (``changed_domains``: domains loaded or dropped;
    ``held_back``: exports whose bronze table rules failed, read again next run). ``files_new``:
    exports whose bytes the lake had not seen; ``files_known``: the other exports listed."""

    files_new: int
    files_rejected: int
    rows_loaded: int
    rows_rejected: int
    changed_domains: tuple[str, ...]
    quality: tuple[ValidationOutcome, ...] = ()
    held_back: tuple[HeldBack, ...] = ()
    files_known: int = 0


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
    rejections, changed, loaded, files_rejected, outcomes, retry = [], set(), 0, 0, [], set()
    known = set(manifest.filter(pl.col("area") == AREA)["sha256"])
    for relpath, data in contents.items():
        bronze, rejected, domain = _bronze_of_file(relpath, data, hashed[relpath], key, shift_frame, ctx.run_id)
        rejections.append(rejected)
        files_rejected += bronze is None
        if bronze is not None:
            source_ctx = with_inputs(ctx, landing_sha256=[hashed[relpath]])
            published = publish_blinded(source_ctx, gate, f"bronze/{domain.lower()}", bronze, keys=BRONZE_KEYS,
                                        source_sha256=hashed[relpath], partition_by=["source_sha256"],
                                        mode="replace_partitions")
            outcomes += published
            if any(not o.should_publish for o in published):
                retry.add(relpath)  # held back: its previous version stays, the file is read again next run
                continue
            loaded += bronze.height if hashed[relpath] not in known else 0  # the same bytes again load nothing new
            changed.add(domain)
    updated = derive_manifest(manifest, AREA, listed, hashed, retry=retry)
    changed |= _drop_sources_gone(ctx, manifest, updated)
    changed |= {d for d in DOMAINS if blind_existing(ctx, f"bronze/{d.lower()}", keys=BRONZE_KEYS)}
    new_rejections = pl.concat(rejections) if rejections else pl.DataFrame(schema=REJECTION_SCHEMA)
    settled = {sha for path, sha in hashed.items() if path not in retry}
    publish_rejections(ctx, new_rejections.filter(pl.col("source_sha256").is_in(list(settled))), stages=[STAGE],
                       reprocessed=None if reread else settled)
    write_manifest(ctx, updated)
    if not retry:  # a held-back export keeps its earlier version, so the area is not all under these rules yet
        mark_rules(ctx, AREA, BRONZE_VERSION)
    rows_rejected = new_rejections.filter(pl.col("source_row").is_not_null()).height
    files_new = sum(sha not in known for sha in hashed.values())
    return ClinicalBronzeSummary(files_new, files_rejected, loaded, rows_rejected, tuple(sorted(changed)),
                                 tuple(outcomes_of(outcomes)), held_back_of(outcomes), files_known=len(listed) - files_new)


def _bronze_of_file(
    relpath: str, data: bytes, sha256: str, key: pl.DataFrame, shifts: pl.DataFrame | None, run_id: str
) -> tuple[pl.DataFrame | None, pl.DataFrame, str]:
    """Bronze rows and rejections of one export; a file that cannot be used is one rejection whose
    reason says why (never its name: it may carry identifying text; the sha256 finds it)."""
    if is_hidden(relpath):
        return None, pl.DataFrame([hidden_rejection(sha256, run_id, STAGE)], schema=REJECTION_SCHEMA), ""
    name = relpath.rsplit("/", 1)[-1]
    try:
        parsed = parse_clinical_file(name, data)
        if missing := missing_required_variables(parsed.domain, parsed.frame.columns):
            raise ClinicalFileError(f"required SDTM variable(s) {', '.join(missing)} missing from this "
                                    f"{parsed.domain} export: re-export it with them (SDTM names as column headers)")
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
    """What the silver clinical step did. ``missing_domains``: no bronze rows yet; ``not_sent``:
    Expected SDTM variables no export of a domain sent (``DM.RFICDTC``), whose checks were skipped;
    ``held_back``: tables not published this run (their previous version stays);
    ``rederived_because``: what changed since the tables were last derived."""

    tables: dict[str, int]
    rows_rejected: int
    missing_domains: tuple[str, ...]
    quality: tuple[ValidationOutcome, ...] = ()
    held_back: tuple[HeldBack, ...] = ()
    not_sent: tuple[str, ...] = ()
    rederived_because: tuple[str, ...] = ()


SILVER_STAGES = ("clinical_ex", "clinical_dm", "clinical_sv", "labs", "clinical_ft", "clinical_re", "clinical_ae",
                 "clinical_ds")


DOMAINS = ("DM", "EX", "SV", "LB", "FT", "RE", "AE", "DS")
BRONZE_TABLES = tuple(f"bronze/{d.lower()}" for d in DOMAINS)
#: The silver clinical tables are derived from bronze with the lab standards, validated against the
#: configured arms and visits, and split by the blinding.
CLINICAL_SILVER = StageDependencies(tables=BRONZE_TABLES, config=("arms", "blinding", "labs", "visits"),
                                    suites=SILVER_TABLES, code=("trialake.clinical", "trialake.quality"))
_NO_SUBJECTS = {"USUBJID": pl.String, "RFSTDT": pl.Date}


def derive_clinical_silver(ctx: RunContext, gate: QualityGate) -> ClinicalSilverSummary | None:
    """Re-derive every silver clinical table from bronze when bronze changed since the last time
    (None when it did not). They are small; a table whose bytes do not change is not rewritten.

    silver/subjects is published first; every other table is then derived against the version of
    it that readers see (the new one, or the previous one when it was held back), so a row whose
    subject has no published DM record is rejected until it has one. A domain with no bronze rows
    yet is named in the summary; without DM, the other domains' rows all wait for it.
    """
    suites = suite_files(gate)
    reasons = stale_reasons(ctx, "clinical_silver", CLINICAL_SILVER, suites)
    if not reasons:
        return None
    ctx = with_inputs(ctx, tables=BRONZE_TABLES)
    bronze = {d: read_bronze_domain(ctx, d) for d in DOMAINS}
    missing = tuple(d for d, frame in bronze.items() if frame.is_empty())
    exposure, rejected_ex = derive_exposure(bronze["EX"]) if "EX" not in missing else (_no_exposure(), _no_rejections())
    rejections, outcomes, tables, held = [rejected_ex], [], {}, []
    if "DM" not in missing:
        subjects, rejected_dm = derive_subjects(bronze["DM"], exposure=exposure)
        rejections.append(rejected_dm)
        outcomes += publish_blinded(ctx, gate, SUBJECTS, subjects.sort("USUBJID", maintain_order=True), keys=BRONZE_KEYS,
                                    unavailable=_unavailable(subjects, bronze["DM"], "DM"))
        tables[SUBJECTS] = subjects
    published = read_table(ctx.lake, SUBJECTS)  # what readers see: this run's version, or the one before
    if "DM" in missing and len(missing) < len(DOMAINS):
        held.append(HeldBack(SUBJECTS, "no DM rows in bronze (no DM export accepted, or it left the landing area): "
                                       + ("previous version kept" if not published.is_empty() else
                                          "the other clinical rows wait for their subject's DM record")))
    subjects_now = published.select(list(_NO_SUBJECTS)) if not published.is_empty() else pl.DataFrame(schema=_NO_SUBJECTS)
    exposure, orphans_ex = split_unknown_subjects(exposure, subjects_now, stage="clinical_ex")
    rejections.append(orphans_ex)
    derived: dict[str, tuple[pl.DataFrame, str]] = {"silver/exposure": (exposure, "EX")}
    for domain, (table, stage, derive) in _per_subject(ctx, subjects_now).items():
        if domain not in missing:
            frame, rejected = derive(bronze[domain])
            frame, orphans = split_unknown_subjects(frame, subjects_now, stage=stage)
            derived[table] = (frame, domain)
            rejections += [rejected, orphans]
    all_rejections = pl.concat([r.select(list(REJECTION_SCHEMA)).cast(REJECTION_SCHEMA) for r in rejections])
    publish_rejections(ctx, all_rejections, stages=SILVER_STAGES, reprocessed=None)
    for table, (frame, domain) in derived.items():
        tables[table] = frame
        if not frame.is_empty():
            outcomes += publish_blinded(ctx, gate, table, frame.sort("USUBJID", maintain_order=True), keys=BRONZE_KEYS,
                                        unavailable=_unavailable(frame, bronze[domain], domain))
    held += held_back_of(outcomes)
    if not held:
        mark_fresh(ctx, "clinical_silver", CLINICAL_SILVER, suites, reasons)
    not_sent = tuple(f"{d}.{v}" for d, frame in bronze.items() if not frame.is_empty() for v in absent_variables(d, frame.columns, "Expected"))
    counts = {t: f.height for t, f in tables.items()}
    return ClinicalSilverSummary(counts, all_rejections.height, missing, tuple(outcomes_of(outcomes)), tuple(held), not_sent,
                                 reasons)


Derive = Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame]]


def _per_subject(ctx: RunContext, subjects: pl.DataFrame) -> dict[str, tuple[str, str, Derive]]:
    """Domain -> (silver table, rejection stage, derivation) of the domains keyed by subject."""
    standards = measurement_standards(ctx.settings.trial.labs)
    return {
        "SV": ("silver/visits", "clinical_sv", lambda f: derive_visits(f, subjects=subjects)),
        "LB": ("silver/labs", "labs", lambda f: derive_labs(f, subjects=subjects, standards=standards["LB"])),
        "FT": ("silver/sixmwt", "clinical_ft", lambda f: derive_sixmwt(f, subjects=subjects, standards=standards["FT"])),
        "RE": ("silver/lung_function", "clinical_re",
               lambda f: derive_lung_function(f, subjects=subjects, standards=standards["RE"])),
        "AE": ("silver/adverse_events", "clinical_ae", lambda f: derive_adverse_events(f, subjects=subjects)),
        "DS": ("silver/disposition", "clinical_ds", lambda f: derive_disposition(f, subjects=subjects)),
    }


def _unavailable(silver: pl.DataFrame, bronze: pl.DataFrame, domain: str) -> Mapping[str, str]:
    """Columns of a silver table left empty because no export of ``domain`` sent their variable
    (a --DTC variable gives the --DT column): their checks are skipped, not failed."""
    out = {}
    for variable in absent_variables(domain, bronze.columns, "Expected") + absent_variables(domain, bronze.columns, "Permissible"):
        column = variable[:-1] if variable.endswith("DTC") else variable
        if column in silver.columns and silver.get_column(column).null_count() == silver.height:
            out[column] = f"{domain} variable {variable} not sent"
    return out


def _no_exposure() -> pl.DataFrame:
    return pl.DataFrame(schema={"USUBJID": pl.String, "EXSTDT": pl.Date, "EXENDT": pl.Date,
                                **{c: REJECTION_SCHEMA[c] for c in LINEAGE_COLUMNS}})


def _no_rejections() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECTION_SCHEMA)
