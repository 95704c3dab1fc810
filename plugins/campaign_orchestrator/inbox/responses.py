"""HTTP details every inbox response shares: cache validators and an access log without personal data.

Responses are JSON with a strong `ETag` over the body; a request whose `If-None-Match` names it
gets 304 and no body. `Cache-Control: private, max-age=N` (N <= 60) keeps feeds out of shared
caches and bounds staleness. The access log names the route template (`/v1/customers/{customer_id}/feed`),
never the path, query or headers, so no customer id, token or version lands in a log.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("campaign_orchestrator.inbox.access")


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


# Stored times are naive UTC: written as "2026-12-03T08:00:00Z".
ORJSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def json_response(request: Request, payload: Any, max_age: int, cache: bool = True) -> Response:
    body = orjson.dumps(payload, option=ORJSON_OPTIONS)
    if not cache:
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})
    tag = etag_of(body)
    headers = {"ETag": tag, "Cache-Control": f"private, max-age={max_age}", "Vary": "Authorization, X-Api-Key"}
    wanted = request.headers.get("if-none-match", "")
    if tag in {t.strip().removeprefix("W/") for t in wanted.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


class AccessLog:
    """Pure ASGI (no BaseHTTPMiddleware cost): method, route template, status, milliseconds."""

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
