"""`campaigns bench`: the whole pipeline on N customers, timed per stage, with a floor where we have one.

A benchmark, not a test: it asserts nothing. Each stage runs as the DAG's tasks do, each task in
a fresh process (`task_process`), and reports wall time, rows, rows per second and the peak
resident memory of its largest task process (the kernel's high-water mark), naming that task.
A floor is the same work done the most direct way in the same run (e.g. the raw bulk load of the same files without any
contract), so a result reads as "x times the floor" whatever the machine's speed today.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import campaign_orchestrator.run as pipeline
from campaign_devtools.bench.floors import (
    deliver_floor,
    import_floor,
    render_floor,
    segments_floor,
    targets_floor,
)
from campaign_devtools.bench.task_process import Overrides, run_task, run_tasks
from campaign_devtools.demo import provider_simulator
from campaign_devtools.demo_data import generate
from campaign_orchestrator.connections import ProviderEndpoint
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, drop_schema, normalise_url

STAGES = ("import", "segments", "targets", "render", "deliver")
OVERRIDES = Overrides()  # the provider's budget lifted: the bench measures our own cost
LIFTED = Overrides(caps_lifted=True)  # render and deliver keep every eligible message
UNLIMITED = {"rate_limit": 10**9}  # simulator faults: none, not even Braze's rate limit


def _record(results: dict[str, Any], name: str, measured: dict[str, Any], rows: int) -> None:
    """A stage's figures: its task processes' summed wall time, rows, and the largest task's peak."""
    wall = float(measured["wall_s"])
    results[name] = {
        "wall_s": wall,
        "rows": rows,
        "rows_per_s": round(rows / wall) if wall > 0 else None,
        "peak_rss_mb": measured["peak_rss_mb"],
        "peak_task": measured["peak_task"],
        "tasks": measured["tasks"],
        "floor_s": None,
    }
    print(
        f"[bench] {name}: {rows} rows in {wall:.1f}s, peak {measured['peak_rss_mb']} MB ({measured['peak_task']})",
        flush=True,
    )


def _import_tasks(config: pipeline.RunConfig, names: list[str], workers: int | None) -> dict[str, Any]:
    """validate_source per source (`workers` at a time), then publish: the DAG's import tasks."""
    calls = [("validate_source", (name,)) for name in names]
    if workers and workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(lambda call: run_tasks(config, OVERRIDES, [call]), calls))
        validated: dict[str, Any] = {
            "details": [d for part in parts for d in part["details"]],
            "wall_s": round(time.perf_counter() - t0, 3),  # side by side: elapsed, process starts included
            "tasks": {k: v for part in parts for k, v in part["tasks"].items()},
        }
    else:
        validated = run_tasks(config, OVERRIDES, calls)
    published = run_task(config, OVERRIDES, "publish", validated["details"])
    tasks = {**validated["tasks"], "publish": {"wall_s": published.wall_s, "peak_rss_mb": published.peak_rss_mb}}
    worst = max(tasks, key=lambda t: tasks[t]["peak_rss_mb"])
    return {
        "detail": published.detail,
        "wall_s": round(validated["wall_s"] + published.wall_s, 3),
        "peak_rss_mb": tasks[worst]["peak_rss_mb"],
        "peak_task": worst,
        "tasks": tasks,
    }


def run_bench(
    workdir: Path,
    customers: int,
    warehouse_url: str | None = None,
    repo: Path | None = None,
    workers: int | None = None,
    stages: tuple[str, ...] = STAGES,
    limit_per_hour: int | None = 250_000,
) -> dict[str, Any]:
    repo = (repo or Path.cwd()).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    run_date = dt.datetime.now(dt.UTC).date()
    sources = workdir / "sources"
    marker = sources / ".generated.json"
    wanted = {"customers": customers, "as_of": run_date.isoformat(), "seed": 7}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        print(f"[bench] reusing the generated data in {sources}", flush=True)
    else:
        t0 = time.perf_counter()
        data = generate(sources, customers=customers, as_of=run_date)
        marker.write_text(json.dumps(wanted))
        print(
            f"[bench] generated {customers} customers, {data.events} events in {time.perf_counter() - t0:.1f}s",
            flush=True,
        )
    if warehouse_url is None:
        db = workdir / "warehouse.sqlite"
        for stale in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            stale.unlink(missing_ok=True)
        warehouse_url = f"sqlite:///{db}"
    else:
        _create_database_if_missing(warehouse_url)
        engine = create_warehouse_engine(warehouse_url)
        drop_schema(engine)
        engine.dispose()
    config = pipeline.RunConfig(
        run_date=run_date,
        warehouse_url=warehouse_url,
        config_dir=repo / "marketing",
        contracts_dir=repo / "data_contracts",
        sources_dir=sources,
        reports_dir=workdir / "reports",
        archive_dir=workdir / "archive",  # its own: the default (./archive) is shared with anything run here
        run_id=f"bench__{run_date}",
    )
    run = pipeline.Run(config)
    # The bench measures our own cost, so the provider's hourly budget (configuration) is lifted.
    delivery = run.definitions.settings.delivery.model_copy(update={"requests_per_hour": 10**9})
    run.definitions = dataclasses.replace(
        run.definitions, settings=run.definitions.settings.model_copy(update={"delivery": delivery})
    )
    results: dict[str, Any] = {}
    api_key = secrets.token_urlsafe(16)
    # No limit on the simulator for the stages; deliver_at_limit sets one for its own measurement.
    # Each stage runs as the DAG's tasks do, each task in a fresh process (task_process).
    with provider_simulator(workdir, api_key, UNLIMITED) as base_url:
        resolve: Callable[[str], ProviderEndpoint] = lambda _conn_id: ProviderEndpoint(base_url, api_key)  # noqa: E731
        pipeline.validate_definitions(run)
        run.engine.dispose()  # the task processes open their own connections
        imported = _import_tasks(config, pipeline.source_names(run), workers)
        _record(results, "import", imported, int(imported["detail"]["rows"]))
        floor = import_floor(warehouse_url, sources, config.contracts_dir, run.contracts, run_date)
        results["import"].update(floor_s=floor["floor_s"], floor_copy_s=floor["copy_s"], floor_gx_s=floor["gx_s"])
        if stages == ("import",):
            return _write(workdir, customers, warehouse_url, run_date, results)
        measured = run_tasks(config, OVERRIDES, [("segments", ())])
        _record(results, "segments", measured, int(measured["details"][0]["rows"]))
        floor = segments_floor(warehouse_url, run_date, repo / "sql" / "bench" / "segments_by_hand.sql")
        results["segments"].update(
            floor_s=floor["floor_s"], segments=floor["segments"], disagreements=floor["mismatches"]
        )
        if stages == ("import", "segments"):
            return _write(workdir, customers, warehouse_url, run_date, results)
        measured = run_tasks(config, OVERRIDES, [("targets", ())])
        _record(results, "targets", measured, int(measured["details"][0]["rows"]))
        floor = targets_floor(warehouse_url, run.definitions, run_date, repo / "sql" / "bench" / "targets_by_hand.sql")
        results["targets"].update(
            floor_s=floor["floor_s"], campaigns=floor["campaigns"], disagreements=floor["mismatches"]
        )
        if stages[-1] == "targets":
            return _write(workdir, customers, warehouse_url, run_date, results)
        # Render and deliver measure throughput per message, so every eligible message is kept:
        # the caps are lifted and the lists rebuilt (not timed) before they run.
        caps = run.definitions.settings.caps.model_copy(update={"per_customer_per_day": 100, "per_channel_per_day": {}})
        run.definitions = dataclasses.replace(
            run.definitions, settings=run.definitions.settings.model_copy(update={"caps": caps})
        )
        print(f"[bench] caps lifted: {pipeline.targets_stage(run)['rows']} messages to render", flush=True)
        measured = run_tasks(config, LIFTED, [("render", ())])
        _record(results, "render", measured, int(measured["details"][0]["rows"]))
        floor = render_floor(warehouse_url, run.definitions, run_date)
        results["render"].update(floor_s=floor["floor_s"], floor_messages=floor["messages"])
        results["render"]["throughput_vs_floor"] = round(floor["floor_s"] / results["render"]["wall_s"], 3)
        if stages[-1] == "render":
            return _write(workdir, customers, warehouse_url, run_date, results)
        shards = [("deliver", (s, base_url, api_key)) for s in pipeline.delivery_shards(run)]
        measured = run_tasks(config, LIFTED, shards)
        details = measured["details"]
        _record(results, "deliver", measured, sum(int(d["rows"]) for d in details))
        ours = _sim(base_url, "stats")
        _sim(base_url, "reset")  # (faults too)
        _sim(base_url, "faults", UNLIMITED)
        floor = deliver_floor(warehouse_url, run.definitions, run_date, base_url, api_key)
        again = deliver_providers_again(run, base_url, resolve)
        results["deliver"].update(
            floor_s=floor["floor_s"],
            provider_messages=floor["messages"],
            requests=sum(d["requests"] for d in details),
            floor_requests=floor["requests"],
            duplicates=ours["duplicates"],
            throughput_vs_floor=round(floor["floor_s"] / results["deliver"]["wall_s"], 3),
            provider_only=again,
            provider_throughput_vs_floor=round(floor["floor_s"] / again["wall_s"], 3),
        )
        if limit_per_hour is not None:
            results["deliver_limited"] = deliver_at_limit(run, base_url, resolve, limit_per_hour)
    return _write(workdir, customers, warehouse_url, run_date, results)


def _sim(base_url: str, what: str, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    import requests

    if what == "stats":
        return dict(requests.get(f"{base_url}/_sim/stats", timeout=30).json())
    requests.post(f"{base_url}/_sim/{what}", json=doc or {}, timeout=30).raise_for_status()
    return {}


def deliver_at_limit(
    run: pipeline.Run, base_url: str, resolve: Callable[[str], ProviderEndpoint], limit_per_hour: int
) -> dict[str, Any]:
    """Shard 0's provider messages again, with the simulator enforcing `limit_per_hour` (a token
    bucket refilled every second, holding one second's worth) and our client configured with the
    same budget: the sustained request rate against the limit, and how many 429s it took."""

    _unsend_provider_batches(run, shard=0)
    per_second = limit_per_hour / 3600
    _sim(base_url, "reset")
    _sim(
        base_url,
        "faults",
        {"rate_limit": limit_per_hour, "rate_window_s": 3600, "rate_burst": max(1, round(per_second))},
    )
    delivery = run.definitions.settings.delivery.model_copy(update={"requests_per_hour": limit_per_hour})
    limited = dataclasses.replace(
        run.definitions, settings=run.definitions.settings.model_copy(update={"delivery": delivery})
    )
    saved, run.definitions = run.definitions, limited
    try:
        t0 = time.perf_counter()
        detail = pipeline.deliver_stage(run, 0, resolve, concurrent_shards=1)
        wall = time.perf_counter() - t0
    finally:
        run.definitions = saved
    stats = _sim(base_url, "stats")
    accepted = stats["requests"] - stats["injected"].get("429", 0)
    rate = accepted / wall if wall else 0.0
    print(f"[bench] deliver at {per_second:.1f} req/s: {rate:.1f} req/s sustained", flush=True)
    return {
        "limit_per_s": round(per_second, 2),
        "wall_s": round(wall, 3),
        "rows": detail["rows"],
        "accepted_requests": accepted,
        "requests_per_s": round(rate, 2),
        "share_of_limit": round(rate / per_second, 3),
        "http_429": stats["injected"].get("429", 0),
        "client_burst": 50,
        "duplicates": stats["duplicates"],
    }


def _unsend_provider_batches(run: pipeline.Run, shard: int | None = None) -> None:
    """Put the run's provider batches (of one shard, or all) back to pending, to send them again."""
    from campaign_orchestrator.delivery.claims import in_shard
    from campaign_orchestrator.warehouse.tables import delivery_batches

    providers = [k for k, d in run.definitions.settings.destinations.items() if d.kind == "provider"]
    b = delivery_batches.c
    where = [b.run_date == run.config.run_date, b.destination.in_(providers), b.state == "sent"]
    if shard is not None:
        where.append(in_shard(shard, run.definitions.settings.delivery.shards))
    with run.engine.begin() as conn:
        conn.execute(
            delivery_batches.update()
            .where(*where)
            .values(state="pending", claim_id=None, dispatch_id=None, attempts=0, sent_at=None, last_error=None)
        )


def deliver_providers_again(
    run: pipeline.Run, base_url: str, resolve: Callable[[str], ProviderEndpoint]
) -> dict[str, Any]:
    """The provider batches alone, sent again shard after shard to a fresh simulator: the same
    requests as the floor's loop, with the ledger, claims, leases and retries around them."""
    _unsend_provider_batches(run)
    _sim(base_url, "reset")
    _sim(base_url, "faults", UNLIMITED)
    t0 = time.perf_counter()
    details = [pipeline.deliver_stage(run, s, resolve, concurrent_shards=1) for s in pipeline.delivery_shards(run)]
    wall = time.perf_counter() - t0
    stats = _sim(base_url, "stats")
    return {
        "wall_s": round(wall, 3),
        "messages": sum(d["rows"] for d in details),
        "requests": stats["requests"],
        "duplicates": stats["duplicates"],
    }


def _write(
    workdir: Path, customers: int, warehouse_url: str, run_date: dt.date, results: dict[str, Any]
) -> dict[str, Any]:
    doc = {
        "customers": customers,
        "dialect": normalise_url(warehouse_url).get_backend_name(),
        "run_date": run_date.isoformat(),
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "stages": results,
    }
    (workdir / "results.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return doc


def _create_database_if_missing(url: str) -> None:
    """`make bench WAREHOUSE=postgresql://.../bench` should not need a manual CREATE DATABASE."""
    import sqlalchemy as sa

    parsed = normalise_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}
            ).first()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()


def table(doc: dict[str, Any]) -> str:
    lines = [
        f"{doc['customers']:,} customers on {doc['dialect']}",
        f"{'stage':<10}{'wall_s':>10}{'rows':>12}{'rows/s':>12}{'peak MB':>10}{'floor_s':>10}{'x floor':>9}"
        "  largest task",
    ]
    for name in STAGES:
        s = doc["stages"].get(name)
        if not s:
            continue
        floor = s.get("floor_s")
        ratio = f"{s['wall_s'] / floor:.1f}" if floor else "-"
        lines.append(
            f"{name:<10}{s['wall_s']:>10.2f}{s['rows']:>12,}{s['rows_per_s'] or 0:>12,}"
            f"{s['peak_rss_mb']:>10}{floor if floor is not None else '-':>10}{ratio:>9}  {s.get('peak_task', '')}"
        )
    for name in ("render", "deliver"):
        share = doc["stages"].get(name, {}).get("throughput_vs_floor")
        if share is not None:
            lines.append(f"{name}: {share:.0%} of the floor's throughput")
    provider_share = doc["stages"].get("deliver", {}).get("provider_throughput_vs_floor")
    if provider_share is not None:
        again = doc["stages"]["deliver"]["provider_only"]
        lines.append(
            f"deliver, provider batches alone: {again['wall_s']} s, {provider_share:.0%} of the floor's throughput, "
            f"{again['duplicates']} duplicates"
        )
    limited = doc["stages"].get("deliver_limited")
    if limited:
        lines.append(
            f"deliver at the provider's limit ({limited['limit_per_s']} req/s): {limited['requests_per_s']} req/s "
            f"sustained ({limited['share_of_limit']:.0%}), {limited['http_429']} HTTP 429 "
            f"(client burst {limited['client_burst']}), {limited['duplicates']} duplicates"
        )
    return "\n".join(lines)
