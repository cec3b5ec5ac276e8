"""HTML reports: the endpoint report (results table, figures, AE table, provenance)."""
from trialake.report.endpoint_report import ReportOptions, render_endpoint_report

__all__ = ["ReportOptions", "render_endpoint_report"]
