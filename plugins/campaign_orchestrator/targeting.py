"""Target lists: who each active campaign sends to on a run date, and why everyone else does not.

All set-based SQL, in three steps per run date:

1. candidates: every member of each campaign's segment, with the first reason that rules them
   out before arbitration (suppressed, not_opted_in, no_device, held_out) or none;
2. arbitration: the eligible candidates of all campaigns ranked per customer by priority, and
   kept while the customer's daily budget lasts (the global cap minus what other runs already
   put in the ledger for that day); the rest are capped_global or lost_arbitration;
3. the target list with each customer's send instant (campaign clock time in the customer's
   time zone, computed once per zone in Python and joined in as a small table).

Holdouts are a stable hash of campaign and customer: the same customer stays in the control
group on every night of a campaign and on every engine.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.definitions import Campaign, Definitions
from campaign_orchestrator.sqlfuncs import hash_bucket
from campaign_orchestrator.tables import (
    app_installs,
    campaign_candidates,
    customers,
    holdout_list,
    outbox,
    preference_state,
    segment_membership,
    send_slots,
    suppressions,
    target_exclusions,
    target_list,
)

HOLDOUT_BUCKETS = 10_000
REASONS = (
    "suppressed",
    "not_opted_in",
    "no_device",
    "held_out",
    "capped_global",
    "lost_arbitration",
)
LEDGER_SPENT_STATES = ("pending", "in_flight", "sent", "failed", "unknown")
DEFAULT_VARIANT = "default"


@dataclass
class Funnel:
    campaign_id: str
    segment_size: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    targeted: int = 0

    @property
    def eligible(self) -> int:
        return self.segment_size - sum(self.excluded.get(r, 0) for r in ("suppressed", "not_opted_in", "no_device"))

    @property
    def held_out(self) -> int:
        return self.excluded.get("held_out", 0)

    @property
    def capped(self) -> int:
        return self.excluded.get("capped_global", 0)

    @property
    def lost_arbitration(self) -> int:
        return self.excluded.get("lost_arbitration", 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "segment_size": self.segment_size,
            "eligible": self.eligible,
            "held_out": self.held_out,
            "capped": self.capped,
            "lost_arbitration": self.lost_arbitration,
            "targeted": self.targeted,
            "excluded": dict(sorted(self.excluded.items())),
        }


def _device_condition(campaign: Campaign, customer_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    if campaign.channel == "email":
        return sa.exists().where(customers.c.customer_id == customer_id, customers.c.email.is_not(None))
    conditions = [app_installs.c.customer_id == customer_id]
    if campaign.channel == "push":
        conditions.append(app_installs.c.push_token_present == sa.true())
    if campaign.platforms:
        conditions.append(app_installs.c.platform.in_(campaign.platforms))
    if campaign.app_ids:
        conditions.append(app_installs.c.app_id.in_(campaign.app_ids))
    return sa.exists().where(*conditions)


def _candidates_select(campaign: Campaign, run_date: dt.date) -> sa.Select[Any]:
    m = segment_membership.alias("m")
    opted_in = sa.exists().where(
        preference_state.c.customer_id == m.c.customer_id,
        preference_state.c.channel == campaign.channel,
        preference_state.c.enabled == sa.true(),
    )
    suppressed = sa.exists().where(suppressions.c.customer_id == m.c.customer_id)
    threshold = round(campaign.holdout_percent * HOLDOUT_BUCKETS / 100)
    reason = sa.case(
        (suppressed, "suppressed"),
        (~opted_in, "not_opted_in"),
        (~_device_condition(campaign, m.c.customer_id), "no_device"),
        (hash_bucket(m.c.customer_id, f"holdout:{campaign.id}", HOLDOUT_BUCKETS) < threshold, "held_out"),
        else_=sa.null(),
    )
    return sa.select(
        sa.literal(run_date, sa.Date()),
        sa.literal(campaign.id),
        m.c.customer_id,
        sa.literal(campaign.priority),
        sa.literal(DEFAULT_VARIANT),
        reason,
    ).where(m.c.run_date == run_date, m.c.segment_id == campaign.segment)


def slot_instants(
    campaign: Campaign, run_date: dt.date, zones: list[str], default_zone: str, now: dt.datetime
) -> dict[str, dt.datetime]:
    """UTC send instant per customer time zone ('' = no zone on the profile) for the run date."""
    clock = campaign.send_clock()
    if clock is None:
        return dict.fromkeys(zones, now)
    out: dict[str, dt.datetime] = {}
    for zone in zones:
        name = campaign.send_timezone or zone or default_zone
        try:
            tz = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            tz = ZoneInfo(default_zone)
        local = dt.datetime.combine(run_date, clock, tzinfo=tz)
        out[zone] = local.astimezone(dt.UTC).replace(tzinfo=None)
    return out


def build_target_lists(
    conn: Connection, definitions: Definitions, run_date: dt.date, now: dt.datetime
) -> dict[str, Funnel]:
    """Rebuild the run date's candidates, target list, holdouts and exclusions from scratch."""
    for table in (campaign_candidates, target_list, holdout_list, target_exclusions, send_slots):
        conn.execute(table.delete().where(table.c.run_date == run_date))
    campaigns = definitions.active_campaigns(run_date)
    if not campaigns:
        return {}

    for campaign in campaigns:
        conn.execute(
            campaign_candidates.insert().from_select(
                ["run_date", "campaign_id", "customer_id", "priority", "variant", "exclusion_reason"],
                _candidates_select(campaign, run_date),
            )
        )

    zones = [z or "" for (z,) in conn.execute(sa.select(customers.c.timezone).distinct())]
    if "" not in zones:
        zones.append("")
    slot_rows = []
    for campaign in campaigns:
        for zone, instant in slot_instants(
            campaign, run_date, zones, definitions.settings.default_timezone, now
        ).items():
            slot_rows.append({"run_date": run_date, "campaign_id": campaign.id, "timezone": zone, "send_at": instant})
    conn.execute(send_slots.insert(), slot_rows)

    _arbitrate(conn, definitions, run_date)

    conn.execute(
        holdout_list.insert().from_select(
            ["run_date", "campaign_id", "customer_id"],
            sa.select(
                campaign_candidates.c.run_date, campaign_candidates.c.campaign_id, campaign_candidates.c.customer_id
            ).where(campaign_candidates.c.run_date == run_date, campaign_candidates.c.exclusion_reason == "held_out"),
        )
    )
    conn.execute(
        target_exclusions.insert().from_select(
            ["run_date", "campaign_id", "customer_id", "reason"],
            sa.select(
                campaign_candidates.c.run_date,
                campaign_candidates.c.campaign_id,
                campaign_candidates.c.customer_id,
                campaign_candidates.c.exclusion_reason,
            ).where(campaign_candidates.c.run_date == run_date, campaign_candidates.c.exclusion_reason.is_not(None)),
        )
    )
    return funnels(conn, run_date, [c.id for c in campaigns])


def _arbitrate(conn: Connection, definitions: Definitions, run_date: dt.date) -> None:
    cap = definitions.settings.caps.per_customer_per_day
    # What other runs already put in the ledger for this customer and day counts against the cap.
    spent = (
        sa.select(outbox.c.customer_id, sa.func.count().label("n"))
        .where(outbox.c.slot_date == run_date, outbox.c.run_date != run_date, outbox.c.state.in_(LEDGER_SPENT_STATES))
        .group_by(outbox.c.customer_id)
        .subquery("spent")
    )
    cand = campaign_candidates
    ranked = (
        sa.select(
            cand.c.run_date,
            cand.c.campaign_id,
            cand.c.customer_id,
            cand.c.variant,
            sa.func.row_number()
            .over(partition_by=cand.c.customer_id, order_by=(cand.c.priority, cand.c.campaign_id))
            .label("rank"),
            (sa.literal(cap) - sa.func.coalesce(spent.c.n, 0)).label("budget"),
        )
        .select_from(cand.outerjoin(spent, spent.c.customer_id == cand.c.customer_id))
        .where(cand.c.run_date == run_date, cand.c.exclusion_reason.is_(None))
        .subquery("ranked")
    )
    profile_zone = sa.func.coalesce(customers.c.timezone, "")
    conn.execute(
        target_list.insert().from_select(
            ["run_date", "campaign_id", "customer_id", "variant", "send_at"],
            sa.select(
                ranked.c.run_date, ranked.c.campaign_id, ranked.c.customer_id, ranked.c.variant, send_slots.c.send_at
            )
            .select_from(
                ranked.join(customers, customers.c.customer_id == ranked.c.customer_id).join(
                    send_slots,
                    sa.and_(
                        send_slots.c.run_date == ranked.c.run_date,
                        send_slots.c.campaign_id == ranked.c.campaign_id,
                        send_slots.c.timezone == profile_zone,
                    ),
                )
            )
            .where(ranked.c.rank <= ranked.c.budget),
        )
    )
    conn.execute(
        target_exclusions.insert().from_select(
            ["run_date", "campaign_id", "customer_id", "reason"],
            sa.select(
                ranked.c.run_date,
                ranked.c.campaign_id,
                ranked.c.customer_id,
                sa.case((ranked.c.budget <= 0, "capped_global"), else_="lost_arbitration"),
            ).where(ranked.c.rank > ranked.c.budget),
        )
    )


def funnels(conn: Connection, run_date: dt.date, campaign_ids: list[str]) -> dict[str, Funnel]:
    out = {cid: Funnel(cid) for cid in campaign_ids}
    sizes = conn.execute(
        sa.select(campaign_candidates.c.campaign_id, sa.func.count())
        .where(campaign_candidates.c.run_date == run_date)
        .group_by(campaign_candidates.c.campaign_id)
    )
    for campaign_id, count in sizes:
        out.setdefault(campaign_id, Funnel(campaign_id)).segment_size = int(count)
    reasons = conn.execute(
        sa.select(target_exclusions.c.campaign_id, target_exclusions.c.reason, sa.func.count())
        .where(target_exclusions.c.run_date == run_date)
        .group_by(target_exclusions.c.campaign_id, target_exclusions.c.reason)
    )
    for campaign_id, reason, count in reasons:
        out.setdefault(campaign_id, Funnel(campaign_id)).excluded[reason] = int(count)
    targeted = conn.execute(
        sa.select(target_list.c.campaign_id, sa.func.count())
        .where(target_list.c.run_date == run_date)
        .group_by(target_list.c.campaign_id)
    )
    for campaign_id, count in targeted:
        out.setdefault(campaign_id, Funnel(campaign_id)).targeted = int(count)
    return out
