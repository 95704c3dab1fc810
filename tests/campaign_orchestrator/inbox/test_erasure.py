"""`DELETE /v1/customers/{customer_id}`: the server key erases (202 with the request id, the feed
empty at once, the store's rows gone, the rest left to `campaigns erase --pending`), a customer
token gets 403 and no credential 401, and a service without the salt answers 503."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from campaign_orchestrator.cli import main
from campaign_orchestrator.warehouse.tables import customers, engagement_events, erasure_requests, inapp_messages
from tests.campaign_orchestrator.inbox.conftest import ERASURE_SALT, SERVER_KEY, Inbox, event, start_inbox


def test_the_server_key_erases_a_customer_and_the_feed_is_empty_at_once(
    inbox: Inbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, other = inbox.customer(), inbox.customer()
    m = inbox.message(c, header="For them")
    inbox.message(other)
    assert inbox.events(c, event(m)) == ["accepted"]
    answer = inbox.http.delete(f"{inbox.url}/v1/customers/{c}", headers={"X-Api-Key": SERVER_KEY}, timeout=30)
    assert answer.status_code == 202, answer.text
    doc = answer.json()
    assert doc["status"] == "accepted" and len(doc["request_id"]) == 36
    assert any("campaigns erase --pending" in w for w in doc["waiting_for"]) and c not in answer.text
    assert inbox.feed(c)["items"] == [] and len(inbox.feed(other)["items"]) == 1
    with inbox.engine.connect() as conn:
        for table in (customers, inapp_messages, engagement_events):
            assert not conn.scalar(sa.select(sa.func.count()).select_from(table).where(table.c.customer_id == c))
    assert c not in inbox.server_log()

    monkeypatch.setenv("CAMPAIGNS_ERASURE_SALT", ERASURE_SALT)
    args = ["erase", "--pending", "--warehouse", inbox.store_url, "--archive", str(tmp_path / "a")]
    args += ["--reports", str(tmp_path / "r"), "--config", str(inbox.config_dir)]
    monkeypatch.setenv("AIRFLOW_CONN_CAMPAIGNS_PROVIDER", "http://:k@127.0.0.1:9")  # nobody there
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "not finished" in result.output  # the provider cannot be reached
    assert doc["request_id"] in result.output and "provider braze" in result.output
    with inbox.engine.connect() as conn:
        row = conn.execute(sa.select(erasure_requests).where(erasure_requests.c.request_id == doc["request_id"])).one()
    assert row.rows_done_at and row.files_done_at and row.forwarded_at is None and row.finished_at is None


def test_a_customer_token_cannot_erase_not_even_its_own_customer(inbox: Inbox) -> None:
    c = inbox.customer()
    inbox.message(c)
    own = inbox.http.delete(f"{inbox.url}/v1/customers/{c}", headers=inbox.token(c), timeout=30)
    assert own.status_code == 403 and "server key" in own.json()["detail"]
    nobody = inbox.http.delete(f"{inbox.url}/v1/customers/{c}", timeout=30)
    assert nobody.status_code == 401
    wrong = inbox.http.delete(f"{inbox.url}/v1/customers/{c}", headers={"X-Api-Key": "w" * 40}, timeout=30)
    assert wrong.status_code == 401
    assert len(inbox.feed(c)["items"]) == 1


def test_a_service_without_the_erasure_salt_answers_503_and_erases_nothing(inbox: Inbox, tmp_path: Path) -> None:
    c = inbox.customer()
    inbox.message(c)
    process, url = start_inbox(inbox.store_url, inbox.config_dir, tmp_path / "inbox.log", CAMPAIGNS_ERASURE_SALT="")
    try:
        answer = inbox.http.delete(f"{url}/v1/customers/{c}", headers={"X-Api-Key": SERVER_KEY}, timeout=30)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert answer.status_code == 503 and answer.json()["detail"] == "erasure is not configured on this service"
    assert len(inbox.feed(c)["items"]) == 1
