"""Engagement events: stored once per client id, caps enforced by the server at display."""

from __future__ import annotations

import datetime as dt
import threading

import requests
import sqlalchemy as sa

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.inbox.engagement import EVENT_NAMES
from campaign_orchestrator.inbox.models import EventType
from campaign_orchestrator.inbox.store import local_day, zone
from campaign_orchestrator.warehouse.tables import display_counts, engagement_events
from tests.campaign_orchestrator.inbox.conftest import Inbox, event


def stored(inbox: Inbox, customer_id: str) -> list[sa.Row]:
    with inbox.engine.connect() as conn:
        query = sa.select(engagement_events).where(engagement_events.c.customer_id == customer_id)
        return list(conn.execute(query.order_by(engagement_events.c.at)))


def test_the_api_accepts_exactly_the_event_names_the_engine_knows():
    assert set(EventType.__args__) == set(EVENT_NAMES)


def test_a_resent_event_is_a_duplicate_and_is_stored_once(inbox: Inbox):
    c = inbox.customer()
    m = inbox.message(c, campaign_id="welcome", treatment_id="b")
    click = event(m, "clicked", id="evt-1", session_id="s1", app_id="shop-ios")
    assert inbox.events(c, click) == ["accepted"]
    assert inbox.events(c, click, click) == ["duplicate", "duplicate"]
    rows = stored(inbox, c)
    assert len(rows) == 1
    row = rows[0]
    assert (row.message_id, row.campaign_id, row.variant, row.event) == (m, "welcome", "b", "clicked")
    assert (row.session_id, row.app_id) == ("s1", "shop-ios")


def test_pinpoint_event_names_are_spellings_of_ours(inbox: Inbox):
    c = inbox.customer()
    m = inbox.message(c)
    assert inbox.events(c, event(m, "_inapp.message_displayed"), event(m, "_inapp.message_dismissed")) == [
        "accepted",
        "accepted",
    ]
    assert sorted(r.event for r in stored(inbox, c)) == ["dismissed", "displayed"]
    assert inbox.feed_ids(c) == []


def test_an_event_for_another_customers_message_is_unknown_and_not_stored(inbox: Inbox):
    a, b = inbox.customer(), inbox.customer()
    theirs = inbox.message(b)
    assert inbox.events(a, event(theirs)) == ["unknown_message"]
    assert stored(inbox, a) == [] and inbox.feed(b)["unseen"] == 1


def test_a_total_cap_stops_displays_and_the_message_leaves_the_feed(inbox: Inbox):
    c = inbox.customer()
    m = inbox.message(c, total_cap=2)
    assert inbox.events(c, event(m), event(m), event(m)) == ["accepted", "accepted", "capped"]
    assert inbox.feed_ids(c) == []
    assert [r.event for r in stored(inbox, c)] == ["displayed", "displayed"]


def test_a_session_cap_counts_per_session(inbox: Inbox):
    c = inbox.customer()
    m = inbox.message(c, session_cap=1)
    assert inbox.events(c, event(m, session_id="s1"), event(m, session_id="s1")) == ["accepted", "capped"]
    assert inbox.feed_ids(c, session_id="s1") == []
    assert inbox.feed_ids(c, session_id="s2") == [m]
    assert inbox.events(c, event(m, session_id="s2")) == ["accepted"]


def test_a_daily_cap_counts_the_customers_local_day(inbox: Inbox):
    c = inbox.customer(timezone="Pacific/Auckland")
    m = inbox.message(c, campaign_id="daily_offer", daily_cap=1)
    today = local_day(zone("Pacific/Auckland"), utcnow())
    with inbox.engine.begin() as conn:  # yesterday (local) the cap was reached
        conn.execute(
            display_counts.insert().values(
                customer_id=c,
                campaign_id="daily_offer",
                scope=f"day:{(today - dt.timedelta(days=1)).isoformat()}",
                displays=1,
                updated_at=utcnow(),
            )
        )
    assert inbox.feed_ids(c) == [m]
    assert inbox.events(c, event(m), event(m)) == ["accepted", "capped"]
    assert inbox.feed_ids(c) == []
    with inbox.engine.connect() as conn:
        scopes = set(conn.execute(sa.select(display_counts.c.scope).where(display_counts.c.customer_id == c)).scalars())
    assert f"day:{today.isoformat()}" in scopes


def test_two_devices_racing_to_display_cannot_exceed_the_cap(inbox: Inbox):
    c = inbox.customer()
    m = inbox.message(c, total_cap=3)
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def device(n: int) -> None:
        session = requests.Session()
        headers = inbox.token(c)
        start.wait()
        for i in range(3):
            body = {"events": [event(m, session_id=f"device-{n}", id=f"d{n}-{i}")]}
            response = session.post(f"{inbox.url}/v1/customers/{c}/events", json=body, headers=headers, timeout=60)
            assert response.status_code == 200, response.text
            with lock:
                outcomes.extend(r["outcome"] for r in response.json()["results"])

    threads = [threading.Thread(target=device, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("accepted") == 3 and outcomes.count("capped") == 21
    assert len(stored(inbox, c)) == 3


def test_mark_all_read_changes_every_matching_message_at_once(inbox: Inbox):
    c = inbox.customer()
    ids = [inbox.message(c, campaign_id="news") for _ in range(3)] + [inbox.message(c, campaign_id="offer")]
    response = inbox.post(f"/v1/customers/{c}/messages/state", c, {"action": "read", "campaign_id": "news"})
    assert response.status_code == 200 and response.json() == {"changed": 3}
    assert inbox.feed_ids(c, status="unread") == [ids[3]]
    again = inbox.post(f"/v1/customers/{c}/messages/state", c, {"action": "read", "status": "unread"})
    assert again.json() == {"changed": 1} and inbox.feed(c)["unread"] == 0
    assert sum(1 for r in stored(inbox, c) if r.event == "read") == 4
