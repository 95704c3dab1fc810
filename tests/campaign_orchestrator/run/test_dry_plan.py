"""A dry plan gives the funnels the night would compute, and leaves the warehouse as it found it."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from campaign_orchestrator.run.dry_plan import dry_plan, with_candidate
from campaign_orchestrator.warehouse.tables import (
    campaign_candidates,
    holdout_list,
    segment_membership,
    segment_stats,
    send_slots,
    target_exclusions,
    target_list,
)
from tests.builders import customer, definitions, load
from tests.campaign_orchestrator.targeting.test_arbitration import plan

RUN = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 2, 0)
TABLES = (segment_membership, segment_stats, campaign_candidates, target_list, target_exclusions, holdout_list)
TABLES += (send_slots,)


def snapshot(engine: sa.Engine) -> dict[str, list[tuple[object, ...]]]:
    with engine.connect() as conn:
        return {t.name: sorted(tuple(map(str, r)) for r in conn.execute(sa.select(t))) for t in TABLES}


def fill(engine: sa.Engine) -> list[str]:
    ids = [f"C{i:04d}" for i in range(300)]
    load(
        engine,
        [customer(c, tier="gold" if i % 3 else "silver") for i, c in enumerate(ids)],
        opted_in={"push": ids[:250], "email": ids},
        installs=[(c, "ios", True) for c in ids[:200]],
        suppressed=ids[:7],
    )
    return ids


SEGMENTS = {"everyone": {"attribute": "customer_id", "exists": True}, "gold": {"attribute": "tier", "eq": "gold"}}


def test_the_dry_plan_funnels_are_the_nights_and_nothing_is_written(warehouse):
    fill(warehouse)
    campaigns = [
        {"id": "a", "priority": 1, "holdout_percent": 10, "segment": "gold"},
        {"id": "b", "priority": 2, "channel": "email"},
    ]
    defs = definitions(campaigns, segments=SEGMENTS)
    before = snapshot(warehouse)
    dry = dry_plan(warehouse, defs, RUN, NOW)
    assert snapshot(warehouse) == before  # rolled back: not a row of memberships, stats or lists stays
    night = plan(warehouse, defs, RUN)
    assert {k: v.as_dict() for k, v in dry.items()} == {k: v.as_dict() for k, v in night.items()}
    assert dry["a"].held_out > 0 and dry["b"].targeted > 0


def test_a_draft_is_planned_as_if_approved_beside_the_running_campaigns(warehouse):
    fill(warehouse)
    defs = definitions([{"id": "a", "priority": 1}], segments=SEGMENTS)
    plan(warehouse, defs, RUN)  # last night's lists exist: the dry plan must leave them exactly so
    before = snapshot(warehouse)
    draft = defs.campaigns["a"].model_copy(update={"id": "new", "priority": 0, "status": "draft"})
    assert not draft.is_active(RUN) and draft.scheduled_on(RUN)
    funnels = dry_plan(warehouse, with_candidate(defs, draft), RUN, NOW)
    assert set(funnels) == {"a", "new"}
    # The new campaign wins arbitration (priority 0) for everyone a would have reached.
    assert funnels["new"].targeted > 0 and funnels["a"].lost_arbitration == funnels["new"].targeted
    assert snapshot(warehouse) == before
