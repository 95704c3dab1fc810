"""Conversions: did each measured member do the conversion event within the attribution window?

The window is [send instant, send instant + within_hours): a conversion one second before the
send or at the window's end does not count. Interval arithmetic is spelled differently by every
engine, so the windows are computed in Python, one per distinct send instant (a campaign has one
per time zone), and joined in as a small derived table: the comparison itself stays plain SQL.
Revenue is the sum of the conversion events' `amount` per member.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.definitions.conversions import Conversion
from campaign_orchestrator.definitions.rule_values import Vocabulary
from campaign_orchestrator.measurement.statistics import Spread
from campaign_orchestrator.segments.compile import property_conditions
from campaign_orchestrator.warehouse.event_properties import events_table


@dataclass
class GroupCounts:
    """One group (treatment, holdout or global) of one variant: members, converters, revenue spread."""

    n: int = 0
    converted: int = 0
    revenue: Spread = field(default_factory=lambda: Spread(0, 0.0, 0.0))


Counts = dict[tuple[str, str], GroupCounts]  # (variant, group) -> counts


def _windows(conn: Connection, member_rows: sa.Subquery, hours: float) -> sa.Subquery | None:
    instants = [r[0] for r in conn.execute(sa.select(member_rows.c.send_at).distinct()) if r[0] is not None]
    if not instants:
        return None
    width = dt.timedelta(hours=hours)
    rows = [
        sa.select(
            sa.literal(at, sa.DateTime()).label("send_at"), sa.literal(at + width, sa.DateTime()).label("window_end")
        )
        for at in sorted(instants)
    ]
    return (rows[0] if len(rows) == 1 else sa.union_all(*rows)).subquery("windows")


def count_conversions(
    conn: Connection,
    member_select: sa.Select[Any] | sa.CompoundSelect[Any],
    conversion: Conversion | None,
    properties: dict[str, str],
    vocab: Vocabulary | None,
    run_date: dt.date,
) -> Counts:
    """Members, converters and revenue per (variant, group); without a conversion, members only."""
    m = member_select.subquery("members")
    out: Counts = {}
    windows = _windows(conn, m, conversion.within_hours) if conversion else None
    if conversion is None or windows is None:
        for variant, group, n in conn.execute(
            sa.select(m.c.variant, m.c.group, sa.func.count()).group_by(m.c.variant, m.c.group)
        ):
            out[(variant, group)] = GroupCounts(n=int(n))
        return out
    ev = events_table(properties)
    amount = ev.c.amount
    on = [
        ev.c.customer_id == m.c.customer_id,
        ev.c.name == conversion.event,
        ev.c.ts >= m.c.send_at,
        ev.c.ts < windows.c.window_end,
        *property_conditions(ev, conversion.where, vocab, run_date),
    ]
    per_member = (
        sa.select(
            m.c.customer_id,
            m.c.variant,
            m.c.group,
            sa.func.count(ev.c.ts).label("events"),
            sa.func.coalesce(sa.func.sum(amount), 0.0).label("revenue"),
        )
        .select_from(m.join(windows, windows.c.send_at == m.c.send_at).outerjoin(ev, sa.and_(*on)))
        .group_by(m.c.customer_id, m.c.variant, m.c.group)
        .subquery("per_member")
    )
    p = per_member.c
    rows = conn.execute(
        sa.select(
            p.variant,
            p.group,
            sa.func.count(),
            sa.func.sum(sa.case((p.events > 0, 1), else_=0)),
            sa.func.sum(p.revenue),
            sa.func.sum(p.revenue * p.revenue),
        ).group_by(p.variant, p.group)
    )
    for variant, group, n, converted, revenue, squares in rows:
        out[(variant, group)] = GroupCounts(
            n=int(n), converted=int(converted or 0), revenue=Spread(int(n), float(revenue or 0), float(squares or 0))
        )
    return out


def combined(counts: Counts, group: str, variants: list[str] | None = None) -> GroupCounts:
    """One group's counts over several variants (all of them by default)."""
    parts = [c for (v, g), c in counts.items() if g == group and (variants is None or v in variants)]
    n = sum(c.n for c in parts)
    return GroupCounts(
        n=n,
        converted=sum(c.converted for c in parts),
        revenue=Spread(n, sum(c.revenue.total for c in parts), sum(c.revenue.squares for c in parts)),
    )
