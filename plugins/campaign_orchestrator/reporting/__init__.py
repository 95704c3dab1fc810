"""The run report: what a night did, per campaign, from segment to delivered, as JSON and Markdown.

Guarantee: every figure comes from the warehouse (candidates, exclusions, ledger, run log), not
from a process's memory, so the report task can run on any worker and a re-run's report tells the
truth about the whole date.
"""

from campaign_orchestrator.reporting.markdown import summary_table
from campaign_orchestrator.reporting.report import build_run_report, write_run_report

__all__ = ["build_run_report", "summary_table", "write_run_report"]
