"""Load the bench's inbox into PostgreSQL with COPY, or keep what is there when it already fits.

The tables are emptied, loaded without their indexes (rebuilt once at the end, the manual's
"Populating a Database" advice, as `bulk.indexes_deferred` does for the night's imports) and
ANALYZEd, so the planner picks the `(customer_id, start_at)` index the service relies on. A
re-run finds the expected counts and skips the load (a minute on 1,000,000 customers) unless
`reload` is set.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_devtools.bench.inbox.dataset import (
    CUSTOMER_COLUMNS,
    MESSAGE_COLUMNS,
    PREFERENCE_COLUMNS,
    STATE_COLUMNS,
    chunks,
    expected_messages,
    public_messages,
)
from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.warehouse.bulk import analyze_tables, empty_table, indexes_deferred, tune_bulk_transaction
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, ensure_schema, normalise_url
from campaign_orchestrator.warehouse.tables import (
    customers,
    display_counts,
    engagement_events,
    inapp_messages,
    inapp_states,
    preference_state,
)

log = logging.getLogger(__name__)
LOADED = (customers, preference_state, inapp_messages, inapp_states)
# What the bench's writes touch: emptied on a (re)load so every run starts from the same state.
WRITTEN = (engagement_events, display_counts)


@dataclass(frozen=True)
class LoadResult:
    customers: int
    messages: int
    loaded: bool  # False: the database already held the expected rows and was kept
    seconds: float


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in `url` when it does not exist (via the server's
    `postgres` database), so `make bench-inbox` needs nothing prepared by hand."""
    target = normalise_url(url)
    if target.get_backend_name() != "postgresql" or not target.database:
        raise SystemExit(f"bench-inbox needs a PostgreSQL URL, not {target.render_as_string(hide_password=True)}")
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database})
            if not exists:
                prep = admin.dialect.identifier_preparer
                conn.exec_driver_sql(f"CREATE DATABASE {prep.quote(target.database)}")
    finally:
        admin.dispose()


def current_counts(engine: Engine) -> tuple[int, int, dt.datetime | None]:
    """(customers, messages, the earliest expiry): what decides whether a load can be kept."""
    with engine.connect() as conn:
        n_customers = int(conn.scalar(sa.select(sa.func.count()).select_from(customers)) or 0)
        n_messages = int(conn.scalar(sa.select(sa.func.count()).select_from(inapp_messages)) or 0)
        first_end = conn.scalar(sa.select(sa.func.min(inapp_messages.c.end_at)))
    return n_customers, n_messages, first_end


def _copy(conn: Connection, table: sa.Table, columns: tuple[str, ...], text: str) -> None:
    """One COPY FROM STDIN of a text block (psycopg 3's copy(), as `bulk._copy_postgres` uses)."""
    if not text:
        return
    prep = conn.dialect.identifier_preparer
    sql = f"COPY {prep.format_table(table)} ({', '.join(prep.quote(c) for c in columns)}) FROM STDIN"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(sql) as copy:
            copy.write(text)
    finally:
        cursor.close()


def _fill(conn: Connection, n: int, now: dt.datetime, seed: int) -> int:
    tune_bulk_transaction(conn)
    for table in (*WRITTEN, *LOADED):
        empty_table(conn, table)
    messages = 0
    with ExitStack() as deferred:
        for table in LOADED:
            deferred.enter_context(indexes_deferred(conn, table, empty=True))
        _copy(conn, inapp_messages, MESSAGE_COLUMNS, public_messages(now))
        for i, chunk in enumerate(chunks(n, now, seed)):
            _copy(conn, customers, CUSTOMER_COLUMNS, chunk.customers)
            _copy(conn, preference_state, PREFERENCE_COLUMNS, chunk.preferences)
            _copy(conn, inapp_messages, MESSAGE_COLUMNS, chunk.messages)
            _copy(conn, inapp_states, STATE_COLUMNS, chunk.states)
            messages += chunk.message_rows
            if i % 4 == 3:
                log.info("bench-inbox: loaded %d messages", messages)
        log.info("bench-inbox: building indexes")
    return messages


def load(url: str, n: int, reload: bool = False, seed: int = 11) -> LoadResult:
    """Make the database hold exactly the bench's `n` customers; skip when it already does."""
    started = time.perf_counter()
    engine = create_warehouse_engine(url)
    try:
        ensure_schema(engine)
        now = utcnow().replace(microsecond=0)
        have_customers, have_messages, first_end = current_counts(engine)
        fits = (have_customers, have_messages) == (n, expected_messages(n))
        if fits and not reload and first_end is not None and first_end > now + dt.timedelta(days=1):
            return LoadResult(n, have_messages, False, round(time.perf_counter() - started, 1))
        with engine.begin() as conn:
            messages = _fill(conn, n, now, seed)
        with engine.begin() as conn:
            analyze_tables(conn, (*LOADED, *WRITTEN))
        return LoadResult(n, messages + expected_messages(0), True, round(time.perf_counter() - started, 1))
    finally:
        engine.dispose()
