"""Reading one customer's inbox from the message store in one indexed query.

Targeted rows (`customer_id` = the customer) and public rows (`customer_id` NULL) that have
started and not expired, each with this customer's state, plus the customer's in-app consent and
time zone as uncorrelated scalar subqueries: one round trip on the `(customer_id, start_at)` index.
The display counts the caps need are a second, primary-key query, made only when a message has caps.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

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

    @property
    def has_caps(self) -> bool:
        return any(v for v in self.caps.values())


@dataclass(frozen=True)
class Inbox:
    customer_id: str | None
    messages: list[StoredMessage]
    consent: bool | None  # the in-app opt-in: True, False (opted out) or None (no record)
    timezone: ZoneInfo


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
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def inbox_query(customer_id: str | None, now: dt.datetime) -> sa.Select[Any]:
    m, s = inapp_messages, inapp_states
    consent = (
        sa.select(preference_state.c.enabled)
        .where(preference_state.c.customer_id == customer_id, preference_state.c.channel == "in_app")
        .scalar_subquery()
    )
    timezone = sa.select(customers.c.timezone).where(customers.c.customer_id == customer_id).scalar_subquery()
    state = sa.and_(s.c.customer_id == customer_id, s.c.message_id == m.c.message_id)
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
            consent.label("consent"),
            timezone.label("timezone"),
        )
        .select_from(m.outerjoin(s, state))
        .where(
            sa.or_(m.c.customer_id == customer_id, m.c.customer_id.is_(None)),
            m.c.start_at <= now,
            sa.or_(m.c.end_at.is_(None), m.c.end_at > now),
        )
        .limit(MAX_MESSAGES)
    )


def read_inbox(conn: Connection, customer_id: str | None, now: dt.datetime) -> Inbox:
    messages, consent, timezone = [], None, None
    for row in conn.execute(inbox_query(customer_id, now)):
        consent, timezone = row.consent, row.timezone
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
            )
        )
    return Inbox(customer_id, messages, None if consent is None else bool(consent), zone(timezone))


def display_counts_for(
    conn: Connection, customer_id: str, campaign_ids: Iterable[str], wanted: Iterable[str]
) -> dict[tuple[str, str], int]:
    """(campaign, scope) -> displays so far, for the given campaigns and scopes."""
    campaigns, scope_names = sorted(set(campaign_ids)), sorted(set(wanted))
    if not campaigns:
        return {}
    d = display_counts.c
    rows = conn.execute(
        sa.select(d.campaign_id, d.scope, d.displays).where(
            d.customer_id == customer_id, d.campaign_id.in_(campaigns), d.scope.in_(scope_names)
        )
    )
    return {(r.campaign_id, r.scope): int(r.displays) for r in rows}
