"""`campaigns-dev`: the development tools, apart from the product: sample data, the provider
simulator, the demo night through Airflow, the benchmark and the stack test."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from campaign_devtools.db_revision import db_revision
from campaign_orchestrator.cli.main import setup_logging
from campaign_orchestrator.cli.night import print_run_summary
from campaign_orchestrator.cli.options import parse_date
from campaign_orchestrator.clock import today

if TYPE_CHECKING:
    from campaign_devtools.provider_sim import Idempotency


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Development tools for the campaign orchestrator (not part of the product)."""
    setup_logging(verbose)


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
    from campaign_devtools.demo_data import generate

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
@click.option(
    "--idempotency",
    type=click.Choice(["honour", "ignore"]),
    default="ignore",
    show_default=True,
    help="ignore: a repeated Idempotency-Key is a second delivery, as Braze; honour: it gets the first answer.",
)
def provider_sim(
    host: str, port: int, api_key: str, port_file: str | None, faults_json: str, idempotency: Idempotency
) -> None:
    """Run the Braze-compatible provider simulator until interrupted."""
    from campaign_devtools.provider_sim import Faults, serve

    try:
        faults = Faults.from_doc(json.loads(faults_json))
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    serve(host, port, api_key, port_file, faults, idempotency)


@main.command()
@click.option("--customers", default=20_000, show_default=True, type=click.IntRange(1))
@click.option("--date", "run_date", callback=parse_date, help="Run date (default today, UTC).")
@click.option("--workdir", default=".demo", show_default=True, type=click.Path(file_okay=False, path_type=Path))
def demo(customers: int, run_date: dt.date | None, workdir: Path) -> None:
    """Generate data, start the simulator, run the DAG through Airflow, print the summary."""
    from campaign_devtools.demo import run_demo

    report_path = run_demo(workdir.resolve(), customers, run_date or today())
    print_run_summary(report_path)


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
@click.option(
    "--at-limit/--no-at-limit",
    default=True,
    show_default=True,
    help="Also measure shard 0 against the provider's limit (at 10M customers that alone is minutes).",
)
def bench(
    customers: int,
    warehouse: str | None,
    workdir: Path,
    workers: int | None,
    until: str,
    limit_per_hour: int,
    at_limit: bool,
) -> None:
    """Time every stage on N customers and write bench/results.json (a benchmark, not a test)."""
    from campaign_devtools.bench.harness import STAGES, run_bench, table

    stages = STAGES[: STAGES.index(until) + 1]
    results = run_bench(
        workdir.resolve(),
        customers,
        warehouse,
        workers=workers,
        stages=stages,
        limit_per_hour=limit_per_hour if at_limit else None,
    )
    click.echo(table(results))
    click.echo(f"results: {workdir / 'results.json'}")


@main.command("bench-inbox")
@click.option("--customers", default=1_000_000, show_default=True, type=click.IntRange(1))
@click.option("--duration", default=60, show_default=True, type=click.IntRange(1), help="Seconds of load per server.")
@click.option(
    "--warehouse",
    default="postgresql+psycopg://postgres@127.0.0.1:5432/bench_inbox",
    show_default=True,
    help="PostgreSQL URL of the message store (the database is created if missing).",
)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="uvicorn workers, both servers.")
@click.option(
    "--connections", default=8, show_default=True, type=click.IntRange(2), help="wrk connections (8 saturate 2 cores)."
)
@click.option("--reload", is_flag=True, help="Load the data again even when the database already holds it.")
@click.option(
    "--config",
    "config_dir",
    default="marketing",
    show_default=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The marketers' files the service reads.",
)
@click.option("--report", default="reports/bench_inbox.json", show_default=True, type=click.Path(path_type=Path))
def bench_inbox(
    customers: int,
    duration: int,
    warehouse: str,
    workers: int,
    connections: int,
    reload: bool,
    config_dir: Path,
    report: Path,
) -> None:
    """The inbox service under wrk (90% feed reads, 10% event writes) against a bare-handler floor."""
    from campaign_devtools.bench.inbox.runner import BenchConfig, run_bench_inbox, table
    from campaign_devtools.bench.inbox.servers import ServerError
    from campaign_devtools.bench.inbox.wrk import WrkError

    cfg = BenchConfig(customers, duration, warehouse, workers, config_dir.resolve(), report, reload, connections)
    try:
        results = run_bench_inbox(cfg)
    except (WrkError, ServerError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(table(results))
    click.echo(f"report: {report}")


@main.command("uplift-check")
@click.option("--customers", default=20_000, show_default=True, type=click.IntRange(500))
@click.option("--runs", default=100, show_default=True, type=click.IntRange(1), help="Seeded worlds after the night.")
@click.option("--date", "run_date", callback=parse_date, help="Run date (default today, UTC).")
@click.option("--workdir", default=".uplift", show_default=True, type=click.Path(file_okay=False, path_type=Path))
def uplift_check(customers: int, runs: int, run_date: dt.date | None, workdir: Path) -> None:
    """One demo night, then RUNS seeded worlds with a known uplift: how often the 95% interval covers it."""
    from campaign_devtools.uplift_check import run_check, table

    tallies = run_check(workdir.resolve(), customers, run_date or today(), runs, Path.cwd())
    click.echo(table(tallies))


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
    """The docker-compose topology as local processes (CeleryExecutor on PostgreSQL and Redis, two
    workers): trigger nightly_campaigns through the REST API, SIGKILL one worker mid-delivery, check
    what the provider got against the ledger for every run Airflow started, stop everything."""
    from campaign_devtools.local_stack import StackError, run_stack_test

    try:
        result = run_stack_test(workdir.resolve(), Path.cwd(), customers=customers, run_date=run_date)
    except StackError as exc:
        raise click.ClickException(f"stack test failed: {exc}") from None
    sim = result["simulator"]
    nights = "; ".join(
        f"{night}: {c['simulator']} at the simulator, {c['ledger_sent']} sent in the ledger, "
        f"{c['duplicates']} duplicates" + (f", {c['stale']} stale: the night ran after its date" if c["stale"] else "")
        for night, c in result["nights"].items()
    )
    killed = result["killed"]
    tries = "; ".join(
        f"shard {shard}: " + ", ".join(f"try {t['try']} on {t['worker']} {t['state']}" for t in shard_tries)
        for shard, shard_tries in result["deliver_tries"].items()
    )
    click.echo(
        f"stack test passed in {result['seconds']}s: runs {result['runs']}; {len(result['tasks'])} task instances "
        f"of the triggered run; Celery workloads per worker {result['celery_workloads']}; "
        f"{killed['worker']} killed with SIGKILL ({killed['pids']} processes) while running deliver "
        f"{[s for _r, s in killed['shards']]} after {killed['requests_before']} provider requests; "
        f"deliver tries of {killed['shards'][0][0]}: {tries}; {sim['idempotent_replays']} request(s) "
        "of the dead worker's unrecorded batches sent again under their keys and not delivered twice; "
        f"{result['provider_sent']} messages to the provider "
        f"(simulator: {sim['recipients']} recipients), {result['inapp_rows']} in-app rows; per night: {nights}; "
        f"the inbox served a targeted customer's message ({result['inbox_feed_items']} items in the feed); "
        "every process stopped"
    )


@main.command()
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workdir", default=".demo", show_default=True, type=click.Path(file_okay=False, path_type=Path))
def ui(port: int, workdir: Path) -> None:
    """Airflow's UI on the demo's home (after `make demo`): the night, its tasks and their logs."""
    from campaign_devtools.airflow_home import serve_ui
    from campaign_devtools.demo import demo_env

    project = Path.cwd().resolve()
    serve_ui(project / ".airflow", demo_env(project, workdir.resolve()), port)


main.add_command(db_revision)
