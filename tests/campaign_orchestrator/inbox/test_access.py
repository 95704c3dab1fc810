"""Who may call: a customer token reads only its customer, the server key any, the notices anyone."""

from __future__ import annotations

import re

from tests.campaign_orchestrator.inbox.conftest import RATE_LIMIT_PER_MINUTE, SERVER_KEY, Inbox, event


def test_a_token_reads_and_writes_only_its_own_customer(inbox: Inbox):
    mine, theirs = inbox.customer(), inbox.customer()
    secret_message = inbox.message(theirs, header="Private to them")
    own = inbox.token(mine)
    for response in (
        inbox.http.get(f"{inbox.url}/v1/customers/{theirs}/feed", headers=own, timeout=10),
        inbox.http.post(
            f"{inbox.url}/v1/customers/{theirs}/events",
            json={"events": [event(secret_message)]},
            headers=own,
            timeout=10,
        ),
        inbox.http.get(f"{inbox.url}/v1/customers/{theirs}/preferences", headers=own, timeout=10),
    ):
        assert response.status_code == 403
        assert "Private" not in response.text and secret_message not in response.text
    assert inbox.feed(theirs)["unseen"] == 1


def test_no_wrong_or_expired_token_gets_401_and_no_data(inbox: Inbox):
    c = inbox.customer()
    inbox.message(c, header="Hidden")
    path = f"{inbox.url}/v1/customers/{c}/feed"
    attempts = {
        "none": {},
        "garbage": {"Authorization": "Bearer not.a.token"},
        "other secret": inbox.token(c, secret="another-secret-" + "x" * 30),
        "expired": inbox.token(c, ttl=-10),
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
        "wrong server key": {"X-Api-Key": "y" * 40},
    }
    for name, headers in attempts.items():
        response = inbox.http.get(path, headers=headers, timeout=10)
        assert response.status_code == 401, name
        assert "Hidden" not in response.text, name
    assert "expired" in inbox.http.get(path, headers=attempts["expired"], timeout=10).json()["detail"]


def test_the_server_key_acts_for_any_customer_and_issues_tokens(inbox: Inbox):
    c = inbox.customer()
    m = inbox.message(c)
    key = {"X-Api-Key": SERVER_KEY}
    assert [
        i["id"] for i in inbox.http.get(f"{inbox.url}/v1/customers/{c}/feed", headers=key, timeout=10).json()["items"]
    ] == [m]
    issued = inbox.http.post(
        f"{inbox.url}/v1/tokens", json={"customer_id": c, "ttl_seconds": 120}, headers=key, timeout=10
    )
    assert issued.status_code == 200
    token = {"Authorization": f"Bearer {issued.json()['token']}"}
    assert inbox.http.get(f"{inbox.url}/v1/customers/{c}/feed", headers=token, timeout=10).status_code == 200
    assert (
        inbox.http.post(f"{inbox.url}/v1/tokens", json={"customer_id": c}, headers=token, timeout=10).status_code == 401
    )


def test_the_public_notices_need_no_token(inbox: Inbox):
    assert inbox.http.get(f"{inbox.url}/v1/public-messages", timeout=10).status_code == 200


def test_a_customer_over_the_rate_limit_gets_429_with_retry_after(inbox: Inbox):
    busy, calm = inbox.customer(), inbox.customer()
    statuses = [inbox.get(f"/v1/customers/{busy}/feed", busy).status_code for _ in range(RATE_LIMIT_PER_MINUTE + 1)]
    assert statuses[:-1] == [200] * RATE_LIMIT_PER_MINUTE
    limited = inbox.get(f"/v1/customers/{busy}/feed", busy)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert inbox.get(f"/v1/customers/{calm}/feed", calm).status_code == 200


def test_the_access_log_names_routes_never_customers_tokens_or_queries(inbox: Inbox):
    c = inbox.customer()
    inbox.message(c)
    inbox.get(f"/v1/customers/{c}/feed", c, params={"app_version": "4.4.4"})
    log = inbox.server_log()
    assert re.search(r"GET /v1/customers/\{customer_id\}/feed 200", log)
    assert c not in log and "4.4.4" not in log and "Bearer" not in log
