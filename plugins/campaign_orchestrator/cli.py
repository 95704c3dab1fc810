"""The `campaigns` command: the same engine functions the DAG calls, without a scheduler."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from campaign_orchestrator.cli_marketing import estimate, plan, preview, validate
from campaign_orchestrator.cli_options import (
    archive_option,
    config_option,
    contracts_option,
    parse_date,
    reports_option,
    run_config,
    sources_option,
    warehouse_option,
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("great_expectations", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Batch campaign orchestrator: import, segment, target, render and deliver campaigns."""
    _setup_logging(verbose)


@main.command()
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
    from campaign_orchestrator.contracts import ContractError
    from campaign_orchestrator.definitions import DefinitionError
    from campaign_orchestrator.delivery.dispatcher import DestinationConfigError
    from campaign_orchestrator.pipeline import CampaignsHeld, DeliveryIncomplete, run_all

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
        _print_summary(_report_path(config))
        raise click.ClickException(f"{exc}\nThe other campaigns were delivered.") from None
    except DeliveryIncomplete as exc:
        _print_summary(_report_path(config))
        raise click.ClickException(str(exc)) from None
    except DestinationConfigError as exc:
        raise click.ClickException(f"{exc}\nRun report: {_report_path(config)}") from None
    _print_summary(report_path)


def _report_path(config: Any) -> Path:
    return Path(config.reports_dir) / str(config.run_date) / "run_report.json"


@main.command()
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
    from campaign_orchestrator.delivery.dispatcher import DestinationConfigError
    from campaign_orchestrator.pipeline import DeliveryIncomplete, Run, deliver_stage, delivery_shards

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
    from campaign_orchestrator.delivery.dispatcher import cause_lines
    from campaign_orchestrator.pipeline import DeliveryIncomplete

    def total(key: str) -> float:
        return sum(sum(v.values()) if isinstance(v := d.get(key) or 0, dict) else float(v) for d in details)

    merged = DeliveryIncomplete(details)
    states = ", ".join(f"{merged.remaining.get(s, 0)} {s}" for s in ("sent", "pending", "failed", "unknown", "dead"))
    lines = [
        f"delivered {int(total('rows'))} messages in {int(total('requests'))} requests "
        f"({int(total('retried'))} retried, {total('throttled_s'):.1f}s throttled), "
        f"{int(total('resent_in_flight'))} resent with their idempotency key after a crash",
        *(f"  {line}" for line in cause_lines(merged.causes)),
        f"messages of the date in these shards: {states}",
    ]
    return "\n".join(lines)


@main.command()
@warehouse_option
@config_option
@contracts_option
def notices(warehouse: str, config_dir: Path, contracts_dir: Path) -> None:
    """Publish marketing/public_messages.yaml to the in-app message store now (outages, forced updates)."""
    from campaign_orchestrator.definitions import DefinitionError
    from campaign_orchestrator.pipeline import Run, notices_stage

    day = dt.datetime.now(dt.UTC).date()
    try:
        detail = notices_stage(
            Run(run_config(day, warehouse_url=warehouse, config_dir=config_dir, contracts_dir=contracts_dir))
        )
    except DefinitionError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(", ".join(f"{k} {detail[k]}" for k in ("created", "updated", "unchanged", "ended")))


@main.command("import")
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
def import_command(
    run_date: dt.date,
    warehouse: str,
    contracts_dir: Path,
    sources_dir: Path,
    archive_dir: Path,
    from_archive: bool,
    workers: int,
) -> None:
    """Import the night's sources through their data contracts (validate all, then publish all)."""
    from campaign_orchestrator.contracts import ContractError
    from campaign_orchestrator.pipeline import Run, import_stage

    config = run_config(
        run_date, warehouse_url=warehouse, contracts_dir=contracts_dir, sources_dir=sources_dir, archive_dir=archive_dir
    )
    try:
        detail = import_stage(Run(config), from_archive=from_archive, workers=workers)
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
    return "\n".join(lines)


def _print_summary(report_path: Path) -> None:
    from campaign_orchestrator.reporting import summary_table

    report = json.loads(report_path.read_text(encoding="utf-8"))
    click.echo(f"\nRun {report['run_date']} ({report['warehouse']})\n")
    click.echo(summary_table(report))
    totals = report["totals"]
    new = totals["delivered_this_run"]
    if new:
        click.echo(f"\nDelivered {new} new messages in this run.")
    else:
        click.echo(
            f"\nDelivered 0 new messages in this run: all {totals['delivered']} messages for "
            f"{report['run_date']} were already delivered."
            if totals["delivered"]
            else "\nDelivered 0 new messages in this run."
        )
    if totals.get("kept"):
        click.echo(
            f"  {totals['kept']} targeted messages were kept from an earlier run of the date: already sent or "
            "under way, they counted against tonight's caps."
        )
    from campaign_orchestrator.reporting import rerendered_counts

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
    from campaign_orchestrator.delivery.dispatcher import cause_lines

    for line in cause_lines(report.get("not_delivered") or {}):
        click.echo(f"  {line}")
    click.echo(f"Run report: {report_path}")


@main.command("demo-data")
@click.option("--customers", default=20_000, show_default=True, type=click.IntRange(1))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--as-of", "as_of", callback=parse_date, help="Export date (default today); events cover 90 days before.")
@click.option(
    "--bad-rows",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Profiles to break on purpose, to see the quarantine at work.",
)
def demo_data(customers: int, out_dir: Path, seed: int, as_of: dt.date | None, bad_rows: int) -> None:
    """Write a deterministic sample export (profiles, app installs, preferences, events, suppressions)."""
    from campaign_orchestrator.demo_data import generate

    summary = generate(out_dir, customers=customers, seed=seed, as_of=as_of, bad_rows=bad_rows)
    click.echo(
        f"wrote {summary.customers} customers, {summary.app_installs} app installs, {summary.preferences} "
        f"preference changes, {summary.events} events, {summary.suppressions} suppressions to {out_dir}"
    )


@main.command("provider-sim")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option(
    "--api-key",
    envvar="PROVIDER_SIM_API_KEY",
    required=True,
    help="The bearer key the simulator accepts (env PROVIDER_SIM_API_KEY).",
)
@click.option("--port-file", type=click.Path(dir_okay=False), help="Write the bound port here once listening.")
@click.option(
    "--faults",
    "faults_json",
    default="{}",
    help='Injected faults as JSON, e.g. \'{"error_rate": 0.2, "rate_limit": 100, "rate_window_s": 1}\'.',
)
def provider_sim(host: str, port: int, api_key: str, port_file: str | None, faults_json: str) -> None:
    """Run the Braze-compatible provider simulator until interrupted."""
    from campaign_orchestrator.provider_sim import Faults, serve

    try:
        faults = Faults.from_doc(json.loads(faults_json))
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    serve(host, port, api_key, port_file, faults)


@main.command()
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
        from campaign_orchestrator.definition_schemas import json_schemas

        json_dir.mkdir(parents=True, exist_ok=True)
        for name, doc in json_schemas().items():
            (json_dir / f"{name}.schema.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return
    from campaign_orchestrator.schema_ddl import ddl

    click.echo(ddl(dialect), nl=False)


@main.command()
@click.option("--customers", default=20_000, show_default=True, type=click.IntRange(1))
@click.option("--date", "run_date", callback=parse_date, help="Run date (default today, UTC).")
@click.option("--workdir", default=".demo", show_default=True, type=click.Path(file_okay=False, path_type=Path))
def demo(customers: int, run_date: dt.date | None, workdir: Path) -> None:
    """Generate data, start the simulator, run the DAG through Airflow, print the summary."""
    from campaign_orchestrator.demo import run_demo

    report_path = run_demo(workdir.resolve(), customers, run_date or dt.datetime.now(dt.UTC).date())
    _print_summary(report_path)


@main.command()
@click.option("--customers", default=1_000_000, show_default=True, type=click.IntRange(1))
@click.option("--warehouse", default=None, help="SQLAlchemy URL (default: a fresh SQLite file in the workdir).")
@click.option("--workdir", default="bench", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--workers", type=click.IntRange(1), help="Source validation processes (default 1).")
@click.option(
    "--until",
    type=click.Choice(["import", "segments", "targets", "render", "deliver"]),
    default="deliver",
    show_default=True,
    help="Stop after this stage (and its floor).",
)
@click.option(
    "--limit-per-hour",
    default=250_000,
    show_default=True,
    type=click.IntRange(3600),
    help="The provider limit delivery is measured against (Braze's send endpoints: 250,000/hour).",
)
def bench(
    customers: int, warehouse: str | None, workdir: Path, workers: int | None, until: str, limit_per_hour: int
) -> None:
    """Time every stage on N customers and write bench/results.json (a benchmark, not a test)."""
    from campaign_orchestrator.bench import STAGES, run_bench, table

    stages = STAGES[: STAGES.index(until) + 1]
    results = run_bench(
        workdir.resolve(), customers, warehouse, workers=workers, stages=stages, limit_per_hour=limit_per_hour
    )
    click.echo(table(results))
    click.echo(f"results: {workdir / 'results.json'}")


@main.command("stack-test")
@click.option("--workdir", default=".stack", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--customers", default=3000, show_default=True, type=click.IntRange(100))
@click.option(
    "--date",
    "run_date",
    callback=parse_date,
    help="The night to trigger (default: the neighbour of today that the scheduler's own catch-up run does not take).",
)
def stack_test(workdir: Path, customers: int, run_date: dt.date | None) -> None:
    """The docker-compose topology as local processes (CeleryExecutor on PostgreSQL and Redis):
    trigger nightly_campaigns through the REST API, check what the provider got against the ledger
    for every run Airflow started, stop everything."""
    from campaign_orchestrator.local_stack import StackError, run_stack_test

    try:
        result = run_stack_test(workdir.resolve(), Path.cwd(), customers=customers, run_date=run_date)
    except StackError as exc:
        raise click.ClickException(f"stack test failed: {exc}") from None
    sim = result["simulator"]
    nights = "; ".join(
        f"{night}: {c['simulator']} at the simulator, {c['ledger_sent']} sent in the ledger, "
        f"{c['duplicates']} duplicates"
        for night, c in result["nights"].items()
    )
    click.echo(
        f"stack test passed in {result['seconds']}s: runs {result['runs']}; {len(result['tasks'])} task instances "
        f"of the triggered run on the Celery worker; {result['provider_sent']} messages to the provider "
        f"(simulator: {sim['recipients']} recipients), {result['inapp_rows']} in-app rows; per night: {nights}; "
        "every process stopped"
    )


for _command in (plan, estimate, preview, validate):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
