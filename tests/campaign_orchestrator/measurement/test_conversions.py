"""Conversions: the attribution window, counted from each member's own (counterfactual) send instant."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from campaign_orchestrator.measurement import measure_date
from campaign_orchestrator.warehouse.tables import campaign_metrics
from tests.campaign_orchestrator.measurement.night import RUN, groups, measured_definitions, night, purchases

CAMPAIGN = {"id": "p", "holdout_percent": 50, "send_time": "18:00"}


def metrics(engine, campaign_id="p", variant="*"):
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(campaign_metrics).where(
                campaign_metrics.c.run_date == RUN,
                campaign_metrics.c.campaign_id == campaign_id,
                campaign_metrics.c.variant == variant,
            )
        ).one()
    return row._mapping


def test_a_conversion_one_second_outside_the_window_does_not_count(warehouse):
    defs = measured_definitions([CAMPAIGN])
    night(warehouse, defs, 40)
    targeted = groups(warehouse, "p")["targeted"]
    window = dt.timedelta(hours=72)
    (a, sent_a), (b, sent_b), (c, sent_c), (d, sent_d) = targeted[:4]
    purchases(
        warehouse,
        [
            (a, sent_a + window - dt.timedelta(seconds=1), 10.0),  # inside: counts
            (b, sent_b + window, 20.0),  # the window's end: outside
            (c, sent_c + window + dt.timedelta(seconds=1), 30.0),  # one second outside
            (d, sent_d - dt.timedelta(seconds=1), 40.0),  # before the send
        ],
        RUN + dt.timedelta(days=3),
    )
    measure_date(warehouse, defs, defs.vocabulary, RUN)
    row = metrics(warehouse)
    assert row["converted"] == 1
    assert row["revenue"] == 10.0
    assert row["window_hours"] == 72


def test_a_held_out_customer_converts_from_the_instant_they_would_have_been_sent(warehouse):
    defs = measured_definitions([CAMPAIGN])
    night(warehouse, defs, 40)
    held = groups(warehouse, "p")["campaign"]
    (x, would_x), (y, would_y) = held[:2]
    # 18:00 in London on the run date: every member's instant, sent or held out, is the slot's
    assert would_x == dt.datetime(2026, 11, 22, 18, 0)
    purchases(
        warehouse,
        [(x, would_x + dt.timedelta(minutes=5), 12.5), (y, would_y - dt.timedelta(minutes=5), 99.0)],
        RUN + dt.timedelta(days=1),
    )
    measure_date(warehouse, defs, defs.vocabulary, RUN)
    row = metrics(warehouse)
    assert row["held_out_converted"] == 1
    assert row["held_out_revenue"] == 12.5
    assert row["converted"] == 0


def test_a_property_filter_narrows_what_counts_as_a_conversion(warehouse):
    conversion = {"event": "purchase", "within_hours": 24, "where": [{"property": "amount", "gte": 50}]}
    campaign = {**CAMPAIGN, "conversion": conversion}
    defs = measured_definitions([campaign])
    night(warehouse, defs, 40)
    (a, sent_a), (b, sent_b) = groups(warehouse, "p")["targeted"][:2]
    later = dt.timedelta(hours=1)
    purchases(warehouse, [(a, sent_a + later, 49.0), (b, sent_b + later, 50.0)], RUN + dt.timedelta(days=1))
    measure_date(warehouse, defs, defs.vocabulary, RUN)
    row = metrics(warehouse)
    assert (row["converted"], row["revenue"], row["window_hours"]) == (1, 50.0, 24)
