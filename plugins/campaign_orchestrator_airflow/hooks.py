"""Resolving the warehouse and provider connections through Airflow (metadata DB, env, secrets backends).

The engine itself never imports Airflow; these helpers turn Airflow connections into the plain
values it takes (an SQLAlchemy URL, a `ProviderEndpoint`).

Fail closed: a connection Airflow cannot read (a secrets backend that times out, a metadata DB
that is down) is an error naming the connection, never a reason to use another warehouse. Only a
connection that does not exist falls back, as the README says: `campaigns_warehouse` to
`CAMPAIGNS_WAREHOUSE_URL`. A task pointed at another warehouse than the night's ledger could send
what was already sent, or report success having sent nothing.
"""

from __future__ import annotations

import os
from typing import Any

from campaign_orchestrator.connections import (
    ConnectionNotFound,
    ProviderEndpoint,
    endpoint_from_fields,
    warehouse_url_from_fields,
)
from campaign_orchestrator.errors import CampaignError

WAREHOUSE_CONN_ID = "campaigns_warehouse"


class ConnectionUnreadable(CampaignError):
    """Airflow has the connection, or may have it, but could not read it; retrying may help."""


def _fields(conn_id: str) -> dict[str, Any] | None:
    """The connection's fields, or None when Airflow has no such connection."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    except Exception as exc:  # the secrets backend's or the API's own errors: never a fallback
        raise ConnectionUnreadable(
            f"Airflow could not read the connection {conn_id!r} ({type(exc).__name__}); "
            "nothing was done, and no other warehouse or endpoint was used instead"
        ) from exc
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
    """The `campaigns_warehouse` connection if it exists, else CAMPAIGNS_WAREHOUSE_URL; neither is an error
    (inside Airflow there is no default: a local file would be another warehouse on every worker)."""
    fields = _fields(WAREHOUSE_CONN_ID)
    if fields is not None:
        return warehouse_url_from_fields(fields)
    url = os.environ.get("CAMPAIGNS_WAREHOUSE_URL")
    if not url:
        raise ConnectionNotFound(
            f"no warehouse: define the Airflow connection {WAREHOUSE_CONN_ID!r} or set CAMPAIGNS_WAREHOUSE_URL"
        )
    return url


def provider_endpoint(conn_id: str) -> ProviderEndpoint:
    fields = _fields(conn_id)
    if fields is None:
        raise ConnectionNotFound(f"Airflow has no connection {conn_id!r}")
    return endpoint_from_fields(fields)


def source_url(conn_id: str) -> str:
    """An SQLAlchemy URL for a source database named in sources.yaml by Airflow connection id."""
    fields = _fields(conn_id)
    if fields is None:
        raise ConnectionNotFound(f"Airflow has no connection {conn_id!r}")
    return warehouse_url_from_fields(fields)
