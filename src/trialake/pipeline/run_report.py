"""What a run tells the data manager: intake, rejections, data quality, series not measurable."""
from __future__ import annotations

from dataclasses import dataclass

from trialake.lake import list_tables, read_table, versions_by_run, write_object
from trialake.pipeline.clinical import ClinicalBronzeSummary, ClinicalSilverSummary
from trialake.pipeline.context import RunContext
from trialake.pipeline.dicom import DicomSummary
from trialake.pipeline.gold import GoldSummary
from trialake.quality import IntakeCounts, ValidationOutcome, render_data_docs, render_nightly_summary

SUMMARY = "reports/nightly_summary.html"
LINKS = {
    "Endpoint report": "endpoints.html",
    "Volumetry QC": "qc/index.html",
    "Data quality (Data Docs)": "data_docs/index.html",
    "Data dictionary": "data_dictionary.html",
}


@dataclass(frozen=True)
class RunReport:
    """The stage summaries of one run."""

    clinical: ClinicalBronzeSummary
    clinical_silver: ClinicalSilverSummary | None
    dicom: DicomSummary
    series_measured: int
    gold: GoldSummary | None

    @property
    def outcomes(self) -> list[ValidationOutcome]:
        stages = (self.clinical, self.clinical_silver, self.dicom, self.gold)
        return [o for stage in stages if stage is not None for o in stage.quality]


def publish_run_report(ctx: RunContext, report: RunReport) -> str:
    """Write Data Docs and the nightly summary under reports/; returns the summary as Markdown."""
    outcomes = report.outcomes
    if outcomes:
        for name, page in render_data_docs(outcomes).items():
            write_object(ctx.lake, f"reports/data_docs/{name}", page.encode())
    intake = [
        IntakeCounts("clinical", report.clinical.files_new, report.clinical.files_new - report.clinical.files_rejected, report.clinical.files_rejected),
        IntakeCounts("dicom", report.dicom.files_new, report.dicom.files_new - report.dicom.files_rejected, report.dicom.files_rejected),
    ]
    summary = render_nightly_summary(
        run_id=ctx.run_id,
        intake=intake,
        rejections=read_table(ctx.lake, "silver/rejections"),
        outcomes=outcomes,
        ct_series=read_table(ctx.lake, "silver/ct_series"),
        ct_volumetry=read_table(ctx.lake, "silver/ct_volumetry"),
        links=LINKS,
        versions=committed_versions(ctx),
    )
    write_object(ctx.lake, SUMMARY, summary.html.encode())
    return summary.markdown


def committed_versions(ctx: RunContext) -> dict[str, list[int]]:
    """{table: versions this run committed}, read back from each table's history."""
    found = {table: versions_by_run(ctx.lake, table, ctx.run_id) for table in list_tables(ctx.lake)}
    return {table: versions for table, versions in found.items() if versions}
