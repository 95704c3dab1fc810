"""`campaigns demo`: one real night, end to end, on this machine.

Generates the sample export, starts the provider simulator as its own process on a free
loopback port, runs the `nightly_campaigns` DAG through Airflow itself (`airflow dags test`,
project-local AIRFLOW_HOME with an SQLite metadata DB) against a fresh embedded warehouse,
stops the simulator and returns the run report. Airflow is a subprocess: the engine never
imports it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from campaign_devtools.airflow_home import file_task_logs, write_airflow_cfg
from campaign_devtools.demo_data import generate


class DemoError(RuntimeError):
    """The demo could not run; the message says which step and where its log is."""


@contextmanager
def provider_simulator(
    workdir: Path, api_key: str, faults: dict[str, Any] | None = None, idempotency: str = "ignore"
) -> Iterator[str]:
    """A simulator process on a free port (with `faults`, see provider_sim.Faults; `idempotency`
    honour or ignore, as `--idempotency`); yields its base URL and stops it afterwards."""
    port_file = workdir / "sim.port"
    port_file.unlink(missing_ok=True)
    env = {**os.environ, "PROVIDER_SIM_API_KEY": api_key}
    log = (workdir / "provider_sim.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "campaign_devtools",
            "provider-sim",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--faults",
            json.dumps(faults or {}),
            "--idempotency",
            idempotency,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise DemoError(f"the provider simulator did not start; see {workdir / 'provider_sim.log'}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text().strip()}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def simulator_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/_sim/stats", timeout=10) as response:  # noqa: S310 - loopback URL
        doc: dict[str, Any] = json.load(response)
        return doc


def airflow_env(project: Path, airflow_home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "CAMPAIGNS_HOME": str(project),
        "CAMPAIGNS_RETRY_DELAY_SECONDS": "2",
        "GX_ANALYTICS_ENABLED": "False",
    }


def _airflow(args: list[str], env: dict[str, str], log_path: Path, timeout: float) -> None:
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    with log_path.open("w") as log:
        result = subprocess.run(
            [airflow, *args], env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-40:]
        raise DemoError(
            f"`airflow {' '.join(args)}` failed (exit {result.returncode}); last lines of {log_path}:\n"
            + "\n".join(tail)
        )


def ensure_airflow_db(env: dict[str, str], log_path: Path) -> None:
    """Create Airflow's SQLite metadata DB in AIRFLOW_HOME once; later runs reuse it."""
    if not (Path(env["AIRFLOW_HOME"]) / "airflow.db").exists():
        _airflow(["db", "migrate"], env, log_path, timeout=300)


def dags_test(env: dict[str, str], run_date: dt.date, log_path: Path) -> None:
    """Run nightly_campaigns for one date in-process through Airflow (`airflow dags test`)."""
    _airflow(["dags", "test", "nightly_campaigns", run_date.isoformat()], env, log_path, timeout=900)


def demo_env(project: Path, workdir: Path) -> dict[str, str]:
    """The environment the demo's night ran with: Airflow's home in the project, the demo warehouse."""
    env = airflow_env(project, project / ".airflow")
    env.update(
        CAMPAIGNS_WAREHOUSE_URL=f"sqlite:///{workdir / 'warehouse.sqlite'}",
        CAMPAIGNS_SOURCES_DIR=str(workdir / "sources"),
        CAMPAIGNS_REPORTS_DIR=str(workdir / "reports"),
    )
    return env


def run_demo(workdir: Path, customers: int, run_date: dt.date, project: Path | None = None) -> Path:
    project = (project or Path.cwd()).resolve()
    if not (project / "dags" / "nightly_campaigns.py").exists():
        raise DemoError(f"{project} is not the project folder (no dags/nightly_campaigns.py); run from the repository")
    workdir.mkdir(parents=True, exist_ok=True)
    sources = workdir / "sources"
    reports = workdir / "reports"
    warehouse = workdir / "warehouse.sqlite"
    for stale in (warehouse, Path(f"{warehouse}-wal"), Path(f"{warehouse}-shm")):
        stale.unlink(missing_ok=True)  # every demo starts from an empty warehouse
    shutil.rmtree(reports / run_date.isoformat(), ignore_errors=True)

    t0 = time.perf_counter()
    summary = generate(sources, customers=customers, as_of=run_date, bad_rows=12)
    print(f"[demo] sample export: {summary.customers} customers, {summary.events} events -> {sources}", flush=True)

    airflow_home = project / ".airflow"
    airflow_home.mkdir(exist_ok=True)
    api_key = secrets.token_urlsafe(24)
    env = airflow_env(project, airflow_home)
    env.update(
        CAMPAIGNS_WAREHOUSE_URL=f"sqlite:///{warehouse}",
        CAMPAIGNS_SOURCES_DIR=str(sources),
        CAMPAIGNS_REPORTS_DIR=str(reports),
    )
    write_airflow_cfg(airflow_home, project)  # so `make ui` (or any airflow command) sees the same settings
    if not (airflow_home / "airflow.db").exists():
        print("[demo] creating Airflow's metadata DB (first run only)", flush=True)
    ensure_airflow_db(env, workdir / "airflow_db_migrate.log")

    with provider_simulator(workdir, api_key) as base_url:
        env["AIRFLOW_CONN_CAMPAIGNS_PROVIDER"] = base_url.replace("http://", f"http://:{api_key}@")
        print(
            f"[demo] provider simulator at {base_url}; running nightly_campaigns for {run_date} through Airflow",
            flush=True,
        )
        dags_test(env, run_date, workdir / "airflow_dags_test.log")
        stats = simulator_stats(base_url)
    filed = file_task_logs(workdir / "airflow_dags_test.log", airflow_home / "logs")
    print(f"[demo] {len(filed)} task logs filed for the UI (make ui)", flush=True)
    print(
        f"[demo] the provider simulator received {stats['recipients']:,} recipients in {stats['requests']:,} requests "
        f"({stats['duplicates']:,} duplicates, {stats['scheduled']:,} scheduled for later)",
        flush=True,
    )
    report = reports / run_date.isoformat() / "run_report.json"
    if not report.exists():
        raise DemoError(f"the DAG finished but wrote no report at {report}")
    for line in reconciliation(json.loads(report.read_text(encoding="utf-8")), stats):
        print(f"[demo] {line}", flush=True)
    print("[demo] four days later: the provider's engagement export, the app's inbox events and the purchases")
    from campaign_devtools.demo_after import days_after  # measurement and charts: loaded only now

    html, simulated, lines = days_after(workdir, project, f"sqlite:///{warehouse}", sources, reports, run_date)
    print(
        f"[demo] imported {simulated.engagement_rows:,} engagement events and {simulated.purchases:,} purchases "
        f"({simulated.inbox_events:,} inbox events stored by the app); uplift against each campaign's holdout:",
        flush=True,
    )
    for line in lines:
        print(f"[demo]   {line}", flush=True)
    print(f"[demo] HTML report (charts, opens without network): {html}", flush=True)
    print(
        f"[demo] done in {time.perf_counter() - t0:.0f}s; Airflow log: {workdir / 'airflow_dags_test.log'}", flush=True
    )
    return report


def reconciliation(report: dict[str, Any], stats: dict[str, Any]) -> list[str]:
    """The run report's sent messages against what the simulator received: the provider's part
    (sent now + scheduled) must be its recipients; with the in-app store it makes the ledger's sent."""
    t = report["totals"]
    now, later, in_app, sent = (int(t.get(k, 0)) for k in ("sent_now", "scheduled", "in_app", "delivered"))
    provider, received = now + later, int(stats["recipients"])
    lines = [
        f"provider: {now:,} sent now + {later:,} scheduled = {provider:,} = the simulator's recipients ✓"
        if provider == received
        else f"MISMATCH: the ledger says {provider:,} messages went to the provider ({now:,} sent now + "
        f"{later:,} scheduled) but the simulator received {received:,} recipients",
        # by construction (the report splits the ledger's sent messages), said for the reader
        f"ledger: {provider:,} to the provider + {in_app:,} written to the in-app store = {sent:,} sent",
    ]
    if "scheduled" in stats and int(stats["scheduled"]) != later:
        lines.append(
            f"MISMATCH: the ledger counts {later:,} scheduled at the provider, the simulator {stats['scheduled']:,}"
        )
    return lines
