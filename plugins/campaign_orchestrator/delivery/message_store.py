"""The in-app message store destination: the `inapp_messages` table an app's inbox reads.

Writing a message and marking it sent happen in one warehouse transaction, keyed by message
id, so this destination is exactly-once by construction, crash or not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.campaign_spec import Campaign
from campaign_orchestrator.tables import inapp_messages, outbox
from campaign_orchestrator.warehouse import insert_ignore


def store_messages(
    conn: Connection, rows: Sequence[sa.Row[Any]], campaigns: dict[str, Campaign], now: dt.datetime, claim_id: str
) -> list[sa.Row[Any]]:
    """Upsert claimed in-app rows and mark them sent, inside the caller's transaction; returns the
    rows this claim still held (a claim taken over by another worker stores nothing)."""
    destinations = sorted({r.destination for r in rows})
    still_ours = sa.and_(
        outbox.c.claim_id == claim_id, outbox.c.state == "in_flight", outbox.c.destination.in_(destinations)
    )
    held = set(conn.execute(sa.select(outbox.c.message_id).where(still_ours)).scalars())
    rows = [r for r in rows if r.message_id in held]
    records = []
    for row in rows:
        campaign = campaigns[row.campaign_id]
        options = campaign.in_app
        records.append(
            {
                "message_id": row.message_id,
                "customer_id": row.customer_id,
                "campaign_id": row.campaign_id,
                "treatment_id": row.variant,
                "content": row.payload,
                "priority": options.priority,
                "start_at": row.send_at,
                "end_at": row.send_at + dt.timedelta(hours=options.expires_after_hours),
                "session_cap": options.session_cap,
                "daily_cap": options.daily_cap,
                "total_cap": options.total_cap,
                "created_at": now,
            }
        )
    insert_ignore(conn, inapp_messages, records)
    # The claim's store rows are exactly these (the select above ran in this transaction, and
    # only this claim's worker moves them), so one UPDATE by claim marks them.
    conn.execute(
        outbox.update()
        .where(still_ours)
        .values(state="sent", dispatch_id="message_store", sent_at=now, updated_at=now, last_error=None)
    )
    return list(rows)
