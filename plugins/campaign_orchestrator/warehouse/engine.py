"""Connecting to the warehouse and the few things that differ between engines.

Everything else is portable SQLAlchemy Core. The differences kept here: how to bulk load
(PostgreSQL COPY, one executemany elsewhere), how to insert-if-absent, and the SQLite
connection setup (WAL, and the deterministic hash function `sqlfuncs` compiles to).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import URL, make_url

from campaign_orchestrator.errors import CampaignError, InvalidInput
from campaign_orchestrator.warehouse import migrate
from campaign_orchestrator.warehouse.tables import metadata
from campaign_orchestrator.warehouse.views import drop_view

DEFAULT_WAREHOUSE_URL = "sqlite:///warehouse.sqlite"

# Bare schemes get the driver the project installs; `postgres://` is how docker-compose and Heroku
# spell PostgreSQL.
_DRIVER_DEFAULTS = {
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
}


class WarehouseUrlInvalid(CampaignError, InvalidInput, ValueError):
    """The warehouse URL cannot be parsed, or names an engine this installation has no driver for."""


class WarehouseUnavailable(CampaignError):
    """The warehouse could not be reached (down, wrong host or port, refused credentials)."""


def hash32(text: str | None) -> int | None:
    """First 32 bits of md5, the same number PostgreSQL and MariaDB compute from md5() in SQL."""
    if text is None:
        return None
    return int(hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:8], 16)


def normalise_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise WarehouseUrlInvalid(
            "the warehouse URL cannot be parsed; write it as sqlite:///FILE or postgresql://USER@HOST/DB"
        ) from None
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


def create_warehouse_engine(url: str | URL | None = None, pool_size: int | None = None) -> Engine:
    """`pool_size`: a fixed pool (no overflow) for a long-running service, whose connections then
    live as long as it does (a pool that overflows closes connections as fast as it opens them)."""
    parsed = normalise_url(url or DEFAULT_WAREHOUSE_URL)
    kwargs: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
        if pool_size is not None:
            kwargs.update(pool_size=pool_size, max_overflow=0, pool_timeout=30)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.NoSuchModuleError, sa.exc.ArgumentError, ImportError) as exc:
        raise WarehouseUrlInvalid(
            f"warehouse {redacted(parsed)}: no engine {parsed.drivername!r} here ({type(exc).__name__}); "
            "use sqlite:///FILE, postgresql://... or mysql://..."
        ) from None
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _on_sqlite_connect)
    return engine


def ensure_schema(engine: Engine) -> None:
    """The warehouse at the schema revision the code needs (`migrate`): an empty one is created at
    head; one behind head, or made before schema revisions, stops the caller naming
    `campaigns db upgrade`."""
    with reachable(engine):
        migrate.ensure(engine)


@contextmanager
def reachable(engine: Engine) -> Iterator[None]:
    """A warehouse that cannot be reached is one line naming it, not a driver's traceback."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:300]
        raise WarehouseUnavailable(f"cannot reach the warehouse {redacted(engine.url)}: {reason}") from None


def drop_schema(engine: Engine) -> None:

    drop_view(engine)
    metadata.drop_all(engine, checkfirst=True)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {migrate.VERSION_TABLE}")


def dialect_name(bind: Engine | Connection) -> str:
    return bind.dialect.name
