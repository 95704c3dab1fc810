"""`campaigns report`: the charts of a night or a range of nights as one self-contained HTML page.

It reads the warehouse only (the funnel, segment sizes, send times, delivery and uplift), so it can
be run for any date already run, on any machine that reaches the warehouse, and sends nothing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from campaign_orchestrator.cli.options import parse_date, warehouse_option
from campaign_orchestrator.reporting.html import ChartsFailed, check_dates, write_html_report
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, ensure_schema, redacted


def report_dates(
    run_date: dt.date | None, date_from: dt.date | None, date_to: dt.date | None
) -> tuple[dt.date, dt.date]:
    """The first and last run date from `--date D` or `--from D1 --to D2`; a clear error otherwise."""
    if run_date is not None:
        if date_from is not None or date_to is not None:
            raise click.UsageError("give either --date D or --from D1 --to D2, not both")
        return run_date, run_date
    if date_from is None or date_to is None:
        missing = (
            "--to" if date_from is not None else "--from" if date_to is not None else "--date (or --from and --to)"
        )
        raise click.UsageError(f"missing {missing}: give --date D, or --from D1 --to D2")
    check_dates(date_from, date_to)  # BadDateRange: one line and exit 1, as every engine error
    return date_from, date_to


@click.command("report")
@click.option("--date", "run_date", callback=parse_date, help="Run date YYYY-MM-DD (one night).")
@click.option("--from", "date_from", callback=parse_date, help="First run date YYYY-MM-DD of a range.")
@click.option("--to", "date_to", callback=parse_date, help="Last run date YYYY-MM-DD of a range (included).")
@click.option("--campaign", help="Only this campaign (default: every campaign of the dates).")
@click.option("--segment", "segments", multiple=True, help="Only this segment in the segment chart (repeat).")
@click.option(
    "--html",
    "html_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the page here (self-contained: opens without a network).",
)
@warehouse_option
def report(
    run_date: dt.date | None,
    date_from: dt.date | None,
    date_to: dt.date | None,
    campaign: str | None,
    segments: tuple[str, ...],
    html_file: Path,
    warehouse: str,
) -> None:
    """Charts of a night or a range of nights as one HTML page: the funnel from segment to delivered,
    segment sizes, send times in the customers' local time, delivery over time and uplift against
    control. Counts only: no customer appears in it."""

    first, last = report_dates(run_date, date_from, date_to)
    engine = create_warehouse_engine(warehouse)
    click.echo(f"warehouse: {redacted(warehouse)}", err=True)
    try:
        ensure_schema(engine)
        path = write_html_report(engine, html_file, first, last, campaign, segments=list(segments) or None)
    except ChartsFailed as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(f"wrote {path}")
