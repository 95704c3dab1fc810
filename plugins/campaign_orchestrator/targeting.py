"""Target lists: who each active campaign sends to on a run date, when, and why everyone else not.

All set-based SQL, per run date, rebuilt from scratch on a re-run:

1. send slots: per campaign and customer time zone, the UTC send instant of the campaign's clock
   time, moved out of quiet hours or dropped (computed once per zone in Python, joined in);
2. candidates: the campaign's audience (segment, or include minus exclude) with the first reason
   that rules each customer out before arbitration (suppressed, not_opted_in, no_device,
   held_out, quiet_hours_dropped, capped_campaign) or none, the variant and the send instant;
3. arbitration: the eligible candidates of all campaigns ranked per customer by priority, first
   per channel against the channel cap, then overall against the daily cap, each cap minus what
   already stands in the ledger for that day; the rest are capped_global (the budget was spent
   before this run) or lost_arbitration (a higher-priority campaign took it).

Caps are a property of what customers receive, not of one run. Every message of the day that was
sent, is in flight or may have been delivered (`ledger.standing_messages`) counts against every
cap, whichever run or run date wrote it. A candidate whose message already stands is `kept`: it is
on the target list again, outside arbitration, whatever this run would decide; a re-run after a
change of priorities, holdouts or segments only fills the budget that is left. The date's messages
that never left (pending, failed, held) are decided afresh, and those no longer targeted are
cancelled at render.

Holdouts, the global control group and variants are stable hashes of customer and campaign (md5,
identical on every engine): the same customer stays in a campaign's control group every night.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.campaign_spec import Campaign, QuietHours, clock
from campaign_orchestrator.definitions import Definitions
from campaign_orchestrator.ledger import standing_messages
from campaign_orchestrator.sqlfuncs import hash_bucket
from campaign_orchestrator.tables import (
    app_installs,
    arbitration,
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

BUCKETS = 10_000
REASONS = (
    "suppressed",
    "not_opted_in",
    "no_device",
    "held_out",
    "quiet_hours_dropped",
    "capped_campaign",
    "capped_global",
    "lost_arbitration",
)
UNCAPPED = 1_000_000


@dataclass
class Funnel:
    campaign_id: str
    segment_size: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    targeted: int = 0  # kept ones included
    kept: int = 0  # on the target list because an earlier run's message already stands

    @property
    def eligible(self) -> int:
        return self.segment_size - sum(self.excluded.get(r, 0) for r in ("suppressed", "not_opted_in", "no_device"))

    @property
    def held_out(self) -> int:
        return self.excluded.get("held_out", 0)

    @property
    def capped(self) -> int:
        return sum(self.excluded.get(r, 0) for r in ("capped_campaign", "capped_global"))

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
            "kept": self.kept,
            "excluded": {r: self.excluded.get(r, 0) for r in REASONS if self.excluded.get(r)},
        }


# ---------------------------------------------------------------- send slots


@dataclass(frozen=True)
class Slot:
    send_at: dt.datetime  # naive UTC
    dropped: bool


def slot_for(
    campaign: Campaign, zone: str, run_date: dt.date, now: dt.datetime, default_zone: str, quiet: QuietHours | None
) -> Slot:
    """When a customer in `zone` ('' = no zone on the profile) gets the campaign on run_date."""
    name = campaign.send_timezone or zone or default_zone
    try:
        tz = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo(default_zone)
    at = campaign.send_clock()
    if at is None:
        local = now.replace(tzinfo=dt.UTC).astimezone(tz)
    else:
        local = dt.datetime.combine(run_date, at, tzinfo=tz)
        local = local.astimezone(dt.UTC).astimezone(tz)  # normalise a time skipped by a DST change
    if quiet is not None and quiet.contains(local.time().replace(second=0, microsecond=0)):
        if quiet.fallback == "drop":
            return Slot(naive_utc(local), dropped=True)
        end = clock(quiet.end)
        moved = dt.datetime.combine(local.date(), end, tzinfo=tz)
        if moved <= local:
            moved = dt.datetime.combine(local.date() + dt.timedelta(days=1), end, tzinfo=tz)
        local = moved.astimezone(dt.UTC).astimezone(tz)
    return Slot(naive_utc(local), dropped=False)


def naive_utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def quiet_hours_of(campaign: Campaign, definitions: Definitions) -> QuietHours | None:
    if campaign.quiet_hours == "none":
        return None
    if isinstance(campaign.quiet_hours, QuietHours):
        return campaign.quiet_hours
    return definitions.settings.quiet_hours


# ---------------------------------------------------------------- candidates


def _member_of(segment_id: str, run_date: dt.date) -> sa.ColumnElement[bool]:
    return sa.exists().where(
        segment_membership.c.run_date == run_date,
        segment_membership.c.segment_id == segment_id,
        segment_membership.c.customer_id == customers.c.customer_id,
    )


def _devices(campaign: Campaign) -> sa.Subquery | None:
    """Customers with the app (and token, platform) the channel needs; None for email."""
    if campaign.channel == "email":
        return None
    conds: list[sa.ColumnElement[bool]] = []
    if campaign.channel == "push":
        conds.append(app_installs.c.push_token_present == sa.true())
    if campaign.platforms:
        conds.append(app_installs.c.platform.in_(campaign.platforms))
    if campaign.app_ids:
        conds.append(app_installs.c.app_id.in_(campaign.app_ids))
    return sa.select(app_installs.c.customer_id).where(*conds).distinct().subquery("devices")


def variant_of(campaign: Campaign, cid: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The A/B variant of a customer: a stable weighted hash, so previews and re-runs agree."""
    if not campaign.variants:
        return sa.literal("default")
    total = sum(v.weight for v in campaign.variants)
    bucket = hash_bucket(cid, f"variant:{campaign.id}", BUCKETS)
    edges, running = [], 0.0
    for v in campaign.variants[:-1]:
        running += v.weight
        edges.append((bucket < round(running / total * BUCKETS), sa.literal(v.id)))
    return sa.case(*edges, else_=sa.literal(campaign.variants[-1].id))


def _held_out(campaign: Campaign, definitions: Definitions, cid: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    tests = []
    if campaign.holdout_percent > 0:
        threshold = round(campaign.holdout_percent * BUCKETS / 100)
        tests.append(hash_bucket(cid, f"holdout:{campaign.id}", BUCKETS) < threshold)
    global_share = definitions.settings.global_control_percent
    if global_share > 0:
        tests.append(hash_bucket(cid, "global_control", BUCKETS) < round(global_share * BUCKETS / 100))
    return sa.or_(*tests) if tests else sa.false()


def _candidates_select(campaign: Campaign, definitions: Definitions, run_date: dt.date) -> sa.Select[Any]:
    c = customers
    cid = c.c.customer_id
    include, exclude = campaign.audience
    audience = sa.and_(
        sa.or_(*(_member_of(s, run_date) for s in include)),
        *(sa.not_(_member_of(s, run_date)) for s in exclude),
    )
    pref = preference_state.alias("pref")
    slot = send_slots.alias("slot")
    source: Any = (
        c.outerjoin(suppressions, suppressions.c.customer_id == cid)
        .outerjoin(
            pref, sa.and_(pref.c.customer_id == cid, pref.c.channel == campaign.channel, pref.c.enabled == sa.true())
        )
        .outerjoin(
            slot,
            sa.and_(
                slot.c.run_date == run_date,
                slot.c.campaign_id == campaign.id,
                slot.c.timezone == sa.func.coalesce(c.c.timezone, ""),
            ),
        )
    )
    reasons: list[tuple[sa.ColumnElement[bool], str]] = [
        (suppressions.c.customer_id.is_not(None), "suppressed"),
        (pref.c.customer_id.is_(None), "not_opted_in"),
    ]
    devices = _devices(campaign)
    if devices is None:
        reasons.append((c.c.email.is_(None), "no_device"))
    else:
        source = source.outerjoin(devices, devices.c.customer_id == cid)
        reasons.append((devices.c.customer_id.is_(None), "no_device"))
    reasons.append((_held_out(campaign, definitions, cid), "held_out"))
    reasons.append((slot.c.dropped == sa.true(), "quiet_hours_dropped"))
    capped = _campaign_caps(campaign, run_date)
    if capped is not None:
        source = source.outerjoin(capped, capped.c.customer_id == cid)
        reasons.append((capped.c.customer_id.is_not(None), "capped_campaign"))
    standing = standing_messages(
        run_date, outbox.c.campaign_id == campaign.id, outbox.c.slot_date == run_date, name="standing"
    )
    source = source.outerjoin(standing, standing.c.customer_id == cid)
    kept = standing.c.customer_id.is_not(None)
    # A message that stands is kept whatever tonight's rules say: no reason is recorded for it.
    reason = sa.case((kept, sa.null()), *((test, sa.literal(label)) for test, label in reasons), else_=sa.null())
    return (
        sa.select(
            sa.literal(run_date, sa.Date()),
            sa.literal(campaign.id),
            cid,
            sa.literal(campaign.channel),
            sa.literal(campaign.priority),
            variant_of(campaign, cid),
            slot.c.send_at,
            reason,
            kept,
        )
        .select_from(source)
        .where(audience)
    )


def _campaign_caps(campaign: Campaign, run_date: dt.date) -> sa.Subquery | None:
    """Customers this campaign may not message again: its total cap is reached by what stands in
    the ledger. (Its per-day cap, at least 1, holds by construction: a campaign has one message per
    customer and slot date, and a standing one is kept.)"""
    if campaign.caps.total is None:
        return None
    ledger = standing_messages(run_date, outbox.c.campaign_id == campaign.id, name="campaign_ledger")
    return (
        sa.select(ledger.c.customer_id)
        .group_by(ledger.c.customer_id)
        .having(sa.func.count() >= campaign.caps.total)
        .subquery("capped")
    )


# ---------------------------------------------------------------- building


def build_target_lists(
    conn: Connection, definitions: Definitions, run_date: dt.date, now: dt.datetime
) -> dict[str, Funnel]:
    """Rebuild the run date's slots, candidates, arbitration, target list, holdouts and exclusions."""
    for table in (campaign_candidates, arbitration, target_list, holdout_list, target_exclusions, send_slots):
        conn.execute(table.delete().where(table.c.run_date == run_date))
    campaigns = definitions.active_campaigns(run_date)
    if not campaigns:
        return {}
    _write_slots(conn, definitions, campaigns, run_date, now)
    columns = [
        "run_date",
        "campaign_id",
        "customer_id",
        "channel",
        "priority",
        "variant",
        "send_at",
        "exclusion_reason",
        "kept",
    ]
    for campaign in campaigns:
        select = _candidates_select(campaign, definitions, run_date)
        conn.execute(campaign_candidates.insert().from_select(columns, select))
    _arbitrate(conn, definitions, run_date)
    cand = campaign_candidates
    conn.execute(
        holdout_list.insert().from_select(
            ["run_date", "campaign_id", "customer_id"],
            sa.select(cand.c.run_date, cand.c.campaign_id, cand.c.customer_id).where(
                cand.c.run_date == run_date, cand.c.exclusion_reason == "held_out"
            ),
        )
    )
    conn.execute(
        target_exclusions.insert().from_select(
            ["run_date", "campaign_id", "customer_id", "reason"],
            sa.select(cand.c.run_date, cand.c.campaign_id, cand.c.customer_id, cand.c.exclusion_reason).where(
                cand.c.run_date == run_date, cand.c.exclusion_reason.is_not(None)
            ),
        )
    )
    return funnels(conn, run_date, [c.id for c in campaigns])


def _write_slots(
    conn: Connection, definitions: Definitions, campaigns: list[Campaign], run_date: dt.date, now: dt.datetime
) -> None:
    zones = {z or "" for (z,) in conn.execute(sa.select(customers.c.timezone).distinct())} | {""}
    rows = []
    for campaign in campaigns:
        quiet = quiet_hours_of(campaign, definitions)
        for zone in sorted(zones):
            slot = slot_for(campaign, zone, run_date, now, definitions.settings.default_timezone, quiet)
            rows.append(
                {
                    "run_date": run_date,
                    "campaign_id": campaign.id,
                    "timezone": zone,
                    "send_at": slot.send_at,
                    "dropped": slot.dropped,
                }
            )
    conn.execute(send_slots.insert(), rows)


def _spent(run_date: dt.date, by_channel: bool) -> sa.Subquery:
    """What already stands in the ledger for this day, per customer (and channel), whichever run
    or run date wrote it: kept messages included, since they take their place in the budget."""
    name = "spent_channel" if by_channel else "spent_total"
    ledger = standing_messages(run_date, outbox.c.slot_date == run_date, name=f"{name}_ledger")
    keys = [ledger.c.customer_id, *([ledger.c.channel] if by_channel else [])]
    return sa.select(*keys, sa.func.count().label("n")).group_by(*keys).subquery(name)


def _arbitrate(conn: Connection, definitions: Definitions, run_date: dt.date) -> None:
    caps = definitions.settings.caps
    cand = campaign_candidates
    by_channel, total = _spent(run_date, True), _spent(run_date, False)
    channel_cap = (
        sa.case(
            *((cand.c.channel == ch, sa.literal(n)) for ch, n in caps.per_channel_per_day.items()),
            else_=sa.literal(UNCAPPED),
        )
        if caps.per_channel_per_day
        else sa.literal(UNCAPPED)
    )
    ranked = (
        sa.select(
            cand.c.run_date,
            cand.c.campaign_id,
            cand.c.customer_id,
            cand.c.channel,
            cand.c.priority,
            cand.c.variant,
            cand.c.send_at,
            sa.func.row_number()
            .over(partition_by=(cand.c.customer_id, cand.c.channel), order_by=(cand.c.priority, cand.c.campaign_id))
            .label("channel_rank"),
            (channel_cap - sa.func.coalesce(by_channel.c.n, 0)).label("channel_budget"),
            (sa.literal(caps.per_customer_per_day) - sa.func.coalesce(total.c.n, 0)).label("total_budget"),
        )
        .select_from(
            cand.outerjoin(
                by_channel,
                sa.and_(by_channel.c.customer_id == cand.c.customer_id, by_channel.c.channel == cand.c.channel),
            ).outerjoin(total, total.c.customer_id == cand.c.customer_id)
        )
        .where(cand.c.run_date == run_date, cand.c.exclusion_reason.is_(None), cand.c.kept == sa.false())
    )
    conn.execute(
        arbitration.insert().from_select(
            [
                "run_date",
                "campaign_id",
                "customer_id",
                "channel",
                "priority",
                "variant",
                "send_at",
                "channel_rank",
                "channel_budget",
                "total_budget",
            ],
            ranked,
        )
    )
    arb = arbitration
    # Within the channel caps, rank again across channels against the daily cap. (A candidate that
    # loses overall never made a lower one lose its channel slot: greedy by priority gives the same.)
    feasible = (
        sa.select(
            arb,
            sa.func.row_number()
            .over(partition_by=arb.c.customer_id, order_by=(arb.c.priority, arb.c.campaign_id))
            .label("total_rank"),
        )
        .where(arb.c.run_date == run_date, arb.c.channel_rank <= arb.c.channel_budget)
        .subquery("feasible")
    )
    conn.execute(
        target_list.insert().from_select(
            ["run_date", "campaign_id", "customer_id", "variant", "send_at", "kept"],
            sa.select(
                cand.c.run_date, cand.c.campaign_id, cand.c.customer_id, cand.c.variant, cand.c.send_at, cand.c.kept
            )
            .where(cand.c.run_date == run_date, cand.c.kept == sa.true())
            .union_all(
                sa.select(
                    feasible.c.run_date,
                    feasible.c.campaign_id,
                    feasible.c.customer_id,
                    feasible.c.variant,
                    feasible.c.send_at,
                    sa.false(),
                ).where(feasible.c.total_rank <= feasible.c.total_budget)
            ),
        )
    )
    losers = [
        (
            sa.select(arb.c.run_date, arb.c.campaign_id, arb.c.customer_id, arb.c.channel_budget.label("budget")).where(
                arb.c.run_date == run_date, arb.c.channel_rank > arb.c.channel_budget
            )
        ),
        (
            sa.select(
                feasible.c.run_date,
                feasible.c.campaign_id,
                feasible.c.customer_id,
                feasible.c.total_budget.label("budget"),
            ).where(feasible.c.total_rank > feasible.c.total_budget)
        ),
    ]
    for lost in losers:
        sub = lost.subquery("lost")
        reason = sa.case((sub.c.budget <= 0, sa.literal("capped_global")), else_=sa.literal("lost_arbitration"))
        conn.execute(
            target_exclusions.insert().from_select(
                ["run_date", "campaign_id", "customer_id", "reason"],
                sa.select(sub.c.run_date, sub.c.campaign_id, sub.c.customer_id, reason),
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
    kept = sa.func.sum(sa.case((target_list.c.kept == sa.true(), 1), else_=0))
    targeted = conn.execute(
        sa.select(target_list.c.campaign_id, sa.func.count(), kept)
        .where(target_list.c.run_date == run_date)
        .group_by(target_list.c.campaign_id)
    )
    for campaign_id, count, n_kept in targeted:
        funnel = out.setdefault(campaign_id, Funnel(campaign_id))
        funnel.targeted, funnel.kept = int(count), int(n_kept or 0)
    return out
