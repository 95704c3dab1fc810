"""The fault and crash tests' harness: the provider simulator over real HTTP (honouring
Idempotency-Key, or playing Braze, which does not), a marketing folder with one push and one in-app
campaign, a rendered outbox of n customers, and the check that each was delivered exactly once."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from campaign_devtools.provider_sim import make_server
from campaign_orchestrator.definitions.loader import load_definitions
from campaign_orchestrator.ingest.contracts import load_contracts, template_variables, vocabulary
from campaign_orchestrator.render.render import render_outbox
from campaign_orchestrator.warehouse.tables import inapp_messages, target_list
from tests.builders import customer, load, state_counts

RUN = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 12, 0)
PUSH, INBOX = "crash_push", "crash_inbox"


def _sim(idempotency):
    server = make_server("127.0.0.1", 0, api_key="k", idempotency=idempotency)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    yield url, server.store
    server.shutdown()
    server.server_close()


@pytest.fixture
def sim():
    """A simulator in this process (the delivery under test runs in threads or child processes) that
    honours Idempotency-Key, for the destinations these tests declare `honours_idempotency_key: true`."""
    yield from _sim("honour")


@pytest.fixture
def braze_sim():
    """The same, playing Braze: a repeated Idempotency-Key is a second delivery."""
    yield from _sim("ignore")


def set_faults(url: str, **faults: Any) -> None:
    requests.post(url + "/_sim/faults", json=faults, timeout=5).raise_for_status()


def stats(url: str) -> dict[str, Any]:
    return requests.get(url + "/_sim/stats", timeout=5).json()


def config_dir(repo: Path, tmp_path: Path, honours: bool = True, **delivery: Any) -> Path:
    """The repository's marketing folder with two campaigns (push to the provider, in-app to the
    store) and the delivery settings under test. `honours`: whether the `braze` destination honours
    Idempotency-Key (most tests here resend after faults and crashes, which only that makes safe; the
    shipped setting is false). No `max_lateness`: RUN is a past date delivered with today's clock."""
    import yaml

    target = tmp_path / "marketing"
    shutil.copytree(repo / "marketing", target)
    for f in (target / "campaigns").glob("*.yaml"):
        f.unlink()
    common = {"segment": "churned", "send_time": "now", "quiet_hours": "none"}
    (target / "campaigns" / "crash.yaml").write_text(
        yaml.safe_dump(
            {
                "campaigns": [
                    {
                        "id": PUSH,
                        "channel": "push",
                        "destination": "braze",
                        "provider_campaign_id": "p-crash",
                        "template": "winback_push",
                        **common,
                    },
                    {"id": INBOX, "channel": "in_app", "destination": "app_inbox", "template": "gold_offer", **common},
                ]
            }
        )
    )
    settings_path = target / "settings.yaml"
    settings = yaml.safe_load(settings_path.read_text())
    settings["delivery"] = {**settings["delivery"], "max_lateness": None, **delivery}
    settings["destinations"]["braze"]["honours_idempotency_key"] = honours
    settings_path.write_text(yaml.safe_dump(settings))
    return target


def seed(engine: sa.Engine, repo: Path, marketing: Path, n: int) -> tuple[Any, list[str]]:
    contracts = load_contracts(repo / "data_contracts")
    defs = load_definitions(marketing, vocabulary(contracts, frozenset({"beta_testers", "vip_list"})))
    ids = [f"K{i:05d}" for i in range(n)]
    load(engine, [customer(c, first_name=f"N{i}") for i, c in enumerate(ids)])
    with engine.begin() as conn:
        conn.execute(
            target_list.insert(),
            [
                {"run_date": RUN, "campaign_id": camp, "customer_id": c, "variant": "default", "send_at": NOW}
                for c in ids
                for camp in (PUSH, INBOX)
            ],
        )
    report = render_outbox(engine, defs, template_variables(contracts), RUN, NOW)
    assert report.rendered == {PUSH: n, INBOX: n}
    return defs, ids


def ledger(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return state_counts(conn)


def assert_exactly_once(engine: sa.Engine, url: str, store: Any, ids: list[str]) -> None:
    s = stats(url)
    assert s["duplicates"] == 0, s
    assert {user for (camp, user) in store.per_recipient if camp == "p-crash"} == set(ids)  # none outside the list
    assert all(count == 1 for count in store.per_recipient.values())
    with engine.connect() as conn:
        stored = conn.execute(sa.select(inapp_messages.c.customer_id)).scalars().all()
    assert sorted(stored) == ids
    assert ledger(engine) == {"sent": 2 * len(ids)}


def batch_states(engine: sa.Engine) -> dict[str, int]:
    from campaign_orchestrator.warehouse.tables import delivery_batches

    with engine.connect() as conn:
        rows = conn.execute(sa.select(delivery_batches.c.state, sa.func.count()).group_by(delivery_batches.c.state))
        return {state: int(n) for state, n in rows}
