"""Candidates: a campaign's audience with the first reason that rules each customer out before
arbitration (suppressed, not_opted_in, no_device, held_out, quiet_hours_dropped, capped_campaign),
or none, with the variant and send instant; and whether the customer's message already stands
(kept). Holdouts, the global control group and variants are stable hashes of customer and campaign
(md5, identical on every engine)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from campaign_orchestrator.definitions.campaigns import Campaign
from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.outbox.ledger import standing_messages
from campaign_orchestrator.targeting.funnel import ExclusionReason
from campaign_orchestrator.warehouse.sqlfuncs import hash_bucket
from campaign_orchestrator.warehouse.tables import (
    app_installs,
    customers,
    outbox,
    preference_state,
    segment_membership,
    send_slots,
    suppressions,
)

BUCKETS = 10_000


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


def _in_campaign_holdout(campaign: Campaign, cid: sa.ColumnElement[Any]) -> sa.ColumnElement[bool] | None:
    if campaign.holdout_percent <= 0:
        return None
    threshold = round(campaign.holdout_percent * BUCKETS / 100)
    return hash_bucket(cid, f"holdout:{campaign.id}", BUCKETS) < threshold


def _in_global_control(definitions: Definitions, cid: sa.ColumnElement[Any]) -> sa.ColumnElement[bool] | None:
    share = definitions.settings.global_control_percent
    if share <= 0:
        return None
    return hash_bucket(cid, "global_control", BUCKETS) < round(share * BUCKETS / 100)


def _held_out(campaign: Campaign, definitions: Definitions, cid: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    tests = [t for t in (_in_campaign_holdout(campaign, cid), _in_global_control(definitions, cid)) if t is not None]
    return sa.or_(*tests) if tests else sa.false()


def control_group(campaign: Campaign, definitions: Definitions, cid: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """Which control group holds a held-out customer: `campaign` (its holdout), `global` or `both`
    (the two hashes are independent), so measurement compares each group with the treated."""
    own = _in_campaign_holdout(campaign, cid)
    every = _in_global_control(definitions, cid)
    if own is None or every is None:
        return sa.literal("campaign" if every is None else "global")
    return sa.case(
        (sa.and_(own, every), sa.literal("both")), (every, sa.literal("global")), else_=sa.literal("campaign")
    )


def candidates_select(campaign: Campaign, definitions: Definitions, run_date: dt.date) -> sa.Select[Any]:
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
    reasons: list[tuple[sa.ColumnElement[bool], ExclusionReason]] = [
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
