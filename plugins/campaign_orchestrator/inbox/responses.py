"""HTTP details every inbox response shares: cache validators (the access log is `access_log.AccessLog`).

Responses are JSON with a strong `ETag` over the body; a request whose `If-None-Match` names it
gets 304 and no body. `Cache-Control: private, max-age=N` (N <= 60) keeps feeds out of shared
caches and bounds staleness.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response


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
