"""Airflow itself runs nightly_campaigns twice for one date: the second run sends nothing."""

from __future__ import annotations

import contextlib
import json

import pytest

from campaign_devtools.demo import airflow_env, dags_test, ensure_airflow_db
from tests.builders import marketing_copy
from tests.e2e.conftest import RUN_DATE
from tests.e2e.test_nightly_run import check_deliveries


@pytest.mark.airflow
@pytest.mark.xdist_group("airflow")
def test_the_dag_runs_through_airflow_and_a_rerun_sends_nothing(repo, export, sim_process, tmp_path):
    env = airflow_env(repo, tmp_path / "airflow_home")
    warehouse = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    env.update(
        CAMPAIGNS_CONFIG_DIR=str(marketing_copy(repo, tmp_path / "marketing")),  # no lateness limit: RUN_DATE is past
        CAMPAIGNS_WAREHOUSE_URL=warehouse,
        CAMPAIGNS_SOURCES_DIR=str(export),
        CAMPAIGNS_REPORTS_DIR=str(tmp_path / "reports"),
        AIRFLOW_CONN_CAMPAIGNS_PROVIDER=sim_process.connection_uri,
    )
    (tmp_path / "airflow_home").mkdir()
    ensure_airflow_db(env, tmp_path / "migrate.log")
    dags_test(env, RUN_DATE, tmp_path / "run1.log")
    first = sim_process.get("/_sim/stats")
    log = (tmp_path / "run1.log").read_text()
    assert "[DAG TEST] end task task_id=deliver map_index=3" in log  # the mapped delivery shards ran
    report = json.loads((tmp_path / "reports" / RUN_DATE.isoformat() / "run_report.json").read_text())
    assert report["totals"]["delivered_this_run"] > 0 and first["recipients"] > 0

    dags_test(env, RUN_DATE, tmp_path / "run2.log")
    report = json.loads((tmp_path / "reports" / RUN_DATE.isoformat() / "run_report.json").read_text())
    assert report["totals"]["delivered_this_run"] == 0
    assert sim_process.get("/_sim/stats")["recipients"] == first["recipients"]
    check_deliveries(repo, export, sim_process, warehouse)


@pytest.mark.airflow
@pytest.mark.xdist_group("airflow")
def test_a_night_whose_provider_refuses_the_key_ends_failed_in_airflow(repo, export, sim_process, tmp_path):
    """Nothing could be delivered: the deliver tasks fail (and are retried), the night is red, and
    the report says why; the in-app store still got its messages."""
    from campaign_devtools.demo import DemoError

    env = airflow_env(repo, tmp_path / "airflow_home")
    env.update(
        CAMPAIGNS_CONFIG_DIR=str(marketing_copy(repo, tmp_path / "marketing")),  # no lateness limit: RUN_DATE is past
        CAMPAIGNS_WAREHOUSE_URL=f"sqlite:///{tmp_path / 'wh.sqlite'}",
        CAMPAIGNS_SOURCES_DIR=str(export),
        CAMPAIGNS_REPORTS_DIR=str(tmp_path / "reports"),
        CAMPAIGNS_RETRY_DELAY_SECONDS="1",
        AIRFLOW_CONN_CAMPAIGNS_PROVIDER=sim_process.url.replace("http://", "http://:not-the-key@"),
    )
    (tmp_path / "airflow_home").mkdir()
    ensure_airflow_db(env, tmp_path / "migrate.log")
    log = tmp_path / "run.log"
    with contextlib.suppress(DemoError):  # its exit code may say so; the run's state is what counts
        dags_test(env, RUN_DATE, log)
    text = log.read_text()
    assert "state=failed" in text and "HTTP 401: Invalid API key" in text
    assert text.count("new_state=up_for_retry") >= 2  # deliver was retried, as for any transient failure
    report = json.loads((tmp_path / "reports" / RUN_DATE.isoformat() / "run_report.json").read_text())
    assert report["destinations_down"]["braze"].startswith("HTTP 401")
    assert report["totals"]["delivered"] > 0 and report["totals"]["unknown"] == 0  # the in-app store
    assert sim_process.get("/_sim/stats")["recipients"] == 0
    md = (tmp_path / "reports" / RUN_DATE.isoformat() / "run_report.md").read_text()
    assert "## Not delivered" in md and "braze was found down" in md


@pytest.mark.airflow
@pytest.mark.xdist_group("airflow")
def test_airflow_running_the_night_of_a_past_date_computes_and_reports_and_sends_nothing(
    repo, export, sim_process, tmp_path
):
    """A backfill or catch-up run, as Airflow runs it with the shipped settings (max_lateness 0h) and
    the real clock: every task succeeds, the report says stale and why, nothing reaches the provider
    or the in-app store."""
    import sqlalchemy as sa

    from campaign_orchestrator.warehouse.engine import create_warehouse_engine
    from campaign_orchestrator.warehouse.tables import inapp_messages

    env = airflow_env(repo, tmp_path / "airflow_home")
    warehouse = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    env.update(
        CAMPAIGNS_WAREHOUSE_URL=warehouse,
        CAMPAIGNS_SOURCES_DIR=str(export),
        CAMPAIGNS_REPORTS_DIR=str(tmp_path / "reports"),
        AIRFLOW_CONN_CAMPAIGNS_PROVIDER=sim_process.connection_uri,
    )
    (tmp_path / "airflow_home").mkdir()
    ensure_airflow_db(env, tmp_path / "migrate.log")
    dags_test(env, RUN_DATE, tmp_path / "run.log")  # raises unless the run succeeded
    log = (tmp_path / "run.log").read_text()
    assert "[DAG TEST] end task task_id=deliver map_index=3" in log and "state=failed" not in log
    assert "stale night, nothing was sent: the night of 2026-11-22 ran" in log
    report = json.loads((tmp_path / "reports" / RUN_DATE.isoformat() / "run_report.json").read_text())
    assert report["stale"]["max_lateness"] == "0h" and report["stale"]["late_by_hours"] > 24
    assert report["totals"]["targeted"] == report["totals"]["stale"] > 0 and report["totals"]["delivered"] == 0
    assert sim_process.get("/_sim/stats")["requests"] == 0
    engine = create_warehouse_engine(warehouse)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).where(inapp_messages.c.customer_id.is_not(None))) == 0
    engine.dispose()
