"""The customers the load plays, with their message ids and a customer token each, in a file wrk reads.

Apps hold a token per session, so the load sends customer tokens (the service verifies one per
request) rather than the server key. Minting a token costs ~20 us, so the file holds a random
sample of the customers (spread over the whole table, so the database's working set is the
whole index), not all of them.
"""

from __future__ import annotations

import random
from pathlib import Path

import sqlalchemy as sa

from campaign_devtools.bench.inbox.dataset import customer_id
from campaign_orchestrator.inbox.tokens import issue_token
from campaign_orchestrator.warehouse.engine import create_warehouse_engine
from campaign_orchestrator.warehouse.tables import inapp_messages

SAMPLE = 100_000
TTL_SECONDS = 4 * 3600


def write_token_file(path: Path, store_url: str, customers: int, secret: str, sample: int = SAMPLE) -> int:
    """Lines `customer_id<TAB>message_id,message_id,...<TAB>token`; returns how many."""
    chosen = sorted(random.Random(5).sample(range(customers), min(sample, customers)))
    ids = [customer_id(i) for i in chosen]
    m = inapp_messages.c
    engine = create_warehouse_engine(store_url)
    owned: dict[str, list[str]] = {}
    try:
        with engine.connect() as conn:
            for start in range(0, len(ids), 10_000):
                part = ids[start : start + 10_000]
                for row in conn.execute(sa.select(m.customer_id, m.message_id).where(m.customer_id.in_(part))):
                    owned.setdefault(row.customer_id, []).append(row.message_id)
    finally:
        engine.dispose()
    lines = [f"{c}\t{','.join(sorted(owned[c]))}\t{issue_token(c, secret, TTL_SECONDS)}\n" for c in ids if c in owned]
    path.write_text("".join(lines), encoding="utf-8")
    return len(lines)
