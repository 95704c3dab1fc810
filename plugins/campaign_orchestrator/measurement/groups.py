"""Who is compared with whom: a campaign's treatment group and its two control groups on a run date.

Treatment is intent to treat: every eligible member the holdouts did not hold out, whether or not
a message reached them in the end (a member later capped or outranked stays in). Comparing only
those sent to would compare customers arbitration picked with customers the hash picked, and
arbitration favours customers in fewer campaigns. Controls are the held-out members
(`holdout_list.control_group`: the campaign's own holdout, the global control group, or both, two
independent hashes). The campaign's comparison leaves out the global control, which no campaign
reaches: the treatment excludes it too, so both sides are customers other campaigns may message,
and only this campaign's decision tells them apart. Every member carries the instant it was,
or would have been, sent at: the start of its attribution window. Members without one (no slot) are not measured.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import sqlalchemy as sa

from campaign_orchestrator.warehouse.tables import campaign_candidates, holdout_list

Group = Literal["treatment", "holdout", "global"]
# The first reasons a member is left out before the holdout is drawn: such members are in no group.
BEFORE_HOLDOUT = ("suppressed", "not_opted_in", "no_device", "held_out")
CONTROL_GROUPS: dict[Group, tuple[str, ...]] = {"holdout": ("campaign",), "global": ("global", "both")}


def members(run_date: dt.date, campaign_id: str) -> sa.CompoundSelect[Any]:
    """(customer_id, variant, group, send_at) for every measured member of the campaign on the date."""
    cand, held = campaign_candidates, holdout_list
    treatment = sa.select(
        cand.c.customer_id,
        cand.c.variant,
        sa.literal("treatment").label("group"),
        cand.c.send_at,
    ).where(
        cand.c.run_date == run_date,
        cand.c.campaign_id == campaign_id,
        sa.or_(cand.c.exclusion_reason.is_(None), cand.c.exclusion_reason.not_in(BEFORE_HOLDOUT)),
        cand.c.send_at.is_not(None),
    )
    controls = [
        sa.select(cand.c.customer_id, cand.c.variant, sa.literal(name).label("group"), held.c.send_at)
        .select_from(
            held.join(
                cand,
                sa.and_(
                    cand.c.run_date == held.c.run_date,
                    cand.c.campaign_id == held.c.campaign_id,
                    cand.c.customer_id == held.c.customer_id,
                ),
            )
        )
        .where(
            held.c.run_date == run_date,
            held.c.campaign_id == campaign_id,
            held.c.control_group.in_(labels),
            held.c.send_at.is_not(None),
        )
        for name, labels in CONTROL_GROUPS.items()
    ]
    return treatment.union_all(*controls)


def everyone(run_date: dt.date, campaign_ids: list[str]) -> sa.Select[Any]:
    """Every campaign of the date at once against the global control: each customer once per group,
    from their earliest send instant of the date (variant `*`)."""
    parts = [members(run_date, cid).subquery(f"m_{i}") for i, cid in enumerate(campaign_ids)]
    union = sa.union_all(*(sa.select(p.c.customer_id, p.c.group, p.c.send_at) for p in parts)).subquery("all_members")
    return (
        sa.select(
            union.c.customer_id,
            sa.literal("*").label("variant"),
            union.c.group,
            sa.func.min(union.c.send_at).label("send_at"),
        )
        .where(union.c.group.in_(("treatment", "global")))
        .group_by(union.c.customer_id, union.c.group)
    )
