"""Sample-ratio mismatch: are a campaign's groups the sizes its configuration should have drawn?

Among the members that reached the holdout draw, the campaign's holdout (share h) and the global
control (share g) are independent hashes, so the expected split is treatment (1-h)(1-g), campaign
holdout only h(1-g), global only g(1-h), both hg; among the treatment, variants split by weight.
A chi-squared p-value below `srm_alpha` on either split flags the campaign: something (a kept
message, a changed holdout, a broken import) made the groups differ from a random draw. The
configuration is today's, so a holdout changed since the date is flagged too, which is right:
its groups were not drawn with the shares now configured.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.measurement.groups import BEFORE_HOLDOUT
from campaign_orchestrator.measurement.statistics import split_p_value
from campaign_orchestrator.warehouse.tables import campaign_candidates, holdout_list

SPLIT = ("treatment", "campaign", "global", "both")


def observed_split(conn: Connection, run_date: dt.date, campaign_id: str) -> tuple[dict[str, int], dict[str, int]]:
    """(members per group of SPLIT, treatment members per variant)."""
    cand, held = campaign_candidates.c, holdout_list.c
    groups = dict.fromkeys(SPLIT, 0)
    for group, n in conn.execute(
        sa.select(held.control_group, sa.func.count())
        .where(held.run_date == run_date, held.campaign_id == campaign_id)
        .group_by(held.control_group)
    ):
        groups[group or "campaign"] += int(n)
    variants: dict[str, int] = {}
    for variant, n in conn.execute(
        sa.select(cand.variant, sa.func.count())
        .where(
            cand.run_date == run_date,
            cand.campaign_id == campaign_id,
            sa.or_(cand.exclusion_reason.is_(None), cand.exclusion_reason.not_in(BEFORE_HOLDOUT)),
        )
        .group_by(cand.variant)
    ):
        variants[variant] = int(n)
    groups["treatment"] = sum(variants.values())
    return groups, variants


def split_mismatch(
    conn: Connection, definitions: Definitions, run_date: dt.date, campaign_id: str
) -> tuple[float | None, bool]:
    """(the smaller p-value of the two splits, whether it is below srm_alpha)."""
    campaign = definitions.campaigns.get(campaign_id)
    if campaign is None:
        return None, False
    groups, variants = observed_split(conn, run_date, campaign_id)
    h, g = campaign.holdout_percent / 100, definitions.settings.global_control_percent / 100
    shares = [(1 - h) * (1 - g), h * (1 - g), g * (1 - h), h * g]
    p_values = [split_p_value([groups[k] for k in SPLIT], shares)]
    if campaign.variants:
        total = sum(v.weight for v in campaign.variants)
        observed = [variants.get(v.id, 0) for v in campaign.variants]
        p_values.append(split_p_value(observed, [v.weight / total for v in campaign.variants]))
    found = [p for p in p_values if p is not None]
    if not found:
        return None, False
    smallest = min(found)
    return smallest, smallest < definitions.settings.measurement.srm_alpha
