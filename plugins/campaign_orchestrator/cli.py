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

from campaign_orchestrator.warehouse import DEFAULT_WAREHOUSE_URL


def _date(_ctx: Any, _param: Any, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from exc


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


warehouse_option = click.option(
    "--warehouse",
    envvar="CAMPAIGNS_WAREHOUSE_URL",
    default=DEFAULT_WAREHOUSE_URL,
    show_default=True,
    help="SQLAlchemy URL of the warehouse (env CAMPAIGNS_WAREHOUSE_URL).",
)
config_option = click.option(
    "--config",
    "config_dir",
    envvar="CAMPAIGNS_CONFIG_DIR",
    default="marketing",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The marketers' definitions folder.",
)
contracts_option = click.option(
    "--contracts",
    "contracts_dir",
    envvar="CAMPAIGNS_CONTRACTS_DIR",
    default="data_contracts",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Data contracts and sources.yaml.",
)


sources_option = click.option(
    "--sources",
    "sources_dir",
    envvar="CAMPAIGNS_SOURCES_DIR",
    default="data/incoming",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder with the night's source files (env CAMPAIGNS_SOURCES_DIR).",
)
reports_option = click.option(
    "--reports",
    "reports_dir",
    envvar="CAMPAIGNS_REPORTS_DIR",
    default="reports",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where run reports go (env CAMPAIGNS_REPORTS_DIR).",
)
archive_option = click.option(
    "--archive",
    "archive_dir",
    envvar="CAMPAIGNS_ARCHIVE_DIR",
    default="archive",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where each night's raw and validated inputs are kept (env CAMPAIGNS_ARCHIVE_DIR).",
)


def _config(run_date: dt.date, **kwargs: Any) -> Any:
    from campaign_orchestrator.pipeline import RunConfig

    return RunConfig(run_date=run_date, **{k: v for k, v in kwargs.items() if v is not None})


@main.command()
@click.option("--date", "run_date", required=True, callback=_date, help="Run date YYYY-MM-DD.")
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
    from campaign_orchestrator.pipeline import CampaignsHeld, run_all

    config = _config(
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
    _print_summary(report_path)


def _report_path(config: Any) -> Path:
    return Path(config.reports_dir) / str(config.run_date) / "run_report.json"


@main.command()
@click.option("--date", "run_date", required=True, callback=_date, help="Run date YYYY-MM-DD.")
@click.option("--shard", "shards_to_send", type=click.IntRange(0), multiple=True, help="Only this shard (repeat).")
@warehouse_option
@config_option
@contracts_option
def deliver(
    run_date: dt.date, shards_to_send: tuple[int, ...], warehouse: str, config_dir: Path, contracts_dir: Path
) -> None:
    """Deliver a date's outbox (all shards, or the ones given): what the DAG's mapped deliver tasks
    do. Safe to run again, and next to another worker: only rows not yet sent are sent, once."""
    from campaign_orchestrator.pipeline import Run, deliver_stage, delivery_shards

    run = Run(_config(run_date, warehouse_url=warehouse, config_dir=config_dir, contracts_dir=contracts_dir))
    all_shards = delivery_shards(run)
    wanted = list(shards_to_send) or all_shards
    unknown = [s for s in wanted if s not in all_shards]
    if unknown:
        raise click.ClickException(f"no shard {unknown}: settings.delivery.shards is {len(all_shards)}")
    totals: dict[str, float] = {}
    for shard in wanted:
        detail = deliver_stage(run, shard, concurrent_shards=1 if not shards_to_send else None)
        for key in ("rows", "requests", "unknown", "resent_in_flight"):
            totals[key] = totals.get(key, 0) + (detail.get(key) or 0)
        for key in ("retried", "throttled_s"):
            totals[key] = totals.get(key, 0) + sum((detail.get(key) or {}).values())
        dead = sum((detail.get("dead") or {}).values())
        failed = sum((detail.get("failed") or {}).values())
        totals["dead"] = totals.get("dead", 0) + dead
        totals["failed"] = totals.get("failed", 0) + failed
    click.echo(
        f"delivered {int(totals['rows'])} messages in {int(totals['requests'])} requests "
        f"({int(totals['retried'])} retried, {totals['throttled_s']:.1f}s throttled); "
        f"{int(totals['dead'])} dead, {int(totals['failed'])} failed for now, "
        f"{int(totals['unknown'])} possibly delivered (in flight at a crash), "
        f"{int(totals['resent_in_flight'])} resent with their idempotency key"
    )


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
            Run(_config(day, warehouse_url=warehouse, config_dir=config_dir, contracts_dir=contracts_dir))
        )
    except DefinitionError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(", ".join(f"{k} {detail[k]}" for k in ("created", "updated", "unchanged", "ended")))


@main.command("import")
@click.option("--date", "run_date", required=True, callback=_date, help="Run date YYYY-MM-DD.")
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

    config = _config(
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
    for key in ("pending", "failed", "dead", "unknown"):
        if totals.get(key):
            click.echo(f"  {totals[key]} messages are {key}; see the run report.")
    click.echo(f"Run report: {report_path}")


@main.command("demo-data")
@click.option("--customers", default=20_000, show_default=True, type=click.IntRange(1))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--as-of", "as_of", callback=_date, help="Export date (default today); events cover 90 days before.")
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
@click.option("--date", "run_date", required=True, callback=_date, help="Run date YYYY-MM-DD.")
@warehouse_option
@config_option
@contracts_option
@click.option("--sample", "sample_size", default=5, show_default=True, type=click.IntRange(0, 100))
def plan(run_date: dt.date, warehouse: str, config_dir: Path, contracts_dir: Path, sample_size: int) -> None:
    """What a night would send: per campaign, the funnel from segment to targeted with every reason,
    and a sample of target rows. Reads the current warehouse; renders and sends nothing."""
    from campaign_orchestrator.definitions import DefinitionError
    from campaign_orchestrator.pipeline import Run, plan_stage
    from campaign_orchestrator.targeting import REASONS

    run = Run(_config(run_date, warehouse_url=warehouse, config_dir=config_dir, contracts_dir=contracts_dir))
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


@main.command()
@click.argument("campaign")
@click.option("--date", "run_date", callback=_date, help="Run date (default today, UTC).")
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
    from campaign_orchestrator.contracts import template_variables
    from campaign_orchestrator.definitions import DefinitionError
    from campaign_orchestrator.pipeline import Run
    from campaign_orchestrator.preview import PreviewError, as_html, as_text, preview_campaign
    from campaign_orchestrator.templates import RenderError

    day = run_date or dt.datetime.now(dt.UTC).date()
    run = Run(_config(day, warehouse_url=warehouse, config_dir=config_dir, contracts_dir=contracts_dir))
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


@main.command()
@click.argument("segment")
@click.option("--date", "run_date", callback=_date, help="Run date the rule is evaluated for (default today, UTC).")
@warehouse_option
@config_option
@contracts_option
@click.option("--sample", "sample_size", default=5, show_default=True, type=click.IntRange(0, 100))
def estimate(
    segment: str, run_date: dt.date | None, warehouse: str, config_dir: Path, contracts_dir: Path, sample_size: int
) -> None:
    """How many customers a segment has on the current data, the change since its last run, a sample."""
    import time

    from campaign_orchestrator.definitions import DefinitionError
    from campaign_orchestrator.pipeline import Run
    from campaign_orchestrator.segments import estimate as estimate_segment

    when = run_date or dt.datetime.now(dt.UTC).date()
    run = Run(_config(when, warehouse_url=warehouse, config_dir=config_dir, contracts_dir=contracts_dir))
    try:
        defs = run.definitions
    except DefinitionError as exc:
        raise click.ClickException(str(exc)) from None
    if segment not in defs.segments:
        raise click.ClickException(f"unknown segment {segment!r}; known: {', '.join(sorted(defs.segments))}")
    t0 = time.perf_counter()
    with run.engine.connect() as conn:
        est = estimate_segment(
            conn, segment, defs.rules(), defs.vocabulary, when, defs.lifecycle_specs(), sample_size=sample_size
        )
    click.echo(f"segment {segment} on {when}: {est.size:,} customers ({time.perf_counter() - t0:.1f}s)")
    if est.previous_size is None:
        click.echo("no earlier run of this segment to compare with")
    else:
        click.echo(f"change since the run of {est.previous_run_date}: {est.change:+,} (was {est.previous_size:,})")
    if est.sample:
        click.echo("sample: " + ", ".join(est.sample))


@main.command()
@config_option
@contracts_option
def validate(config_dir: Path, contracts_dir: Path) -> None:
    """Check every definition in the marketing folder against the data contracts."""
    from campaign_orchestrator.contracts import load_contracts, template_samples, template_variables, vocabulary
    from campaign_orchestrator.definitions import DefinitionError, load_definitions
    from campaign_orchestrator.sources import load_sources_config
    from campaign_orchestrator.template_lint import lint_templates

    contracts = load_contracts(contracts_dir)
    try:
        lists = frozenset(load_sources_config(contracts_dir / "sources.yaml").lists)
        defs = load_definitions(config_dir, vocabulary(contracts, lists))
    except DefinitionError as exc:
        raise click.ClickException(str(exc)) from None
    problems = lint_templates(defs, template_variables(contracts), template_samples(contracts))
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in the templates:\n" + "\n".join(problems))
    click.echo(f"ok: {len(defs.segments)} segments, {len(defs.campaigns)} campaigns, {len(defs.templates)} templates")


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
@click.option("--date", "run_date", callback=_date, help="Run date (default today, UTC).")
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


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
