"""What happened to a campaign's messages of a run date: sent, scheduled, delivered, displayed, opened,
clicked, dismissed, bounced, unsubscribed; distinct customers per variant.

Two sources, each tied to the exact message: the provider's export (`provider_engagement`) by the
dispatch id the provider returned for the request (`delivery_batches.dispatch_id`) and the
customer; the inbox's `engagement_events` by message id. An export event whose dispatch id names
no request of ours is not counted (`unattributed` says how many). A message-store write counts as
delivered: the store is the app's inbox.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.delivery.scheduling import scheduled_at_provider
from campaign_orchestrator.outbox.ledger import message_ledger
from campaign_orchestrator.warehouse.tables import (
    delivery_batches,
    engagement_events,
    outbox,
    provider_engagement,
    target_list,
)

# Provider export events and inbox events -> the metric they count towards.
PROVIDER_EVENTS = {"delivery": "delivered", "open": "opened", "click": "clicked", "bounce": "bounced"}
PROVIDER_EVENTS["unsubscribe"] = "unsubscribed"
INBOX_EVENTS = {"displayed": "displayed", "read": "opened", "clicked": "clicked", "dismissed": "dismissed"}

Engagement = dict[str, dict[str, int]]  # variant -> metric -> customers


def engagement_counts(conn: Connection, run_date: dt.date, campaign_id: str, stores: frozenset[str]) -> Engagement:
    """Per variant, the funnel after targeting; `stores` names the message-store destinations."""
    out: Engagement = defaultdict(dict)
    t = target_list.c
    for variant, n in conn.execute(
        sa.select(t.variant, sa.func.count())
        .where(t.run_date == run_date, t.campaign_id == campaign_id)
        .group_by(t.variant)
    ):
        out[variant]["targeted"] = int(n)
    ledger = message_ledger(outbox.c.run_date == run_date, outbox.c.campaign_id == campaign_id)
    in_store = ledger.c.destination.in_(sorted(stores)) if stores else sa.false()
    later = sa.and_(sa.not_(in_store), scheduled_at_provider(ledger.c.send_at, ledger.c.sent_at))
    for variant, sent, scheduled, stored in conn.execute(
        sa.select(
            ledger.c.variant,
            sa.func.count(),
            sa.func.sum(sa.case((later, 1), else_=0)),
            sa.func.sum(sa.case((in_store, 1), else_=0)),
        )
        .where(ledger.c.state == "sent")
        .group_by(ledger.c.variant)
    ):
        out[variant].update(sent=int(sent), scheduled=int(scheduled or 0), delivered=int(stored or 0))
    for variant, metric, n in _provider_events(conn, run_date, campaign_id) + _inbox_events(
        conn, run_date, campaign_id
    ):
        out[variant][metric] = out[variant].get(metric, 0) + n
    return dict(out)


def _provider_events(conn: Connection, run_date: dt.date, campaign_id: str) -> list[tuple[str, str, int]]:
    pe, b, o = provider_engagement.c, delivery_batches.c, outbox.c
    rows = conn.execute(
        sa.select(o.variant, pe.event, sa.func.count(sa.distinct(pe.customer_id)))
        .select_from(
            provider_engagement.join(delivery_batches, b.dispatch_id == pe.dispatch_id).join(
                outbox, sa.and_(o.batch_id == b.batch_id, o.customer_id == pe.customer_id)
            )
        )
        .where(b.run_date == run_date, b.campaign_id == campaign_id, pe.event.in_(sorted(PROVIDER_EVENTS)))
        .group_by(o.variant, pe.event)
    )
    return [(variant, PROVIDER_EVENTS[event], int(n)) for variant, event, n in rows]


def _inbox_events(conn: Connection, run_date: dt.date, campaign_id: str) -> list[tuple[str, str, int]]:
    ee, o = engagement_events.c, outbox.c
    rows = conn.execute(
        sa.select(o.variant, ee.event, sa.func.count(sa.distinct(ee.customer_id)))
        .select_from(engagement_events.join(outbox, o.message_id == ee.message_id))
        .where(o.run_date == run_date, o.campaign_id == campaign_id, ee.event.in_(sorted(INBOX_EVENTS)))
        .group_by(o.variant, ee.event)
    )
    return [(variant, INBOX_EVENTS[event], int(n)) for variant, event, n in rows]


def unattributed(conn: Connection) -> int:
    """Export events whose dispatch id is missing or names no request of ours."""
    pe, b = provider_engagement.c, delivery_batches.c
    known = sa.exists().where(b.dispatch_id == pe.dispatch_id)
    return int(conn.scalar(sa.select(sa.func.count()).where(sa.or_(pe.dispatch_id.is_(None), ~known))) or 0)
