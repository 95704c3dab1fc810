"""`DELETE /v1/customers/{customer_id}`: a back end asks for a customer's erasure (server key only).

Answered 202 with the request id once the request is accepted (`erasure.request_erasure`: from
that commit on nothing more is sent to the customer), after the store's rows were erased in the
same call (bounded: one customer). The archive, the reports and the providers are not reachable
from the service: `campaigns erase --pending` finishes those steps (the receipt's `waiting_for`).
A customer token gets 403 (a customer's app cannot erase, not even itself: the back end decides),
no credential or a wrong one 401; a service without the erasure salt answers 503.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Request, status
from pydantic import BaseModel
from starlette.responses import Response

from campaign_orchestrator.erasure import ErasureSaltMissing, Places, continue_erasure, request_erasure
from campaign_orchestrator.inbox.models import ID_TEXT, Problem
from campaign_orchestrator.inbox.responses import json_response
from campaign_orchestrator.inbox.service import InboxService

router = APIRouter()
CustomerId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_TEXT)]


class ErasureAccepted(BaseModel):
    request_id: str
    status: str  # accepted (steps left to `campaigns erase --pending`) or finished
    waiting_for: list[str]


@router.delete(
    "/v1/customers/{customer_id}",
    status_code=202,
    response_model=ErasureAccepted,
    responses={
        401: {"model": Problem, "description": "no, a wrong or an expired token or key"},
        403: {"model": Problem, "description": "a customer token: only the server key may erase"},
        429: {"model": Problem, "description": "too many requests for this customer; see Retry-After"},
        503: {"model": Problem, "description": "this service has no erasure salt (CAMPAIGNS_ERASURE_SALT)"},
    },
    summary="Erase the customer (server key): suppressed at once, the store's rows erased, 202 with the request id",
)
def delete_customer(
    request: Request,
    customer_id: CustomerId,
    authorization: Annotated[str | None, Header(description="Bearer <customer token>: refused")] = None,
    x_api_key: Annotated[str | None, Header(alias="X-Api-Key", description="the server key")] = None,
) -> Response:
    svc: InboxService = request.app.state.inbox
    if x_api_key is None:
        svc.gate.caller(authorization, None)  # 401 unless a valid customer token...
        raise HTTPException(status.HTTP_403_FORBIDDEN, "erasing a customer needs the server key (X-Api-Key)")
    svc.gate.server_only(x_api_key)
    svc.gate.throttle(customer_id)
    try:
        request_id = request_erasure(svc.engine, [customer_id], "inbox")
    except ErasureSaltMissing:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "erasure is not configured on this service") from None
    receipt = continue_erasure(svc.engine, request_id, Places())
    payload = {"request_id": request_id, "status": receipt.status, "waiting_for": receipt.waiting_for}
    response = json_response(request, payload, 0, cache=False)
    response.status_code = status.HTTP_202_ACCEPTED
    return response
