"""Engagement events from the apps: stored once per client event id, caps enforced at display.

A batch is one transaction. A `displayed` event of a capped campaign is stored only while every
cap (session, the customer's local day, total) is below its limit, counted in `display_counts`
rows that are locked first and in a fixed order, so two devices racing cannot overshoot a cap and
two batches cannot deadlock. A re-sent event id is answered `duplicate` and changes nothing; a
refused display is answered `capped` and stored nowhere (the app must not show it).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.inbox.statements import KNOWN_EVENTS, MESSAGES, insert_events, upsert_states
from campaign_orchestrator.inbox.store import local_day, scopes, zone
from campaign_orchestrator.warehouse.bulk import insert_ignore
from campaign_orchestrator.warehouse.tables import (
    display_counts,
    inapp_states,
)

EventName = Literal["displayed", "clicked", "dismissed", "read", "archived", "acknowledged"]
Outcome = Literal["accepted", "duplicate", "capped", "unknown_message"]
# Pinpoint's in-app event names are accepted as spellings of ours.
EVENT_NAMES: dict[str, EventName] = {
    "displayed": "displayed",
    "clicked": "clicked",
    "dismissed": "dismissed",
    "read": "read",
    "archived": "archived",
    "acknowledged": "acknowledged",
    "_inapp.message_displayed": "displayed",
    "_inapp.message_clicked": "clicked",
    "_inapp.message_dismissed": "dismissed",
}
STATE_OF: dict[EventName, str] = {
    "displayed": "seen_at",
    "clicked": "clicked_at",
    "dismissed": "dismissed_at",
    "read": "read_at",
    "archived": "archived_at",
    "acknowledged": "acknowledged_at",
}
CAP_KINDS = ("session_cap", "daily_cap", "total_cap")


@dataclass(frozen=True)
class EngagementEvent:
    event_id: str
    message_id: str
    event: EventName
    at: dt.datetime  # naive UTC
    session_id: str | None = None
    app_id: str | None = None


def _messages(conn: Connection, customer_id: str, ids: set[str]) -> tuple[dict[str, Any], str | None]:
    """The batch's messages that are this customer's (or public), and the customer's time zone."""
    rows = conn.execute(MESSAGES, {"customer_id": customer_id, "ids": sorted(ids)}).all()
    return {r.message_id: r for r in rows}, (rows[0].tz if rows else None)


def _lock_counts(conn: Connection, customer_id: str, keys: list[tuple[str, str]], now: dt.datetime) -> Counter[Any]:
    """Create the counters that do not exist yet and lock them all, in key order."""
    if not keys:
        return Counter()
    rows = [
        {"customer_id": customer_id, "campaign_id": c, "scope": s, "displays": 0, "updated_at": now} for c, s in keys
    ]
    insert_ignore(conn, display_counts, rows)
    d = display_counts.c
    wanted = sa.tuple_(d.campaign_id, d.scope).in_(keys)
    query = sa.select(d.campaign_id, d.scope, d.displays).where(d.customer_id == customer_id, wanted)
    query = query.order_by(d.campaign_id, d.scope)
    if conn.dialect.name != "sqlite":  # SQLite's first write above already holds the database lock
        query = query.with_for_update()
    return Counter({(r.campaign_id, r.scope): int(r.displays) for r in conn.execute(query)})


def _known_ids(conn: Connection, customer_id: str, events: Sequence[EngagementEvent]) -> set[str]:
    ids = sorted({x.event_id for x in events})
    return set(conn.execute(KNOWN_EVENTS, {"customer_id": customer_id, "ids": ids}).scalars())


def _counters_needed(
    events: Sequence[EngagementEvent], messages: dict[str, Any], day: dt.date
) -> list[tuple[str, str]]:
    needed: set[tuple[str, str]] = set()
    for x in events:
        row = messages.get(x.message_id)
        if x.event == "displayed" and row is not None:
            needed |= {(row.campaign_id, s) for k, s in scopes(day, x.session_id).items() if getattr(row, k)}
    return sorted(needed)


def _judge(
    events: Sequence[EngagementEvent], messages: dict[str, Any], seen: set[str], counts: Counter[Any], day: dt.date
) -> tuple[list[Outcome], list[tuple[EngagementEvent, Any]]]:
    """Each event's outcome, in order; `counts` grows by the displays accepted."""
    outcomes: list[Outcome] = []
    accepted: list[tuple[EngagementEvent, Any]] = []
    for x in events:
        row = messages.get(x.message_id)
        if x.event_id in seen:
            outcomes.append("duplicate")
            continue
        if row is None:
            outcomes.append("unknown_message")
            continue
        if x.event == "displayed":
            cap_scopes = [(s, getattr(row, k)) for k, s in scopes(day, x.session_id).items() if getattr(row, k)]
            if any(counts[(row.campaign_id, s)] >= cap for s, cap in cap_scopes):
                outcomes.append("capped")
                continue
            for s, _cap in cap_scopes:
                counts[(row.campaign_id, s)] += 1
        seen.add(x.event_id)
        outcomes.append("accepted")
        accepted.append((x, row))
    return outcomes, accepted


def record_events(
    engine: Engine, customer_id: str, events: Sequence[EngagementEvent], now: dt.datetime
) -> list[Outcome]:
    """Store the batch; one outcome per event, in order."""
    if not events:
        return []
    with engine.begin() as conn:
        messages, timezone = _messages(conn, customer_id, {x.message_id for x in events})
        day = local_day(zone(timezone), now)
        counts = _lock_counts(conn, customer_id, _counters_needed(events, messages, day), now)
        before = Counter(counts)
        outcomes, accepted = _judge(events, messages, _known_ids(conn, customer_id, events), counts, day)
        _store(conn, customer_id, accepted, now)
        _count(conn, customer_id, counts - before, now)
    return outcomes


def _store(conn: Connection, customer_id: str, accepted: list[tuple[EngagementEvent, Any]], now: dt.datetime) -> None:
    if not accepted:
        return
    conn.execute(
        insert_events(conn.dialect.name),
        [
            {
                "customer_id": customer_id,
                "event_id": x.event_id,
                "message_id": x.message_id,
                "campaign_id": row.campaign_id,
                "variant": row.treatment_id,
                "event": x.event,
                "at": min(x.at, now),
                "received_at": now,
                "session_id": x.session_id,
                "app_id": x.app_id,
            }
            for x, row in accepted
        ],
    )
    first: dict[str, dict[str, dt.datetime]] = {}
    for x, _row in accepted:  # the first time counts: a later read does not move read_at
        times = first.setdefault(x.message_id, {})
        column = STATE_OF[x.event]
        times[column] = min(times.get(column, x.at), x.at, now)
    for message_id, times in sorted(first.items()):
        _set_states(conn, customer_id, message_id, times, now)


def _set_states(
    conn: Connection, customer_id: str, message_id: str, times: dict[str, dt.datetime], now: dt.datetime
) -> None:
    """Each state's first time, kept: one upsert where the engine has one, else insert-if-absent and update."""
    upsert = upsert_states(conn.dialect.name, tuple(sorted(times)))
    if upsert is not None:
        conn.execute(upsert, {"customer_id": customer_id, "message_id": message_id, "updated_at": now, **times})
        return
    s = inapp_states.c
    insert_ignore(conn, inapp_states, [{"customer_id": customer_id, "message_id": message_id, "updated_at": now}])
    conn.execute(
        inapp_states.update()
        .where(s.customer_id == customer_id, s.message_id == message_id)
        .values({**{c: sa.func.coalesce(s[c], at) for c, at in times.items()}, "updated_at": now})
    )


def _count(conn: Connection, customer_id: str, deltas: Counter[Any], now: dt.datetime) -> None:
    d = display_counts.c
    for (campaign_id, scope), delta in sorted(deltas.items()):
        conn.execute(
            display_counts.update()
            .where(d.customer_id == customer_id, d.campaign_id == campaign_id, d.scope == scope)
            .values(displays=d.displays + delta, updated_at=now)
        )
