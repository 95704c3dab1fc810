"""The demo's days after the night: engagement and purchases come back, the night is measured.

Four days after the run date (every attribution window has closed), the simulated world's files
arrive: the provider's engagement export and the purchases, next to a fresh copy of the other
exports. They go through the same import as every night (contracts, quarantine), with the events'
row-count band accepted once, since the night's events file was a 90-day backfill and this one is
four days of purchases. Then the metrics stage measures the run date again and the HTML report is
written, with the uplift the simulator built in printed beside the uplift measured.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import sqlalchemy as sa

from campaign_devtools.engagement_sim import DEMO_EFFECTS, LATER, Simulated, simulate
from campaign_orchestrator.reporting.html import write_html_report
from campaign_orchestrator.run.context import Run, RunConfig
from campaign_orchestrator.run.stages import import_stage, metrics_stage
from campaign_orchestrator.warehouse.tables import campaign_metrics


def days_after(
    workdir: Path, project: Path, warehouse_url: str, sources: Path, reports: Path, run_date: dt.date
) -> tuple[Path, Simulated, list[str]]:
    """Import what came back, measure the night, write its HTML report: (report, what was simulated, lines)."""
    later = run_date + LATER
    arrived = workdir / "sources_later"
    shutil.rmtree(arrived, ignore_errors=True)
    shutil.copytree(sources, arrived)
    config = RunConfig(
        run_date=later,
        warehouse_url=warehouse_url,
        config_dir=project / "marketing",
        contracts_dir=project / "data_contracts",
        sources_dir=arrived,
        reports_dir=reports,
        archive_dir=workdir / "archive",
    )
    run = Run(config)
    simulated = simulate(run.engine, run_date, arrived, DEMO_EFFECTS)
    import_stage(run, accept_row_count=frozenset({"events"}))
    metrics_stage(run)
    html = write_html_report(run.engine, reports / run_date.isoformat() / "run_report.html", run_date)
    return html, simulated, _comparison(run, run_date, simulated)


def _comparison(run: Run, run_date: dt.date, simulated: Simulated) -> list[str]:
    m = campaign_metrics.c
    with run.engine.connect() as conn:
        rows = conn.execute(
            sa.select(m.campaign_id, m.uplift, m.uplift_low, m.uplift_high, m.significant, m.too_small)
            .where(m.run_date == run_date, m.variant == "*", m.campaign_id != "*")
            .order_by(m.campaign_id)
        ).all()
    lines = []
    for cid, uplift, low, high, significant, too_small in rows:
        if cid not in simulated.true_uplift or uplift is None:
            continue
        truth = simulated.true_uplift[cid]
        verdict = "too small to tell" if too_small else ("significant" if significant else "not significant")
        covered = "covers" if low <= truth <= high else "MISSES"
        lines.append(
            f"{cid}: measured {uplift * 100:+.1f} pp [{low * 100:+.1f}, {high * 100:+.1f}] ({verdict}); "
            f"built in {truth * 100:+.1f} pp: the interval {covered} it"
        )
    return lines
