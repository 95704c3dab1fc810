"""Reading one customer's inbox from the message store in one indexed query.

Targeted rows (`customer_id` = the customer) and public rows (`customer_id` NULL) that have
started and not expired, each with this customer's state, plus the customer's in-app consent and
time zone as uncorrelated scalar subqueries: one round trip on the `(customer_id, start_at)` index.
The display counts the caps need join in by primary key (total, the customer's local day, the
session), so the whole read is one statement, built once with bound parameters.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

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


@dataclass(frozen=True)
class StoredMessage:
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


def _displays(row: Any, day_offset: int, session_id: str | None) -> dict[str, int]:
    day = {-1: row.n_day_before, 0: row.n_day, 1: row.n_day_after}[day_offset]
    return {"total_cap": row.n_total, "daily_cap": day, "session_cap": row.n_session if session_id else 0}


def read_inbox(conn: Connection, customer_id: str | None, now: dt.datetime, session_id: str | None = None) -> Inbox:
    messages: list[StoredMessage] = []
    consent, timezone, offset = None, UTC, 0
    for i, row in enumerate(conn.execute(FEED_QUERY, feed_params(customer_id, now, session_id))):
        if i == 0:
            consent, timezone = row.consent, zone(row.timezone)
            offset = (local_day(timezone, now) - now.date()).days
        messages.append(
            StoredMessage(
                message_id=row.message_id,
                public=row.customer_id is None,
                campaign_id=row.campaign_id,
                variant=row.treatment_id,
                content=_content(row.content),
                priority=row.priority,
                start_at=row.start_at,
                end_at=row.end_at,
                caps={"session_cap": row.session_cap, "daily_cap": row.daily_cap, "total_cap": row.total_cap},
                created_at=row.created_at,
                states={c: getattr(row, c) for c in STATE_COLUMNS},
                displays=_displays(row, offset, session_id),
            )
        )
    return Inbox(customer_id, messages, None if consent is None else bool(consent), timezone)
