"""`campaigns measure`: re-measure a date and the lookback before it, and print the uplift per campaign.

The nightly DAG does this every night (its `measure` task); the command is for a data engineer who
imported late engagement by hand, or wants the figures of a date without opening the report.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from campaign_orchestrator.cli.options import config_option, contracts_option, parse_date, run_config, warehouse_option
from campaign_orchestrator.clock import today
from campaign_orchestrator.run.context import Run
from campaign_orchestrator.run.stages import metrics_stage
from campaign_orchestrator.warehouse.tables import campaign_metrics


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.2f}"


def uplift_table(rows: list[Any]) -> str:
    """Per campaign and variant: groups, conversion rates, uplift with its 95% interval, and the verdict."""
    lines = [
        f"{'campaign':<24}{'variant':<10}{'treated':>9}{'held out':>9}{'rate %':>8}{'held %':>8}"
        f"{'uplift pp':>10}  {'95% interval':<17}{'p':>7}  verdict"
    ]
    for r in rows:
        interval = f"[{_percent(r.uplift_low)}, {_percent(r.uplift_high)}]" if r.uplift_low is not None else "-"
        if r.srm_mismatch:
            verdict = "sample-ratio mismatch: not judged"
        elif r.too_small:
            verdict = "too small to tell"
        else:
            verdict = "significant" if r.significant else "not significant"
        rate = "" if r.conversion_rate is None else f"{r.conversion_rate * 100:.2f}"
        held = "" if r.held_out_rate is None else f"{r.held_out_rate * 100:.2f}"
        p_value = "" if r.p_value is None else f"{r.p_value:.3f}"
        lines.append(
            f"{r.campaign_id:<24}{r.variant:<10}{r.treatment:>9,}{r.held_out:>9,}{rate:>8}{held:>8}"
            f"{_percent(r.uplift):>10}  {interval:<17}{p_value:>7}  {verdict}"
        )
    return "\n".join(lines)


@click.command("measure")
@click.option("--date", "run_date", callback=parse_date, help="Run date YYYY-MM-DD (default today, UTC).")
@warehouse_option
@config_option
@contracts_option
def measure(run_date: dt.date | None, warehouse: str, config_dir: Path, contracts_dir: Path) -> None:
    """Campaign metrics for the date and its lookback (settings.measurement.lookback_days), then the uplift."""
    day = run_date or today()
    run = Run(run_config(day, warehouse_url=warehouse, config_dir=config_dir, contracts_dir=contracts_dir))
    detail = metrics_stage(run)
    click.echo(f"measured {', '.join(detail['dates']) or 'no date (no campaign ran in the lookback)'}")
    m = campaign_metrics.c
    with run.engine.connect() as conn:
        rows = conn.execute(
            sa.select(campaign_metrics)
            .where(m.run_date.in_([dt.date.fromisoformat(d) for d in detail["dates"]]))
            .order_by(m.run_date, m.campaign_id, m.variant)
        ).all()
    for d in detail["dates"]:
        shown = [r for r in rows if r.run_date.isoformat() == d]
        click.echo(f"\n{d}\n{uplift_table(shown)}")
