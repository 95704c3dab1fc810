"""Campaign metrics: late arrivals re-measured idempotently, the splits checked, small groups not judged."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from campaign_orchestrator.measurement import measure_date
from campaign_orchestrator.warehouse.tables import (
    campaign_metrics,
    delivery_batches,
    engagement_events,
    holdout_list,
    outbox,
    provider_engagement,
)
from tests.campaign_orchestrator.measurement.night import RUN, groups, measured_definitions, night, purchases

HOUR = dt.timedelta(hours=1)


def all_rows(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(campaign_metrics).order_by(campaign_metrics.c.campaign_id, campaign_metrics.c.variant)
        ).mappings()
        return [{k: v for k, v in r.items() if k != "computed_at"} for r in rows]


def row(engine, campaign_id="p", variant="*"):
    return next(r for r in all_rows(engine) if r["campaign_id"] == campaign_id and r["variant"] == variant)


def test_late_conversions_arriving_the_next_day_update_the_date_and_a_re_run_writes_the_same_rows(warehouse):
    defs = measured_definitions([{"id": "p", "holdout_percent": 30}])
    night(warehouse, defs, 200)
    targeted = groups(warehouse, "p")["targeted"]
    purchases(warehouse, [(c, at + HOUR, 5.0) for c, at in targeted[:10]], RUN)
    measure_date(warehouse, defs, defs.vocabulary, RUN)
    first = all_rows(warehouse)
    assert row(warehouse)["converted"] == 10
    measure_date(warehouse, defs, defs.vocabulary, RUN)
    assert all_rows(warehouse) == first  # idempotent: the same figures, row for row

    # the next night's import brings purchases made later inside the window
    purchases(warehouse, [(c, at + 30 * HOUR, 7.0) for c, at in targeted[10:25]], RUN + dt.timedelta(days=1))
    measure_date(warehouse, defs, defs.vocabulary, RUN)
    later = row(warehouse)
    assert later["converted"] == 25
    assert later["revenue"] == 10 * 5.0 + 15 * 7.0
    assert len(all_rows(warehouse)) == len(first)


def test_a_split_that_is_not_the_configured_one_is_flagged_and_not_judged(warehouse):
    defs = measured_definitions([{"id": "p", "holdout_percent": 50}])
    night(warehouse, defs, 400)
    purchases(warehouse, [(c, at + HOUR, 1.0) for c, at in groups(warehouse, "p")["targeted"][:150]], RUN)
    measure_date(warehouse, defs, defs.vocabulary, RUN)
    fair = row(warehouse)
    assert not fair["srm_mismatch"] and fair["srm_p_value"] > 0.001
    assert fair["significant"]  # 150 of ~200 converted against none held out

    # a broken step lost most of the holdout: the groups are no longer a random draw
    held = [c for c, _ in groups(warehouse, "p")["campaign"]]
    with warehouse.begin() as conn:
        conn.execute(holdout_list.delete().where(holdout_list.c.customer_id.in_(held[: len(held) * 3 // 4])))
    measure_date(warehouse, defs, defs.vocabulary, RUN)
    broken = row(warehouse)
    assert broken["srm_mismatch"] and broken["srm_p_value"] < 0.001
    assert not broken["significant"]


def test_groups_below_the_minimum_sample_are_too_small_to_tell(warehouse):
    defs = measured_definitions([{"id": "p", "holdout_percent": 10}], min_sample=50)
    night(warehouse, defs, 120)  # ~12 held out
    purchases(warehouse, [(c, at + HOUR, 1.0) for c, at in groups(warehouse, "p")["targeted"][:100]], RUN)
    measure_date(warehouse, defs, defs.vocabulary, RUN)
    small = row(warehouse)
    assert small["too_small"]
    assert not small["significant"]
    assert small["uplift"] > 0.5  # still reported, just not judged


def test_variants_are_compared_with_each_other_and_each_with_the_holdout(warehouse):
    variants = [{"id": "a", "weight": 1, "template": "t_a"}, {"id": "b", "weight": 1, "template": "t_b"}]
    defs = measured_definitions([{"id": "p", "holdout_percent": 20, "template": None, "variants": variants}])
    night(warehouse, defs, 600)
    with warehouse.connect() as conn:
        a_members = conn.execute(sa.select(outbox.c.customer_id, outbox.c.send_at).where(outbox.c.variant == "a")).all()
    purchases(warehouse, [(c, at + HOUR, 1.0) for c, at in a_members], RUN)
    measure_date(warehouse, defs, defs.vocabulary, RUN)
    a, b, whole = row(warehouse, variant="a"), row(warehouse, variant="b"), row(warehouse)
    assert a["converted"] == a["treatment"] and b["converted"] == 0
    assert a["treatment"] + b["treatment"] == whole["treatment"]
    assert whole["variants_p_value"] < 0.001
    assert a["significant"] and not b["significant"]
    assert not whole["srm_mismatch"]


def test_the_global_control_group_is_measured_across_every_campaign(warehouse):
    defs = measured_definitions([{"id": "p", "holdout_percent": 10}, {"id": "q", "priority": 5}], global_control=20)
    night(warehouse, defs, 500)
    treated = groups(warehouse, "p")["targeted"]
    purchases(warehouse, [(c, at + HOUR, 2.0) for c, at in treated[:200]], RUN)
    measure_date(warehouse, defs, defs.vocabulary, RUN)
    overall = row(warehouse, campaign_id="*")
    assert 60 <= overall["global_control"] <= 140  # 20% of 500
    assert overall["global_converted"] == 0
    assert overall["global_significant"]
    p = row(warehouse)
    assert p["held_out"] + p["treatment"] + p["global_control"] <= 500
    assert p["global_uplift"] > 0


def test_engagement_is_counted_per_message_from_the_provider_export_and_the_inbox(warehouse):
    defs = measured_definitions([{"id": "p"}])
    night(warehouse, defs, 30)
    with warehouse.begin() as conn:
        sent = conn.execute(sa.select(outbox.c.message_id, outbox.c.customer_id, outbox.c.variant)).all()
        conn.execute(
            delivery_batches.insert(),
            [
                {
                    "batch_id": "b1",
                    "run_date": RUN,
                    "shard_key": 0,
                    "destination": "braze",
                    "campaign_id": "p",
                    "variant": "default",
                    "send_at": RUN,
                    "messages": len(sent),
                    "state": "sent",
                    "attempts": 1,
                    "dispatch_id": "d-1",
                    "created_at": RUN,
                    "updated_at": RUN,
                    "sent_at": RUN,
                }
            ],
        )
        conn.execute(outbox.update().values(batch_id="b1"))
        at = dt.datetime(2026, 11, 23, 9, 0)
        events = [("delivery", c) for _, c, _ in sent[:20]] + [("open", c) for _, c, _ in sent[:8]]
        events += [("click", sent[0][1]), ("click", sent[0][1]), ("bounce", sent[29][1])]
        conn.execute(
            provider_engagement.insert(),
            [
                {
                    "event_id": f"e{i}",
                    "event": e,
                    "at": at,
                    "customer_id": c,
                    "campaign_id": "p-p",
                    "dispatch_id": "d-1",
                    "import_date": RUN,
                }
                for i, (e, c) in enumerate(events)
            ]
            + [
                {
                    "event_id": "stray",
                    "event": "open",
                    "at": at,
                    "customer_id": sent[1][1],
                    "campaign_id": "p-p",
                    "dispatch_id": "someone-else",
                    "import_date": RUN,
                }
            ],
        )
        conn.execute(
            engagement_events.insert(),
            [
                {
                    "customer_id": c,
                    "event_id": f"i{n}",
                    "message_id": m,
                    "campaign_id": "p",
                    "variant": v,
                    "event": "displayed",
                    "at": at,
                    "received_at": at,
                }
                for n, (m, c, v) in enumerate(sent[:5])
            ],
        )
    measure_date(warehouse, defs, defs.vocabulary, RUN)
    r = row(warehouse)
    assert (r["sent"], r["delivered"], r["opened"], r["clicked"], r["bounced"], r["displayed"]) == (30, 20, 8, 1, 1, 5)

    # the next day's export brings a late open: the date is measured again and counts it
    with warehouse.begin() as conn:
        conn.execute(
            provider_engagement.insert(),
            [
                {
                    "event_id": "late",
                    "event": "open",
                    "at": at + dt.timedelta(days=1),
                    "customer_id": sent[10][1],
                    "campaign_id": "p-p",
                    "dispatch_id": "d-1",
                    "import_date": RUN + dt.timedelta(days=1),
                }
            ],
        )
    measure_date(warehouse, defs, defs.vocabulary, RUN)
    assert row(warehouse)["opened"] == 9
