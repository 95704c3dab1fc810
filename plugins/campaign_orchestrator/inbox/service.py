"""What one inbox process holds: its store engine, settings, gate and the marketers' files.

Route modules reach it through `service(request)`; reading a feed is the same function for the
inbox routes and the Pinpoint-compatible ones, so both show exactly the same messages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi import Request
from packaging.version import Version
from sqlalchemy.engine import Engine

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.inbox.access import Gate
from campaign_orchestrator.inbox.feed import showable
from campaign_orchestrator.inbox.marketing import MarketingFiles
from campaign_orchestrator.inbox.settings import InboxSettings
from campaign_orchestrator.inbox.store import Inbox, StoredMessage, read_inbox


@dataclass
class InboxService:
    settings: InboxSettings
    engine: Engine
    gate: Gate
    marketing: MarketingFiles

    def now(self) -> dt.datetime:
        return utcnow()

    def read(
        self, customer_id: str | None, session_id: str | None, app_version: Version | None
    ) -> tuple[Inbox, list[StoredMessage]]:
        """The customer's stored inbox and, in feed order, what may be shown now: one query."""
        now = self.now()
        with self.engine.connect() as conn:
            inbox = read_inbox(conn, customer_id, now, session_id)
        view = self.marketing.current()
        return inbox, showable(inbox, now, session_id, app_version, view.link_problem)


async def service(request: Request) -> InboxService:
    """Async: FastAPI runs a plain `def` dependency in a worker thread, a hop per request."""
    found: InboxService = request.app.state.inbox
    return found
