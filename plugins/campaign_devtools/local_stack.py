"""`make stack-test`: the docker-compose topology run as local processes, end to end.

PostgreSQL (Airflow's metadata and the warehouse as two separate databases) and Redis are the
machine's own; this starts Airflow's api-server, scheduler, dag-processor and two Celery workers
(CeleryExecutor, `stack_workers`) plus the provider simulator, triggers `nightly_campaigns` for a
date through Airflow's REST API (a JWT from `/auth/token`), kills one worker with SIGKILL while the
night is delivering, waits for the runs, checks that the shards ran on both workers and that the
simulator got exactly the messages the warehouse says were sent, and stops everything it started
by process group. The names below are what docker-compose.yml must also define (a test checks it).

Unpausing a DAG makes the scheduler start the run of its latest interval (`catchup=False` still
does that): before 02:00 UTC that is yesterday's night, after it today's. The test accounts for
every run Airflow starts: it waits for all of them, and compares what the simulator received with
the ledger per run date (a customer rightly gets yesterday's and today's messages). By default it
triggers the date the scheduler's own run does not take, so both arrangements meet in every run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaign_devtools.stack_ledger import compare_with_ledger
from campaign_devtools.stack_workers import (
    HEARTBEAT_TIMEOUT_S,
    SEND_LATENCY_MS,
    WORKERS,
    check_spread,
    deliver_tries,
    stack_marketing,
    wait_and_kill,
    worker_args,
    worker_env,
)

# docker-compose.yml services, volumes and variables this runner stands in for.
COMPOSE_SERVICES = (
    "postgres",
    "warehouse",
    "redis",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "provider-sim",
    "inbox",
    "console",
    "warehouse-migrate",
)
AIRFLOW_PROCESSES = {
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-worker": ["celery", "worker"],
}
COMPOSE_MOUNTS = ("dags", "plugins", "sql", "data_contracts", "marketing")
COMPOSE_VARIABLES = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW_CONN_CAMPAIGNS_WAREHOUSE",
    "AIRFLOW_CONN_CAMPAIGNS_PROVIDER",
    "CAMPAIGNS_SOURCES_DIR",
    "CAMPAIGNS_REPORTS_DIR",
)
DAG_ID = "nightly_campaigns"


class StackError(RuntimeError):
    """The stack did not come up, the run failed, or what arrived does not match the ledger."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    workdir: Path
    project: Path
    pg_admin: str = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379"
    redis_db: int = 11
    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    killed: set[str] = field(default_factory=set)  # killed on purpose: their exit is not a failure

    @property
    def metadata_db(self) -> str:
        return f"stack_airflow_{self.suffix}"

    @property
    def warehouse_db(self) -> str:
        return f"stack_warehouse_{self.suffix}"

    def pg_url(self, database: str, driver: str = "psycopg2") -> str:
        return (
            self.pg_admin.replace("postgresql+psycopg://", f"postgresql+{driver}://").rsplit("/", 1)[0] + f"/{database}"
        )

    def env(self, api_port: int, provider_url: str, api_key: str, password_file: Path) -> dict[str, str]:
        from campaign_devtools.demo import airflow_env

        home = self.workdir / "airflow"
        env = airflow_env(self.project, home)
        api = f"http://127.0.0.1:{api_port}"
        from cryptography.fernet import Fernet

        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.pg_url(self.metadata_db),
                "AIRFLOW__CELERY__BROKER_URL": f"{self.redis_url}/{self.redis_db}",
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.pg_url(self.metadata_db),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__API__PORT": str(api_port),
                "AIRFLOW__API__BASE_URL": api,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW_CONN_CAMPAIGNS_WAREHOUSE": self.pg_url(self.warehouse_db, "psycopg").replace(
                    "postgresql+psycopg://", "postgres://"
                ),
                "AIRFLOW_CONN_CAMPAIGNS_PROVIDER": provider_url.replace("http://", f"http://:{api_key}@"),
                "CAMPAIGNS_SOURCES_DIR": str(self.workdir / "sources"),
                "CAMPAIGNS_REPORTS_DIR": str(self.workdir / "reports"),
                "CAMPAIGNS_ARCHIVE_DIR": str(self.workdir / "archive"),
                "CAMPAIGNS_CONFIG_DIR": str(self.workdir / "marketing"),
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            }
        )
        return env

    # ------------------------------------------------------------------ databases

    def create_databases(self) -> None:
        import sqlalchemy as sa

        admin = sa.create_engine(self.pg_admin, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in (self.metadata_db, self.warehouse_db):
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()

    def drop_databases(self) -> None:
        import sqlalchemy as sa

        admin = sa.create_engine(self.pg_admin, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in (self.metadata_db, self.warehouse_db):
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        try:
            import redis

            redis.Redis.from_url(f"{self.redis_url}/{self.redis_db}").flushdb()
        except Exception as exc:
            print(f"[stack] could not flush Redis db {self.redis_db}: {exc}", flush=True)

    # ------------------------------------------------------------------ processes

    def start(self, name: str, args: list[str], env: dict[str, str], command: list[str] | None = None) -> None:
        """An Airflow component (`airflow ARGS`), or another process of the stack (`command`)."""
        airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
        log = (self.workdir / "logs" / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            command or [airflow, *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopping it stops its children too
        )

    def stop_all(self) -> list[str]:
        """SIGTERM each process group, SIGKILL what is left after 20 s; the names that needed it."""
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        killed = []
        for name, proc in self.processes.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed.append(name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (pool children)
            proc.wait()
        return killed

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None and name not in self.killed:
                tail = (self.workdir / "logs" / f"{name}.log").read_text(errors="replace").splitlines()[-30:]
                raise StackError(f"{name} exited with {proc.returncode}:\n" + "\n".join(tail))


class Api:
    """Airflow's REST API v2 with a JWT from /auth/token."""

    def __init__(self, base: str, password: str) -> None:
        import requests

        self.base = base
        self.session = requests.Session()
        response = self.session.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base}/api/v2{path}", timeout=30, **kwargs)
        if response.status_code >= 400:
            raise StackError(f"{method} {path}: HTTP {response.status_code} {response.text[:300]}")
        return response.json() if response.content else {}


def _wait(what: str, check: Any, timeout: float, stack: Stack, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        try:
            result = check()
        except Exception:
            result = None
        if result:
            return result
        time.sleep(every)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextmanager
def _stage(name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    print(f"[stack] {name} ...", flush=True)
    yield
    print(f"[stack] {name}: {time.perf_counter() - t0:.1f}s", flush=True)


def scheduler_catch_up_date(now: dt.datetime, hour: int = 2) -> dt.date:
    """The run date of the run the scheduler starts when the daily DAG (at `hour` UTC) is unpaused."""
    return now.date() if now.hour >= hour else now.date() - dt.timedelta(days=1)


def default_run_date(now: dt.datetime) -> dt.date:
    """The date the scheduler's own run does not take (today's other neighbour), so two nights meet."""
    caught_up = scheduler_catch_up_date(now)
    return caught_up - dt.timedelta(days=1) if caught_up == now.date() else now.date()


def run_stack_test(
    workdir: Path, project: Path, customers: int = 3000, run_date: dt.date | None = None
) -> dict[str, Any]:
    import requests

    from campaign_devtools.demo import provider_simulator
    from campaign_devtools.demo_data import generate

    now = dt.datetime.now(dt.UTC)
    run_date = run_date or default_run_date(now)
    as_of = min(run_date, scheduler_catch_up_date(now))  # no event lies in the future of either night
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "logs").mkdir(parents=True)
    stack = Stack(workdir=workdir, project=project.resolve())
    started = time.perf_counter()
    api_key = secrets.token_urlsafe(16)
    password = secrets.token_urlsafe(16)
    password_file = workdir / "passwords.json"
    password_file.write_text(json.dumps({"admin": password}))
    result: dict[str, Any] = {"run_date": run_date.isoformat()}
    stack.create_databases()
    try:
        generate(workdir / "sources", customers=customers, as_of=as_of)
        stack_marketing(stack.project, workdir / "marketing")
        faults = {"rate_limit": 10**9, "latency_ms": SEND_LATENCY_MS}
        with provider_simulator(workdir, api_key, faults, idempotency="honour") as provider:
            api_port = _free_port()
            env = stack.env(api_port, provider, api_key, password_file)
            with _stage("airflow db migrate"):
                subprocess.run(
                    [shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow", "db", "migrate"],
                    env=env,
                    check=True,
                    stdout=(workdir / "logs" / "db-migrate.log").open("wb"),
                    stderr=subprocess.STDOUT,
                    timeout=300,
                )
            with _stage("campaigns db upgrade (compose's warehouse-migrate)"):
                subprocess.run(
                    [sys.executable, "-m", "campaign_orchestrator.cli", "db", "upgrade"],
                    env={**env, "CAMPAIGNS_WAREHOUSE_URL": stack.pg_url(stack.warehouse_db, "psycopg")},
                    check=True,
                    stdout=(workdir / "logs" / "warehouse-migrate.log").open("wb"),
                    stderr=subprocess.STDOUT,
                    timeout=300,
                )
            with _stage("api-server, scheduler, dag-processor, two celery workers up"):
                for name, args in AIRFLOW_PROCESSES.items():
                    if name != "airflow-worker":
                        stack.start(name, args, env)
                for name in WORKERS:
                    stack.start(name, worker_args(name), worker_env(env, name, _free_port()))
                base = f"http://127.0.0.1:{api_port}"

                def healthy() -> bool:
                    doc = requests.get(f"{base}/api/v2/monitor/health", timeout=5).json()
                    return all(doc.get(k, {}).get("status") == "healthy" for k in ("scheduler", "dag_processor"))

                _wait("Airflow to report healthy", healthy, 180, stack)
                api = Api(base, password)
                _wait(f"{DAG_ID} to be parsed", lambda: api.call("GET", f"/dags/{DAG_ID}"), 180, stack)
            run_id = f"stack__{run_date.isoformat()}"
            with _stage(f"{DAG_ID} for {run_date} via the REST API"):
                api.call("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
                api.call(
                    "POST",
                    f"/dags/{DAG_ID}/dagRuns",
                    json={"dag_run_id": run_id, "logical_date": f"{run_date.isoformat()}T00:00:00Z", "conf": {}},
                )

            with _stage(f"SIGKILL {WORKERS[1]} mid-delivery"):

                def requests_so_far() -> int:
                    return int(requests.get(f"{provider}/_sim/stats", timeout=5).json()["requests"])

                victim = stack.processes[WORKERS[1]].pid
                stack.killed.add(WORKERS[1])
                result["killed"] = wait_and_kill(api.call, DAG_ID, victim, requests_so_far, stack.check_alive)
            with _stage("every DAG run finished"):

                def finished() -> str | None:
                    state = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
                    return str(state) if state in ("success", "failed") else None

                _wait("the DAG run", finished, 480, stack, every=3)

                def all_finished() -> list[dict[str, Any]] | None:
                    runs: list[dict[str, Any]] = api.call("GET", f"/dags/{DAG_ID}/dagRuns")["dag_runs"]
                    return runs if all(r["state"] in ("success", "failed") for r in runs) else None

                # Every run Airflow started: the triggered one and the scheduler's own catch-up run.
                runs = _wait("every DAG run", all_finished, 600, stack, every=3)
            result["runs"] = {r["dag_run_id"]: r["state"] for r in runs}
            sending_run = result["killed"]["shards"][0][0]
            result["deliver_tries"] = deliver_tries(api.call, DAG_ID, sending_run)
            tasks = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 200})
            result["tasks"] = {
                f"{t['task_id']}[{t['map_index']}]" if t["map_index"] >= 0 else t["task_id"]: t["state"]
                for t in tasks["task_instances"]
            }
            not_green = {r: st for r, st in result["runs"].items() if st != "success"}
            if not_green:
                failed = [k for k, v in result["tasks"].items() if v not in ("success", "skipped")]
                raise StackError(
                    f"runs not successful: {not_green}; tasks of {run_id} not successful: {failed}; logs in {workdir}"
                )
            received = requests.get(f"{provider}/_sim/recipients", timeout=30).json()["recipients"]
            stats = requests.get(f"{provider}/_sim/stats", timeout=10).json()
        result.update(compare_with_ledger(stack.pg_url(stack.warehouse_db, "psycopg"), received, stats))
        with _stage("inbox service serves a targeted customer's message"):
            result.update(check_inbox(stack, env))
        with _stage("console shows the night's sizes, funnels and calendar"):
            result.update(check_console(stack, env))
        result["celery_workloads"] = {
            name: (workdir / "logs" / f"{name}.log").read_text(errors="replace").count("Executing workload in Celery")
            for name in WORKERS
        }
        problems = list(result.pop("problems"))
        problems += check_spread(result["deliver_tries"], result["killed"], int(result["simulator"]["requests"]))
        if sum(result["celery_workloads"].values()) < len(result["tasks"]):
            problems.append(
                f"the Celery workers ran {result['celery_workloads']} workloads for {len(result['tasks'])} tasks"
            )
        if problems:
            raise StackError("; ".join(problems))
    finally:
        killed = stack.stop_all()
        result["stopped_with_sigkill"] = killed
        stack.drop_databases()
        left = [n for n, p in stack.processes.items() if _group_alive(p.pid)]
        if left:
            raise StackError(f"processes left behind: {left}")
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def check_inbox(stack: Stack, env: dict[str, str]) -> dict[str, Any]:
    """Start the inbox on the warehouse, as docker-compose does, and read a message from it."""
    from campaign_devtools.stack_inbox import inbox_command, inbox_secrets, read_from_inbox

    port, store = _free_port(), stack.pg_url(stack.warehouse_db, "psycopg")
    keys = inbox_secrets()
    command = inbox_command(port, store, stack.project / "marketing")
    stack.start("inbox", [], {**env, **keys}, command=command)
    return read_from_inbox(f"http://127.0.0.1:{port}", store, keys["CAMPAIGNS_INBOX_SECRET"])


def check_console(stack: Stack, env: dict[str, str]) -> dict[str, Any]:
    """Start the console on the warehouse, as docker-compose does, and read the night's figures."""
    from campaign_devtools.stack_console import console_command, console_environment, read_from_console

    port = _free_port()
    keys, password = console_environment()
    command = console_command(port, stack.pg_url(stack.warehouse_db, "psycopg"), stack.project)
    stack.start("console", [], {**env, **keys}, command=command)
    return read_from_console(f"http://127.0.0.1:{port}", password)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
