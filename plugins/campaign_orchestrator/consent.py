"""Consent: the current opt-in state per customer and channel, derived from the full history.

The history (`preferences`) is what was imported; the state is recomputed from it in one
set-based statement, so a change older than the newest one can never overwrite it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.tables import preference_state, preferences


def refresh_preference_state(conn: Connection) -> int:
    latest = (
        sa.select(preferences.c.customer_id, preferences.c.channel, sa.func.max(preferences.c.ts).label("ts"))
        .group_by(preferences.c.customer_id, preferences.c.channel)
        .subquery("latest")
    )
    # At the newest timestamp an opt-out beats an opt-in recorded at the same instant.
    enabled_int = sa.func.min(sa.case((preferences.c.enabled == sa.true(), 1), else_=0))
    select = (
        sa.select(preferences.c.customer_id, preferences.c.channel, enabled_int == 1, preferences.c.ts)
        .join(
            latest,
            sa.and_(
                preferences.c.customer_id == latest.c.customer_id,
                preferences.c.channel == latest.c.channel,
                preferences.c.ts == latest.c.ts,
            ),
        )
        .group_by(preferences.c.customer_id, preferences.c.channel, preferences.c.ts)
    )
    conn.execute(preference_state.delete())
    conn.execute(preference_state.insert().from_select(["customer_id", "channel", "enabled", "ts"], select))
    return int(conn.scalar(sa.select(sa.func.count()).select_from(preference_state)) or 0)
