"""Holding a campaign whose render failures pass `settings.render.max_error_share`: its batches
turn `held` and are not delivered, the other campaigns go out, and a re-run after a fix that
brings it under the limit releases them."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.warehouse.tables import delivery_batches, outbox, render_errors


def hold_failing_campaigns(conn: Connection, run_date: dt.date, max_share: float, now: dt.datetime) -> dict[str, float]:
    """Hold every campaign whose render failures for the run pass max_share; release the others."""
    failed: dict[str, int] = dict(
        conn.execute(
            sa.select(render_errors.c.campaign_id, sa.func.count())
            .where(render_errors.c.run_date == run_date)
            .group_by(render_errors.c.campaign_id)
        ).all()
    )
    rendered: dict[str, int] = dict(
        conn.execute(
            sa.select(outbox.c.campaign_id, sa.func.count())
            .where(outbox.c.run_date == run_date, outbox.c.state.is_(None))
            .group_by(outbox.c.campaign_id)
        ).all()
    )
    batches = delivery_batches.c
    held: dict[str, float] = {}
    for campaign_id in rendered.keys() | failed.keys():
        bad = int(failed.get(campaign_id, 0))
        share = bad / (bad + int(rendered.get(campaign_id, 0)))
        if share > max_share:
            held[campaign_id] = round(share, 4)
            conn.execute(
                delivery_batches.update()
                .where(batches.run_date == run_date, batches.campaign_id == campaign_id, batches.state == "pending")
                .values(
                    state="held",
                    updated_at=now,
                    last_error=f"campaign held: {share:.1%} of its messages failed to render (limit {max_share:.1%})",
                )
            )
        else:
            conn.execute(
                delivery_batches.update()
                .where(batches.run_date == run_date, batches.campaign_id == campaign_id, batches.state == "held")
                .values(state="pending", updated_at=now, last_error=None)
            )
    return held
