"""Who is calling, and how often: every inbox route but the public notices checks both.

A customer token (`Authorization: Bearer ...`) reads and writes only the customer it names (403
for another customer's path, 401 for a missing, wrong or expired token; neither says whose data
exists). A back-end caller presents the server key (`X-Api-Key`) and may act for any customer.
Calls are limited per customer: over the limit is 429 with `Retry-After`. Several processes share
a limit through Redis (`limits`' fixed window); one process counts in memory with `WindowCounter`,
because `limits`' in-memory storage sweeps every key every 10 ms while holding the GIL (6 ms a
sweep at 10,000 active customers, 88 ms at 50,000: the bench's largest cost).
A verified token is remembered for a minute (its expiry still checked on every use), since an app
sends the same token with every call.
"""

from __future__ import annotations

import datetime as dt
import hmac
import math
import threading
import time
from dataclasses import dataclass
from typing import Literal

from cachetools import TTLCache
from fastapi import HTTPException, status
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from campaign_orchestrator.inbox.settings import InboxSettings
from campaign_orchestrator.inbox.tokens import InvalidToken, verify_token

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


class WindowCounter:
    """Per key, a window that opens at its first hit and allows `amount` hits in `seconds`.

    O(1) a hit and no sweeper: keys live in two generations swapped every `seconds`, so a key
    unused for a whole generation is dropped with it (its window had ended by then)."""

    def __init__(self, amount: int, seconds: float) -> None:
        self.amount, self.seconds = amount, seconds
        self._lock = threading.Lock()
        self._current: dict[str, list[float]] = {}
        self._previous: dict[str, list[float]] = {}
        self._swapped = time.monotonic()

    def hit(self, key: str) -> float | None:
        """None when allowed, else the seconds until the key's window ends."""
        now = time.monotonic()
        with self._lock:
            if now - self._swapped >= self.seconds:
                self._previous, self._current, self._swapped = self._current, {}, now
            entry = self._current.get(key) or self._previous.pop(key, None)
            if entry is None or now - entry[0] >= self.seconds:
                entry = [now, 0.0]
            entry[1] += 1
            self._current[key] = entry
            return None if entry[1] <= self.amount else entry[0] + self.seconds - now


class Gate:
    def __init__(self, settings: InboxSettings) -> None:
        self.settings = settings
        self.limit = parse(settings.rate_limit)
        self.counter: WindowCounter | None = None
        self.limiter: FixedWindowRateLimiter | None = None
        if settings.rate_limit_storage.startswith("memory://"):
            self.counter = WindowCounter(self.limit.amount, self.limit.get_expiry())
        else:
            self.limiter = FixedWindowRateLimiter(storage_from_string(settings.rate_limit_storage))
        self._tokens: TTLCache[str, tuple[str, dt.datetime]] = TTLCache(maxsize=100_000, ttl=60)
        self._tokens_lock = threading.Lock()

    def customer_of(self, token: str) -> str:
        with self._tokens_lock:
            known = self._tokens.get(token)
        if known is None:
            known = verify_token(token, self.settings.signing_secret)
            with self._tokens_lock:
                self._tokens[token] = known
        customer_id, expires = known
        if expires <= dt.datetime.now(dt.UTC):
            raise InvalidToken("token expired")
        return customer_id

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
            return Caller("customer", self.customer_of(token.strip()))
        except InvalidToken as exc:
            raise unauthorized(exc.reason) from None

    def for_customer(self, customer_id: str, authorization: str | None, api_key: str | None) -> Caller:
        caller = self.caller(authorization, api_key)
        if caller.kind == "customer" and caller.customer_id != customer_id:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this token is for another customer")
        self.throttle(customer_id)
        return caller

    def server_only(self, api_key: str | None) -> Caller:
        if api_key is None:
            raise unauthorized("this route needs the server key (X-Api-Key)")
        return self.caller(None, api_key)

    def throttle(self, customer_id: str) -> None:
        if self.counter is not None:
            left = self.counter.hit(customer_id)
            if left is None:
                return
            wait = max(1, math.ceil(left))
        else:
            assert self.limiter is not None
            if self.limiter.hit(self.limit, "inbox", customer_id):
                return
            reset, _remaining = self.limiter.get_window_stats(self.limit, "inbox", customer_id)
            wait = max(1, math.ceil(reset - time.time()))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, "too many requests for this customer", headers={"Retry-After": str(wait)}
        )
