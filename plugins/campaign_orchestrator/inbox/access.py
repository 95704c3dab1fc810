"""Who is calling, and how often: every inbox route but the public notices checks both.

A customer token (`Authorization: Bearer ...`) reads and writes only the customer it names (403
for another customer's path, 401 for a missing, wrong or expired token; neither says whose data
exists). A back-end caller presents the server key (`X-Api-Key`) and may act for any customer.
Calls are limited per customer (moving window, `limits`; in memory, or Redis when several
service processes share the load): over the limit is 429 with `Retry-After`.
"""

from __future__ import annotations

import hmac
import math
import time
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException, status
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from campaign_orchestrator.inbox.settings import InboxSettings
from campaign_orchestrator.inbox.tokens import InvalidToken, customer_of

CallerKind = Literal["customer", "server"]


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    customer_id: str | None  # the token's customer; None for the back end

    @property
    def audit_name(self) -> str:
        """How the audit trail names the caller: never the token or the key itself."""
        return "customer" if self.kind == "customer" else "server"


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


class Gate:
    def __init__(self, settings: InboxSettings) -> None:
        self.settings = settings
        self.limit = parse(settings.rate_limit)
        self.limiter = MovingWindowRateLimiter(storage_from_string(settings.rate_limit_storage))

    def caller(self, authorization: str | None, api_key: str | None) -> Caller:
        key = self.settings.server_key
        if api_key is not None:
            if key is None or not hmac.compare_digest(api_key.encode(), key.encode()):
                raise unauthorized("invalid server key")
            return Caller("server", None)
        if not authorization:
            raise unauthorized("a customer token (Authorization: Bearer) or a server key (X-Api-Key) is required")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("the Authorization header must be: Bearer <token>")
        try:
            return Caller("customer", customer_of(token.strip(), self.settings.signing_secret))
        except InvalidToken as exc:
            raise unauthorized(exc.reason) from None

    def for_customer(self, customer_id: str, authorization: str | None, api_key: str | None) -> Caller:
        caller = self.caller(authorization, api_key)
        if caller.kind == "customer" and caller.customer_id != customer_id:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this token is for another customer")
        self.throttle(customer_id)
        return caller

    def server_only(self, api_key: str | None) -> Caller:
        caller = self.caller(None, api_key) if api_key is not None else None
        if caller is None:
            raise unauthorized("this route needs the server key (X-Api-Key)")
        return caller

    def throttle(self, customer_id: str) -> None:
        if self.limiter.hit(self.limit, "inbox", customer_id):
            return
        reset, _remaining = self.limiter.get_window_stats(self.limit, "inbox", customer_id)
        wait = max(1, math.ceil(reset - time.time()))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, "too many requests for this customer", headers={"Retry-After": str(wait)}
        )
