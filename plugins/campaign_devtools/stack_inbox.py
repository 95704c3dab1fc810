"""The stack test's inbox step: after the night, the inbox service (as docker-compose runs it)
serves a targeted customer's in-app message to a customer token, read over real HTTP."""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from campaign_devtools.local_stack import StackError
from campaign_orchestrator.inbox.tokens import issue_token
from campaign_orchestrator.warehouse.tables import inapp_messages


class InboxCheckFailed(StackError):
    """The inbox did not start, or did not serve the message the night delivered."""


def inbox_command(port: int, store_url: str, config_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "campaign_orchestrator.cli", "inbox", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--store", store_url, "--config", str(config_dir),
    ]  # fmt: skip


def inbox_secrets() -> dict[str, str]:
    return {
        "CAMPAIGNS_INBOX_SECRET": secrets.token_urlsafe(32),
        "CAMPAIGNS_INBOX_SERVER_KEY": secrets.token_urlsafe(32),
    }


def active_message(store_url: str) -> tuple[str, str]:
    """(customer, message) of a targeted message showing now; the night wrote it."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    m = inapp_messages.c
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(m.customer_id, m.message_id)
                .where(m.customer_id.is_not(None), m.start_at <= now, sa.or_(m.end_at.is_(None), m.end_at > now))
                .order_by(m.customer_id)
                .limit(1)
            ).first()
    finally:
        engine.dispose()
    if row is None:
        raise InboxCheckFailed("the nights delivered no in-app message that is showing now")
    return str(row.customer_id), str(row.message_id)


def read_from_inbox(base: str, store_url: str, secret: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        if time.monotonic() > deadline:
            raise InboxCheckFailed(f"the inbox at {base} did not answer within {timeout:.0f} s")
        time.sleep(0.5)
    customer_id, message_id = active_message(store_url)
    headers = {"Authorization": f"Bearer {issue_token(customer_id, secret, 300)}"}
    response = requests.get(f"{base}/v1/customers/{customer_id}/feed", headers=headers, timeout=30)
    if response.status_code != 200:
        raise InboxCheckFailed(f"the feed answered {response.status_code}")
    items = response.json()["items"]
    if message_id not in {i["id"] for i in items}:
        raise InboxCheckFailed("the feed does not hold the message the night delivered to its customer")
    return {"inbox_feed_items": len(items), "inbox_message_read": True}
