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

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.outbox.ledger import standing_messages
from campaign_orchestrator.targeting.candidates import candidates_select, control_group
from campaign_orchestrator.targeting.funnel import Funnel, funnels
from campaign_orchestrator.targeting.slots import write_slots
from campaign_orchestrator.warehouse.tables import (
    arbitration,
    campaign_candidates,
    holdout_list,
    outbox,
    send_slots,
    target_exclusions,
    target_list,
)

UNCAPPED = 1_000_000


# ---------------------------------------------------------------- send slots


# ---------------------------------------------------------------- candidates


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
    write_slots(conn, definitions, campaigns, run_date, now)
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
        select = candidates_select(campaign, definitions, run_date)
        conn.execute(campaign_candidates.insert().from_select(columns, select))
    _arbitrate(conn, definitions, run_date)
    cand = campaign_candidates
    for campaign in campaigns:
        conn.execute(
            holdout_list.insert().from_select(
                ["run_date", "campaign_id", "customer_id", "control_group", "send_at"],
                sa.select(
                    cand.c.run_date,
                    cand.c.campaign_id,
                    cand.c.customer_id,
                    control_group(campaign, definitions, cand.c.customer_id),
                    cand.c.send_at,
                ).where(
                    cand.c.run_date == run_date,
                    cand.c.campaign_id == campaign.id,
                    cand.c.exclusion_reason == "held_out",
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
