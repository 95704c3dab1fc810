"""The inbox routes apps and back ends call: feed, events, bulk states, preferences, devices, tokens."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from campaign_orchestrator.clock import iso_utc, naive_utc
from campaign_orchestrator.inbox.access import Caller
from campaign_orchestrator.inbox.engagement import EVENT_NAMES, EngagementEvent, record_events
from campaign_orchestrator.inbox.feed import item, paginate, parse_version, select_status
from campaign_orchestrator.inbox.models import (
    ID_TEXT,
    BulkState,
    BulkStateResult,
    Device,
    DeviceUpdate,
    EventBatch,
    EventResults,
    Feed,
    Preferences,
    PreferencesUpdate,
    Problem,
    PublicMessages,
    Token,
    TokenRequest,
)
from campaign_orchestrator.inbox.params import EVENTS_PARAMETERS, FEED_PARAMETERS, BadParameter, FeedRequest, path_id
from campaign_orchestrator.inbox.preferences import change_preferences, read_preferences, sync_device
from campaign_orchestrator.inbox.responses import json_response
from campaign_orchestrator.inbox.service import InboxService, service
from campaign_orchestrator.inbox.tokens import issue_token

router = APIRouter()
CustomerId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_TEXT)]
AppId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_TEXT)]
Authorization = Annotated[str | None, Header(description="Bearer <customer token>")]
ApiKey = Annotated[str | None, Header(alias="X-Api-Key", description="the server key (back-end callers)")]
AppVersionHeader = Annotated[str | None, Header(alias="X-App-Version", max_length=32)]
SessionHeader = Annotated[str | None, Header(alias="X-Session-Id", max_length=64)]
Svc = Annotated[InboxService, Depends(service)]
DENIED: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "a body that is not JSON, a cursor or app version that is not valid"},
    401: {"model": Problem, "description": "no, a wrong or an expired token or key"},
    403: {"model": Problem, "description": "a token for another customer"},
    429: {"model": Problem, "description": "too many requests for this customer; see Retry-After"},
}
CACHED: dict[int | str, dict[str, Any]] = {304: {"description": "unchanged since the ETag given in If-None-Match"}}


def caller_for(
    svc: Svc, customer_id: CustomerId, authorization: Authorization = None, x_api_key: ApiKey = None
) -> Caller:
    return svc.gate.for_customer(customer_id, authorization, x_api_key)


Allowed = Annotated[Caller, Depends(caller_for)]


async def customer_caller(request: Request) -> Caller:
    """`caller_for` read by hand (see `params`), and async: no thread hop, no parameter solving.

    A bad path id is FastAPI's own 422 (a list of errors), as the route's body errors are."""
    svc: InboxService = request.app.state.inbox
    try:
        customer_id = path_id(request, "customer_id", 64)
    except BadParameter as exc:
        error = {"type": "value_error", "loc": ("path", "customer_id"), "msg": exc.detail, "input": None}
        raise RequestValidationError([error]) from None
    return svc.gate.for_customer(customer_id, request.headers.get("authorization"), request.headers.get("x-api-key"))


# As `Allowed`, for the hot write route; its path and headers are documented by hand.
AllowedByHand = Annotated[Caller, Depends(customer_caller)]


@router.get(
    "/v1/customers/{customer_id}/feed",
    response_model=Feed,
    responses={**DENIED, **CACHED, 422: {"model": Problem, "description": "a parameter out of its range"}},
    summary="The customer's showable messages, pinned first, then priority, then newest",
    openapi_extra={"parameters": FEED_PARAMETERS},
)
def get_feed(request: Request) -> Response:
    """Parameters read by hand (see `params`): the hot path skips FastAPI's parameter solving."""
    svc: InboxService = request.app.state.inbox
    customer_id = path_id(request, "customer_id", 64)
    svc.gate.for_customer(customer_id, request.headers.get("authorization"), request.headers.get("x-api-key"))
    asked = FeedRequest.read(request)
    _inbox, messages = svc.read(customer_id, asked.session_id, parse_version(asked.app_version))
    page = paginate(messages, asked.status, asked.cursor, asked.limit or svc.settings.default_page)
    payload = {
        "items": page.items,
        "next_cursor": page.next_cursor,
        "total": page.total,
        "unread": page.unread,
        "unseen": page.unseen,
    }
    return json_response(request, payload, svc.settings.max_age_seconds)


@router.get(
    "/v1/public-messages",
    response_model=PublicMessages,
    responses={**CACHED, 400: {"model": Problem}},
    summary="Notices for every app (outages, forced updates); no token needed",
)
def get_public_messages(
    request: Request,
    svc: Svc,
    app_version: Annotated[str | None, Query(max_length=32)] = None,
    x_app_version: AppVersionHeader = None,
) -> Response:
    _inbox, messages = svc.read(None, None, parse_version(app_version or x_app_version))
    return json_response(request, {"items": [item(m) for m in messages if m.public]}, svc.settings.max_age_seconds)


@router.post(
    "/v1/customers/{customer_id}/events",
    response_model=EventResults,
    responses=DENIED,
    summary="Displayed, clicked, dismissed, read, archived, acknowledged: once per client event id",
    openapi_extra={"parameters": EVENTS_PARAMETERS},
)
def post_events(request: Request, _caller: AllowedByHand, batch: EventBatch) -> Response:
    svc: InboxService = request.app.state.inbox
    customer_id: str = request.path_params["customer_id"]  # checked by customer_caller
    now = svc.now()
    events = [
        EngagementEvent(
            event_id=e.id,
            message_id=e.message_id,
            event=EVENT_NAMES[e.type],
            at=naive_utc(e.at) if e.at else now,
            session_id=e.session_id,
            app_id=e.app_id,
        )
        for e in batch.events
    ]
    outcomes = record_events(svc.engine, customer_id, events, now)
    results = [{"id": e.id, "outcome": o} for e, o in zip(batch.events, outcomes, strict=True)]
    return json_response(request, {"results": results}, 0, cache=False)


@router.post(
    "/v1/customers/{customer_id}/messages/state",
    response_model=BulkStateResult,
    responses=DENIED,
    summary="Change every matching showable message at once (mark all read, archive a campaign's)",
)
def post_bulk_state(
    request: Request, svc: Svc, customer_id: CustomerId, _caller: Allowed, change: BulkState
) -> Response:
    _inbox, messages = svc.read(customer_id, None, None)
    chosen = [m for m in select_status(messages, change.status) if change.campaign_id in (None, m.campaign_id)]
    now = svc.now()
    events = [EngagementEvent(f"bulk-{uuid.uuid4().hex}", m.message_id, change.action, now) for m in chosen]
    outcomes = record_events(svc.engine, customer_id, events, now)
    return json_response(request, {"changed": outcomes.count("accepted")}, 0, cache=False)


@router.get("/v1/customers/{customer_id}/preferences", response_model=Preferences, responses={**DENIED, **CACHED})
def get_preferences(request: Request, svc: Svc, customer_id: CustomerId, _caller: Allowed) -> Response:
    with svc.engine.connect() as conn:
        payload = read_preferences(conn, customer_id)
    return json_response(request, payload, svc.settings.max_age_seconds)


@router.put(
    "/v1/customers/{customer_id}/preferences",
    response_model=Preferences,
    responses=DENIED,
    summary="Opt in or out per channel: takes effect at once, kept in the audit trail",
)
def put_preferences(
    request: Request, svc: Svc, customer_id: CustomerId, caller: Allowed, update: PreferencesUpdate
) -> Response:
    change_preferences(svc.engine, customer_id, dict(update.channels), update.source, caller.audit_name, svc.now())
    with svc.engine.connect() as conn:
        payload = read_preferences(conn, customer_id)
    return json_response(request, payload, 0, cache=False)


@router.put(
    "/v1/customers/{customer_id}/devices/{app_id}",
    response_model=Device,
    responses=DENIED,
    summary="Sync a device: platform, push token and (for Pinpoint SDKs) its endpoint id",
)
def put_device(
    request: Request, svc: Svc, customer_id: CustomerId, app_id: AppId, _caller: Allowed, device: DeviceUpdate
) -> Response:
    payload = sync_device(
        svc.engine, customer_id, app_id, device.platform, device.push_token, device.endpoint_id, svc.now()
    )
    return json_response(request, payload, 0, cache=False)


@router.post(
    "/v1/tokens",
    response_model=Token,
    responses={400: DENIED[400], 401: DENIED[401]},
    summary="A customer token for an app session (back end only: server key)",
)
def post_token(request: Request, svc: Svc, body: TokenRequest, x_api_key: ApiKey = None) -> Response:
    svc.gate.server_only(x_api_key)
    issued = dt.datetime.now(dt.UTC)
    token = issue_token(body.customer_id, svc.settings.signing_secret, body.ttl_seconds, issued)
    expires = iso_utc((issued + dt.timedelta(seconds=body.ttl_seconds)).replace(tzinfo=None))
    return json_response(request, {"token": token, "expires_at": expires}, 0, cache=False)


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}
