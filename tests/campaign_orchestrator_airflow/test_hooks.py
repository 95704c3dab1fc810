"""The Airflow boundary fails closed: a connection Airflow cannot read stops the task, naming it,
and no other warehouse is touched; only a connection that does not exist falls back."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from campaign_orchestrator.connections import ConnectionNotFound
from campaign_orchestrator_airflow.hooks import ConnectionUnreadable, warehouse_url

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS)).dags["nightly_campaigns"]


def context() -> dict:
    return {"params": {}, "logical_date": dt.datetime(2026, 11, 22, 2, tzinfo=dt.UTC), "run_id": "test__hooks"}


def test_a_connection_airflow_cannot_read_fails_the_task_naming_it_and_touches_no_other_warehouse(
    dag, monkeypatch, tmp_path
):
    from airflow.sdk import BaseHook

    def secrets_backend_down(conn_id: str) -> None:
        raise TimeoutError("vault did not answer")

    fallback = tmp_path / "fallback.sqlite"
    monkeypatch.setattr(BaseHook, "get_connection", secrets_backend_down)
    monkeypatch.setenv("CAMPAIGNS_WAREHOUSE_URL", f"sqlite:///{fallback}")
    monkeypatch.chdir(tmp_path)  # where a relative default warehouse would appear
    segments = dag.get_task("compute_segments")
    with pytest.raises(ConnectionUnreadable, match="could not read the connection 'campaigns_warehouse'"):
        segments.python_callable(**context())
    assert not fallback.exists() and list(tmp_path.iterdir()) == []


def test_only_a_connection_that_does_not_exist_falls_back_to_the_environment(monkeypatch, tmp_path):
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    def not_defined(conn_id: str) -> None:
        raise AirflowNotFoundException(f"The conn_id `{conn_id}` isn't defined")

    monkeypatch.setattr(BaseHook, "get_connection", not_defined)
    monkeypatch.setenv("CAMPAIGNS_WAREHOUSE_URL", "postgresql+psycopg://warehouse.example/night")
    assert warehouse_url() == "postgresql+psycopg://warehouse.example/night"
    monkeypatch.delenv("CAMPAIGNS_WAREHOUSE_URL")
    with pytest.raises(ConnectionNotFound, match=r"campaigns_warehouse.*CAMPAIGNS_WAREHOUSE_URL"):
        warehouse_url()  # inside Airflow there is no local default to fall back to
