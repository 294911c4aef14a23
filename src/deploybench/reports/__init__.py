"""Presentation and export of run records: comparison tables, HTML reports, flat exports.

Everything here is a pure function of run-record dicts (``RunRecord.model_dump(mode="json")``);
nothing reads a database.
"""

from deploybench.reports.export import EXPORT_FORMATS, ExportFormat, export_runs
from deploybench.reports.html import write_html_report
from deploybench.reports.tables import (
    SUMMARY_COLUMNS,
    comparison_table,
    config_label,
    config_summary,
    summary_rows,
)

__all__ = [
    "EXPORT_FORMATS",
    "SUMMARY_COLUMNS",
    "ExportFormat",
    "comparison_table",
    "config_label",
    "config_summary",
    "export_runs",
    "summary_rows",
    "write_html_report",
]
