"""Stale nights: a night whose delivery runs later than `settings.delivery.max_lateness` after its
run date ended (midnight UTC) renders and reports but sends nothing, says so in its report and in
`campaigns run`, and ends green; a night within the limit sends as any night does. Real nights:
the repository's definitions, a generated export, the provider simulator over HTTP, on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from campaign_devtools.demo_data import generate
from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.connections import ProviderEndpoint, env_endpoint_resolver
from campaign_orchestrator.delivery.report import DeliveryIncomplete
from campaign_orchestrator.delivery.stale import date_ended
from campaign_orchestrator.run.context import RunConfig
from campaign_orchestrator.run.stages import run_all
from campaign_orchestrator.warehouse.tables import inapp_messages, run_log
from tests.builders import marketing_copy, state_counts

RUN_DATE = dt.date(2026, 11, 22)
ENDED = date_ended(RUN_DATE)  # 2026-11-23 00:00 UTC


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stale_export")
    generate(folder, customers=600, seed=5, as_of=RUN_DATE)
    return folder


def night(
    warehouse: sa.Engine, repo: Path, export: Path, tmp_path: Path, now: dt.datetime, **given: Any
) -> dict[str, Any]:
    """The whole night as `campaigns run` runs it, at `now`; returns its JSON report."""
    config = RunConfig(
        run_date=RUN_DATE,
        warehouse_url=warehouse.url.render_as_string(hide_password=False),
        config_dir=given.pop("config_dir", repo / "marketing"),
        contracts_dir=repo / "data_contracts",
        sources_dir=export,
        reports_dir=tmp_path / "reports",
        archive_dir=tmp_path / "archive",
        **given,
    )
    return dict(json.loads(run_all(config, env_endpoint_resolver, now=now).read_text()))


def sim_stats(sim: tuple[str, str]) -> dict[str, Any]:
    return dict(requests.get(sim[0] + "/_sim/stats", timeout=5).json())


def personal_inapp_rows(engine: sa.Engine) -> int:
    """In-app messages written for customers (public notices have no customer)."""
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(inapp_messages.c.customer_id.is_not(None))
        return int(conn.scalar(query) or 0)


@pytest.fixture
def provider(braze_simulator: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    url, key = braze_simulator
    monkeypatch.setenv("AIRFLOW_CONN_CAMPAIGNS_PROVIDER", url.replace("http://", f"http://:{key}@"))
    return braze_simulator


def test_a_night_run_30_hours_after_its_date_sends_nothing_and_its_report_says_stale(
    warehouse, repo, export, tmp_path, provider
):
    report = night(warehouse, repo, export, tmp_path, ENDED + dt.timedelta(hours=30))  # shipped: 0h

    assert sim_stats(provider)["requests"] == 0 and personal_inapp_rows(warehouse) == 0
    stale, totals = report["stale"], report["totals"]
    assert stale["stale"] and stale["late_by_hours"] == 30.0 and stale["max_lateness"] == "0h"
    assert stale["run_date"] == "2026-11-22" and "30.0 h after its date ended" in stale["reason"]
    assert stale["shards"] == [0, 1, 2, 3]
    assert totals["targeted"] > 0 and totals["stale"] == totals["targeted"]  # rendered, and kept unsent
    assert totals["delivered"] == totals["delivered_this_run"] == totals["pending"] == totals["unknown"] == 0
    with warehouse.connect() as conn:
        assert state_counts(conn) == {"stale": totals["targeted"]}
        deliver = conn.execute(sa.select(run_log.c.detail).where(run_log.c.stage.like("deliver[%"))).scalars().all()
    assert len(deliver) == 4 and all(json.loads(d)["status"] == "ok" for d in deliver)  # a decision, not a failure
    (cause,) = report["not_delivered"]["stale"]
    assert cause.startswith("not sent: the night of 2026-11-22 ran 30.0 h")
    md = (tmp_path / "reports" / "2026-11-22" / "run_report.md").read_text()
    assert "**Stale: nothing was sent: the night of 2026-11-22 ran 30.0 h after its date ended" in md
    assert "max_lateness 0h" in md and "| stale |" in md  # the campaigns table has a stale column tonight


@pytest.mark.parametrize(
    ("max_lateness", "now"),
    [
        pytest.param("0h", ENDED - dt.timedelta(hours=12), id="0h, at noon of the date"),
        pytest.param("6h", ENDED + dt.timedelta(hours=5, minutes=59), id="6h, 5h59 after the date"),
    ],
)
def test_a_night_within_max_lateness_sends_as_any_night(warehouse, repo, export, tmp_path, provider, max_lateness, now):
    marketing = marketing_copy(repo, tmp_path / "marketing", max_lateness)
    report = night(warehouse, repo, export, tmp_path, now, config_dir=marketing)

    totals = report["totals"]
    assert report["stale"] is None and totals.get("stale", 0) == 0
    assert totals["delivered"] == totals["delivered_this_run"] == totals["targeted"] > 0
    s = sim_stats(provider)
    assert s["recipients"] == totals["sent_now"] + totals["scheduled"] > 0 and s["duplicates"] == 0
    assert personal_inapp_rows(warehouse) == totals["in_app"] > 0


def test_a_night_retried_past_max_lateness_sends_nothing_it_left_and_stale_is_final(
    warehouse, repo, export, tmp_path, provider
):
    """The night's provider refused the key, so only the in-app store got its messages; the retry
    comes a day late and sends nothing (what was left is stale, the store's rows stand); lifting the
    limit afterwards sends none of it either: stale messages are never sent by a later run."""
    url, _key = provider
    wrong = lambda _conn_id: ProviderEndpoint(url, "not-the-key")  # noqa: E731
    config = {"warehouse_url": warehouse.url.render_as_string(hide_password=False), "sources_dir": export}
    config |= {"contracts_dir": repo / "data_contracts", "reports_dir": tmp_path / "reports"}
    with pytest.raises(DeliveryIncomplete, match="HTTP 401"):
        run_all(RunConfig(RUN_DATE, config_dir=repo / "marketing", **config), wrong, now=ENDED - dt.timedelta(hours=20))
    with warehouse.connect() as conn:
        first = state_counts(conn)
    left = first.get("pending", 0) + first.get("failed", 0)  # never sent: braze was found down
    assert first["sent"] == personal_inapp_rows(warehouse) > 0 and left > 0
    assert set(first) <= {"sent", "pending", "failed"}

    late = night(warehouse, repo, export, tmp_path, ENDED + dt.timedelta(hours=28))
    assert late["stale"]["late_by_hours"] == 28.0 and late["totals"]["delivered_this_run"] == 0
    with warehouse.connect() as conn:
        assert state_counts(conn) == {"sent": first["sent"], "stale": left}

    unlimited = marketing_copy(repo, tmp_path / "unlimited", None)
    again = night(warehouse, repo, export, tmp_path, ENDED + dt.timedelta(hours=29), config_dir=unlimited)
    assert again["stale"] is None and again["totals"]["delivered_this_run"] == 0
    assert sim_stats(provider)["recipients"] == 0
    with warehouse.connect() as conn:
        assert state_counts(conn) == {"sent": first["sent"], "stale": left}


def test_campaigns_run_of_a_date_long_past_exits_0_and_says_stale(repo, tmp_path, braze_simulator):
    """Through the command, with the real clock: a replay or backfill of an old date only computes
    and reports, and `campaigns deliver` of it sends nothing either; both exit 0."""
    day = utcnow().date() - dt.timedelta(days=3)
    generate(tmp_path / "export", customers=400, seed=5, as_of=day)
    url, key = braze_simulator
    env = {**os.environ, "AIRFLOW_CONN_CAMPAIGNS_PROVIDER": url.replace("http://", f"http://:{key}@")}
    common = ["--date", day.isoformat(), "--warehouse", f"sqlite:///{tmp_path / 'wh.sqlite'}"]
    night_folders = ["--sources", str(tmp_path / "export"), "--reports", str(tmp_path / "reports")]
    night_folders += ["--archive", str(tmp_path / "archive")]

    def campaigns(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "campaign_orchestrator.cli", *args, *common]
        return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False)

    run = campaigns("run", *night_folders)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Stale: nothing was sent: the night of {day.isoformat()} ran " in run.stdout
    assert "past settings.delivery.max_lateness 0h" in run.stdout and " stale." in run.stdout
    assert "Sent 0 new messages in this run: the night is stale" in run.stdout
    deliver = campaigns("deliver")
    assert deliver.returncode == 0, deliver.stderr[-3000:]
    assert f"stale: nothing sent: the night of {day.isoformat()} ran" in deliver.stdout
    assert sim_stats(braze_simulator)["requests"] == 0
