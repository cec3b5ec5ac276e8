"""HTML reports: the endpoint report (results table, figures, AE table, provenance)."""
from trialake.report.endpoint_report import ReportInputs, ReportOptions, change_label, render_endpoint_report

__all__ = ["ReportInputs", "ReportOptions", "change_label", "render_endpoint_report"]
