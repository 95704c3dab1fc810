"""Pinpoint-compatible routes: GetInAppMessages and PutEvents, for apps still on a Pinpoint SDK.

An endpoint id resolves to a customer through the devices registered with it (`PUT
/v1/customers/{customer_id}/devices/{app_id}` with `endpoint_id`), else it is the customer id.
The same token or server key rules apply as on the inbox routes, checked against that customer.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from campaign_orchestrator.clock import naive_utc
from campaign_orchestrator.inbox.engagement import EVENT_NAMES, EngagementEvent, record_events
from campaign_orchestrator.inbox.models import (
    ID_TEXT,
    PinpointEventsRequest,
    PinpointEventsResponse,
    PinpointMessages,
    Problem,
)
from campaign_orchestrator.inbox.params import PINPOINT_PARAMETERS, path_id
from campaign_orchestrator.inbox.pinpoint import in_app_messages, message_for
from campaign_orchestrator.inbox.preferences import customer_of_endpoint
from campaign_orchestrator.inbox.responses import json_response
from campaign_orchestrator.inbox.routes import CACHED, DENIED, ApiKey, Authorization, Svc
from campaign_orchestrator.inbox.service import InboxService

router = APIRouter(tags=["pinpoint"])
ApplicationId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_TEXT)]
EndpointId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_TEXT)]
SESSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
ACCEPTED = {"Message": "Accepted", "StatusCode": 202}


@router.get(
    "/v1/apps/{application_id}/endpoints/{endpoint_id}/inappmessages",
    response_model=PinpointMessages,
    responses={**DENIED, **CACHED, 422: {"model": Problem, "description": "an id out of its form"}},
    summary="Pinpoint GetInAppMessages: the endpoint's showable in-app campaigns",
    openapi_extra={"parameters": PINPOINT_PARAMETERS},
)
def get_in_app_messages(request: Request) -> Response:
    """Parameters read by hand, as the feed's (see `params`)."""
    svc: InboxService = request.app.state.inbox
    application_id = path_id(request, "application_id", 128)
    endpoint_id = path_id(request, "endpoint_id", 64)
    with svc.engine.connect() as conn:
        customer_id = customer_of_endpoint(conn, application_id, endpoint_id)
    svc.gate.for_customer(customer_id, request.headers.get("authorization"), request.headers.get("x-api-key"))
    _inbox, messages = svc.read(customer_id, None, None)
    live = [m for m in messages if m.states["archived_at"] is None]
    body = in_app_messages(live, svc.marketing.current().quiet_hours)
    return json_response(request, body, svc.settings.max_age_seconds)


@router.post(
    "/v1/apps/{application_id}/events",
    response_model=PinpointEventsResponse,
    responses=DENIED,
    summary="Pinpoint PutEvents: the in-app events (_inapp.message_displayed, _clicked, _dismissed)",
)
def put_events(
    request: Request,
    svc: Svc,
    application_id: ApplicationId,
    body: PinpointEventsRequest,
    authorization: Authorization = None,
    x_api_key: ApiKey = None,
) -> Response:
    results = {}
    for endpoint_id, batch in body.BatchItem.items():
        with svc.engine.connect() as conn:
            customer_id = customer_of_endpoint(conn, application_id, endpoint_id)
        svc.gate.for_customer(customer_id, authorization, x_api_key)
        _inbox, messages = svc.read(customer_id, None, None)
        events, answers = [], {}
        for event_id, e in batch.Events.items():
            name = EVENT_NAMES.get(e.EventType) if e.EventType.startswith("_inapp.") else None
            target = message_for(messages, e.Attributes.get("campaign_id", ""), e.Attributes.get("treatment_id"))
            if name is None or target is None:
                # Not an in-app event of a message this store holds: Pinpoint accepts and ignores such events.
                answers[event_id] = ACCEPTED
                continue
            session = str((e.Session or {}).get("Id") or "")
            events.append(
                EngagementEvent(
                    event_id=event_id,
                    message_id=target.message_id,
                    event=name,
                    at=naive_utc(e.Timestamp),
                    session_id=session if SESSION.fullmatch(session) else None,
                    app_id=application_id,
                )
            )
        outcomes = record_events(svc.engine, customer_id, events, svc.now())
        for x, outcome in zip(events, outcomes, strict=True):
            answers[x.event_id] = (
                ACCEPTED if outcome in ("accepted", "duplicate") else {"Message": outcome, "StatusCode": 400}
            )
        results[endpoint_id] = {"EndpointItemResponse": ACCEPTED, "EventsItemResponse": answers}
    return json_response(request, {"EventsResponse": {"Results": results}}, 0, cache=False)
