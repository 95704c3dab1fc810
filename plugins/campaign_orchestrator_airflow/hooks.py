"""Resolving the warehouse and provider connections through Airflow (metadata DB, env, secrets backends).

The engine itself never imports Airflow; these helpers turn Airflow connections into the plain
values it takes (an SQLAlchemy URL, a `ProviderEndpoint`).
"""

from __future__ import annotations

import os
from typing import Any

from campaign_orchestrator.connections import (
    ProviderEndpoint,
    endpoint_from_fields,
    warehouse_url_from_fields,
)
from campaign_orchestrator.warehouse.engine import DEFAULT_WAREHOUSE_URL

WAREHOUSE_CONN_ID = "campaigns_warehouse"


def _fields(conn_id: str) -> dict[str, Any] | None:
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # AirflowNotFoundException, whose import path moves between versions
        return None
    return {
        "conn_type": conn.conn_type,
        "host": conn.host,
        "port": conn.port,
        "login": conn.login,
        "password": conn.password,
        "schema": conn.schema,
        "extra": conn.extra_dejson,
    }


def warehouse_url() -> str:
    """The `campaigns_warehouse` connection if defined, else CAMPAIGNS_WAREHOUSE_URL, else SQLite."""
    fields = _fields(WAREHOUSE_CONN_ID)
    if fields is not None:
        return warehouse_url_from_fields(fields)
    return os.environ.get("CAMPAIGNS_WAREHOUSE_URL", DEFAULT_WAREHOUSE_URL)


def provider_endpoint(conn_id: str) -> ProviderEndpoint:
    fields = _fields(conn_id)
    if fields is None:
        from campaign_orchestrator.connections import ConnectionNotFound

        raise ConnectionNotFound(f"Airflow has no connection {conn_id!r}")
    return endpoint_from_fields(fields)


def source_url(conn_id: str) -> str:
    """An SQLAlchemy URL for a source database named in sources.yaml by Airflow connection id."""
    fields = _fields(conn_id)
    if fields is None:
        from campaign_orchestrator.connections import ConnectionNotFound

        raise ConnectionNotFound(f"Airflow has no connection {conn_id!r}")
    return warehouse_url_from_fields(fields)
