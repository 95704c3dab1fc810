"""Consent: the current opt-in state per customer and channel, derived from the full history.

The history (`preferences`) is what was imported; the state is recomputed from it in one
set-based statement, so a change older than the newest one can never overwrite it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.warehouse.bulk import empty_table, indexes_deferred
from campaign_orchestrator.warehouse.tables import preference_state, preferences


def refresh_preference_state(conn: Connection) -> int:
    """Rebuild the state: per (customer, channel) the newest change; at a tie the opt-out."""

    ranked = sa.select(
        preferences.c.customer_id,
        preferences.c.channel,
        preferences.c.enabled,
        preferences.c.ts,
        sa.func.row_number()
        .over(
            partition_by=(preferences.c.customer_id, preferences.c.channel),
            order_by=(preferences.c.ts.desc(), preferences.c.enabled.asc()),
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
