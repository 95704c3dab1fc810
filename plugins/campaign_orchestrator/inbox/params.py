"""The hot read routes' parameters, read and checked by hand and documented by hand.

FastAPI's parameter solving re-inspects every declared parameter's annotation on every request:
on the feed (a path, five query and four header parameters) it was half the service's CPU in the
bench. The feed and Pinpoint's GetInAppMessages read their parameters from the request instead,
check exactly what their OpenAPI entries below declare, and answer a bad one with 422; the events
route reads its path and credentials so too (its body is still FastAPI's, validated by the model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, get_args

from fastapi import HTTPException, Request, status

from campaign_orchestrator.inbox.feed import Status
from campaign_orchestrator.inbox.models import ID_TEXT

STATUSES: tuple[str, ...] = get_args(Status)
_ID = re.compile(ID_TEXT)


class BadParameter(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def _param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": description}


def _id_schema(longest: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": longest, "pattern": ID_TEXT}


AUTH_PARAMETERS = [
    _param("Authorization", "header", {"type": "string"}, "Bearer <customer token>"),
    _param("X-Api-Key", "header", {"type": "string"}, "the server key (back-end callers)"),
]
CUSTOMER_PARAMETER = _param("customer_id", "path", _id_schema(64), "the customer", required=True)
EVENTS_PARAMETERS = [CUSTOMER_PARAMETER, *AUTH_PARAMETERS]
FEED_PARAMETERS = [
    CUSTOMER_PARAMETER,
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100}, "page size, default 50"),
    _param("cursor", "query", {"type": "string", "maxLength": 512}, "next_cursor of the page before"),
    _param("status", "query", {"type": "string", "enum": list(STATUSES), "default": "active"}, "which messages"),
    _param("app_version", "query", {"type": "string", "maxLength": 32}, "for min_app_version (or X-App-Version)"),
    _param("session_id", "query", {"type": "string", "maxLength": 64}, "for session caps (or X-Session-Id)"),
    _param("X-App-Version", "header", {"type": "string", "maxLength": 32}, "the app's version"),
    _param("X-Session-Id", "header", {"type": "string", "maxLength": 64}, "the app's session"),
    *AUTH_PARAMETERS,
]
PINPOINT_PARAMETERS = [
    _param("application_id", "path", _id_schema(128), "the Pinpoint project (app) id", required=True),
    _param("endpoint_id", "path", _id_schema(64), "the Pinpoint endpoint id", required=True),
    *AUTH_PARAMETERS,
]


def path_id(request: Request, name: str, longest: int) -> str:
    value = str(request.path_params[name])
    if not 0 < len(value) <= longest or not _ID.fullmatch(value):
        raise BadParameter(f"{name}: 1-{longest} letters, digits and _.:@- (starting with a letter or digit)")
    return value


def _text(value: str | None, name: str, longest: int) -> str | None:
    if value is not None and len(value) > longest:
        raise BadParameter(f"{name}: at most {longest} characters")
    return value


@dataclass(frozen=True)
class FeedRequest:
    limit: int | None
    cursor: str | None
    status: Status
    app_version: str | None
    session_id: str | None

    @classmethod
    def read(cls, request: Request) -> FeedRequest:
        q, h = request.query_params, request.headers
        limit = q.get("limit")
        if limit is not None and not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 100):
            raise BadParameter("limit: an integer from 1 to 100")
        chosen = q.get("status", "active")
        if chosen not in STATUSES:
            raise BadParameter(f"status: one of {', '.join(STATUSES)}")
        return cls(
            limit=int(limit) if limit is not None else None,
            cursor=_text(q.get("cursor"), "cursor", 512),
            status=chosen,  # type: ignore[arg-type]  # checked against STATUSES above
            app_version=_text(q.get("app_version"), "app_version", 32)
            or _text(h.get("x-app-version"), "X-App-Version", 32),
            session_id=_text(q.get("session_id"), "session_id", 64) or _text(h.get("x-session-id"), "X-Session-Id", 64),
        )
