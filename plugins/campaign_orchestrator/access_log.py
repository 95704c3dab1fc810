"""The services' access log: method, route template, status, milliseconds, and nothing else.

Never the path, query, headers, form or cookie: a customer id or a search term in a URL is
personal data, and tokens, keys and session cookies are credentials. Pure ASGI middleware (no
BaseHTTPMiddleware cost), added outermost so it sees every response, redirects and errors too;
uvicorn's own access log is switched off by the commands that start the services.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class AccessLog:
    """Logs each request to the logger named `logger` (one per service)."""

    def __init__(self, app: ASGIApp, logger: str) -> None:
        self.app = app
        self.log = logging.getLogger(logger)

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
            self.log.info("%s %s %d %.1fms", scope.get("method", "-"), template, status, elapsed)
