"""Where destinations and the warehouse are, and their secrets, without importing Airflow.

The engine reads the same `AIRFLOW_CONN_<ID>` environment variables Airflow does (URI or JSON),
so one convention serves the `campaigns` CLI, tests and Airflow workers; inside Airflow the DAG
resolves connections through Airflow itself (metadata DB, secrets backends) and hands the
engine a ready `ProviderEndpoint`. Secrets never appear in reprs, logs or reports.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from campaign_orchestrator.errors import CampaignError


class ConnectionNotFound(CampaignError, LookupError):
    """A connection id with neither an Airflow connection nor an AIRFLOW_CONN_* variable."""


@dataclass(frozen=True)
class ProviderEndpoint:
    base_url: str
    api_key: str = field(repr=False)

    def __str__(self) -> str:
        return f"ProviderEndpoint({self.base_url})"


EndpointResolver = Callable[[str], ProviderEndpoint]


def _env_name(conn_id: str) -> str:
    return "AIRFLOW_CONN_" + conn_id.upper()


def parse_connection(value: str) -> dict[str, Any]:
    """Airflow's two spellings of a connection: a JSON object, or a URI."""
    value = value.strip()
    if value.startswith("{"):
        doc: dict[str, Any] = json.loads(value)
        return doc
    parts = urlsplit(value)
    extra = dict(parse_qsl(parts.query))
    if "__extra__" in extra:
        extra = json.loads(extra["__extra__"])
    return {
        "conn_type": parts.scheme.replace("-", "_"),
        "host": unquote(parts.hostname or ""),
        "port": parts.port,
        "login": unquote(parts.username or "") or None,
        "password": unquote(parts.password or "") or None,
        "schema": unquote(parts.path.lstrip("/")) or None,
        "extra": extra,
    }


PROVIDER_CONN_TYPES = ("http", "https", "generic", "")


def endpoint_from_fields(conn: dict[str, Any]) -> ProviderEndpoint:
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra else {}
    conn_type = str(conn.get("conn_type") or "")
    if conn_type not in PROVIDER_CONN_TYPES:
        raise ConnectionNotFound(f"a provider connection is of type http or https, not {conn_type!r}")
    host = str(conn.get("host") or "")
    if "://" in host:
        base = host.rstrip("/")
    else:
        scheme = extra.get("scheme") or ("https" if conn.get("conn_type") == "https" else "http")
        port = f":{conn['port']}" if conn.get("port") else ""
        base = f"{scheme}://{host}{port}"
    api_key = conn.get("password") or extra.get("api_key")
    if not host or not api_key:
        raise ConnectionNotFound("a provider connection needs a host and an API key (password)")
    return ProviderEndpoint(base_url=base, api_key=str(api_key))


def env_endpoint_resolver(conn_id: str) -> ProviderEndpoint:
    raw = os.environ.get(_env_name(conn_id))
    if not raw:
        raise ConnectionNotFound(
            f"no connection {conn_id!r}: set {_env_name(conn_id)} (e.g. http://:API_KEY@host:port) "
            "or define it in Airflow"
        )
    return endpoint_from_fields(parse_connection(raw))


def warehouse_url_from_fields(conn: dict[str, Any]) -> str:
    """An SQLAlchemy URL from an Airflow connection: extra.sqlalchemy_url wins, else the fields."""
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra else {}
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    from sqlalchemy.engine import URL

    drivers = {
        "postgres": "postgresql+psycopg",
        "postgresql": "postgresql+psycopg",
        "mysql": "mysql+pymysql",
        "sqlite": "sqlite",
    }
    conn_type = str(conn.get("conn_type") or "")
    if conn_type not in drivers:
        raise ConnectionNotFound(f"warehouse connection type {conn_type!r} needs extra.sqlalchemy_url")
    if conn_type == "sqlite":
        return f"sqlite:///{conn.get('host') or conn.get('schema')}"
    url = URL.create(
        drivers[conn_type],
        username=conn.get("login"),
        password=conn.get("password"),
        host=conn.get("host"),
        port=conn.get("port"),
        database=conn.get("schema"),
    )
    return url.render_as_string(hide_password=False)


def env_url_resolver(conn_id: str) -> str:
    """An SQLAlchemy URL for a source database named by an Airflow connection id (from the env)."""
    raw = os.environ.get(_env_name(conn_id))
    if not raw:
        raise ConnectionNotFound(f"no connection {conn_id!r}: set {_env_name(conn_id)} or define it in Airflow")
    return warehouse_url_from_fields(parse_connection(raw))
