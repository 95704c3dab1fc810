"""The figures behind the HTML report's charts, on every engine: send times in the customers' own
hours (half-hour zones, summer time, no zone, a zone nobody knows), delivery per hour and kind."""

from __future__ import annotations

import datetime as dt

from campaign_orchestrator.reporting import chart_data
from campaign_orchestrator.warehouse.tables import campaign_metrics, delivery_batches, segment_stats, target_list
from tests.builders import customer, load

WINTER = dt.date(2026, 11, 22)
SUMMER = dt.date(2026, 7, 1)


def _targets(engine, rows):
    with engine.begin() as conn:
        conn.execute(
            target_list.insert(),
            [
                {"run_date": day, "campaign_id": cid, "customer_id": who, "variant": "default", "send_at": at}
                for day, cid, who, at in rows
            ],
        )


def test_send_times_are_counted_in_each_customers_local_hour(any_warehouse):
    load(
        any_warehouse,
        [
            customer("IN1", timezone="Asia/Kolkata"),  # UTC+05:30
            customer("NY1", timezone="America/New_York"),  # UTC-5 in November, UTC-4 in July
            customer("NONE", timezone=None),
            customer("MARS", timezone="Mars/Olympus_Mons"),
        ],
    )
    _targets(
        any_warehouse,
        [
            (WINTER, "welcome", "IN1", dt.datetime(2026, 11, 22, 2, 30)),  # 08:00 in Kolkata
            (WINTER, "welcome", "NY1", dt.datetime(2026, 11, 22, 13, 0)),  # 08:00 in New York (EST)
            (SUMMER, "welcome", "NY1", dt.datetime(2026, 7, 1, 12, 0)),  # 08:00 in New York (EDT)
            (WINTER, "welcome", "NONE", dt.datetime(2026, 11, 22, 9, 0)),  # no zone: UTC
            (WINTER, "welcome", "MARS", dt.datetime(2026, 11, 22, 10, 0)),  # unknown zone: UTC
            (WINTER, "nudge", "IN1", dt.datetime(2026, 11, 22, 14, 45)),  # 20:15 in Kolkata
        ],
    )
    with any_warehouse.connect() as conn:
        everything = chart_data.send_time_histogram(conn, SUMMER, WINTER)
        one = chart_data.send_time_histogram(conn, WINTER, WINTER, campaign="welcome")
    welcome = {hour: n for hour, n in enumerate(everything["welcome"]) if n}
    assert welcome == {8: 3, 9: 1, 10: 1}
    assert {hour: n for hour, n in enumerate(everything["nudge"]) if n} == {20: 1}
    assert list(one) == ["welcome"] and sum(one["welcome"]) == 4  # the summer night is outside the dates


def _batch(batch_id, state, send_at, messages, sent_at=None, campaign="welcome", run_date=WINTER):
    return {
        "batch_id": batch_id,
        "run_date": run_date,
        "shard_key": 0,
        "destination": "braze",
        "campaign_id": campaign,
        "variant": "default",
        "send_at": send_at,
        "messages": messages,
        "state": state,
        "attempts": 1,
        "created_at": dt.datetime(2026, 11, 22, 2, 0),
        "updated_at": dt.datetime(2026, 11, 22, 2, 0),
        "sent_at": sent_at,
    }


def test_delivery_counts_messages_per_hour_and_what_became_of_them(any_warehouse):
    at = dt.datetime(2026, 11, 22)
    with any_warehouse.begin() as conn:
        conn.execute(
            delivery_batches.insert(),
            [
                _batch("b1", "sent", at.replace(hour=1), 50, sent_at=at.replace(hour=1, minute=10)),  # sent now
                _batch("b2", "sent", at.replace(hour=9), 30, sent_at=at.replace(hour=1, minute=20)),  # scheduled
                _batch("b3", "failed", at.replace(hour=3), 5),
                _batch("b4", "claimed", at.replace(hour=3), 7),
                _batch("b5", "dead", at.replace(hour=4), 2),
                _batch("b6", "cancelled", at.replace(hour=4), 9),  # no message travels in it
                _batch("b7", "split", at.replace(hour=4), 11),
                _batch("b8", "sent", at.replace(hour=1), 40, sent_at=at.replace(hour=1, minute=5), campaign="other"),
                _batch(
                    "b9", "sent", at.replace(hour=1), 20, sent_at=at.replace(hour=1), run_date=WINTER.replace(day=1)
                ),
            ],
        )
    with any_warehouse.connect() as conn:
        points = chart_data.delivery_points(conn, WINTER, WINTER, campaign="welcome")
        both = chart_data.delivery_points(conn, WINTER, WINTER)
    assert [(p.hour.hour, p.kind, p.messages) for p in points] == [
        (1, "sent", 50),
        (3, "failed", 5),
        (3, "pending", 7),
        (4, "dead", 2),
        (9, "scheduled", 30),
    ]
    assert sum(p.messages for p in both if p.kind == "sent") == 90


def test_segment_sizes_metrics_and_the_campaigns_the_dates_know(any_warehouse):
    with any_warehouse.begin() as conn:
        conn.execute(
            segment_stats.insert(),
            [
                {
                    "run_date": WINTER - dt.timedelta(days=d),
                    "segment_id": s,
                    "members": 10 + d,
                    "entered": d,
                    "exited": 0,
                }
                for d in range(3)
                for s in ("gold", "churned")
            ],
        )
        conn.execute(
            campaign_metrics.insert(),
            [
                {"run_date": WINTER, "campaign_id": cid, "variant": "*", "computed_at": dt.datetime(2026, 11, 23)}
                for cid in ("*", "welcome")
            ],
        )
    _targets(any_warehouse, [(WINTER, "nudge", "X1", dt.datetime(2026, 11, 22, 9, 0))])
    with any_warehouse.connect() as conn:
        gold = chart_data.segment_points(conn, WINTER - dt.timedelta(days=1), WINTER, segments=["gold"])
        metrics = chart_data.metric_rows(conn, WINTER, WINTER)
        known = chart_data.known_campaigns(conn, WINTER, WINTER)
        before = chart_data.known_campaigns(conn, SUMMER, SUMMER)
    assert [(p.run_date.day, p.segment_id, p.members) for p in gold] == [(21, "gold", 11), (22, "gold", 10)]
    assert [(m.campaign_id, m.variant) for m in metrics] == [("welcome", "*"), ("*", "*")]  # the `*` row last
    assert metrics[1].label == "all campaigns vs global control" and metrics[0].interval() is None
    assert known == {"welcome", "nudge"} and before == set()
