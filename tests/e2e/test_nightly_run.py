"""The whole night twice for one date: every message arrives exactly once, none to the opted out."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import Counter

import pytest
import sqlalchemy as sa

from campaign_orchestrator.connections import env_endpoint_resolver
from campaign_orchestrator.definitions.loader import load_definitions
from campaign_orchestrator.ingest.contracts import load_contracts, vocabulary
from campaign_orchestrator.run.context import RunConfig
from campaign_orchestrator.run.stages import run_all
from campaign_orchestrator.warehouse.engine import create_warehouse_engine
from campaign_orchestrator.warehouse.tables import outbox
from tests.builders import marketing_copy, messages_in_state
from tests.e2e.conftest import RUN_DATE, not_allowed


def check_deliveries(repo, export, sim, warehouse_url) -> None:
    defs = load_definitions(repo / "marketing", vocabulary(load_contracts(repo / "data_contracts")))
    by_provider_id = {c.provider_campaign_id: c for c in defs.campaigns.values() if c.provider_campaign_id}
    received = sim.get("/_sim/recipients")["recipients"]
    counts = Counter((r["campaign_id"], r["external_user_id"]) for r in received)
    assert received and max(counts.values()) == 1, "a message arrived twice"
    forbidden = not_allowed(export)
    for (provider_campaign, customer), _n in counts.items():
        channel = by_provider_id[provider_campaign].channel
        assert customer not in forbidden[channel], (provider_campaign, customer)
    engine = create_warehouse_engine(warehouse_url)
    with engine.connect() as conn:
        sent = [(m.campaign_id, m.customer_id) for m in messages_in_state(conn, "sent") if m.destination == "braze"]
    engine.dispose()
    assert {(defs.campaigns[c].provider_campaign_id, u) for c, u in sent} == set(counts)


def test_cli_run_twice_on_sqlite_delivers_once_and_says_so(repo, export, sim_process, tmp_path):
    url = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    marketing = marketing_copy(repo, tmp_path / "marketing")  # no lateness limit: RUN_DATE is past
    env = {**os.environ, "AIRFLOW_CONN_CAMPAIGNS_PROVIDER": sim_process.connection_uri}
    cmd = [
        sys.executable,
        "-m",
        "campaign_orchestrator.cli",
        "run",
        "--date",
        RUN_DATE.isoformat(),
        "--warehouse",
        url,
        "--sources",
        str(export),
        "--reports",
        str(tmp_path / "reports"),
        "--config",
        str(marketing),
    ]
    first = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "new messages in this run." in first.stdout and "Sent 0 new" not in first.stdout
    assert "TOTAL" not in first.stdout and "sent now + " in first.stdout
    assert "not scheduled tonight (weekly on fri)" in first.stdout  # anz_gold_weekly, on a Sunday
    delivered_first = sim_process.get("/_sim/stats")["recipients"]
    second = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Sent 0 new messages in this run: all" in second.stdout
    assert sim_process.get("/_sim/stats")["recipients"] == delivered_first
    check_deliveries(repo, export, sim_process, url)
    assert (tmp_path / "reports" / RUN_DATE.isoformat() / "run_report.md").exists()


def test_run_twice_on_postgres(repo, export, sim_process, tmp_path, postgres_url, monkeypatch):
    if postgres_url is None:
        pytest.skip("PostgreSQL is not reachable here; the end-to-end run ran on SQLite only")
    from campaign_orchestrator.warehouse.engine import drop_schema

    engine = create_warehouse_engine(postgres_url)
    drop_schema(engine)
    engine.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_CAMPAIGNS_PROVIDER", sim_process.connection_uri)
    marketing = marketing_copy(repo, tmp_path / "marketing")  # no lateness limit: RUN_DATE is past
    for _ in range(2):
        run_all(
            RunConfig(
                run_date=RUN_DATE,
                warehouse_url=postgres_url,
                config_dir=marketing,
                contracts_dir=repo / "data_contracts",
                sources_dir=export,
                reports_dir=tmp_path / "r",
            ),
            env_endpoint_resolver,
        )
    check_deliveries(repo, export, sim_process, postgres_url)


def test_a_broken_customers_file_sends_nothing_and_keeps_last_nights_tables(
    repo, export, sim_process, tmp_path, monkeypatch
):
    import json
    import shutil

    from campaign_orchestrator.ingest.contracts import ContractError
    from campaign_orchestrator.warehouse.tables import SOURCE_TABLES, preference_state

    monkeypatch.setenv("AIRFLOW_CONN_CAMPAIGNS_PROVIDER", sim_process.connection_uri)
    url = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    marketing = marketing_copy(repo, tmp_path / "marketing")  # no lateness limit: RUN_DATE is past

    def config(night, sources):
        return RunConfig(
            run_date=night,
            warehouse_url=url,
            config_dir=marketing,
            contracts_dir=repo / "data_contracts",
            sources_dir=sources,
            reports_dir=tmp_path / "reports",
            archive_dir=tmp_path / "archive",
        )

    run_all(config(RUN_DATE, export), env_endpoint_resolver)
    sent_night1 = sim_process.get("/_sim/stats")["recipients"]
    assert sent_night1 > 0

    def snapshot():
        engine = create_warehouse_engine(url)
        with engine.connect() as conn:
            out = {
                t.name: sorted(map(tuple, conn.execute(sa.select(t)).all()), key=repr)
                for t in [*SOURCE_TABLES.values(), preference_state]
            }
        engine.dispose()
        return out

    before = snapshot()
    night2 = tmp_path / "night2"
    shutil.copytree(export, night2)
    text = (night2 / "customers.csv").read_text().replace("customer_id,", "cust_id,", 1)
    (night2 / "customers.csv").write_text(text)
    tomorrow = RUN_DATE + dt.timedelta(days=1)
    with pytest.raises(ContractError, match="required_columns"):
        run_all(config(tomorrow, night2), env_endpoint_resolver)

    assert sim_process.get("/_sim/stats")["recipients"] == sent_night1, "something was sent"
    engine = create_warehouse_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.run_date == tomorrow)) == 0
    engine.dispose()
    assert snapshot() == before, "last night's tables changed"
    report = json.loads((tmp_path / "reports" / tomorrow.isoformat() / "run_report.json").read_text())
    failed = [i for i in report["imports"] if i["status"] == "failed"]
    assert [i["source"] for i in failed] == ["customers"] and "cust_id" in failed[0]["error"]
    assert report["totals"]["delivered_this_run"] == 0
