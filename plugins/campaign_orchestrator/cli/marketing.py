"""The marketers' commands: plan a night, size a segment, preview a message, check definitions.

They read the warehouse and the marketing folder and never send anything.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from campaign_orchestrator.cli.options import (
    config_option,
    contracts_option,
    parse_date,
    run_config,
    warehouse_option,
)
from campaign_orchestrator.clock import today
from campaign_orchestrator.definitions.loader import DefinitionError
from campaign_orchestrator.ingest.contracts import template_variables
from campaign_orchestrator.render.compiled import RenderError
from campaign_orchestrator.render.preview import PreviewError, as_html, as_text, preview_campaign
from campaign_orchestrator.run.context import Run
from campaign_orchestrator.run.stages import plan_stage
from campaign_orchestrator.segments.memberships import estimate as estimate_segment
from campaign_orchestrator.segments.windows import windows_for
from campaign_orchestrator.targeting.funnel import REASONS


@click.command()
@click.option("--date", "run_date", required=True, callback=parse_date, help="Run date YYYY-MM-DD.")
@warehouse_option
@config_option
@contracts_option
@click.option("--sample", "sample_size", default=5, show_default=True, type=click.IntRange(0, 100))
def plan(run_date: dt.date, warehouse: str, config_dir: Path, contracts_dir: Path, sample_size: int) -> None:
    """What a night would send: per campaign, the funnel from segment to targeted with every reason,
    and a sample of target rows. Reads the current warehouse; renders and sends nothing."""

    run = Run(run_config(run_date, warehouse_url=warehouse, config_dir=config_dir, contracts_dir=contracts_dir))
    try:
        detail = plan_stage(run, sample_size=sample_size)
    except DefinitionError as exc:
        raise click.ClickException(str(exc)) from None
    header = ["campaign", "segment", *REASONS, "targeted"]
    rows = [
        [cid, str(f["segment_size"]), *(str(f["excluded"].get(r, 0)) for r in REASONS), str(f["targeted"])]
        for cid, f in detail["funnel"].items()
    ]
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]
    for line in (header, *rows):
        click.echo(
            "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths, strict=True)))
        )
    for cid, sample in detail["samples"].items():
        if sample:
            shown = ", ".join(f"{r['customer_id']} ({r['variant']}, {r['send_at']})" for r in sample)
            click.echo(f"\n{cid}: {shown}")
    click.echo(f"\nplanned for {run_date}; nothing was rendered or sent")


@click.command()
@click.argument("campaign")
@click.option("--date", "run_date", callback=parse_date, help="Run date (default today, UTC).")
@click.option("--customer", "customer_ids", multiple=True, help="A customer id; repeat for several.")
@click.option("--sample", "sample_size", default=5, show_default=True, type=click.IntRange(1, 200))
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), help="Also write an HTML page.")
@warehouse_option
@config_option
@contracts_option
def preview(
    campaign: str,
    run_date: dt.date | None,
    customer_ids: tuple[str, ...],
    sample_size: int,
    html_file: Path | None,
    warehouse: str,
    config_dir: Path,
    contracts_dir: Path,
) -> None:
    """A campaign's message rendered for real customers (by id, or a sample of its target list),
    in the terminal and optionally as an HTML page of push, in-app and email mock-ups. Sends nothing."""

    day = run_date or today()
    run = Run(run_config(day, warehouse_url=warehouse, config_dir=config_dir, contracts_dir=contracts_dir))
    try:
        messages = preview_campaign(
            run.engine,
            run.definitions,
            template_variables(run.contracts),
            campaign,
            day,
            list(customer_ids) or None,
            sample_size,
        )
    except (DefinitionError, RenderError, PreviewError) as exc:
        raise click.ClickException(str(exc)) from None
    if not messages:
        raise click.ClickException("no customers to preview: import data first (campaigns import or run)")
    click.echo(as_text(messages))
    failed = sum(1 for m in messages if m.error)
    click.echo(f"{len(messages)} previewed, {failed} would not be sent (render errors); nothing was sent")
    if html_file is not None:
        html_file.write_text(as_html(campaign, day, messages), encoding="utf-8")
        click.echo(f"html: {html_file}")


@click.command()
@click.argument("segment")
@click.option(
    "--date", "run_date", callback=parse_date, help="Run date the rule is evaluated for (default today, UTC)."
)
@warehouse_option
@config_option
@contracts_option
@click.option("--sample", "sample_size", default=5, show_default=True, type=click.IntRange(0, 100))
def estimate(
    segment: str, run_date: dt.date | None, warehouse: str, config_dir: Path, contracts_dir: Path, sample_size: int
) -> None:
    """How many customers a segment has on the current data, the change since its last run, a sample."""
    import time

    when = run_date or today()
    run = Run(run_config(when, warehouse_url=warehouse, config_dir=config_dir, contracts_dir=contracts_dir))
    try:
        defs = run.definitions
    except DefinitionError as exc:
        raise click.ClickException(str(exc)) from None
    if segment not in defs.segments:
        raise click.ClickException(f"unknown segment {segment!r}; known: {', '.join(sorted(defs.segments))}")
    t0 = time.perf_counter()
    with run.engine.connect() as conn:
        windows = windows_for(conn, when, defs.settings.windows, defs.settings.default_timezone)
        est = estimate_segment(
            conn,
            segment,
            defs.rules(),
            defs.vocabulary,
            when,
            defs.lifecycle_specs(),
            sample_size=sample_size,
            windows=windows,
        )
    click.echo(f"segment {segment} on {when}: {est.size:,} customers ({time.perf_counter() - t0:.1f}s)")
    if est.previous_size is None:
        click.echo("no earlier run of this segment to compare with")
    else:
        click.echo(f"change since the run of {est.previous_run_date}: {est.change:+,} (was {est.previous_size:,})")
    if est.sample:
        click.echo("sample: " + ", ".join(est.sample))


@click.command()
@config_option
@contracts_option
def validate(config_dir: Path, contracts_dir: Path) -> None:
    """Check every definition in the marketing folder against the data contracts."""
    from campaign_orchestrator.console.checks import Checker  # the console saves through the same check

    check = Checker(contracts_dir).check(config_dir)
    if not check.ok:
        raise click.ClickException(check.message)
    click.echo(check.message)
