"""Consent: the current opt-in state per customer and channel, derived from the full history.

The history is what was imported (`preferences`) plus what customers changed through the inbox
API (`preference_changes`); the state is recomputed from both in one set-based statement, so a
change older than the newest one (an older export loaded tonight) can never overwrite it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.warehouse.bulk import empty_table, indexes_deferred
from campaign_orchestrator.warehouse.tables import preference_changes, preference_state, preferences


def refresh_preference_state(conn: Connection) -> int:
    """Rebuild the state: per (customer, channel) the newest change; at a tie the opt-out."""

    history = sa.union_all(
        *(sa.select(t.c.customer_id, t.c.channel, t.c.enabled, t.c.ts) for t in (preferences, preference_changes))
    ).subquery("history")
    ranked = sa.select(
        history.c.customer_id,
        history.c.channel,
        history.c.enabled,
        history.c.ts,
        sa.func.row_number()
        .over(
            partition_by=(history.c.customer_id, history.c.channel),
            order_by=(history.c.ts.desc(), history.c.enabled.asc()),
        )
        .label("newest"),
    ).subquery("ranked")
    newest = sa.select(ranked.c.customer_id, ranked.c.channel, ranked.c.enabled, ranked.c.ts).where(
        ranked.c.newest == 1
    )
    empty_table(conn, preference_state)
    with indexes_deferred(conn, preference_state, empty=True):
        conn.execute(preference_state.insert().from_select(["customer_id", "channel", "enabled", "ts"], newest))
    return int(conn.scalar(sa.select(sa.func.count()).select_from(preference_state)) or 0)
