"""Reading one customer's inbox from the message store in one indexed query.

Targeted rows (`customer_id` = the customer) and public rows (`customer_id` NULL) that have
started and not expired, each with this customer's state, plus the customer's in-app consent and
time zone as uncorrelated scalar subqueries: one round trip on the `(customer_id, start_at)` index.
The display counts the caps need join in by primary key (total, the customer's local day, the
session), so the whole read is one statement, built once with bound parameters.

It is also compiled once per dialect. Where the driver's values need no SQLAlchemy conversion
(PostgreSQL with psycopg: no bind or result processors) the SQL runs on the pooled connection's
DB-API cursor and its rows are read as tuples by position: SQLAlchemy's per-execution work
(parameter processing, result metadata from the driver's 25-column description, Row objects)
cost more CPU than the query. Elsewhere (SQLite stores datetimes as text) it runs through
`Connection.execute`. Driver errors are raised as SQLAlchemy's, a lost connection invalidated.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from campaign_orchestrator.warehouse.tables import (
    customers,
    display_counts,
    inapp_messages,
    inapp_states,
    preference_state,
)

STATE_COLUMNS = ("seen_at", "read_at", "clicked_at", "dismissed_at", "archived_at", "acknowledged_at")
# A customer's inbox is read whole (it is small: messages expire); this bounds a pathological one.
MAX_MESSAGES = 1000
UTC = ZoneInfo("UTC")


class StoredMessage(NamedTuple):
    """Immutable and cheap to build (a frozen dataclass's __init__ cost 4 us a message)."""

    message_id: str
    public: bool
    campaign_id: str
    variant: str
    content: dict[str, Any]
    priority: int
    start_at: dt.datetime
    end_at: dt.datetime | None
    caps: dict[str, int | None]
    created_at: dt.datetime
    states: dict[str, dt.datetime | None]
    displays: dict[str, int]  # cap kind -> displays counted so far in its scope (now, this session)

    @property
    def has_caps(self) -> bool:
        return any(v for v in self.caps.values())


@dataclass(frozen=True)
class Inbox:
    customer_id: str | None
    messages: list[StoredMessage]
    consent: bool | None  # the in-app opt-in: True, False (opted out) or None (no record)
    timezone: ZoneInfo


@functools.lru_cache(maxsize=1024)
def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else UTC
    except (KeyError, ValueError):  # an unknown or malformed zone name: the customer's day is UTC's
        return UTC


def local_day(timezone: ZoneInfo, now: dt.datetime) -> dt.date:
    """The customer's calendar date at naive-UTC `now` (daily caps count per local day)."""
    return now.replace(tzinfo=dt.UTC).astimezone(timezone).date()


def scopes(day: dt.date, session_id: str | None) -> dict[str, str]:
    """Cap kind -> the display_counts scope that counts it now."""
    out = {"total_cap": "total", "daily_cap": f"day:{day.isoformat()}"}
    if session_id:
        out["session_cap"] = f"session:{session_id}"
    return out


def _content(text: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _feed_query() -> sa.Select[Any]:
    """Built once: every value is a bound parameter (`feed_params`), so a request pays no query building."""
    m, s = inapp_messages, inapp_states
    customer = sa.bindparam("customer_id", type_=m.c.customer_id.type)
    now = sa.bindparam("now", type_=m.c.start_at.type)
    consent = (
        sa.select(preference_state.c.enabled)
        .where(preference_state.c.customer_id == customer, preference_state.c.channel == "in_app")
        .scalar_subquery()
    )
    timezone = sa.select(customers.c.timezone).where(customers.c.customer_id == customer).scalar_subquery()
    source: Any = m.outerjoin(s, sa.and_(s.c.customer_id == customer, s.c.message_id == m.c.message_id))
    d = display_counts.c
    per_scope = [
        sa.func.sum(sa.case((d.scope == sa.bindparam(f"scope_{name}", type_=d.scope.type), d.displays), else_=0)).label(
            f"n_{name}"
        )
        for name in COUNT_SCOPES
    ]
    counts = (
        sa.select(d.campaign_id, *per_scope)
        .where(d.customer_id == customer)  # the primary key's prefix: this customer's few rows
        .group_by(d.campaign_id)
        .subquery("counts")
    )
    source = source.outerjoin(counts, counts.c.campaign_id == m.c.campaign_id)
    counted = [sa.func.coalesce(counts.c[f"n_{name}"], 0).label(f"n_{name}") for name in COUNT_SCOPES]
    return (
        sa.select(
            m.c.message_id,
            m.c.customer_id,
            m.c.campaign_id,
            m.c.treatment_id,
            m.c.content,
            m.c.priority,
            m.c.start_at,
            m.c.end_at,
            m.c.session_cap,
            m.c.daily_cap,
            m.c.total_cap,
            m.c.created_at,
            *(s.c[c] for c in STATE_COLUMNS),
            *counted,
            consent.label("consent"),
            timezone.label("timezone"),
        )
        .select_from(source)
        .where(
            sa.or_(m.c.customer_id == customer, m.c.customer_id.is_(None)),
            m.c.start_at <= now,
            sa.or_(m.c.end_at.is_(None), m.c.end_at > now),
        )
        .limit(MAX_MESSAGES)
    )


# The customer's local day is one of three UTC-relative dates; the query counts all three and the
# customer's time zone (known from the same row) picks one.
COUNT_SCOPES = ("total", "day_before", "day", "day_after", "session")
FEED_QUERY = _feed_query()


def feed_params(customer_id: str | None, now: dt.datetime, session_id: str | None) -> dict[str, Any]:
    day = now.date()
    return {
        "customer_id": customer_id,
        "now": now,
        "scope_total": "total",
        "scope_day_before": f"day:{(day - dt.timedelta(days=1)).isoformat()}",
        "scope_day": f"day:{day.isoformat()}",
        "scope_day_after": f"day:{(day + dt.timedelta(days=1)).isoformat()}",
        "scope_session": f"session:{session_id}" if session_id else "session:",
    }


# Where each value sits in a row of FEED_QUERY (checked against the query below).
_MESSAGE_COLUMNS: tuple[str, ...] = ("message_id", "customer_id", "campaign_id", "treatment_id", "content")
_MESSAGE_COLUMNS += ("priority", "start_at", "end_at", "session_cap", "daily_cap", "total_cap", "created_at")
_FIRST_STATE = len(_MESSAGE_COLUMNS)
_FIRST_COUNT = _FIRST_STATE + len(STATE_COLUMNS)
_DAY, _SESSION = _FIRST_COUNT + COUNT_SCOPES.index("day"), _FIRST_COUNT + COUNT_SCOPES.index("session")
_CONSENT, _TIMEZONE = _FIRST_COUNT + len(COUNT_SCOPES), _FIRST_COUNT + len(COUNT_SCOPES) + 1
assert [c.name for c in FEED_QUERY.selected_columns] == [
    *_MESSAGE_COLUMNS,
    *STATE_COLUMNS,
    *(f"n_{n}" for n in COUNT_SCOPES),
    "consent",
    "timezone",
]


@dataclass(frozen=True)
class CompiledFeed:
    sql: str
    fixed: dict[str, Any]  # the values the query binds itself ('in_app', 0, the row limit)
    raw: bool  # neither parameters nor results need SQLAlchemy's conversion on this dialect


@functools.lru_cache(maxsize=16)
def compiled_feed(dialect: Dialect) -> CompiledFeed:
    compiled = FEED_QUERY.compile(dialect=dialect)
    named = set(feed_params(None, dt.datetime(2000, 1, 1), None))
    fixed = {k: v for k, v in compiled.params.items() if k not in named}
    raw = (
        not compiled.positional
        and all(b.type.dialect_impl(dialect).bind_processor(dialect) is None for b in compiled.binds.values())
        and all(
            c.type.dialect_impl(dialect).result_processor(dialect, None) is None for c in FEED_QUERY.selected_columns
        )
    )
    return CompiledFeed(str(compiled), fixed, raw)


def _rows(conn: Connection, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
    feed = compiled_feed(conn.dialect)
    if not feed.raw:
        return conn.execute(FEED_QUERY, params).all()
    values = {**feed.fixed, **params}
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None  # a connection just checked out of the pool
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(feed.sql, values)
        return list(cursor.fetchall())
    except conn.dialect.loaded_dbapi.Error as exc:  # as Connection.execute would raise it
        gone = conn.dialect.is_disconnect(exc, dbapi_conn, cursor)
        if gone:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            feed.sql, values, exc, conn.dialect.loaded_dbapi.Error, connection_invalidated=gone, dialect=conn.dialect
        ) from exc
    finally:
        cursor.close()


def read_inbox(conn: Connection, customer_id: str | None, now: dt.datetime, session_id: str | None = None) -> Inbox:
    rows = _rows(conn, feed_params(customer_id, now, session_id))
    if not rows:
        return Inbox(customer_id, [], None, UTC)
    consent, timezone = rows[0][_CONSENT], zone(rows[0][_TIMEZONE])
    # The counts of the customer's local day: the day before, of or after UTC's.
    day = _DAY + (local_day(timezone, now) - now.date()).days
    messages = [
        StoredMessage(
            message_id=r[0],
            public=r[1] is None,
            campaign_id=r[2],
            variant=r[3],
            content=_content(r[4]),
            priority=r[5],
            start_at=r[6],
            end_at=r[7],
            caps={"session_cap": r[8], "daily_cap": r[9], "total_cap": r[10]},
            created_at=r[11],
            states=dict(zip(STATE_COLUMNS, r[_FIRST_STATE:_FIRST_COUNT], strict=True)),
            displays={
                "total_cap": r[_FIRST_COUNT],
                "daily_cap": r[day],
                "session_cap": r[_SESSION] if session_id else 0,
            },
        )
        for r in rows
    ]
    return Inbox(customer_id, messages, None if consent is None else bool(consent), timezone)
