"""`campaigns inbox`: serve the in-app inbox, and issue a customer token for testing a client."""

from __future__ import annotations

import os
from pathlib import Path

import click

from campaign_orchestrator.cli.options import config_option
from campaign_orchestrator.inbox.app import STORE_ENV
from campaign_orchestrator.inbox.settings import secrets_from_environment
from campaign_orchestrator.inbox.tokens import issue_token
from campaign_orchestrator.warehouse.engine import redacted


@click.group()
def inbox() -> None:
    """The in-app inbox service the apps call (secrets: CAMPAIGNS_INBOX_SECRET, CAMPAIGNS_INBOX_SERVER_KEY)."""


@inbox.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=int)
@click.option(
    "--store",
    envvar=[STORE_ENV, "CAMPAIGNS_WAREHOUSE_URL"],
    default="sqlite:///warehouse.sqlite",
    show_default=True,
    help="SQLAlchemy URL of the message store (env CAMPAIGNS_INBOX_STORE_URL, else the warehouse's).",
)
@config_option
@click.option("--workers", default=1, show_default=True, type=int, help="Processes (rate limits: use Redis then).")
@click.option("--rate-limit", default="120/minute", show_default=True, help="Per customer, e.g. 60/minute.")
@click.option(
    "--rate-limit-storage",
    default="memory://",
    show_default=True,
    help="memory:// or redis://host:port (shared by every worker and process).",
)
@click.option(
    "--pool-size", default=16, show_default=True, type=click.IntRange(1, 200), help="Store connections per worker."
)
def serve(
    host: str,
    port: int,
    store: str,
    config_dir: Path,
    workers: int,
    rate_limit: str,
    rate_limit_storage: str,
    pool_size: int,
) -> None:
    """Serve the inbox API (OpenAPI at /docs and /openapi.json)."""
    import uvicorn

    secrets_from_environment()  # refuse to start without a signing secret, before binding a port
    os.environ.update(
        {
            STORE_ENV: store,
            "CAMPAIGNS_CONFIG_DIR": str(config_dir),
            "CAMPAIGNS_INBOX_RATE_LIMIT": rate_limit,
            "CAMPAIGNS_INBOX_RATE_LIMIT_STORAGE": rate_limit_storage,
            "CAMPAIGNS_INBOX_POOL_SIZE": str(pool_size),
        }
    )
    click.echo(f"inbox: serving {redacted(store)} on http://{host}:{port} ({workers} worker(s))", err=True)
    uvicorn.run(
        "campaign_orchestrator.inbox.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # uvicorn's would log paths with customer ids; ours logs route templates
        log_level="info",
    )


@inbox.command()
@click.argument("customer_id")
@click.option("--ttl", default=3600, show_default=True, type=int, help="Seconds until it expires.")
def token(customer_id: str, ttl: int) -> None:
    """Print a customer token signed with CAMPAIGNS_INBOX_SECRET (for trying a client)."""
    secret, _key = secrets_from_environment()
    click.echo(issue_token(customer_id, secret, ttl))
