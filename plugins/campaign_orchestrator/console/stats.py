"""What the warehouse says about an item: a segment's last nights' sizes, a campaign's funnels.

Both are reads of what the night already wrote (`segment_stats`; the targeting tables through
`targeting.funnel.funnels`), newest run date first, a handful of dates: cheap on any warehouse.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.targeting.funnel import funnels
from campaign_orchestrator.warehouse.tables import segment_stats, target_list


def segment_sizes(engine: Engine, segment_id: str, limit: int = 7) -> list[dict[str, Any]]:
    """[{run_date, members, entered, exited}] for the last `limit` runs of the segment."""
    t = segment_stats
    query = (
        sa.select(t.c.run_date, t.c.members, t.c.entered, t.c.exited)
        .where(t.c.segment_id == segment_id)
        .order_by(t.c.run_date.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def campaign_funnels(engine: Engine, campaign_id: str, limit: int = 7) -> list[dict[str, Any]]:
    """The funnel (`Funnel.as_dict()` and its run_date) of each of the campaign's last `limit` run dates."""
    dates_query = (
        sa.select(target_list.c.run_date)
        .where(target_list.c.campaign_id == campaign_id)
        .group_by(target_list.c.run_date)
        .order_by(target_list.c.run_date.desc())
        .limit(limit)
    )
    out: list[dict[str, Any]] = []
    with engine.connect() as conn:
        dates: list[dt.date] = [r[0] for r in conn.execute(dates_query)]
        for day in dates:
            out.append({"run_date": day, **funnels(conn, day, [campaign_id])[campaign_id].as_dict()})
    return out
