"""The in-app message store destination: the `inapp_messages` table an app's inbox reads.

Writing a batch's messages and marking the batch sent happen in one warehouse transaction, keyed
by message id, so this destination is exactly-once by construction, crash or not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.definitions.campaigns import Campaign
from campaign_orchestrator.warehouse.bulk import bulk_insert_ignore
from campaign_orchestrator.warehouse.tables import delivery_batches, inapp_messages

if TYPE_CHECKING:
    from campaign_orchestrator.delivery.claims import ClaimedBatch

STORE_COLUMNS = (
    "message_id",
    "customer_id",
    "campaign_id",
    "treatment_id",
    "content",
    "priority",
    "start_at",
    "end_at",
    "session_cap",
    "daily_cap",
    "total_cap",
    "created_at",
)


def store_messages(
    conn: Connection, batches: Sequence[ClaimedBatch], campaigns: dict[str, Campaign], now: dt.datetime, claim_id: str
) -> list[ClaimedBatch]:
    """Upsert the claimed batches' messages and mark the batches sent, inside the caller's
    transaction; returns the batches this claim still held (a claim taken over by another worker
    stores nothing: its new owner writes the same rows again, by message id)."""
    b = delivery_batches.c
    still_ours = sa.and_(b.claim_id == claim_id, b.state == "in_flight", b.batch_id.in_([x.batch_id for x in batches]))
    held = set(conn.execute(sa.select(b.batch_id).where(still_ours).with_for_update()).scalars())
    batches = [x for x in batches if x.batch_id in held]
    records = []
    for batch in batches:
        options = campaigns[batch.campaign_id].in_app
        end_at = batch.send_at + dt.timedelta(hours=options.expires_after_hours)
        caps = (options.session_cap, options.daily_cap, options.total_cap)
        for m in batch.messages:
            head = (m.message_id, m.customer_id, batch.campaign_id, batch.variant, m.payload, options.priority)
            records.append((*head, batch.send_at, end_at, *caps, now))
    bulk_insert_ignore(conn, inapp_messages, STORE_COLUMNS, records)
    conn.execute(
        delivery_batches.update()
        .where(still_ours)
        .values(state="sent", dispatch_id="message_store", sent_at=now, updated_at=now, last_error=None)
    )
    return batches
