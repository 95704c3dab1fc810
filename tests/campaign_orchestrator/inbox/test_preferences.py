"""Preferences through the API: at once, audited, and never undone by an older nightly export."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from campaign_orchestrator.ingest.contracts import load_contracts
from campaign_orchestrator.ingest.sources import SourcesConfig
from campaign_orchestrator.ingest.validate import ImportContext
from campaign_orchestrator.warehouse.tables import app_installs, device_tokens, preference_state, preferences
from tests.builders import import_night
from tests.campaign_orchestrator.inbox.conftest import SERVER_KEY, Inbox


def opt(inbox: Inbox, customer_id: str, headers: dict[str, str] | None = None, **channels: bool) -> dict:
    body = {"channels": channels, "source": "app_settings"}
    response = inbox.put(
        f"/v1/customers/{customer_id}/preferences", None if headers else customer_id, body, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_opting_out_of_in_app_hides_targeted_messages_at_once_but_not_public_notices(inbox: Inbox):
    c = inbox.customer()
    targeted = inbox.message(c)
    try:
        notice = inbox.message(None, campaign_id="public:outage", priority=1)
        assert inbox.feed_ids(c) == [notice, targeted]
        doc = opt(inbox, c, in_app=False)
        assert doc["channels"]["in_app"]["enabled"] is False
        assert inbox.feed_ids(c) == [notice]
        opt(inbox, c, in_app=True)
        assert inbox.feed_ids(c) == [notice, targeted]
    finally:
        inbox.end_public_messages()


def test_a_customer_without_an_in_app_opt_in_sees_no_targeted_messages(inbox: Inbox):
    c = inbox.customer(in_app=None)
    inbox.message(c)
    assert inbox.feed_ids(c) == []


def test_every_change_is_in_the_history_with_its_source_and_caller(inbox: Inbox):
    c = inbox.customer()
    opt(inbox, c, push=False, email=True)
    doc = opt(inbox, c, {"X-Api-Key": SERVER_KEY}, push=True)
    assert doc["channels"]["push"]["enabled"] is True and doc["channels"]["email"]["enabled"] is True
    history = [(h["channel"], h["enabled"], h["source"], h["caller"]) for h in doc["history"]]
    assert history[0] == ("push", True, "app_settings", "server")
    assert ("push", False, "app_settings", "customer") in history and (
        "email",
        True,
        "app_settings",
        "customer",
    ) in history
    got = inbox.get(f"/v1/customers/{c}/preferences", c).json()
    assert got == doc


def test_an_api_change_survives_the_nights_import_of_an_older_export(inbox: Inbox, tmp_path: Path, repo: Path):
    c = inbox.customer(in_app=None)
    inbox.message(c)
    opt(inbox, c, in_app=True)
    # Tonight's export still says what the CRM knew this morning: an opt-out, older than the API's opt-in.
    older = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%S")
    (tmp_path / "preferences.csv").write_text(f"customer_id,channel,enabled,ts,source\n{c},in_app,false,{older},crm\n")
    config = SourcesConfig.model_validate({"sources": {"preferences": {"path": "preferences.csv", "mode": "merge"}}})
    night = dt.date.today()
    ctx = ImportContext(run_date=night, sources_dir=tmp_path, archive_dir=tmp_path / "archive")
    import_night(inbox.engine, ctx, config, load_contracts(repo / "data_contracts"))
    with inbox.engine.connect() as conn:
        imported = conn.execute(sa.select(preferences.c.source).where(preferences.c.customer_id == c)).scalars().all()
        state = conn.execute(sa.select(preference_state).where(preference_state.c.customer_id == c)).one()
    assert imported == ["crm"]  # the export did land in the history
    assert bool(state.enabled) is True
    assert len(inbox.feed_ids(c)) == 1
    assert inbox.get(f"/v1/customers/{c}/preferences", c).json()["channels"]["in_app"]["enabled"] is True


def test_a_device_syncs_its_platform_token_and_pinpoint_endpoint(inbox: Inbox):
    c = inbox.customer()
    body = {"platform": "ios", "push_token": "tok-abc", "endpoint_id": f"ep-{c}"}
    response = inbox.put(f"/v1/customers/{c}/devices/shop-app", c, body)
    assert response.status_code == 200
    assert response.json()["push_token_present"] is True and "tok-abc" not in response.text
    inbox.put(f"/v1/customers/{c}/devices/shop-app", c, {"platform": "ios", "push_token": None})
    with inbox.engine.connect() as conn:
        row = conn.execute(sa.select(device_tokens).where(device_tokens.c.customer_id == c)).one()
    assert row.push_token is None and row.platform == "ios"
    assert inbox.put(f"/v1/customers/{c}/devices/shop-app", c, {"platform": "symbian"}).status_code == 422


def test_a_push_token_synced_by_the_api_survives_the_nights_older_app_installs_export(
    inbox: Inbox, tmp_path: Path, repo: Path
):
    c, gone = inbox.customer(), inbox.customer()
    inbox.put(f"/v1/customers/{c}/devices/shop-app", c, {"platform": "ios", "push_token": "tok-new"})
    inbox.put(f"/v1/customers/{gone}/devices/shop-app", gone, {"platform": "android", "push_token": None})
    morning = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%S")
    (tmp_path / "app_installs.csv").write_text(  # the export knows no token for c, an old one for gone
        "customer_id,app_id,platform,push_token_present,last_seen_at\n"
        f"{c},shop-app,ios,false,{morning}\n{gone},shop-app,android,true,{morning}\n"
    )
    config = SourcesConfig.model_validate({"sources": {"app_installs": {"path": "app_installs.csv"}}})
    ctx = ImportContext(run_date=dt.date.today(), sources_dir=tmp_path, archive_dir=tmp_path / "archive")
    import_night(inbox.engine, ctx, config, load_contracts(repo / "data_contracts"))
    with inbox.engine.connect() as conn:
        rows = conn.execute(
            sa.select(app_installs.c.customer_id, app_installs.c.push_token_present).where(
                app_installs.c.customer_id.in_([c, gone])
            )
        ).all()
    assert {r.customer_id: bool(r.push_token_present) for r in rows} == {c: True, gone: False}
