"""Shared fixtures: warehouses on every engine we can reach, the repository's folders, a simulator.

Database-backed tests run on SQLite always and on PostgreSQL (WAREHOUSE_TEST_URL, default the
local server) and MariaDB (MARIADB_TEST_URL) when reachable. With REQUIRE_POSTGRES=1 (CI on this
machine kind) an unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_devtools.provider_sim import Idempotency, make_server
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, drop_schema, ensure_schema

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("WAREHOUSE_TEST_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB_URL = os.environ.get("MARIADB_TEST_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# Airflow writes its config on import: keep it out of the developer's home and the repository.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="co-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).resolve().parents[1] / "dags"))


def free_port() -> int:
    """A loopback port nothing listens on (for a server that must be unreachable)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker() -> str:
    """This process's database name part: the xdist worker (or PYTEST_XDIST_WORKER set by hand, or
    "main"), with the xdist run's id, so two suites running at once never share or drop each
    other's databases (each run drops its own at the end)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
    return f"{worker}_{run[:8]}" if run else worker


def _server_database(admin_url: str, name: str, create_sql: str) -> str | None:
    """Create a private database for this test worker; None when the server is unreachable."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            conn.execute(sa.text(create_sql.format(name=name)))
    except sa.exc.OperationalError:
        return None
    finally:
        admin.dispose()
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if admin.dialect.name == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    except sa.exc.OperationalError:
        pass  # a server gone meanwhile keeps the database; the next run of this name drops it
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    name = f"co_test_{_worker()}"
    url = _server_database(PG_URL, name, "CREATE DATABASE {name}")
    if url is None and REQUIRE_POSTGRES:
        pytest.fail(f"PostgreSQL is required (REQUIRE_POSTGRES=1) but unreachable at {PG_URL}")
    yield url
    if url is not None and os.environ.get("PYTEST_XDIST_TESTRUNUID"):
        _drop_database(PG_URL, name)


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str | None]:
    name = f"co_test_{_worker()}"
    url = _server_database(MARIADB_URL, name, "CREATE DATABASE {name} CHARACTER SET utf8mb4")
    yield url
    if url is not None and os.environ.get("PYTEST_XDIST_TESTRUNUID"):
        _drop_database(MARIADB_URL, name)


def _engines(request: pytest.FixtureRequest) -> str:
    kind = request.param
    if kind == "sqlite":
        tmp = request.getfixturevalue("tmp_path")
        return f"sqlite:///{tmp / 'warehouse.sqlite'}"
    url = request.getfixturevalue(f"{kind}_url")
    if url is None:
        pytest.skip(f"{kind} is not reachable here; the test ran on SQLite only")
    return str(url)


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_url(request: pytest.FixtureRequest) -> str:
    """An empty warehouse on SQLite, then on PostgreSQL."""
    return _engines(request)


@pytest.fixture
def warehouse(warehouse_url: str) -> Iterator[Engine]:
    engine = create_warehouse_engine(warehouse_url)
    drop_schema(engine)
    ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def any_warehouse(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The same, also on MariaDB: for the SQL that must be portable to every engine."""
    engine = create_warehouse_engine(_engines(request))
    drop_schema(engine)
    ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def repo() -> Path:
    return ROOT


def _simulator(idempotency: Idempotency) -> Iterator[tuple[str, str]]:
    server = make_server("127.0.0.1", 0, api_key="test-key", idempotency=idempotency)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", "test-key"
    server.shutdown()
    server.server_close()


@pytest.fixture
def simulator() -> Iterator[tuple[str, str]]:
    """A provider simulator serving real HTTP on a loopback port that honours Idempotency-Key, as the
    builders' `braze` destination (honours_idempotency_key: true) expects; yields (base URL, API key)."""
    yield from _simulator("honour")


@pytest.fixture
def braze_simulator() -> Iterator[tuple[str, str]]:
    """The same, playing Braze: it ignores Idempotency-Key, so a repeated request is a second delivery."""
    yield from _simulator("ignore")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say which engines the database-backed tests really ran on (CI must show PostgreSQL)."""
    counts = {"sqlite": 0, "postgres": 0, "mariadb": 0}
    skipped = {"sqlite": 0, "postgres": 0, "mariadb": 0}
    for outcome, bucket in (("passed", counts), ("skipped", skipped)):
        for report in terminalreporter.stats.get(outcome, []):
            node = getattr(report, "nodeid", "")
            for engine in bucket:
                if f"[{engine}" in node or f"-{engine}]" in node or f"-{engine}-" in node:
                    bucket[engine] += 1
    e2e_pg = any(
        "test_run_twice_on_postgres" in getattr(r, "nodeid", "") for r in terminalreporter.stats.get("passed", [])
    )
    terminalreporter.write_sep("-", "warehouse engines")
    for engine in counts:
        terminalreporter.write_line(f"{engine}: {counts[engine]} tests passed, {skipped[engine]} skipped")
    terminalreporter.write_line(f"postgres end-to-end run: {'passed' if e2e_pg else 'not run'}")
