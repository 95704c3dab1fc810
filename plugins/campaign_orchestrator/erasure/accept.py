"""Step 1, accepting an erasure: one transaction after which nothing more is sent to the customers.

It writes the request (a uuid4 id), the tombstones (salted digests of each customer id and of the
profile's e-mail address), the work list (`erasure_subjects`), a suppression per customer (so a
night targeting meanwhile leaves them out), and cancels every message of theirs that no request
has left for yet (pending, failed or held batches, locked first as a re-run's cancellation does,
so a delivery worker claiming one now waits and then loads it without them). A request already
claimed or in flight at a provider cannot be recalled: the provider's deletion (step 4) follows it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.errors import CampaignError, InvalidInput
from campaign_orchestrator.ingest.tombstones import normalise, tombstone_digest
from campaign_orchestrator.warehouse.bulk import insert_ignore
from campaign_orchestrator.warehouse.tables import (
    customers,
    delivery_batches,
    erasure_requests,
    erasure_subjects,
    erasure_tombstones,
    outbox,
    suppressions,
)

SUPPRESSION_REASON = "erasure"
CANCELLED_AS = "erased"  # the cancelled messages' last_error
CHUNK = 500
NOT_LEFT = ("pending", "failed", "held")  # batches no request has left for (failed: none is out now)


class NoCustomers(CampaignError, InvalidInput, ValueError):
    """An erasure request that names no customer."""


def chunks(values: list[str], size: int = CHUNK) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def accept(engine: Engine, customer_ids: Iterable[str], salt: bytes, requested_by: str, now: dt.datetime) -> str:
    """Record the request and stop every send to its customers; returns the request id."""
    ids = sorted({normalise("customer_id", c) for c in customer_ids if c and c.strip()})
    if not ids:
        raise NoCustomers("an erasure needs at least one customer id")
    request_id = str(uuid.uuid4())
    with engine.begin() as conn:
        emails: dict[str, str | None] = {}
        names: dict[str, str | None] = {}
        for part in chunks(ids):
            cols = customers.c
            query = sa.select(cols.customer_id, cols.email, cols.first_name).where(cols.customer_id.in_(part))
            for r in conn.execute(query):
                emails[r.customer_id], names[r.customer_id] = r.email, r.first_name
        conn.execute(
            erasure_requests.insert().values(
                request_id=request_id,
                requested_at=now,
                requested_by=requested_by,
                customers=len(ids),
                status="accepted",
            )
        )
        digests = [("customer_id", tombstone_digest(salt, "customer_id", c)) for c in ids]
        digests += [("email", tombstone_digest(salt, "email", e)) for e in emails.values() if e and e.strip()]
        tombstones: list[dict[str, Any]] = [
            {"digest": d, "kind": k, "request_id": request_id, "created_at": now} for k, d in digests
        ]
        insert_ignore(conn, erasure_tombstones, tombstones)
        conn.execute(
            erasure_subjects.insert(),
            [
                {"request_id": request_id, "customer_id": c, "email": emails.get(c), "first_name": names.get(c)}
                | {"token": _token()}
                for c in ids
            ],
        )
        insert_ignore(
            conn,
            suppressions,
            [{"customer_id": c, "reason": SUPPRESSION_REASON, "since": now, "import_date": now.date()} for c in ids],
        )
        cancel_unsent(conn, ids, now)
    return request_id


def _token() -> str:
    """What the customer's ledger rows are re-keyed to: random, so it links to nobody."""
    return f"erased-{uuid.uuid4().hex[:24]}"


def cancel_unsent(conn: Connection, ids: list[str], now: dt.datetime) -> int:
    """Cancel the customers' messages in batches no request has left for; returns how many."""
    b = delivery_batches.c
    cancelled = 0
    for part in chunks(ids):
        theirs = sa.select(outbox.c.batch_id).where(outbox.c.customer_id.in_(part), outbox.c.state.is_(None))
        locked = conn.execute(
            sa.select(b.batch_id).where(b.batch_id.in_(theirs), b.state.in_(NOT_LEFT)).with_for_update()
        )
        for batches in chunks(sorted(locked.scalars())):
            result = conn.execute(
                outbox.update()
                .where(outbox.c.customer_id.in_(part), outbox.c.state.is_(None), outbox.c.batch_id.in_(batches))
                .values(state="cancelled", updated_at=now, last_error=CANCELLED_AS)
            )
            cancelled += int(result.rowcount or 0)
    return cancelled
