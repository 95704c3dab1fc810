"""The operators' commands: run a night, deliver, import, publish notices, print the schema.
They call the same engine functions as the DAG's tasks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from campaign_orchestrator.cli.options import (
    archive_option,
    config_option,
    contracts_option,
    parse_date,
    reports_option,
    run_config,
    sources_option,
    warehouse_option,
)
from campaign_orchestrator.clock import today
from campaign_orchestrator.definitions.loader import DefinitionError
from campaign_orchestrator.delivery.dispatcher import DestinationConfigError
from campaign_orchestrator.delivery.report import DeliveryIncomplete, cause_lines
from campaign_orchestrator.ingest.contracts import ContractError
from campaign_orchestrator.reporting.markdown import rerendered_counts, stale_line, summary_table
from campaign_orchestrator.run.context import Run, delivery_shards
from campaign_orchestrator.run.stages import deliver_stage, import_stage, notices_stage, run_all
from campaign_orchestrator.run.status import CampaignsHeld
from campaign_orchestrator.warehouse.ddl import ddl


@click.command()
@click.option("--date", "run_date", required=True, callback=parse_date, help="Run date YYYY-MM-DD.")
@warehouse_option
@config_option
@contracts_option
@sources_option
@reports_option
@archive_option
def run(
    run_date: dt.date,
    warehouse: str,
    config_dir: Path,
    contracts_dir: Path,
    sources_dir: Path,
    reports_dir: Path,
    archive_dir: Path,
) -> None:
    """Run the whole nightly pipeline for one date, as the DAG does."""

    config = run_config(
        run_date,
        warehouse_url=warehouse,
        config_dir=config_dir,
        contracts_dir=contracts_dir,
        sources_dir=sources_dir,
        reports_dir=reports_dir,
        archive_dir=archive_dir,
    )
    try:
        report_path = run_all(config)
    except (ContractError, DefinitionError) as exc:
        raise click.ClickException(f"{exc}\nNothing was sent. Run report: {_report_path(config)}") from None
    except CampaignsHeld as exc:
        print_run_summary(_report_path(config))
        raise click.ClickException(f"{exc}\nThe other campaigns were delivered.") from None
    except DeliveryIncomplete as exc:
        print_run_summary(_report_path(config))
        raise click.ClickException(str(exc)) from None
    except DestinationConfigError as exc:
        raise click.ClickException(f"{exc}\nRun report: {_report_path(config)}") from None
    print_run_summary(report_path)


def _report_path(config: Any) -> Path:
    return Path(config.reports_dir) / str(config.run_date) / "run_report.json"


@click.command()
@click.option("--date", "run_date", required=True, callback=parse_date, help="Run date YYYY-MM-DD.")
@click.option("--shard", "shards_to_send", type=click.IntRange(0), multiple=True, help="Only this shard (repeat).")
@warehouse_option
@config_option
@contracts_option
def deliver(
    run_date: dt.date, shards_to_send: tuple[int, ...], warehouse: str, config_dir: Path, contracts_dir: Path
) -> None:
    """Deliver a date's outbox (all shards, or the ones given): what the DAG's mapped deliver tasks
    do. Safe to run again, and next to another worker: only rows not yet sent are sent, once.
    Exits non-zero, naming the causes, when messages are still pending or failed at the end."""

    run = Run(run_config(run_date, warehouse_url=warehouse, config_dir=config_dir, contracts_dir=contracts_dir))
    all_shards = delivery_shards(run)
    wanted = list(shards_to_send) or all_shards
    unknown = [s for s in wanted if s not in all_shards]
    if unknown:
        raise click.ClickException(f"no shard {unknown}: settings.delivery.shards is {len(all_shards)}")
    details: list[dict[str, Any]] = []
    incomplete = False
    for shard in wanted:
        try:
            details.append(deliver_stage(run, shard, concurrent_shards=1 if not shards_to_send else None))
        except DeliveryIncomplete as exc:
            details += exc.details
            incomplete = True
        except DestinationConfigError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(delivery_summary(details))
    if incomplete:
        raise click.ClickException(str(DeliveryIncomplete(details)))


def delivery_summary(details: list[dict[str, Any]]) -> str:
    """What this attempt did, then the date's messages per state in these shards and why the unsent
    ones are not sent."""

    def total(key: str) -> float:
        return sum(sum(v.values()) if isinstance(v := d.get(key) or 0, dict) else float(v) for d in details)

    merged = DeliveryIncomplete(details)
    shown = ("sent", "pending", "failed", "unknown", "dead", "stale")
    states = ", ".join(f"{merged.remaining.get(s, 0)} {s}" for s in shown if s != "stale" or s in merged.remaining)
    stale = next((d["stale"] for d in details if d.get("stale")), None)
    lines = [
        *([f"stale: nothing sent: {stale['reason']}"] if stale else []),
        f"delivered {int(total('rows'))} messages in {int(total('requests'))} requests "
        f"({int(total('retried'))} retried, {total('throttled_s'):.1f}s throttled), "
        f"{int(total('resent_in_flight'))} resent with their idempotency key after a crash",
        *(f"  {line}" for line in cause_lines(merged.causes)),
        f"messages of the date in these shards: {states}",
    ]
    return "\n".join(lines)


@click.command()
@warehouse_option
@config_option
@contracts_option
def notices(warehouse: str, config_dir: Path, contracts_dir: Path) -> None:
    """Publish marketing/public_messages.yaml to the in-app message store now (outages, forced updates)."""

    day = today()
    try:
        detail = notices_stage(
            Run(run_config(day, warehouse_url=warehouse, config_dir=config_dir, contracts_dir=contracts_dir))
        )
    except DefinitionError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(", ".join(f"{k} {detail[k]}" for k in ("created", "updated", "unchanged", "ended")))


@click.command("import")
@click.option("--date", "run_date", required=True, callback=parse_date, help="Run date YYYY-MM-DD.")
@warehouse_option
@contracts_option
@sources_option
@archive_option
@click.option("--from-archive", is_flag=True, help="Replay the night from its archived raw inputs.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Sources validated side by side (each process needs ~650 MB on million-row files).",
)
@click.option(
    "--accept-row-count",
    "accept_row_count",
    multiple=True,
    metavar="SOURCE",
    help="Accept this source's row count outside its contract's band this once (e.g. the first nightly "
    "delta after a backfill); recorded as a warning in the import log.",
)
def import_command(
    run_date: dt.date,
    warehouse: str,
    contracts_dir: Path,
    sources_dir: Path,
    archive_dir: Path,
    from_archive: bool,
    workers: int,
    accept_row_count: tuple[str, ...],
) -> None:
    """Import the night's sources through their data contracts (validate all, then publish all)."""

    config = run_config(
        run_date, warehouse_url=warehouse, contracts_dir=contracts_dir, sources_dir=sources_dir, archive_dir=archive_dir
    )
    try:
        detail = import_stage(
            Run(config), from_archive=from_archive, workers=workers, accept_row_count=frozenset(accept_row_count)
        )
    except ContractError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(import_table(detail["sources"].values()))
    click.echo(f"published {detail['rows']} rows in one transaction")


def import_table(sources: Any) -> str:
    """Per source: rows read, loaded, quarantined (by rule) and duration."""
    lines = [f"{'source':<22}{'read':>11}{'loaded':>11}{'quarantined':>13}{'seconds':>9}  rules"]
    for s in sources:
        rules = ", ".join(f"{rule}: {n}" for rule, n in (s.get("quarantined_by_rule") or {}).items())
        lines.append(
            f"{s['source']:<22}{s['rows_read']:>11,}{s['rows_loaded']:>11,}{s['rows_quarantined']:>13,}"
            f"{s['duration_s']:>9.1f}  {rules}"
        )
    lines += [
        f"warning: source {s['source']!r}, file {s['file']}: {w}" for s in sources for w in s.get("warnings") or []
    ]
    return "\n".join(lines)


def print_run_summary(report_path: Path) -> None:
    """The night for the terminal: the campaigns table (summary_table: where each sent message went,
    the campaigns with nothing tonight, the message totals), then what this run added."""
    report = json.loads(report_path.read_text(encoding="utf-8"))
    click.echo(f"\nRun {report['run_date']} ({report['warehouse']})\n")
    click.echo(summary_table(report))
    totals = report["totals"]
    new = totals["delivered_this_run"]
    stale = stale_line(report)
    if new:
        click.echo(f"\nSent {new:,} new messages in this run.")
    elif stale:
        click.echo("\nSent 0 new messages in this run: the night is stale (above).")
    else:
        click.echo(
            f"\nSent 0 new messages in this run: all {totals['delivered']:,} messages of "
            f"{report['run_date']} were already sent by an earlier run."
            if totals["delivered"]
            else "\nSent 0 new messages in this run."
        )
    if totals.get("kept"):
        click.echo(
            f"  {totals['kept']} targeted messages were kept from an earlier run of the date: already sent or "
            "under way, they counted against tonight's caps."
        )

    again, kept_text = rerendered_counts(report)
    if again or kept_text:
        click.echo(
            f"  templates changed since the last render: {again} messages rendered again with the new text, "
            f"{kept_text} keep their earlier text (a request for them may have left)."
        )
    if totals.get("delivered_not_targeted"):
        click.echo(
            f"  {totals['delivered_not_targeted']} messages delivered by an earlier run of the date went to "
            "customers tonight's lists no longer hold."
        )

    for line in cause_lines(report.get("not_delivered") or {}):
        click.echo(f"  {line}")
    click.echo(f"Run report: {report_path}")


@click.command()
@click.option(
    "--dialect", type=click.Choice(["sqlite", "postgresql", "mysql"]), default="postgresql", show_default=True
)
@click.option(
    "--json-schemas",
    "json_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the JSON Schemas of the marketing definitions into this folder instead.",
)
def schema(dialect: str, json_dir: Path | None) -> None:
    """Print the warehouse DDL for a dialect (sql/schema.<dialect>.sql), or write the definitions' JSON Schemas."""
    if json_dir is not None:
        from campaign_orchestrator.definitions.json_schemas import json_schemas

        json_dir.mkdir(parents=True, exist_ok=True)
        for name, doc in json_schemas().items():
            (json_dir / f"{name}.schema.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return

    click.echo(ddl(dialect), nl=False)
