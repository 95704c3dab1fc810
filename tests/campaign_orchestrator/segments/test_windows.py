"""`windows: customer_local`: relative windows and dates in each customer's own calendar, from UTC-10
to UTC+14 and across a DST change, the same on SQLite, PostgreSQL and MariaDB; checked against a
reference that converts every time to the customer's wall clock and compares calendar dates."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from campaign_orchestrator.definitions.rules import Vocabulary
from campaign_orchestrator.segments.compile import compile_rule
from campaign_orchestrator.segments.memberships import compute_memberships
from campaign_orchestrator.segments.windows import local_windows, windows_for
from campaign_orchestrator.warehouse.tables import customers, events, segment_membership
from tests.builders import customer, load

# 2026-11-01 is the night New York leaves daylight time (a 25-hour local day); London left it on
# 2026-10-25. Run dates just after both.
RUN = dt.date(2026, 11, 2)
DEFAULT = "Europe/Berlin"
ZONES = {
    "HNL": "Pacific/Honolulu",  # UTC-10, no DST
    "KIR": "Pacific/Kiritimati",  # UTC+14
    "NYC": "America/New_York",  # DST ended on 2026-11-01
    "LON": "Europe/London",
    "UTC": "UTC",
    "NONE": None,  # no zone: the default
    "BAD": "Mars/Olympus",  # not a zone: the default
}
Z = dt.UTC


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args)  # naive UTC, as the warehouse stores times


# Times around each zone's boundary of the run date, the day before and the day before that.
TIMES = [
    utc(2026, 10, 31, 9),
    utc(2026, 10, 31, 12),
    utc(2026, 11, 1, 0, 30),
    utc(2026, 11, 1, 3, 30),
    utc(2026, 11, 1, 4, 30),
    utc(2026, 11, 1, 9, 0),
    utc(2026, 11, 1, 10, 30),
    utc(2026, 11, 1, 22, 30),
    utc(2026, 11, 1, 23, 30),
    utc(2026, 11, 2, 5, 0),
]
PROFILES = []
EVENTS = []
for code, zone in ZONES.items():
    for i, ts in enumerate(TIMES):
        cid = f"{code}{i:02d}"
        PROFILES.append(customer(cid, timezone=zone, last_purchase_at=ts))
        EVENTS.append({"customer_id": cid, "name": "app_open", "ts": ts, "amount": None, "import_date": RUN})

VOCAB = Vocabulary(attributes={"last_purchase_at": "datetime", "signup_date": "date"}, event_properties={})
RULES: dict[str, dict[str, Any]] = {
    "opened_in_the_last_day": {"event": "app_open", "within_last": "1d"},
    "opened_over_a_day_ago": {"event": "app_open", "more_than_ago": "1d"},
    "opened_in_the_last_2_days": {"event": "app_open", "within_last": "2d"},
    "opened_in_the_last_36_hours": {"event": "app_open", "within_last": "36h"},
    "last_opened_before_yesterday": {"event": "app_open", "last": {"before": "1d"}},
    "bought_in_the_last_day": {"attribute": "last_purchase_at", "within_last": "1d"},
    "bought_before_november": {"attribute": "last_purchase_at", "before": "2026-11-01"},
    "bought_on_november_1": {"attribute": "last_purchase_at", "on": "2026-11-01"},
    "bought_after_noon_local": {"attribute": "last_purchase_at", "after": "2026-11-01T12:00:00"},
    "bought_before_an_absolute_instant": {"attribute": "last_purchase_at", "before": "2026-11-01T04:00:00+00:00"},
}


def zone_of(cid: str) -> ZoneInfo:
    zone = ZONES[cid[:-2]]
    return ZoneInfo(zone if zone and zone != "Mars/Olympus" else DEFAULT)


def local(ts: dt.datetime, cid: str) -> dt.datetime:
    return ts.replace(tzinfo=Z).astimezone(zone_of(cid))


def expected(name: str, cid: str, ts: dt.datetime) -> bool:
    """The rule on the customer's wall clock, written without any UTC bound."""
    day = local(ts, cid).date()
    midnight = dt.datetime.combine(RUN, dt.time(), zone_of(cid))
    return {
        "opened_in_the_last_day": day >= RUN - dt.timedelta(days=1),
        "opened_over_a_day_ago": day < RUN - dt.timedelta(days=1),
        "opened_in_the_last_2_days": day >= RUN - dt.timedelta(days=2),
        "opened_in_the_last_36_hours": ts.replace(tzinfo=Z) >= midnight - dt.timedelta(hours=36),
        "last_opened_before_yesterday": day < RUN - dt.timedelta(days=1),
        "bought_in_the_last_day": day >= RUN - dt.timedelta(days=1),
        "bought_before_november": day < dt.date(2026, 11, 1),
        "bought_on_november_1": day == dt.date(2026, 11, 1),
        "bought_after_noon_local": local(ts, cid).replace(tzinfo=None) > dt.datetime(2026, 11, 1, 12),
        "bought_before_an_absolute_instant": ts < utc(2026, 11, 1, 4),
    }[name]


@pytest.fixture
def loaded(any_warehouse):
    load(any_warehouse, PROFILES)
    with any_warehouse.begin() as conn:
        conn.execute(events.insert(), EVENTS)
    return any_warehouse


def members(engine, windows) -> dict[str, set[str]]:
    with engine.begin() as conn:
        compute_memberships(conn, RULES, VOCAB, RUN, (), windows)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(segment_membership.c.segment_id, segment_membership.c.customer_id)).all()
    found: dict[str, set[str]] = {name: set() for name in RULES}
    for sid, cid in rows:
        found[sid].add(cid)
    return found


def test_customer_local_windows_follow_each_customers_calendar(loaded):
    with loaded.connect() as conn:
        windows = local_windows(conn, RUN, DEFAULT)
    got = members(loaded, windows)
    for name in RULES:
        want = {p["customer_id"] for p in PROFILES if expected(name, p["customer_id"], p["last_purchase_at"])}
        assert got[name] == want, name


def test_the_boundary_day_differs_from_utc_where_it_should(loaded):
    with loaded.connect() as conn:
        windows = local_windows(conn, RUN, DEFAULT)
    local_members = members(loaded, windows)["opened_in_the_last_day"]
    utc_members = members(loaded, None)["opened_in_the_last_day"]
    # 2026-10-31 12:00Z is already 1 November 02:00 in Kiritimati (UTC+14): in its last day, not in UTC's.
    assert "KIR01" in local_members and "KIR01" not in utc_members
    # 2026-11-01 09:00Z is still 31 October 23:00 in Honolulu (UTC-10): in UTC's last day, not its own.
    assert "HNL05" in utc_members and "HNL05" not in local_members
    # New York's 1 November began at 04:00Z (daylight time) and lasted 25 hours.
    assert "NYC03" not in local_members and "NYC04" in local_members
    # UTC customers and UTC windows agree; so does everyone under `windows: utc`.
    assert {c for c in local_members if c.startswith("UTC")} == {c for c in utc_members if c.startswith("UTC")}
    assert utc_members == {p["customer_id"] for p in PROFILES if p["last_purchase_at"] >= utc(2026, 11, 1)}


def test_customers_without_a_valid_zone_count_in_the_default_zone(loaded):
    with loaded.connect() as conn:
        windows = local_windows(conn, RUN, DEFAULT)
    assert "Mars/Olympus" not in windows.zones and DEFAULT not in windows.zones
    got = members(loaded, windows)["bought_on_november_1"]
    berlin = {p["customer_id"] for p in PROFILES if p["customer_id"].startswith(("NONE", "BAD"))}
    want = {
        c
        for c in berlin
        if local(next(p for p in PROFILES if p["customer_id"] == c)["last_purchase_at"], c).date()
        == dt.date(2026, 11, 1)
    }
    assert got & berlin == want and want


def test_the_setting_picks_the_mode(loaded):
    with loaded.connect() as conn:
        assert windows_for(conn, RUN, "utc", DEFAULT) is None
        assert windows_for(conn, RUN, "customer_local", DEFAULT) is not None


def test_bounds_are_bound_parameters_not_sql_text(loaded):
    with loaded.connect() as conn:
        windows = local_windows(conn, RUN, DEFAULT)
    predicate = compile_rule(RULES["opened_in_the_last_day"], VOCAB, RUN, windows=windows)
    sql = str(sa.select(customers.c.customer_id).where(predicate).compile(dialect=loaded.dialect))
    assert "Pacific/Kiritimati" not in sql and "2026-10-31" not in sql and "CASE" in sql


def test_hours_are_hours_across_a_dst_change():
    from campaign_orchestrator.segments.windows import LocalWindows

    # New York springs forward on 2024-03-10: 36 hours before its midnight of 11 March is 17:00 on
    # the 9th in local wall time, 16:00Z (05:00Z at midnight minus 36 real hours).
    windows = LocalWindows(dt.date(2024, 3, 11), ("America/New_York",), "UTC")
    assert windows._utc("America/New_York", dt.timedelta(hours=36), "datetime") == utc(2024, 3, 9, 16)
