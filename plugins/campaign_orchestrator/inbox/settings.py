"""How an inbox service is configured: its store, its secrets, its limits.

Secrets come from the environment or an Airflow connection (`AIRFLOW_CONN_CAMPAIGNS_INBOX`:
password = the token signing secret, extra `server_key` = the back-end key), never from code or
flags, and never appear in a repr or a log line. A service without a signing secret refuses to start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from campaign_orchestrator.connections import parse_connection
from campaign_orchestrator.errors import CampaignError, InvalidInput

SECRET_ENV = "CAMPAIGNS_INBOX_SECRET"  # noqa: S105 - the variable's name, not a secret
SERVER_KEY_ENV = "CAMPAIGNS_INBOX_SERVER_KEY"
CONNECTION_ENV = "AIRFLOW_CONN_CAMPAIGNS_INBOX"
MIN_SECRET_LENGTH = 32
DEFAULT_POOL_SIZE = 16


class InboxNotConfigured(CampaignError, InvalidInput):
    """The inbox service has no (or too weak a) signing secret, or a setting is invalid."""


@dataclass(frozen=True)
class InboxSettings:
    store_url: str
    signing_secret: str = field(repr=False)
    server_key: str | None = field(default=None, repr=False)
    config_dir: Path = Path("marketing")
    rate_limit: str = "120/minute"
    rate_limit_storage: str = "memory://"
    # Freshness: a response may be cached this long; the bound is 60 s.
    max_age_seconds: int = 30
    token_ttl_seconds: int = 3600
    max_page: int = 100
    # Store connections held open, and as many request threads: a request never waits for a
    # connection, and PostgreSQL keeps each connection's prepared feed statement.
    pool_size: int = DEFAULT_POOL_SIZE
    # How often the marketers' files (deep links, quiet hours) are checked for changes.
    reload_seconds: float = 5.0
    default_page: int = 50

    def __post_init__(self) -> None:
        if len(self.signing_secret) < MIN_SECRET_LENGTH:
            raise InboxNotConfigured(f"the inbox signing secret must be at least {MIN_SECRET_LENGTH} characters")
        if self.server_key is not None and len(self.server_key) < MIN_SECRET_LENGTH:
            raise InboxNotConfigured(f"the inbox server key must be at least {MIN_SECRET_LENGTH} characters")
        if not 0 < self.max_age_seconds <= 60:
            raise InboxNotConfigured("max_age_seconds must be between 1 and 60 (feed freshness)")


def secrets_from_environment() -> tuple[str, str | None]:
    """(signing secret, server key) from CAMPAIGNS_INBOX_SECRET / _SERVER_KEY, else the connection."""
    secret, server_key = os.environ.get(SECRET_ENV), os.environ.get(SERVER_KEY_ENV)
    raw = os.environ.get(CONNECTION_ENV)
    if raw and not secret:
        conn = parse_connection(raw)
        extra = conn.get("extra") or {}
        secret = conn.get("password") or extra.get("signing_secret")
        server_key = server_key or extra.get("server_key")
    if not secret:
        raise InboxNotConfigured(
            f"no signing secret for customer tokens: set {SECRET_ENV} (32+ random characters) "
            f"or the Airflow connection campaigns_inbox ({CONNECTION_ENV}) with it as password"
        )
    return str(secret), (str(server_key) if server_key else None)
