"""Connecting to the warehouse and the few things that differ between engines.

Everything else is portable SQLAlchemy Core. The differences kept here: how to bulk load
(PostgreSQL COPY, one executemany elsewhere), how to insert-if-absent, and the SQLite
connection setup (WAL, and the deterministic hash function `sqlfuncs` compiles to).
"""

from __future__ import annotations

import csv
import hashlib
import io
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import URL, make_url

from campaign_orchestrator.tables import metadata

DEFAULT_WAREHOUSE_URL = "sqlite:///warehouse.sqlite"

_DRIVER_DEFAULTS = {"mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}


def hash32(text: str | None) -> int | None:
    """First 32 bits of md5, the same number PostgreSQL and MariaDB compute from md5() in SQL."""
    if text is None:
        return None
    return int(hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:8], 16)


def normalise_url(url: str | URL) -> URL:
    parsed = make_url(url)
    if parsed.drivername in _DRIVER_DEFAULTS:
        parsed = parsed.set(drivername=_DRIVER_DEFAULTS[parsed.drivername])
    return parsed


def redacted(url: str | URL) -> str:
    """The URL with its password hidden, for logs and reports."""
    return normalise_url(url).render_as_string(hide_password=True)


def _on_sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    dbapi_connection.create_function("co_hash32", 1, hash32, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute("PRAGMA cache_size=-200000")
    cursor.close()


def create_warehouse_engine(url: str | URL | None = None) -> Engine:
    parsed = normalise_url(url or DEFAULT_WAREHOUSE_URL)
    kwargs: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = sa.create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _on_sqlite_connect)
    return engine


def ensure_schema(engine: Engine) -> None:
    metadata.create_all(engine, checkfirst=True)


def drop_schema(engine: Engine) -> None:
    metadata.drop_all(engine, checkfirst=True)


def dialect_name(bind: Engine | Connection) -> str:
    return bind.dialect.name


def bulk_insert(conn: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Load rows inside the caller's transaction, as fast as the engine allows.

    Values must already be in the column's Python type (str, float, bool, date, datetime) or None.
    """
    if conn.dialect.name == "postgresql":
        return _copy_postgres(conn, table, columns, rows)
    stmt = table.insert()
    batch: list[dict[str, Any]] = []
    total = 0
    for row in rows:
        batch.append(dict(zip(columns, row, strict=True)))
        if len(batch) >= 20_000:
            conn.execute(stmt, batch)
            total += len(batch)
            batch = []
    if batch:
        conn.execute(stmt, batch)
        total += len(batch)
    return total


def _copy_postgres(conn: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    quoted = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in columns)
    sql = f"COPY {conn.dialect.identifier_preparer.format_table(table)} ({quoted}) FROM STDIN WITH (FORMAT csv)"
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    total = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def rows_as_text() -> Iterable[str]:
        nonlocal total
        for row in rows:
            writer.writerow(["" if v is None else _copy_value(v) for v in row])
            total += 1
            if buffer.tell() > 4 << 20:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()

    cursor = dbapi_conn.cursor()
    try:
        if hasattr(cursor, "copy"):  # psycopg 3
            with cursor.copy(sql) as copy:
                for chunk in rows_as_text():
                    copy.write(chunk)
        else:  # psycopg2
            cursor.copy_expert(sql, _ChunkReader(rows_as_text()))
    finally:
        cursor.close()
    return total


class _ChunkReader:
    """A file-like view of an iterator of text chunks, so psycopg2 COPY streams too."""

    def __init__(self, chunks: Iterable[str]) -> None:
        self._chunks = iter(chunks)
        self._pending = ""

    def read(self, size: int | None = -1) -> str:
        want = size if size is not None and size >= 0 else None
        while want is None or len(self._pending) < want:
            try:
                self._pending += next(self._chunks)
            except StopIteration:
                break
        if want is None:
            out, self._pending = self._pending, ""
        else:
            out, self._pending = self._pending[:want], self._pending[want:]
        return out

    def readline(self, size: int | None = -1) -> str:
        return self.read(size)


def _copy_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "t" if value else "f"
    return value


def insert_ignore(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows whose unique keys are not present yet; rows that collide are skipped."""
    if not rows:
        return
    dialect = conn.dialect.name
    stmt: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).on_conflict_do_nothing()
    elif dialect in ("mysql", "mariadb"):
        stmt = table.insert().prefix_with("IGNORE")
    else:
        stmt = table.insert()
    conn.execute(stmt, rows)
