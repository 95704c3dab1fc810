"""Nights a data team really has, run through the whole pipeline against the simulator process.

A date run again after the marketers changed campaigns during the day (the documented way to
apply a fix): what was sent stands and counts against every cap, so no customer gets more than
the caps allow that day, and the report says how much was kept.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from campaign_orchestrator.connections import env_endpoint_resolver
from campaign_orchestrator.definitions.loader import load_definitions
from campaign_orchestrator.ingest.contracts import load_contracts, vocabulary
from campaign_orchestrator.outbox.ledger import message_ledger
from campaign_orchestrator.run.context import RunConfig
from campaign_orchestrator.run.stages import run_all
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, drop_schema
from tests.builders import marketing_copy
from tests.e2e.conftest import RUN_DATE

# Two pairs of push campaigns trade priorities and one holdout is dropped: the re-run picks other
# winners, and the customers the holdout kept out have budget left.
CHANGES = {
    "winback_push.yaml": {"priority": 50},
    "app_feature_push.yaml": {"priority": 10, "holdout_percent": 0},
    "ios_engagement_push.yaml": {"priority": 15},
    "repeat_buyer_nudge.yaml": {"priority": 40},
}


def _change(marketing: Path) -> None:
    for name, values in CHANGES.items():
        path = marketing / "campaigns" / name
        text = path.read_text()
        for key, value in values.items():
            text, n = re.subn(rf"^{key}: .*$", f"{key}: {value}", text, count=1, flags=re.M)
            assert n == 1, (name, key)
        path.write_text(text)


def _received_per_customer(sim, marketing: Path, repo: Path) -> tuple[Counter[str], Counter[str]]:
    """From what the simulator received: push messages per customer, provider messages per customer."""
    defs = load_definitions(marketing, vocabulary(load_contracts(repo / "data_contracts")))
    channel = {c.provider_campaign_id: c.channel for c in defs.campaigns.values() if c.provider_campaign_id}
    received = sim.get("/_sim/recipients")["recipients"]
    push = Counter(r["external_user_id"] for r in received if channel[r["campaign_id"]] == "push")
    return push, Counter(r["external_user_id"] for r in received)


def test_a_date_rerun_after_campaigns_changed_keeps_what_was_sent_and_holds_every_cap(
    repo, export, sim_process, tmp_path, warehouse_url, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_CONN_CAMPAIGNS_PROVIDER", sim_process.connection_uri)
    engine = create_warehouse_engine(warehouse_url)
    drop_schema(engine)
    marketing = marketing_copy(repo, tmp_path / "marketing")  # no lateness limit: RUN_DATE is past

    def night(run_id: str) -> dict:
        config = RunConfig(
            run_date=RUN_DATE,
            warehouse_url=warehouse_url,
            config_dir=marketing,
            contracts_dir=repo / "data_contracts",
            sources_dir=export,
            reports_dir=tmp_path / "reports",
            archive_dir=tmp_path / "archive",
            run_id=run_id,
        )
        path = run_all(config, env_endpoint_resolver)
        return json.loads(path.read_text())

    first = night("first")
    assert first["totals"]["kept"] == 0
    _change(marketing)
    second = night("after_the_change")

    settings = load_definitions(marketing, vocabulary(load_contracts(repo / "data_contracts"))).settings
    push_cap, daily_cap = settings.caps.per_channel_per_day["push"], settings.caps.per_customer_per_day
    push, provider = _received_per_customer(sim_process, marketing, repo)
    assert max(push.values()) <= push_cap, f"{sum(n > push_cap for n in push.values())} customers got two pushes"
    assert max(provider.values()) <= daily_cap
    with engine.connect() as conn:  # every channel, the in-app store included, from the ledger
        ledger = message_ledger()
        per_customer = Counter(
            conn.execute(sa.select(ledger.c.customer_id).where(ledger.c.state.in_(("sent", "unknown")))).scalars()
        )
    engine.dispose()
    assert max(per_customer.values()) <= daily_cap, "the daily cap does not hold over the two runs"

    totals = second["totals"]
    assert totals["kept"] > 0  # what the first run sent stands...
    assert totals["delivered_this_run"] > 0  # ... and the budget it left was filled by the new winners
    assert totals["delivered"] <= totals["targeted"] + totals["delivered_not_targeted"]
    summary = (tmp_path / "reports" / RUN_DATE.isoformat() / "run_report.md").read_text()
    assert "kept from earlier runs of the date" in summary
    print(
        f"re-run after the change: {totals['kept']} kept, {totals['delivered_this_run']} new; "
        f"customers with two pushes: {sum(n > push_cap for n in push.values())}"
    )
