"""Target lists: consent, suppression, devices, holdouts, caps, arbitration, send times, reasons."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign_orchestrator.rules import Vocabulary
from campaign_orchestrator.segments import compute_memberships
from campaign_orchestrator.tables import (
    campaign_candidates,
    holdout_list,
    outbox,
    target_exclusions,
    target_list,
)
from campaign_orchestrator.targeting import build_target_lists
from campaign_orchestrator.warehouse import create_warehouse_engine, ensure_schema, hash32
from tests.builders import customer, definitions, load

RUN = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 2, 0)
ATTRS = {"customer_id": "string", "tier": "string"}


def plan(engine, defs, run_date=RUN):
    with engine.begin() as conn:
        compute_memberships(
            conn, defs.rules(), Vocabulary(attributes=ATTRS, segments=frozenset(defs.segments)), run_date
        )
        return build_target_lists(conn, defs, run_date, NOW)


def rows(engine, table, *cols):
    with engine.connect() as conn:
        return {tuple(r) for r in conn.execute(sa.select(*(table.c[c] for c in cols)))}


def test_consent_suppression_and_devices_decide_who_is_eligible(warehouse):
    load(
        warehouse,
        [customer(c) for c in ("OK", "OUT", "NEVER", "SUP", "NOAPP", "NOTOKEN", "WEB")],
        opted_in={"push": ["OK", "OUT", "SUP", "NOAPP", "NOTOKEN", "WEB"]},
        prefs=[("OUT", "push", False, dt.datetime(2026, 2, 1))],
        installs=[
            ("OK", "ios", True),
            ("OUT", "ios", True),
            ("NEVER", "ios", True),
            ("SUP", "android", True),
            ("NOTOKEN", "ios", False),
            ("WEB", "web", True),
        ],
        suppressed=["SUP"],
    )
    defs = definitions([{"id": "p", "platforms": ["ios", "android"]}])
    funnel = plan(warehouse, defs)["p"]
    assert rows(warehouse, target_list, "customer_id") == {("OK",)}
    assert rows(warehouse, target_exclusions, "customer_id", "reason") == {
        ("OUT", "not_opted_in"),
        ("NEVER", "not_opted_in"),
        ("SUP", "suppressed"),
        ("NOAPP", "no_device"),
        ("NOTOKEN", "no_device"),
        ("WEB", "no_device"),
    }
    assert funnel.segment_size == 7 and funnel.eligible == 1 and funnel.targeted == 1


def test_priority_wins_and_the_daily_cap_holds_across_campaigns(warehouse):
    ids = [f"C{i}" for i in range(6)]
    load(
        warehouse,
        [customer(c) for c in ids],
        opted_in={"push": ids, "in_app": ids},
        installs=[(c, "ios", True) for c in ids],
    )
    defs = definitions(
        [
            {"id": "low", "priority": 50},
            {"id": "high", "priority": 1},
            {"id": "mid", "priority": 10, "channel": "in_app", "destination": "inbox"},
        ],
        per_customer_per_day=2,
    )
    funnels = plan(warehouse, defs)
    assert {f.targeted for f in (funnels["high"], funnels["mid"])} == {6}
    assert funnels["low"].targeted == 0 and funnels["low"].lost_arbitration == 6


def test_the_cap_counts_what_earlier_runs_put_in_the_ledger_that_day(warehouse):
    load(
        warehouse,
        [customer("A"), customer("B")],
        opted_in={"push": ["A", "B"]},
        installs=[("A", "ios", True), ("B", "ios", True)],
    )
    with warehouse.begin() as conn:
        conn.execute(
            outbox.insert().values(
                message_id="m-earlier",
                run_date=RUN - dt.timedelta(days=1),
                slot_date=RUN,
                campaign_id="other",
                customer_id="A",
                variant="default",
                channel="push",
                destination="braze",
                send_at=NOW,
                payload="{}",
                state="sent",
                attempts=1,
                shard_key=0,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    plan(warehouse, definitions([{"id": "p"}]))
    assert rows(warehouse, target_list, "customer_id") == {("B",)}
    assert rows(warehouse, target_exclusions, "customer_id", "reason") == {("A", "capped_global")}


def test_holdouts_are_stable_and_near_the_requested_share(warehouse):
    ids = [f"C{i:05d}" for i in range(2000)]
    load(warehouse, [customer(c) for c in ids], opted_in={"push": ids}, installs=[(c, "android", True) for c in ids])
    defs = definitions([{"id": "h", "holdout_percent": 20}], per_customer_per_day=5)
    plan(warehouse, defs)
    first = rows(warehouse, holdout_list, "customer_id")
    plan(warehouse, defs, RUN)  # a re-run rebuilds, and holds out the very same customers
    assert rows(warehouse, holdout_list, "customer_id") == first
    expected = {(c,) for c in ids if hash32(f"holdout:h:{c}") % 10_000 < 2000}
    assert first == expected
    assert 0.17 < len(first) / len(ids) < 0.23
    targeted = rows(warehouse, target_list, "customer_id")
    assert not (targeted & first) and len(targeted) + len(first) == len(ids)


def test_send_times_are_the_campaign_clock_in_each_customers_zone(warehouse):
    load(
        warehouse,
        [
            customer("LON", timezone="Europe/London"),
            customer("NYC", timezone="America/New_York"),
            customer("TYO", timezone="Asia/Tokyo"),
            customer("NONE", timezone=None),
        ],
        opted_in={"push": ["LON", "NYC", "TYO", "NONE"]},
        installs=[(c, "ios", True) for c in ("LON", "NYC", "TYO", "NONE")],
    )
    plan(warehouse, definitions([{"id": "p", "send_time": "10:00"}], default_timezone="America/Los_Angeles"))
    got = dict(rows(warehouse, target_list, "customer_id", "send_at"))
    assert got == {
        "LON": dt.datetime(2026, 11, 22, 10, 0),
        "NYC": dt.datetime(2026, 11, 22, 15, 0),
        "TYO": dt.datetime(2026, 11, 22, 1, 0),
        "NONE": dt.datetime(2026, 11, 22, 18, 0),
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    people=st.lists(
        st.tuples(st.booleans(), st.booleans(), st.booleans(), st.sampled_from(["ios", "android", "web", None])),
        min_size=1,
        max_size=25,
    ),
    cap=st.integers(min_value=0, max_value=3),
    holdout=st.sampled_from([0, 10, 50]),
)
def test_every_segment_member_is_targeted_or_has_exactly_one_reason(tmp_path_factory, people, cap, holdout):
    engine = create_warehouse_engine(f"sqlite:///{tmp_path_factory.mktemp('p') / 'w.sqlite'}")
    ensure_schema(engine)
    ids = [f"C{i}" for i in range(len(people))]
    load(
        engine,
        [customer(c) for c in ids],
        opted_in={
            "push": [c for c, p in zip(ids, people, strict=True) if p[0]],
            "email": [c for c, p in zip(ids, people, strict=True) if p[1]],
        },
        suppressed=[c for c, p in zip(ids, people, strict=True) if p[2]],
        installs=[(c, p[3], True) for c, p in zip(ids, people, strict=True) if p[3]],
    )
    defs = definitions(
        [{"id": "a", "priority": 1, "holdout_percent": holdout}, {"id": "b", "priority": 2, "channel": "email"}],
        per_customer_per_day=cap,
    )
    plan(engine, defs)
    members = rows(engine, campaign_candidates, "campaign_id", "customer_id")
    targeted = rows(engine, target_list, "campaign_id", "customer_id")
    excluded = rows(engine, target_exclusions, "campaign_id", "customer_id")
    assert targeted | excluded == members and not (targeted & excluded)
    by_customer: dict[str, int] = {}
    for _campaign, cid in targeted:
        by_customer[cid] = by_customer.get(cid, 0) + 1
    assert all(n <= cap for n in by_customer.values())
    person = dict(zip(ids, people, strict=True))
    for campaign, cid in targeted:
        opted_push, opted_email, suppressed, _platform = person[cid]
        assert not suppressed
        assert opted_push if campaign == "a" else opted_email
    engine.dispose()
