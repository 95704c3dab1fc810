"""How a console is configured: its folders, its warehouse, its session secret, its users.

The session secret signs the session cookie, so it comes from the environment
(`CAMPAIGNS_CONSOLE_SECRET`, 32+ characters), never from code or a flag, and never appears in a
repr or a log line; without one the console refuses to start. Users come from a YAML file
(`CAMPAIGNS_CONSOLE_USERS`) or JSON in `CAMPAIGNS_CONSOLE_USERS_JSON` (see `users`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from campaign_orchestrator.console.users import ConsoleNotConfigured, Users, load_users
from campaign_orchestrator.warehouse.engine import DEFAULT_WAREHOUSE_URL

SECRET_ENV = "CAMPAIGNS_CONSOLE_SECRET"  # noqa: S105 - the variable's name, not a secret
USERS_ENV = "CAMPAIGNS_CONSOLE_USERS"
USERS_JSON_ENV = "CAMPAIGNS_CONSOLE_USERS_JSON"
HTTPS_ONLY_ENV = "CAMPAIGNS_CONSOLE_HTTPS_ONLY"
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class ConsoleSettings:
    config_dir: Path
    contracts_dir: Path
    warehouse_url: str
    session_secret: str = field(repr=False)
    users: Users = field(repr=False)
    session_max_age: int = 8 * 3600  # a working day; then log in again
    https_only: bool = False  # set behind TLS: the session cookie is then never sent in clear
    recent_runs: int = 7  # how many run dates of sizes and funnels an item page shows

    def __post_init__(self) -> None:
        if len(self.session_secret) < MIN_SECRET_LENGTH:
            raise ConsoleNotConfigured(
                f"the console session secret ({SECRET_ENV}) must be at least {MIN_SECRET_LENGTH} characters"
            )


def session_secret_from_environment() -> str:
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        raise ConsoleNotConfigured(
            f"no session secret: set {SECRET_ENV} to 32+ random characters (it signs the console's session cookie)"
        )
    return secret


def settings_from_environment() -> ConsoleSettings:
    """Everything from the environment (what `campaigns console` sets before uvicorn imports the app)."""
    users_file = os.environ.get(USERS_ENV)
    return ConsoleSettings(
        config_dir=Path(os.environ.get("CAMPAIGNS_CONFIG_DIR", "marketing")),
        contracts_dir=Path(os.environ.get("CAMPAIGNS_CONTRACTS_DIR", "data_contracts")),
        warehouse_url=os.environ.get("CAMPAIGNS_WAREHOUSE_URL") or DEFAULT_WAREHOUSE_URL,
        session_secret=session_secret_from_environment(),
        users=load_users(Path(users_file) if users_file else None, os.environ.get(USERS_JSON_ENV)),
        https_only=os.environ.get(HTTPS_ONLY_ENV, "").lower() in {"1", "true", "yes"},
    )
