"""The console's access log: method, route template, status, milliseconds, and nothing else.

Never the path, query, form or cookie: a search term or an id in a URL could be a customer's
data, and the session cookie is a credential. uvicorn's own access log is switched off.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("campaign_orchestrator.console.access")


class AccessLog:
    """Pure ASGI middleware, outermost, so it sees every response (redirects and errors too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(no route)"
            elapsed = (time.perf_counter() - started) * 1000
            access_log.info("%s %s %d %.1fms", scope.get("method", "-"), template, status, elapsed)
