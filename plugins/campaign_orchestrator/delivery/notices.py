"""Publishing the public in-app notices (`marketing/public_messages.yaml`: outages, forced updates)
to the message store. A notice is a row of `inapp_messages` with no customer, upserted by its
stable id: editing it updates the row, removing it from the file ends it (now), so an app never
shows a notice the marketers withdrew.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.clock import naive_utc
from campaign_orchestrator.definitions.public_messages import CAMPAIGN_PREFIX, PublicMessage
from campaign_orchestrator.warehouse.tables import inapp_messages


def _naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else naive_utc(value)


def publish_public_messages(conn: Connection, messages: list[PublicMessage], now: dt.datetime) -> dict[str, int]:
    """Upsert the listed notices; end (now) the ones no longer listed that are still showing."""
    existing = {
        row.message_id: row
        for row in conn.execute(
            sa.select(inapp_messages).where(
                inapp_messages.c.customer_id.is_(None), inapp_messages.c.campaign_id.like(f"{CAMPAIGN_PREFIX}%")
            )
        )
    }
    counts = {"created": 0, "updated": 0, "unchanged": 0, "ended": 0}
    for m in messages:
        values: dict[str, Any] = {
            "campaign_id": CAMPAIGN_PREFIX + m.id,
            "treatment_id": m.kind,
            "content": json.dumps(
                {**m.content.model_dump(exclude_none=True), "min_app_version": m.min_app_version},
                ensure_ascii=False,
                separators=(",", ":"),
            ),
            "priority": m.priority,
            "start_at": _naive_utc(m.start_at),
            "end_at": _naive_utc(m.end_at),
        }
        row = existing.pop(m.message_id, None)
        if row is None:
            conn.execute(
                inapp_messages.insert().values(message_id=m.message_id, customer_id=None, created_at=now, **values)
            )
            counts["created"] += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            conn.execute(inapp_messages.update().where(inapp_messages.c.message_id == m.message_id).values(**values))
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    for message_id, row in existing.items():
        if row.end_at is None or row.end_at > now:
            conn.execute(inapp_messages.update().where(inapp_messages.c.message_id == message_id).values(end_at=now))
            counts["ended"] += 1
    return counts
