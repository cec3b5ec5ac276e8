"""What a run tells the data manager: intake, rejections, data quality, series not measurable, and
the run's status: everything published, or what was held back or failed and why."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from trialake.lake import list_tables, read_object, read_table, table_exists, versions_by_run, write_object
from trialake.lineage import REJECTION_SCHEMA
from trialake.pipeline.clinical import ClinicalBronzeSummary, ClinicalSilverSummary
from trialake.pipeline.context import RunContext
from trialake.pipeline.ct_results import CtResultsSummary
from trialake.pipeline.dicom import DicomSummary
from trialake.pipeline.gold import GoldSummary
from trialake.pipeline.quality import HeldBack
from trialake.pipeline.rejections import TABLE as REJECTIONS
from trialake.pipeline.volumetry import VolumetrySummary
from trialake.quality import IntakeCounts, ValidationOutcome, render_data_docs, render_nightly_summary
from trialake.quality.report import data_docs_rows, merge_data_docs_rows

SUMMARY = "reports/nightly_summary.html"
#: The Data Docs index's rows, kept so that the next run's index still lists what it does not validate again.
DATA_DOCS_ROWS = "reports/data_docs/index.json"
LINKS = {
    "Endpoint report": "endpoints.html",
    "Volumetry QC": "qc/index.html",
    "Data quality (Data Docs)": "data_docs/index.html",
    "Data dictionary": "data_dictionary.html",
}
#: Who reads a table, for the summary line of a held-back table (they go on with its previous version).
_READERS = {
    "silver/subjects": "the other clinical silver tables, silver/ct_series (study days) and gold",
    "bronze/dicom_instances": "silver/ct_series and volumetry",
    "silver/ct_series": "volumetry and gold",
    "silver/ct_dicom_results": "the push to the research PACS",
    "gold/adsl": "the other gold tables and the endpoint report",
}


@dataclass(frozen=True)
class StageFailure:
    """A stage that stopped with an error; the other stages went on."""

    stage: str
    message: str


@dataclass(frozen=True)
class RunReport:
    """The stage summaries of one run (None: the stage had nothing to do, or failed) and the
    stages that failed; ``ct_results``: the DICOM SEG and SR step."""

    clinical: ClinicalBronzeSummary | None
    clinical_silver: ClinicalSilverSummary | None
    dicom: DicomSummary | None
    volumetry: VolumetrySummary | None
    gold: GoldSummary | None
    failures: tuple[StageFailure, ...] = ()
    ct_results: CtResultsSummary | None = None

    @property
    def _stages(self) -> tuple:
        stages = (self.clinical, self.clinical_silver, self.dicom, self.volumetry, self.ct_results, self.gold)
        return tuple(s for s in stages if s is not None)

    @property
    def outcomes(self) -> list[ValidationOutcome]:
        return [o for stage in self._stages for o in stage.quality]

    @property
    def held_back(self) -> tuple[HeldBack, ...]:
        """Tables this run did not publish."""
        return tuple(h for stage in self._stages for h in stage.held_back)

    @property
    def rederived(self) -> list[tuple[str, str]]:
        """(derived tables, why) for each derived stage this run derived again."""
        stages = (("silver clinical tables", self.clinical_silver), ("silver/ct_series", self.dicom), ("gold", self.gold))
        return [(name, "; ".join(stage.rederived_because)) for name, stage in stages
                if stage is not None and stage.rederived_because]

    @property
    def complete(self) -> bool:
        """Everything publishable was published (rows may have been quarantined)."""
        return not self.held_back and not self.failures

    def status(self) -> str:
        """One line for the Prefect run state, the console and the summary's head."""
        if self.complete:
            published = sum(o.should_publish for o in self.outcomes)
            quarantined = sum(len(o.quarantined) for o in self.outcomes)
            return (f"complete: everything publishable was published ({published} table version(s) validated, "
                    f"{quarantined} row(s) quarantined; rejected files and rows are in silver/rejections)")
        parts = [f"held back {h.table} ({h.reason})" for h in self.held_back]
        parts += [f"stage {f.stage} failed ({f.message})" for f in self.failures]
        return "incomplete: " + "; ".join(parts) + "; everything else was published"


class RunIncomplete(RuntimeError):
    """A run that held a table back or had a stage fail (everything else was published); carries
    the report. The message is the report's status line."""

    def __init__(self, report: RunReport) -> None:
        super().__init__(report.status())
        self.report = report

    def __reduce__(self) -> tuple:
        return (RunIncomplete, (self.report,))


def readers_of(table: str) -> str:
    """The stages that read ``table`` (they use its previous version while it is held back)."""
    if table.startswith("bronze/") and table != "bronze/dicom_instances":
        return "clinical silver"
    if table in _READERS:
        return _READERS[table]
    return "gold" if table.startswith("silver/") else "the endpoint report"


def _meanwhile(ctx: RunContext, table: str) -> str:
    """What the readers of a held-back table do: use its previous version, or wait for a first one."""
    previous = "/" in table and table_exists(ctx.lake, table)
    return f"{readers_of(table)} {'use its previous version' if previous else 'wait for a first version'}"


def publish_run_report(ctx: RunContext, report: RunReport) -> str:
    """Write Data Docs and the nightly summary under reports/; returns the summary as Markdown."""
    outcomes = report.outcomes
    if outcomes:  # the index keeps the newest validation of the tables this run did not validate again
        earlier = json.loads(read_object(ctx.lake, DATA_DOCS_ROWS)) if ctx.lake.fs.exists(ctx.lake.path(DATA_DOCS_ROWS)) else []
        for name, page in render_data_docs(outcomes, earlier).items():
            write_object(ctx.lake, f"reports/data_docs/{name}", page.encode())
        rows = merge_data_docs_rows(earlier, data_docs_rows(outcomes))
        write_object(ctx.lake, DATA_DOCS_ROWS, json.dumps(rows, indent=1).encode())
    intake = [
        IntakeCounts(area, stage.files_new, stage.files_new - stage.files_rejected, stage.files_rejected, stage.files_known)
        for area, stage in (("clinical", report.clinical), ("dicom", report.dicom)) if stage is not None
    ]
    not_sent = report.clinical_silver.not_sent if report.clinical_silver is not None else ()
    rejections = read_table(ctx.lake, REJECTIONS)
    summary = render_nightly_summary(
        run_id=ctx.run_id,
        intake=intake,
        rejections=rejections if rejections.width else pl.DataFrame(schema=REJECTION_SCHEMA),
        outcomes=outcomes,
        ct_series=read_table(ctx.lake, "silver/ct_series"),
        ct_volumetry=read_table(ctx.lake, "silver/ct_volumetry"),
        links=LINKS,
        versions=committed_versions(ctx),
        status=report.status(),
        held_back=[(h.table, h.reason, _meanwhile(ctx, h.table)) for h in report.held_back],
        failures=[(f.stage, f.message) for f in report.failures],
        not_sent=not_sent,
        rederived=report.rederived,
        link_base=reports_url(ctx) + "/",
    )
    write_object(ctx.lake, SUMMARY, summary.html.encode())
    return summary.markdown


def reports_url(ctx: RunContext) -> str:
    """Absolute URL of the lake's reports/ folder, for links read away from it (Prefect artifacts):
    ``file:///...`` for a lake on disk, ``s3://bucket/prefix/reports`` on S3."""
    url = ctx.lake.uri("reports")
    return Path(url).resolve().as_uri() if ctx.lake.is_local else url


def committed_versions(ctx: RunContext) -> dict[str, list[int]]:
    """{table: versions this run committed}, read back from each table's history."""
    found = {table: versions_by_run(ctx.lake, table, ctx.run_id) for table in list_tables(ctx.lake)}
    return {table: versions for table, versions in found.items() if versions}
