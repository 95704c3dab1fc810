"""`campaigns purge`: apply the retention settings now, or see what they would remove."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from campaign_orchestrator.cli.options import (
    archive_option,
    config_option,
    contracts_option,
    parse_date,
    run_config,
    warehouse_option,
)
from campaign_orchestrator.clock import today
from campaign_orchestrator.run.context import Run
from campaign_orchestrator.run.purge import purge_stage


@click.command()
@click.option("--date", "run_date", callback=parse_date, help="Count days back from this date (default today, UTC).")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; change nothing.")
@warehouse_option
@config_option
@contracts_option
@archive_option
def purge(
    run_date: dt.date | None, dry_run: bool, warehouse: str, config_dir: Path, contracts_dir: Path, archive_dir: Path
) -> None:
    """Remove or empty, per store, what is older than settings.retention says (none set: nothing)."""
    day = run_date or today()
    config = run_config(
        day, warehouse_url=warehouse, config_dir=config_dir, contracts_dir=contracts_dir, archive_dir=archive_dir
    )
    detail = purge_stage(Run(config), day, dry_run)
    if not detail["cutoffs"]:
        click.echo("settings.retention sets no store: nothing is purged")
        return
    verb = "would remove or empty" if dry_run else "removed or emptied"
    for store, cutoff in detail["cutoffs"].items():
        click.echo(f"{store}: kept from {cutoff}")
    for store, count in detail["counts"].items():
        click.echo(f"  {store}: {count:,} {verb}")
