"""Target lists: consent, suppression, devices, holdouts, caps, arbitration, send times, reasons."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign_orchestrator.definitions.rules import Vocabulary
from campaign_orchestrator.segments.memberships import compute_memberships
from campaign_orchestrator.targeting.arbitration import build_target_lists
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, ensure_schema, hash32
from campaign_orchestrator.warehouse.tables import (
    campaign_candidates,
    holdout_list,
    outbox,
    target_exclusions,
    target_list,
)
from tests.builders import customer, definitions, deliver_target_list, load

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


# ---------------------------------------------------------------- hand-worked send times

DST_NIGHT = dt.date(2026, 3, 8)  # US clocks jump from 02:00 to 03:00 local; Europe still on winter time
ZONES = {
    "LON": "Europe/London",
    "BER": "Europe/Berlin",
    "TYO": "Asia/Tokyo",
    "KOL": "Asia/Kolkata",
    "SYD": "Australia/Sydney",
    "LAX": "America/Los_Angeles",
    "NYC": "America/New_York",
}


def zone_world(engine):
    ids = list(ZONES)
    load(
        engine,
        [customer(c, timezone=z) for c, z in ZONES.items()],
        opted_in={"push": ids},
        installs=[(c, "ios", True) for c in ids],
    )


def sends(engine, run_date, campaign_id):
    with engine.connect() as conn:
        return dict(
            conn.execute(
                sa.select(target_list.c.customer_id, target_list.c.send_at).where(
                    target_list.c.run_date == run_date, target_list.c.campaign_id == campaign_id
                )
            ).all()
        )


def reasons(engine, run_date, campaign_id):
    with engine.connect() as conn:
        return dict(
            conn.execute(
                sa.select(target_exclusions.c.customer_id, target_exclusions.c.reason).where(
                    target_exclusions.c.run_date == run_date, target_exclusions.c.campaign_id == campaign_id
                )
            ).all()
        )


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute)


def test_local_time_sends_across_seven_zones_on_a_dst_night(warehouse):
    zone_world(warehouse)
    defs = definitions(
        [{"id": "ten_am", "send_time": "10:00"}, {"id": "gap", "send_time": "02:30"}], per_customer_per_day=5
    )
    plan(warehouse, defs, DST_NIGHT)
    assert sends(warehouse, DST_NIGHT, "ten_am") == {
        "LON": at(8, 10),
        "BER": at(8, 9),
        "TYO": at(8, 1),
        "KOL": at(8, 4, 30),
        "SYD": at(7, 23),  # AEDT, UTC+11
        "LAX": at(8, 17),  # already PDT at 10:00, UTC-7
        "NYC": at(8, 14),  # already EDT at 10:00, UTC-4
    }
    gap = sends(warehouse, DST_NIGHT, "gap")
    assert gap["NYC"] == at(8, 7, 30)  # 02:30 does not exist in New York that night: 03:30 EDT
    assert gap["LAX"] == at(8, 10, 30)  # nor in Los Angeles: 03:30 PDT
    assert gap["BER"] == at(8, 1, 30)


def test_quiet_hours_move_or_drop(warehouse):
    zone_world(warehouse)
    quiet = {"start": "21:00", "end": "08:00"}
    defs = definitions(
        [
            {"id": "late_move", "send_time": "22:00", "quiet_hours": {**quiet, "fallback": "move"}},
            {"id": "late_drop", "send_time": "22:00", "quiet_hours": {**quiet, "fallback": "drop"}},
            {"id": "lunch", "send_time": "12:30", "quiet_hours": {"start": "12:00", "end": "14:00"}},
            {"id": "right_now", "send_time": "now", "quiet_hours": quiet},
        ],
        per_customer_per_day=5,
    )
    with warehouse.begin() as conn:
        compute_memberships(
            conn, defs.rules(), Vocabulary(attributes=ATTRS, segments=frozenset(defs.segments)), DST_NIGHT
        )
        build_target_lists(conn, defs, DST_NIGHT, at(8, 3))  # the run happens at 03:00 UTC
    moved = sends(warehouse, DST_NIGHT, "late_move")
    assert moved["NYC"] == at(9, 12)  # 22:00 EDT -> 08:00 EDT the next morning
    assert moved["LON"] == at(9, 8)
    assert moved["TYO"] == at(8, 23)  # 22:00 JST on the 8th -> 08:00 JST on the 9th
    assert sends(warehouse, DST_NIGHT, "late_drop") == {}
    assert set(reasons(warehouse, DST_NIGHT, "late_drop").values()) == {"quiet_hours_dropped"}
    assert sends(warehouse, DST_NIGHT, "lunch")["BER"] == at(8, 13)  # 14:00 CET
    now = sends(warehouse, DST_NIGHT, "right_now")
    assert now["NYC"] == at(8, 12)  # 03:00Z is 22:00 EST on the 7th: moved to 08:00 EDT on the 8th
    assert now["TYO"] == at(8, 3)  # 12:00 in Tokyo: no quiet hours, sent at once


def test_a_weekly_schedule_runs_on_its_days_only(warehouse):
    zone_world(warehouse)
    defs = definitions(
        [
            {"id": "mondays", "schedule": {"type": "weekly", "days": ["mon"]}},
            {"id": "once", "schedule": {"type": "once", "date": "2026-03-10"}},
            {"id": "weekdays", "schedule": {"type": "cron", "cron": "0 9 * * 1-5"}},
        ],
        per_customer_per_day=5,
    )
    for day in (dt.date(2026, 3, 8), dt.date(2026, 3, 9), dt.date(2026, 3, 10)):
        plan(warehouse, defs, day)
    with warehouse.connect() as conn:
        runs = conn.execute(sa.select(target_list.c.campaign_id, target_list.c.run_date).distinct()).all()
    assert sorted((c, d.isoformat()) for c, d in runs) == [
        ("mondays", "2026-03-09"),
        ("once", "2026-03-10"),
        ("weekdays", "2026-03-09"),
        ("weekdays", "2026-03-10"),
    ]


def test_variants_split_by_weight_and_are_stable(warehouse):
    ids = [f"C{i:04d}" for i in range(2000)]
    load(warehouse, [customer(c) for c in ids], opted_in={"push": ids}, installs=[(c, "ios", True) for c in ids])
    defs = definitions(
        [
            {
                "id": "ab",
                "variants": [
                    {"id": "a", "weight": 1, "template": "t_ab"},
                    {"id": "b", "weight": 3, "template": "t_ab"},
                ],
                "template": None,
            }
        ],
        per_customer_per_day=5,
    )
    plan(warehouse, defs)
    with warehouse.connect() as conn:
        first = dict(conn.execute(sa.select(target_list.c.customer_id, target_list.c.variant)).all())
    plan(warehouse, defs)
    with warehouse.connect() as conn:
        again = dict(conn.execute(sa.select(target_list.c.customer_id, target_list.c.variant)).all())
    assert first == again
    share_a = sum(1 for v in first.values() if v == "a") / len(first)
    assert 0.21 < share_a < 0.29
    assert first == {c: ("a" if hash32(f"variant:ab:{c}") % 10_000 < 2500 else "b") for c in ids}


def test_include_exclude_channel_caps_and_campaign_totals(warehouse):
    ids = [f"C{i}" for i in range(6)]
    load(
        warehouse,
        [customer(c, tier="gold" if i < 4 else "silver") for i, c in enumerate(ids)],
        opted_in={"push": ids, "email": ids},
        installs=[(c, "ios", True) for c in ids],
    )
    segments = {
        "everyone": {"attribute": "customer_id", "exists": True},
        "gold": {"attribute": "tier", "eq": "gold"},
        "vip": {"attribute": "customer_id", "in": ["C0"]},
    }
    defs = definitions(
        [
            {"id": "p1", "priority": 1, "segment": None, "include": ["gold"], "exclude": ["vip"]},
            {"id": "p2", "priority": 2},
            {"id": "e1", "priority": 3, "channel": "email", "caps": {"total": 1}},
        ],
        segments=segments,
        per_customer_per_day=3,
    )
    defs.settings.caps.per_channel_per_day["push"] = 1
    plan(warehouse, defs)
    assert set(sends(warehouse, RUN, "p1")) == {"C1", "C2", "C3"}  # gold minus vip
    assert set(sends(warehouse, RUN, "p2")) == {"C0", "C4", "C5"}  # push cap 1: p1 took the others
    assert set(reasons(warehouse, RUN, "p2").values()) == {"lost_arbitration"}
    assert set(sends(warehouse, RUN, "e1")) == set(ids)
    with warehouse.begin() as conn:  # the night is delivered
        deliver_target_list(conn, RUN, dt.datetime.combine(RUN, dt.time(2)))
    tomorrow = RUN + dt.timedelta(days=1)
    plan(warehouse, defs, tomorrow)
    assert sends(warehouse, tomorrow, "e1") == {}  # total cap 1 reached by last night
    assert set(reasons(warehouse, tomorrow, "e1").values()) == {"capped_campaign"}
