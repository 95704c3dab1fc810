"""The feed: what shows, in which order, page by page, fresh and cacheable."""

from __future__ import annotations

import datetime as dt
import threading
import time

from campaign_orchestrator.clock import utcnow
from tests.campaign_orchestrator.inbox.conftest import Inbox, event


def test_the_feed_is_pinned_public_messages_then_priority_then_newest(inbox: Inbox):
    c = inbox.customer()
    now = utcnow()
    old_low = inbox.message(c, priority=4, created_at=now - dt.timedelta(hours=3))
    new_low = inbox.message(c, priority=4, created_at=now - dt.timedelta(hours=1))
    urgent = inbox.message(c, priority=1, created_at=now - dt.timedelta(hours=5))
    try:
        notice = inbox.message(None, campaign_id="public:outage", priority=5)
        assert inbox.feed_ids(c) == [notice, urgent, new_low, old_low]
        first = inbox.feed(c)["items"][0]
        assert first["pinned"] is True and first["public"] is True
    finally:
        inbox.end_public_messages()


def test_messages_not_started_or_expired_are_not_in_the_feed(inbox: Inbox):
    c = inbox.customer()
    now = utcnow()
    live = inbox.message(c)
    inbox.message(c, start_at=now + dt.timedelta(hours=1))
    inbox.message(c, start_at=now - dt.timedelta(days=3), end_at=now - dt.timedelta(seconds=1))
    assert inbox.feed_ids(c) == [live]


def test_pages_never_repeat_or_skip_a_message_while_new_ones_arrive(inbox: Inbox):
    c = inbox.customer()
    base = utcnow() - dt.timedelta(hours=2)
    existing = {inbox.message(c, priority=1 + i % 3, created_at=base + dt.timedelta(seconds=i)) for i in range(25)}
    stop = threading.Event()

    def arrive() -> None:  # the night delivering while the app pages
        while not stop.is_set():
            inbox.message(c, priority=2)
            time.sleep(0.01)

    writer = threading.Thread(target=arrive)
    writer.start()
    try:
        seen: list[str] = []
        page = inbox.feed(c, limit=4)
        seen += [i["id"] for i in page["items"]]
        while page["next_cursor"]:
            page = inbox.feed(c, limit=4, cursor=page["next_cursor"])
            seen += [i["id"] for i in page["items"]]
    finally:
        stop.set()
        writer.join()
    assert len(seen) == len(set(seen))
    assert existing <= set(seen)


def test_the_page_size_defaults_to_50_and_cannot_exceed_100(inbox: Inbox):
    c = inbox.customer()
    for _ in range(55):
        inbox.message(c)
    page = inbox.feed(c)
    assert len(page["items"]) == 50 and page["next_cursor"] and page["total"] == 55
    assert len(inbox.feed(c, limit=100)["items"]) == 55
    assert inbox.get(f"/v1/customers/{c}/feed", c, params={"limit": 101}).status_code == 422


def test_a_cursor_the_service_did_not_issue_is_a_clear_400(inbox: Inbox):
    c = inbox.customer()
    response = inbox.get(f"/v1/customers/{c}/feed", c, params={"cursor": "not-a-cursor"})
    assert response.status_code == 400 and "cursor" in response.json()["detail"]


def test_every_page_counts_total_unread_and_unseen(inbox: Inbox):
    c = inbox.customer()
    a, b, _c = inbox.message(c), inbox.message(c), inbox.message(c)
    assert inbox.events(c, event(a, "displayed"), event(b, "read")) == ["accepted", "accepted"]
    page = inbox.feed(c, limit=1)
    assert (page["total"], page["unread"], page["unseen"]) == (3, 2, 2)
    assert {i["id"] for i in inbox.feed(c, status="unread")["items"]} == {a, _c}
    assert inbox.feed_ids(c, status="read") == [b]


def test_dismissed_and_archived_messages_leave_the_feed_and_archived_ones_have_their_own_list(inbox: Inbox):
    c = inbox.customer()
    keep, dismissed, archived = inbox.message(c), inbox.message(c), inbox.message(c)
    assert inbox.events(c, event(dismissed, "dismissed"), event(archived, "archived")) == ["accepted"] * 2
    assert inbox.feed_ids(c) == [keep]
    assert inbox.feed_ids(c, status="archived") == [archived]


def test_an_item_carries_content_deep_link_and_state_timestamps(inbox: Inbox):
    c = inbox.customer()
    buttons = [{"text": "See", "action": "DEEP_LINK", "link": "shop://offers/members"}]
    m = inbox.message(c, buttons=buttons, header="Members", treatment_id="b")
    inbox.events(c, event(m, "clicked"))
    item = inbox.feed(c)["items"][0]
    assert item["header"] == "Members" and item["variant"] == "b" and item["layout"] == "MOBILE_FEED"
    assert item["deep_link"] == "shop://offers/members" and item["buttons"] == [{**buttons[0]}]
    assert item["data"] == {"k": "v"} and item["clicked_at"] and item["seen_at"] is None
    assert item["expires_at"].endswith("Z")


def test_a_message_linking_to_a_retired_route_stops_showing_without_a_restart(inbox: Inbox):
    c = inbox.customer()
    link = [{"text": "Go", "action": "DEEP_LINK", "link": "shop://retiring/screen"}]
    m = inbox.message(c, buttons=link)
    registry = inbox.config_dir / "deep_links.yaml"
    original = registry.read_text()
    try:
        registry.write_text(original + '  - {route: "shop://retiring/screen", active: true}\n')
        time.sleep(0.5)
        assert m in inbox.feed_ids(c)
        registry.write_text(original + '  - {route: "shop://retiring/screen", active: false}\n')
        time.sleep(0.5)
        assert m not in inbox.feed_ids(c)
    finally:
        registry.write_text(original)


def test_public_messages_honour_min_app_version_from_query_or_header(inbox: Inbox):
    c = inbox.customer()
    try:
        update = inbox.message(None, campaign_id="public:app_5_update", min_app_version="5.0.0", priority=1)
        outage = inbox.message(None, campaign_id="public:outage", priority=2)
        assert inbox.feed_ids(c, app_version="4.9.1")[:2] == [update, outage]
        assert inbox.feed_ids(c, app_version="5.0.0")[:1] == [outage]
        newer = inbox.get(f"/v1/customers/{c}/feed", c, headers={"X-App-Version": "5.1"}).json()
        assert [i["id"] for i in newer["items"]] == [outage]
        assert inbox.feed_ids(c)[:2] == [update, outage]  # no version sent: the app decides
        public = inbox.http.get(inbox.url + "/v1/public-messages", params={"app_version": "5.2"}, timeout=10)
        assert public.status_code == 200 and [i["id"] for i in public.json()["items"]] == [outage]
        bad = inbox.get(f"/v1/customers/{c}/feed", c, params={"app_version": "five"})
        assert bad.status_code == 400
    finally:
        inbox.end_public_messages()


def test_an_unchanged_feed_answers_304_and_a_new_message_shows_at_once(inbox: Inbox):
    c = inbox.customer()
    inbox.message(c)
    first = inbox.get(f"/v1/customers/{c}/feed", c)
    tag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, max-age=30"
    again = inbox.get(f"/v1/customers/{c}/feed", c, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == tag
    fresh = inbox.message(c)
    changed = inbox.get(f"/v1/customers/{c}/feed", c, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and fresh in [i["id"] for i in changed.json()["items"]]
