"""Airflow itself runs nightly_campaigns twice for one date: the second run sends nothing."""

from __future__ import annotations

import json

import pytest

from campaign_orchestrator.demo import airflow_env, dags_test, ensure_airflow_db
from tests.e2e.conftest import RUN_DATE
from tests.e2e.test_nightly_run import check_deliveries


@pytest.mark.airflow
@pytest.mark.xdist_group("airflow")
def test_the_dag_runs_through_airflow_and_a_rerun_sends_nothing(repo, export, sim_process, tmp_path):
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
