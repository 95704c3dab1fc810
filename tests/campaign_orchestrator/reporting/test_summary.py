"""The night's summary tells the truth: where each sent message went (sent now or scheduled at the
provider, or written to the in-app store), the campaigns with nothing tonight, and totals of
messages only. Checked on a real night (the repository's definitions, a generated export, the
provider simulator over HTTP) in an SQLite warehouse, and the split's SQL on every engine."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from campaign_devtools.demo import reconciliation, simulator_stats
from campaign_devtools.demo_data import generate
from campaign_devtools.provider_sim import make_server
from campaign_orchestrator.connections import env_endpoint_resolver
from campaign_orchestrator.definitions.campaigns import Schedule
from campaign_orchestrator.definitions.loader import load_definitions
from campaign_orchestrator.delivery.scheduling import SCHEDULE_MARGIN
from campaign_orchestrator.ingest.contracts import load_contracts, vocabulary
from campaign_orchestrator.reporting.markdown import render_markdown, summary_table
from campaign_orchestrator.reporting.report import build_run_report, delivery_split
from campaign_orchestrator.run.context import RunConfig
from campaign_orchestrator.run.stages import run_all
from campaign_orchestrator.warehouse.engine import create_warehouse_engine
from campaign_orchestrator.warehouse.tables import delivery_batches, inapp_messages, outbox
from tests.builders import marketing_copy, state_counts

RUN_DATE = dt.date(2026, 11, 22)  # a Sunday: anz_gold_weekly sends on Fridays
DISABLED = "big_spender_thanks"


@dataclass
class Night:
    report: dict[str, Any]
    stats: dict[str, Any]  # the simulator's /_sim/stats after the night
    received: list[dict[str, Any]]  # the simulator's /_sim/recipients
    marketing: Path
    warehouse_url: str


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory, repo: Path) -> Iterator[Night]:
    """One night of the repository's campaigns, one of them disabled, against a simulator."""
    root = tmp_path_factory.mktemp("summary")
    generate(root / "export", customers=1500, seed=11, as_of=RUN_DATE, bad_rows=3)
    marketing = marketing_copy(repo, root / "marketing")  # no lateness limit: RUN_DATE is past
    campaign = marketing / "campaigns" / f"{DISABLED}.yaml"
    campaign.write_text(campaign.read_text() + "enabled: false\n")
    server = make_server("127.0.0.1", 0, api_key="summary-key")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    url = f"sqlite:///{root / 'warehouse.sqlite'}"
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AIRFLOW_CONN_CAMPAIGNS_PROVIDER", base_url.replace("http://", "http://:summary-key@"))
            config = RunConfig(
                run_date=RUN_DATE,
                warehouse_url=url,
                config_dir=marketing,
                contracts_dir=repo / "data_contracts",
                sources_dir=root / "export",
                reports_dir=root / "reports",
                archive_dir=root / "archive",
            )
            path = run_all(config, env_endpoint_resolver)
        with urllib.request.urlopen(f"{base_url}/_sim/recipients", timeout=10) as response:
            received = json.load(response)["recipients"]
        yield Night(json.loads(path.read_text()), simulator_stats(base_url), received, marketing, url)
    finally:
        server.shutdown()
        server.server_close()


def test_sent_now_scheduled_and_in_app_add_up_to_the_ledgers_sent_messages(night: Night) -> None:
    engine = create_warehouse_engine(night.warehouse_url)
    with engine.connect() as conn:
        sent = Counter(
            dict(
                conn.execute(
                    sa.select(outbox.c.campaign_id, sa.func.count())
                    .select_from(outbox.join(delivery_batches, delivery_batches.c.batch_id == outbox.c.batch_id))
                    .where(outbox.c.run_date == RUN_DATE, delivery_batches.c.state == "sent")
                    .group_by(outbox.c.campaign_id)
                ).all()
            )
        )
        total_sent = state_counts(conn, outbox.c.run_date == RUN_DATE).get("sent", 0)
    engine.dispose()
    campaigns = night.report["campaigns"]
    assert total_sent > 0
    for cid, row in campaigns.items():
        assert row["sent_now"] + row["scheduled"] + row["in_app"] == row["delivered"] == sent.get(cid, 0), cid
    t = night.report["totals"]
    assert t["sent_now"] + t["scheduled"] + t["in_app"] == t["delivered"] == total_sent
    assert t["sent_now"] == sum(r["sent_now"] for r in campaigns.values())


def test_the_provider_part_is_what_the_simulator_received_and_the_rest_is_in_the_message_store(
    night: Night, repo: Path
) -> None:
    defs = load_definitions(night.marketing, vocabulary(load_contracts(repo / "data_contracts")))
    by_provider_id = {c.provider_campaign_id: c.id for c in defs.campaigns.values() if c.provider_campaign_id}
    now = Counter(by_provider_id[r["campaign_id"]] for r in night.received if not r["schedule_time"])
    later = Counter(by_provider_id[r["campaign_id"]] for r in night.received if r["schedule_time"])
    campaigns, t = night.report["campaigns"], night.report["totals"]
    assert t["sent_now"] + t["scheduled"] == night.stats["recipients"] > 0
    assert (t["sent_now"], t["scheduled"]) == (night.stats["sent_now"], night.stats["scheduled"])
    for cid, row in campaigns.items():
        assert (row["sent_now"], row["scheduled"]) == (now.get(cid, 0), later.get(cid, 0)), cid
    store = {c.id for c in defs.campaigns.values() if c.destination == "app_inbox"}
    assert store and all(campaigns[c]["sent_now"] + campaigns[c]["scheduled"] == 0 for c in store if c in campaigns)
    engine = create_warehouse_engine(night.warehouse_url)
    with engine.connect() as conn:
        stored = dict(
            conn.execute(
                sa.select(inapp_messages.c.campaign_id, sa.func.count())
                .where(inapp_messages.c.customer_id.is_not(None))
                .group_by(inapp_messages.c.campaign_id)
            ).all()
        )
    engine.dispose()
    assert t["in_app"] == sum(stored.values()) > 0
    assert {cid: row["in_app"] for cid, row in campaigns.items() if row["in_app"]} == stored


def test_the_demo_reconciles_the_provider_part_with_the_simulators_recipients(night: Night) -> None:
    t = night.report["totals"]
    lines = reconciliation(night.report, night.stats)
    assert lines[0] == (
        f"provider: {t['sent_now']:,} sent now + {t['scheduled']:,} scheduled = {night.stats['recipients']:,} "
        "= the simulator's recipients ✓"
    )
    assert lines[1].endswith(f"= {t['delivered']:,} sent") and len(lines) == 2
    off = reconciliation(night.report, {**night.stats, "recipients": night.stats["recipients"] + 3})
    assert off[0].startswith("MISMATCH") and f"{night.stats['recipients'] + 3:,} recipients" in off[0]


def test_a_campaign_not_active_tonight_is_listed_as_not_scheduled_and_a_disabled_one_as_disabled(
    night: Night,
) -> None:
    report = night.report
    assert "anz_gold_weekly" not in report["campaigns"] and DISABLED not in report["campaigns"]
    assert report["not_scheduled"]["anz_gold_weekly"]["status"] == "not scheduled tonight"
    assert report["not_scheduled"]["anz_gold_weekly"]["why"] == "weekly on fri"
    assert report["not_scheduled"][DISABLED]["status"] == "disabled"
    assert all(row["status"] == "scheduled tonight" for row in report["campaigns"].values())
    table = summary_table(report)
    weekly = next(line for line in table.splitlines() if line.startswith("anz_gold_weekly "))
    assert weekly.split()[1:] == ["push", "not", "scheduled", "tonight", "(weekly", "on", "fri)"]
    assert next(line for line in table.splitlines() if line.startswith(f"{DISABLED} ")).split()[1:3] == [
        "email",
        "disabled",
    ]
    markdown = render_markdown(report)
    assert "| anz_gold_weekly | push | not scheduled tonight (weekly on fri) |" in markdown
    assert f"| {DISABLED} | email | disabled |" in markdown


def test_a_campaign_taken_off_tonight_after_it_sent_keeps_its_messages_and_says_it_is_not_scheduled(
    night: Night, repo: Path
) -> None:
    defs = load_definitions(night.marketing, vocabulary(load_contracts(repo / "data_contracts")))
    weekly = defs.campaigns["app_feature_push"].model_copy(update={"schedule": Schedule(type="weekly", days=["fri"])})
    changed = dataclasses.replace(defs, campaigns={**defs.campaigns, "app_feature_push": weekly})
    config = RunConfig(run_date=RUN_DATE, warehouse_url=night.warehouse_url, run_id=night.report["run_id"])
    engine = create_warehouse_engine(night.warehouse_url)
    report = build_run_report(engine, changed, config)
    engine.dispose()
    row, before = report["campaigns"]["app_feature_push"], night.report["campaigns"]["app_feature_push"]
    assert row["status"] == "not scheduled tonight" and "app_feature_push" not in report["not_scheduled"]
    assert (row["sent_now"], row["scheduled"]) == (before["sent_now"], before["scheduled"])
    assert report["totals"]["delivered"] == night.report["totals"]["delivered"]
    assert "app_feature_push (not scheduled tonight)  push" in summary_table(report)


def test_the_summary_has_no_total_of_segment_sizes_only_a_line_of_messages_and_says_what_eligible_is(
    night: Night,
) -> None:
    report, t = night.report, night.report["totals"]
    assert "segment_size" not in t and "eligible" not in t
    table = summary_table(report)
    lines = table.splitlines()
    assert not any(line.split()[0] == "TOTAL" for line in lines if line.strip())
    assert lines[0].split()[:4] == ["campaign", "channel", "segment", "eligible"]
    assert "sent now" in lines[0] and "scheduled" in lines[0] and "in-app store" in lines[0]
    assert (
        f"Messages of {RUN_DATE}: {t['sent_now']:,} sent now + {t['scheduled']:,} scheduled at the provider + "
        f"{t['in_app']:,} in the in-app store = {t['delivered']:,} sent; {t['failed'] + t['dead']:,} failed."
    ) in lines
    assert lines[-1].startswith("eligible = segment members minus the suppressed, those not opted in and those")
    assert str(sum(r["segment_size"] for r in report["campaigns"].values())) not in table.replace(",", "")
    assert "eligible = segment members" in render_markdown(report)


def test_the_split_counts_a_batch_handed_over_ahead_of_its_send_time_as_scheduled_on_every_engine(
    any_warehouse: sa.Engine,
) -> None:
    handed = dt.datetime(2026, 3, 1, 12, 0, 0)
    batches = [  # (batch, destination, send_at, state, messages)
        ("late", "braze", handed + dt.timedelta(hours=9), "sent", 3),
        ("due", "braze", handed - dt.timedelta(hours=1), "sent", 2),
        ("close", "braze", handed + SCHEDULE_MARGIN / 2, "sent", 1),  # within the margin: sent now
        ("store", "inbox", handed + dt.timedelta(hours=9), "sent", 4),
        ("broke", "braze", handed + dt.timedelta(hours=9), "failed", 5),
    ]
    day = handed.date()
    with any_warehouse.begin() as conn:
        conn.execute(
            delivery_batches.insert(),
            [
                {
                    "batch_id": b,
                    "run_date": day,
                    "shard_key": 0,
                    "destination": dest,
                    "campaign_id": "c",
                    "variant": "default",
                    "send_at": send_at,
                    "messages": n,
                    "state": state,
                    "attempts": 1,
                    "created_at": handed,
                    "updated_at": handed,
                    "sent_at": handed if state == "sent" else None,
                }
                for b, dest, send_at, state, n in batches
            ],
        )
        conn.execute(
            outbox.insert(),
            [
                {
                    "message_id": f"{b}-{i}",
                    "run_date": day,
                    "slot_date": day,
                    "campaign_id": "c",
                    "customer_id": f"{b}-{i}",
                    "variant": "default",
                    "channel": "push",
                    "destination": dest,
                    "send_at": send_at,
                    "payload": "{}",
                    "batch_id": b,
                    "shard_key": 0,
                    "created_at": handed,
                    "updated_at": handed,
                }
                for b, dest, send_at, _, n in batches
                for i in range(n)
            ],
        )
    with any_warehouse.connect() as conn:
        assert delivery_split(conn, day, ["inbox"]) == {"c": {"sent_now": 3, "scheduled": 3, "in_app": 4}}
        assert delivery_split(conn, day, []) == {"c": {"sent_now": 3, "scheduled": 7, "in_app": 0}}
