"""Preferences and devices the apps read and write: consent that takes effect at once and is audited.

A change appends to `preference_changes` (when, the source the app names, the caller: the
customer's own token or a back-end key) and moves the current state in `preference_state` in the
same transaction, so the feed hides targeted in-app messages the moment a customer opts out. The
night rebuilds the state from imported and API history together, newest first, so an older export
cannot undo a change made through the API.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.clock import iso_utc
from campaign_orchestrator.warehouse.bulk import insert_ignore
from campaign_orchestrator.warehouse.tables import device_tokens, preference_changes, preference_state, preferences

PreferenceChannel = Literal["push", "email", "in_app"]
CHANNELS: tuple[PreferenceChannel, ...] = ("push", "email", "in_app")
HISTORY_SHOWN = 100


def read_preferences(conn: Connection, customer_id: str) -> dict[str, Any]:
    """Current consent per channel and the newest changes, imported and API, newest first."""
    st = preference_state.c
    current = {
        r.channel: {"enabled": bool(r.enabled), "since": iso_utc(r.ts)}
        for r in conn.execute(sa.select(st.channel, st.enabled, st.ts).where(st.customer_id == customer_id))
    }
    p, c = preferences.c, preference_changes.c
    imported = sa.select(p.channel, p.enabled, p.ts, p.source, sa.literal("import").label("caller")).where(
        p.customer_id == customer_id
    )
    changed = sa.select(c.channel, c.enabled, c.ts, c.source, c.caller).where(c.customer_id == customer_id)
    history = sa.union_all(imported, changed).subquery("history")
    rows = conn.execute(sa.select(history).order_by(history.c.ts.desc()).limit(HISTORY_SHOWN))
    return {
        "customer_id": customer_id,
        "channels": {ch: current.get(ch, {"enabled": False, "since": None}) for ch in CHANNELS},
        "history": [
            {
                "channel": r.channel,
                "enabled": bool(r.enabled),
                "ts": iso_utc(r.ts),
                "source": r.source,
                "caller": r.caller,
            }
            for r in rows
        ],
    }


def change_preferences(
    engine: Engine,
    customer_id: str,
    changes: dict[PreferenceChannel, bool],
    source: str,
    caller: str,
    now: dt.datetime,
) -> None:
    st = preference_state.c
    with engine.begin() as conn:
        for channel, enabled in sorted(changes.items()):
            insert_ignore(
                conn,
                preference_changes,
                [
                    {
                        "customer_id": customer_id,
                        "channel": channel,
                        "enabled": enabled,
                        "ts": now,
                        "source": source,
                        "caller": caller,
                    }
                ],
            )
            key = sa.and_(st.customer_id == customer_id, st.channel == channel)
            newer = conn.scalar(sa.select(sa.func.count()).where(key, st.ts > now))
            if newer:  # an import carried a later change (clock skew): the newest still wins
                continue
            conn.execute(preference_state.delete().where(key))
            conn.execute(
                preference_state.insert().values(customer_id=customer_id, channel=channel, enabled=enabled, ts=now)
            )


def sync_device(
    engine: Engine,
    customer_id: str,
    app_id: str,
    platform: str,
    push_token: str | None,
    endpoint_id: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    d = device_tokens.c
    values = {"platform": platform, "push_token": push_token, "endpoint_id": endpoint_id, "updated_at": now}
    with engine.begin() as conn:
        key = sa.and_(d.customer_id == customer_id, d.app_id == app_id)
        if not conn.execute(device_tokens.update().where(key).values(**values)).rowcount:
            insert_ignore(conn, device_tokens, [{"customer_id": customer_id, "app_id": app_id, **values}])
    return {
        "customer_id": customer_id,
        "app_id": app_id,
        "platform": platform,
        "push_token_present": push_token is not None,
        "endpoint_id": endpoint_id,
        "updated_at": iso_utc(now),
    }


def customer_of_endpoint(conn: Connection, application_id: str, endpoint_id: str) -> str:
    """A Pinpoint endpoint id: the device registered with it under this app (or any app), else the
    endpoint id is the customer id (how most Pinpoint projects set UserId = endpoint)."""
    d = device_tokens.c
    rows = conn.execute(
        sa.select(d.customer_id, d.app_id).where(d.endpoint_id == endpoint_id).order_by(d.updated_at.desc())
    ).all()
    for row in rows:
        if row.app_id == application_id:
            return str(row.customer_id)
    return str(rows[0].customer_id) if rows else endpoint_id
