"""The figures behind the HTML report's charts, read from the warehouse in a few grouped queries.

Every query aggregates in the database (GROUP BY over the dates), so what comes back is bounded by
campaigns x time zones x hours, never by customers: the report costs about the same at ten million
customers as at a thousand, and no customer id ever leaves these functions. The SQL is SQLAlchemy
Core only (EXTRACT and CASE, which every engine has); expressions are grouped through a subquery's
columns, because PostgreSQL does not see two bound-parameter copies of one CASE as the same
expression.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.delivery.scheduling import scheduled_at_provider
from campaign_orchestrator.outbox.ledger import ledger_counts
from campaign_orchestrator.targeting.funnel import REASONS, funnels
from campaign_orchestrator.warehouse.measurement_tables import ALL, METRIC_COUNTS, METRIC_FIGURES, METRIC_FLAGS
from campaign_orchestrator.warehouse.tables import (
    campaign_candidates,
    campaign_metrics,
    customers,
    delivery_batches,
    segment_stats,
    target_list,
)

UTC = dt.UTC
# How the delivery chart groups batch states: what a reader asks of the night.
DELIVERY_KINDS = ("sent", "scheduled", "pending", "failed", "unknown", "dead", "held")
_PENDING = ("pending", "claimed", "in_flight")
_NO_MESSAGES = ("cancelled", "split")  # no message travels in them


@dataclass(frozen=True)
class FunnelRow:
    """One campaign's way from segment to delivered, summed over the report's dates."""

    campaign_id: str
    segment_size: int
    excluded: dict[str, int]  # reason -> members, in funnel.REASONS order, zeros left out
    targeted: int
    delivered: int


@dataclass(frozen=True)
class SegmentPoint:
    run_date: dt.date
    segment_id: str
    members: int
    entered: int
    exited: int


@dataclass(frozen=True)
class DeliveryPoint:
    """Messages of one kind (DELIVERY_KINDS) in one UTC hour."""

    hour: dt.datetime
    kind: str
    messages: int


@dataclass(frozen=True)
class MetricRow:
    """One `campaign_metrics` row (a date, campaign and variant) with the figures the page shows."""

    run_date: dt.date
    campaign_id: str
    variant: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.campaign_id == ALL:
            return "all campaigns vs global control"
        return self.campaign_id if self.variant == ALL else f"{self.campaign_id} / {self.variant}"

    def interval(self) -> tuple[float, float, float] | None:
        """The uplift with its 95% interval: against the campaign's holdout, or for campaign `*`
        (and a campaign without a holdout) against the global control group."""
        for prefix in ("", "global_"):
            mid, low, high = (self.values.get(f"{prefix}uplift{s}") for s in ("", "_low", "_high"))
            if mid is not None:
                return float(mid), float(low if low is not None else mid), float(high if high is not None else mid)
        return None


def days(date_from: dt.date, date_to: dt.date) -> list[dt.date]:
    return [date_from + dt.timedelta(days=i) for i in range((date_to - date_from).days + 1)]


def _between(column: Any, date_from: dt.date, date_to: dt.date) -> sa.ColumnElement[bool]:
    return sa.and_(column >= date_from, column <= date_to)


def known_campaigns(conn: Connection, date_from: dt.date, date_to: dt.date) -> set[str]:
    """Campaigns with anything in the warehouse between the dates (candidates, lists, batches, metrics)."""
    selects = [
        sa.select(t.c.campaign_id).where(_between(t.c.run_date, date_from, date_to)).distinct()
        for t in (campaign_candidates, target_list, delivery_batches, campaign_metrics)
    ]
    found = {str(cid) for select in selects for (cid,) in conn.execute(select)}
    return found - {ALL}


def funnel_rows(conn: Connection, date_from: dt.date, date_to: dt.date, campaign: str | None = None) -> list[FunnelRow]:
    """Per campaign: segment size, each exclusion reason, targeted (from `targeting.funnel`) and
    delivered (the ledger's `sent`), each summed over the dates."""
    sums: dict[str, dict[str, Any]] = {}
    for day in days(date_from, date_to):
        delivered = ledger_counts(conn, day)
        for cid, funnel in funnels(conn, day, [campaign] if campaign else []).items():
            if campaign and cid != campaign:
                continue
            entry = sums.setdefault(cid, {"segment_size": 0, "excluded": {}, "targeted": 0, "delivered": 0})
            entry["segment_size"] += funnel.segment_size
            entry["targeted"] += funnel.targeted
            entry["delivered"] += delivered.get(cid, {}).get("sent", 0)
            for reason, n in funnel.excluded.items():
                entry["excluded"][reason] = entry["excluded"].get(reason, 0) + n
    rows = []
    for cid, entry in sorted(sums.items()):
        order = [*REASONS, *sorted(set(entry["excluded"]) - set(REASONS))]
        excluded = {r: entry["excluded"][r] for r in order if entry["excluded"].get(r)}
        rows.append(FunnelRow(cid, entry["segment_size"], excluded, entry["targeted"], entry["delivered"]))
    return [r for r in rows if r.segment_size or r.targeted or r.delivered]


def segment_points(
    conn: Connection, date_from: dt.date, date_to: dt.date, segments: Collection[str] | None = None
) -> list[SegmentPoint]:
    s = segment_stats.c
    query = sa.select(s.run_date, s.segment_id, s.members, s.entered, s.exited).where(
        _between(s.run_date, date_from, date_to)
    )
    if segments is not None:
        query = query.where(s.segment_id.in_(sorted(segments)))
    rows = conn.execute(query.order_by(s.segment_id, s.run_date))
    return [SegmentPoint(r.run_date, r.segment_id, int(r.members), int(r.entered), int(r.exited)) for r in rows]


def _parts(column: Any) -> list[sa.ColumnElement[Any]]:
    return [sa.extract(part, column).label(part) for part in ("year", "month", "day", "hour", "minute")]


def _moment(row: Any) -> dt.datetime:
    return dt.datetime(int(row.year), int(row.month), int(row.day), int(row.hour), int(row.minute or 0))


@cache
def _zone(name: str | None) -> dt.tzinfo:
    """A customer's time zone; none, or one zoneinfo does not know, is UTC."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def send_time_histogram(
    conn: Connection, date_from: dt.date, date_to: dt.date, campaign: str | None = None
) -> dict[str, list[int]]:
    """Per campaign, targeted messages per local hour (0-23) of their send time in the customer's
    time zone. The database groups by campaign, zone and UTC minute (DST needs the date, half-hour
    zones the minute); Python converts those few groups, one zone at a time."""
    t, c = target_list.c, customers.c
    where = [_between(t.run_date, date_from, date_to)]
    if campaign:
        where.append(t.campaign_id == campaign)
    per_row = (
        sa.select(t.campaign_id, c.timezone, *_parts(t.send_at))
        .select_from(target_list.outerjoin(customers, c.customer_id == t.customer_id))
        .where(*where)
        .subquery("sends")
    )
    s = per_row.c
    keys = [s.campaign_id, s.timezone, s.year, s.month, s.day, s.hour, s.minute]
    out: dict[str, list[int]] = {}
    for row in conn.execute(sa.select(*keys, sa.func.count()).group_by(*keys)):
        local = _moment(row).replace(tzinfo=UTC).astimezone(_zone(row.timezone))
        out.setdefault(str(row.campaign_id), [0] * 24)[local.hour] += int(row[-1])
    return dict(sorted(out.items()))


def delivery_points(
    conn: Connection, date_from: dt.date, date_to: dt.date, campaign: str | None = None
) -> list[DeliveryPoint]:
    """Messages per UTC hour and kind. A sent batch counts at the hour it was handed over
    (`sent_at`), unless the provider took it as a schedule (`delivery.scheduling`): then it is
    `scheduled` and counts at `send_at`. Every other batch counts at its due hour (`send_at`)."""
    b = delivery_batches.c
    sent = b.state == "sent"
    scheduled = sa.and_(sent, scheduled_at_provider(b.send_at, b.sent_at))
    kind = sa.case(
        (scheduled, "scheduled"),
        (sent, "sent"),
        (b.state.in_(_PENDING), "pending"),
        else_=b.state,
    )
    moment = sa.case((scheduled, b.send_at), (sa.and_(sent, b.sent_at.is_not(None)), b.sent_at), else_=b.send_at)
    where = [_between(b.run_date, date_from, date_to), b.state.not_in(_NO_MESSAGES)]
    if campaign:
        where.append(b.campaign_id == campaign)
    per_batch = sa.select(kind.label("kind"), b.messages, *_parts(moment)[:4]).where(*where).subquery("batches")
    p = per_batch.c
    keys = [p.kind, p.year, p.month, p.day, p.hour]
    rows = conn.execute(sa.select(*keys, sa.func.sum(p.messages)).group_by(*keys))
    points = [
        DeliveryPoint(dt.datetime(int(r.year), int(r.month), int(r.day), int(r.hour)), str(r.kind), int(r[-1] or 0))
        for r in rows
    ]
    return sorted(points, key=lambda p: (p.hour, p.kind))


def metric_rows(conn: Connection, date_from: dt.date, date_to: dt.date, campaign: str | None = None) -> list[MetricRow]:
    """The `campaign_metrics` rows of the dates (one campaign's, or all with the `*` rows)."""
    m = campaign_metrics.c
    query = sa.select(campaign_metrics).where(_between(m.run_date, date_from, date_to))
    if campaign:
        query = query.where(m.campaign_id == campaign)
    names = (*METRIC_COUNTS, *METRIC_FIGURES, *METRIC_FLAGS)
    rows = conn.execute(query.order_by(m.campaign_id, m.variant, m.run_date)).mappings()
    out = [MetricRow(r["run_date"], r["campaign_id"], r["variant"], {k: r[k] for k in names}) for r in rows]
    # Whole campaigns before their variants, the campaign `*` last.
    return sorted(out, key=lambda r: (r.campaign_id == ALL, r.campaign_id, r.variant != ALL, r.variant, r.run_date))


def only_campaigns(rows: Sequence[MetricRow]) -> list[str]:
    return sorted({r.campaign_id for r in rows})
