"""`campaigns-dev bench-inbox`: load the data, then the floor and the service, each under the same wrk load.

Order: load (or keep) the data; mint the token file; start the floor, warm it up, run wrk, stop
it; the same for the service. Floor first and service second each time, on the same data and the
same cores, so the ratio compares the two as the machine is this hour. The figures go to the
terminal as a table and to a JSON report; nothing is asserted (a benchmark, not a test).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import secrets
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from campaign_devtools.bench.inbox import servers, wrk
from campaign_devtools.bench.inbox.loader import ensure_database, load
from campaign_devtools.bench.inbox.tokens import write_token_file
from campaign_orchestrator.warehouse.engine import redacted

DEFAULT_WAREHOUSE = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_inbox"
RATIO_TARGET = 0.70
P99_TARGET_MS = 50.0


@dataclass(frozen=True)
class BenchConfig:
    customers: int
    duration_s: int
    warehouse: str
    workers: int
    config_dir: Path
    report: Path
    reload: bool = False
    connections: int = 32
    threads: int = 2
    warmup_s: int = 5


def _machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores; /proc/stat), so PostgreSQL's backends
    count too: the pool opens and closes overflow connections, whose processes exit mid-run."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measure(server: servers.Server, load: wrk.Load, cfg: BenchConfig) -> dict[str, Any]:
    """Warm up, then the measured run, with the CPU the server, wrk and the rest of the machine used."""
    wrk.run(server.base_url, load, cfg.warmup_s, f"{server.name}-warmup")
    before = (server.cpu_seconds(), _machine_busy_s(), _children_cpu())
    output, result = wrk.run(server.base_url, load, cfg.duration_s, server.name)
    after = (server.cpu_seconds(), _machine_busy_s(), _children_cpu())
    own = {"server_s": after[0] - before[0], "wrk_s": after[2] - before[2]}
    # the rest: PostgreSQL (its short-lived backends too), the kernel, anything else running
    cpu = {**own, "rest_s": max(0.0, after[1] - before[1] - sum(own.values())), "machine_s": after[1] - before[1]}
    figures = {k: v for k, v in asdict(result).items() if k != "statuses"}
    return {
        **figures,
        "errors": result.errors,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
        "cpu_ms_per_request": {k[:-2]: round(1000 * v / max(1, result.requests), 3) for k, v in cpu.items()},
        "wrk_output": output,
    }


def _first_customer(token_file: Path) -> tuple[str, str]:
    customer, _messages, token = token_file.read_text(encoding="utf-8").split("\n", 1)[0].split("\t")
    return customer, token


def run_bench_inbox(cfg: BenchConfig) -> dict[str, Any]:
    started, started_at = time.perf_counter(), dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    wrk.wrk_binary()  # fail before a minute of loading when wrk is missing
    ensure_database(cfg.warehouse)
    loaded = load(cfg.warehouse, cfg.customers, reload=cfg.reload)
    scratch = Path(tempfile.mkdtemp(prefix="bench-inbox-"))  # the tokens: not in the repository
    try:
        secret, server_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        token_file = scratch / "customers.tsv"
        players = write_token_file(token_file, cfg.warehouse, cfg.customers, secret)
        script = scratch / "inbox.lua"
        script.write_text(wrk.SCRIPT, encoding="utf-8")
        load_spec = wrk.Load(token_file, script, secrets.token_hex(4), cfg.threads, cfg.connections)
        customer, token = _first_customer(token_file)
        probe = f"/v1/customers/{customer}/feed"
        logs = cfg.report.parent
        port = servers.free_port()
        floor_cmd = servers.floor_command(port, cfg.warehouse, cfg.workers)
        with servers.running("floor", floor_cmd, {}, port, probe, {}, logs / "bench_inbox.floor.log") as s:
            floor = _measure(s, load_spec, cfg)
        port = servers.free_port()
        env = {"CAMPAIGNS_INBOX_SECRET": secret, "CAMPAIGNS_INBOX_SERVER_KEY": server_key}
        service_cmd = servers.service_command(port, cfg.warehouse, cfg.config_dir, cfg.workers)
        headers = {"Authorization": f"Bearer {token}"}
        with servers.running("service", service_cmd, env, port, probe, headers, logs / "bench_inbox.service.log") as s:
            service = _measure(s, load_spec, cfg)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ratio = service["requests_per_s"] / floor["requests_per_s"] if floor["requests_per_s"] else 0.0
    report = {
        "started_at": started_at,
        "warehouse": redacted(cfg.warehouse),
        "customers": loaded.customers,
        "messages": loaded.messages,
        "loaded": loaded.loaded,
        "load_s": loaded.seconds,
        "players": players,
        "workers": cfg.workers,
        "duration_s": cfg.duration_s,
        "connections": cfg.connections,
        "threads": cfg.threads,
        "write_share": load_spec.write_share,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "floor": floor,
        "service": service,
        "ratio": round(ratio, 3),
        "targets": {
            "ratio_min": RATIO_TARGET,
            "p99_max_ms": P99_TARGET_MS,
            "ratio_ok": ratio >= RATIO_TARGET,
            "p99_ok": service["p99_ms"] < P99_TARGET_MS,
        },
    }
    report["wall_s"] = round(time.perf_counter() - started, 1)
    cfg.report.parent.mkdir(parents=True, exist_ok=True)
    cfg.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _row(name: str, r: dict[str, Any]) -> str:
    cpu = r["cpu_ms_per_request"]
    return (
        f"{name:<8} {r['requests_per_s']:>9.1f} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {r['p99_ms']:>8.2f} "
        f"{r['errors']:>7d} {r['requests']:>9d}   {cpu['server']:.2f} / {cpu['wrk']:.2f} / {cpu['rest']:.2f}"
    )


def table(report: dict[str, Any]) -> str:
    t = report["targets"]
    ok = {True: "ok", False: "MISSED"}
    head = (
        f"inbox bench: {report['customers']:,} customers, {report['messages']:,} messages "
        f"({'loaded in ' + str(report['load_s']) + ' s' if report['loaded'] else 'kept from an earlier load'}); "
        f"wrk {report['threads']} threads x {report['connections']} connections, {report['duration_s']} s each, "
        f"{int(report['write_share'] * 100)}% event writes, {report['players']:,} customers played; "
        f"uvicorn workers: {report['workers']}"
    )
    lines = [
        head,
        f"{'':<8} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} {'requests':>9}"
        "   CPU ms/request: server / wrk / rest (postgres, kernel)",
        _row("floor", report["floor"]),
        _row("service", report["service"]),
        f"service/floor: {report['ratio']:.2f} (target >= {t['ratio_min']:.2f}: {ok[t['ratio_ok']]}); "
        f"service p99 {report['service']['p99_ms']:.1f} ms (target < {t['p99_max_ms']:.0f} ms: {ok[t['p99_ok']]})",
        f"wall time {report['wall_s']} s",
    ]
    return "\n".join(lines)
