"""The funnel of a campaign on a run date: segment size, one reason for every member left out,
and the target list (kept messages included); what `campaigns plan` and the run report show.

REASONS is the one list of exclusion reasons, in the order a candidate is judged."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.warehouse.tables import (
    campaign_candidates,
    target_exclusions,
    target_list,
)

# Why a segment member is not targeted: one reason each, the first that applies in this order.
ExclusionReason = Literal[
    "suppressed",
    "not_opted_in",
    "no_device",
    "held_out",
    "quiet_hours_dropped",
    "capped_campaign",
    "capped_global",
    "lost_arbitration",
]
REASONS: tuple[ExclusionReason, ...] = get_args(ExclusionReason)


@dataclass
class Funnel:
    campaign_id: str
    segment_size: int = 0
    excluded: dict[str, int] = field(default_factory=dict)  # ExclusionReason -> members
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
