"""A Braze-compatible provider client on `requests`.

One request carries at most 50 named recipients of one (campaign, variant, send time). Future
sends use `/campaigns/trigger/schedule/create`, due ones `/campaigns/trigger/send`. Requests
pass a client-side token bucket that the provider's `X-RateLimit-*` headers correct; 429, 5xx,
timeouts and connection errors are retried with exponential backoff and jitter (tenacity);
other 4xx are not retried: the batch is split in halves until the bad recipients stand alone,
and those go to dead with the provider's message. An answer that rejects the request itself, not
its recipients (401/403: the API key; 404/405: no such endpoint), fails the batch whole and marks
the outcome `destination_error`, so the dispatcher stops sending there. Every request carries an `Idempotency-Key`
derived from its message ids, so a resend of the same batch is recognisable.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.connections import ProviderEndpoint
from campaign_orchestrator.delivery.scheduling import SCHEDULE_MARGIN
from campaign_orchestrator.errors import CampaignError
from campaign_orchestrator.outbox.ids import request_key

SEND_PATH = "/campaigns/trigger/send"
SCHEDULE_PATH = "/campaigns/trigger/schedule/create"
MAX_RECIPIENTS = 50
# Answers about the destination, not the recipients: every batch would get the same.
DESTINATION_ERRORS = frozenset({401, 403, 404, 405})


class RetryableError(CampaignError):
    """A transient failure. `status` is the provider's HTTP status, None when no answer came.
    `ambiguous`: the provider may have accepted the request anyway (read timeout, connection lost
    after sending, 500/502/504), so only an idempotent resend is safe."""

    def __init__(
        self, message: str, retry_after: float | None = None, ambiguous: bool = False, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.ambiguous = ambiguous
        self.status = status


class Message(NamedTuple):  # a tuple: a request carries 50 and a night a million
    message_id: str
    customer_id: str
    fields: dict[str, Any] | str  # the trigger properties, or their JSON text as the outbox holds it


@dataclass(frozen=True)
class Batch:
    provider_campaign_id: str
    send_at: dt.datetime  # naive UTC
    messages: tuple[Message, ...]
    key: str | None = None  # the ledger's key for this request; by default derived from the message ids

    @property
    def idempotency_key(self) -> str:
        return self.key or request_key([m.message_id for m in self.messages])


@dataclass
class BatchOutcome:
    sent: dict[str, str] = field(default_factory=dict)  # message id -> dispatch id
    dead: dict[str, str] = field(default_factory=dict)  # message id -> provider's message
    failed: dict[str, str] = field(default_factory=dict)  # retryable, gave up for now
    failed_keys: dict[str, str] = field(default_factory=dict)  # message id -> key of the request that gave up
    unknown: dict[str, str] = field(default_factory=dict)  # may have been delivered; not retried
    # the provider refused the request itself (bad key, no such endpoint): e.g. "HTTP 401: Invalid API key"
    destination_error: str | None = None
    skipped: bool = False  # not sent at all: the destination was found down before this batch's turn
    requests: int = 0
    retried: int = 0
    throttled_s: float = 0.0


class TokenBucket:
    """Requests per hour, smoothed; the provider's remaining/reset headers can only slow it down."""

    def __init__(self, per_hour: int, burst: int = 50, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_hour / 3600.0
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self.blocked_until = 0.0
        self.lock = threading.Lock()

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Take one request's token, sleeping as long as needed; returns the seconds slept."""
        slept = 0.0
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                wait = max(self.blocked_until - now, 0.0)
                if wait == 0.0 and self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return slept
                if wait == 0.0:
                    wait = (1.0 - self.tokens) / self.rate
            wait = min(wait, 5.0)
            sleep(wait)
            slept += wait

    def observe(self, remaining: int | None, reset_epoch: float | None) -> None:
        """Provider says `remaining` requests are left until `reset_epoch`: never go faster."""
        if remaining is None or reset_epoch is None:
            return
        with self.lock:
            seconds_left = max(reset_epoch - time.time(), 0.0)
            if remaining <= 0:
                self.blocked_until = self.clock() + seconds_left
                self.tokens = 0.0
            elif seconds_left > 0:
                self.tokens = min(self.tokens, float(remaining))


def _header_int(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


class ProviderClient:
    def __init__(
        self,
        endpoint: ProviderEndpoint,
        bucket: TokenBucket,
        max_attempts: int = 5,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], dt.datetime] = utcnow,
        honours_idempotency_key: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.honours_idempotency_key = honours_idempotency_key
        self.bucket = bucket
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.now = now
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # The environment (proxies, CA bundle) is read once here rather than on every request,
            # which also skips requests' per-request look for a .netrc: a third of its overhead.
            session.trust_env = False
            session.proxies.update(requests.utils.get_environ_proxies(self.endpoint.base_url))
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                session.verify = bundle
            session.headers.update(
                {
                    "Authorization": f"Bearer {self.endpoint.api_key}",
                    "Content-Type": "application/json",
                    "User-Agent": "campaign-orchestrator/0.1",
                }
            )
            self._local.session = session
        return session

    def check(self) -> None:
        """Raise ValueError saying what is wrong with the endpoint, before any batch is claimed: a
        request that cannot even be built must not leave batches in flight."""
        parts = urlsplit(self.endpoint.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the provider URL {self.endpoint.base_url!r} needs http(s)://host")
        _ = parts.port  # a port that is not a number raises here
        try:  # requests' own checks of the URL and the headers (a key with a line break, ...)
            self.session.prepare_request(requests.Request("POST", self.endpoint.base_url + SEND_PATH))
        except (requests.RequestException, ValueError) as exc:
            raise ValueError(f"the provider connection cannot make a request: {type(exc).__name__}") from None

    def _count(self, outcome: BatchOutcome, attempts: int) -> None:
        outcome.requests += attempts
        outcome.retried += attempts - 1
        outcome.throttled_s += self._local.throttled

    def _gave_up(self, batch: Batch, exc: RetryableError, outcome: BatchOutcome) -> None:
        """Retries spent: `unknown` if the request may have arrived at a destination that cannot tell
        a resend, else `failed`, to be resent under the same key by a later attempt."""
        if exc.ambiguous and not self.honours_idempotency_key:
            for m in batch.messages:
                outcome.unknown[m.message_id] = f"possibly delivered: {exc}; not resent (no idempotency key)"
            return
        for m in batch.messages:
            outcome.failed[m.message_id] = f"gave up after {self._local.attempts} attempts: {exc}"
            outcome.failed_keys[m.message_id] = batch.idempotency_key

    def body(self, batch: Batch) -> tuple[str, dict[str, Any]]:
        recipients = [
            {
                "external_user_id": m.customer_id,
                "trigger_properties": json.loads(m.fields) if isinstance(m.fields, str) else m.fields,
            }
            for m in batch.messages
        ]
        payload: dict[str, Any] = {"campaign_id": batch.provider_campaign_id, "recipients": recipients}
        if batch.send_at > self.now() + SCHEDULE_MARGIN:
            payload["schedule"] = {"time": batch.send_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "in_local_time": False}
            return SCHEDULE_PATH, payload
        return SEND_PATH, payload

    def body_text(self, batch: Batch) -> tuple[str, str]:
        """The request as JSON text, with each recipient's properties spliced in as the outbox holds
        them (already JSON from rendering): no parse and re-dump of every message on every send."""
        if not all(isinstance(m.fields, str) for m in batch.messages):
            path, payload = self.body(batch)
            return path, json.dumps(payload, separators=(",", ":"))
        path, payload = self.body(Batch(batch.provider_campaign_id, batch.send_at, ()))
        del payload["recipients"]
        dumps = json.dumps
        recipients = ",".join(
            f'{{"external_user_id":{dumps(m.customer_id)},"trigger_properties":{m.fields}}}' for m in batch.messages
        )
        return path, f'{dumps(payload, separators=(",", ":"))[:-1]},"recipients":[{recipients}]}}'

    def _prepared(self, path: str) -> requests.PreparedRequest:
        """The request to `path` prepared once per thread (URL parsed, session headers merged);
        each send copies it and sets its body and key, skipping requests' per-call merging."""
        cache: dict[str, requests.PreparedRequest] = self._local.__dict__.setdefault("prepared", {})
        if path not in cache:
            cache[path] = self.session.prepare_request(requests.Request("POST", self.endpoint.base_url + path))
        return cache[path]

    def _post_once(self, batch: Batch) -> dict[str, Any]:
        path, text = self.body_text(batch)
        return self._post_text(path, text, batch.idempotency_key)

    def _post_text(self, path: str, text: str, key: str) -> dict[str, Any]:
        self._local.throttled = getattr(self._local, "throttled", 0.0) + self.bucket.acquire(self.sleep)
        request = self._prepared(path).copy()
        request.headers["Idempotency-Key"] = key
        request.prepare_body(text.encode(), None)
        try:
            response = self.session.send(request, timeout=self.timeout_s)
        except requests.ConnectTimeout:
            raise RetryableError(f"connect timeout to {self.endpoint.base_url}") from None  # never reached it
        except (requests.ConnectionError, requests.Timeout) as exc:
            refused = "NewConnectionError" in repr(exc) or "Connection refused" in str(exc)
            if refused:
                raise RetryableError(f"cannot connect to {self.endpoint.base_url} (connection refused)") from None
            raise RetryableError(type(exc).__name__, ambiguous=True) from None
        except requests.RequestException as exc:  # the request left; what became of it is not known
            raise RetryableError(type(exc).__name__, ambiguous=True) from None
        self.bucket.observe(_header_int(response, "X-RateLimit-Remaining"), _header_int(response, "X-RateLimit-Reset"))
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = _header_int(response, "Retry-After")
            raise RetryableError(
                f"HTTP {response.status_code}",
                float(retry_after) if retry_after else None,
                ambiguous=response.status_code not in (429, 503),  # refused before processing
                status=response.status_code,
            )
        try:
            doc: dict[str, Any] = response.json()
        except ValueError:
            doc = {"message": response.text[:200]}
        doc["_status"] = response.status_code
        return doc

    def _wait(self, state: RetryCallState) -> float:
        base = wait_exponential_jitter(multiplier=0.5, max=30.0)(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableError) and exc.retry_after:
            wait = max(base, exc.retry_after)
            self._local.throttled = getattr(self._local, "throttled", 0.0) + wait
            return wait
        if isinstance(exc, RetryableError) and exc.status == 429:
            self._local.throttled = getattr(self._local, "throttled", 0.0) + base
        return base

    def _may_retry(self, exc: BaseException) -> bool:
        """Transient failures are retried; ambiguous ones only where the key makes a resend safe."""
        return isinstance(exc, RetryableError) and (self.honours_idempotency_key or not exc.ambiguous)

    def post(self, batch: Batch) -> tuple[dict[str, Any], int]:
        """Send one request, retrying transient failures; returns (response document, attempts)."""
        return self._retried(lambda: self._post_once(batch))

    def post_json(self, path: str, doc: dict[str, Any], key: str) -> tuple[dict[str, Any], int]:
        """Any other call of the provider's API (e.g. `/users/delete`), under the same budget and
        retry policy as the sends: (response document with its `_status`, attempts); raises
        RetryableError once the retries are spent."""
        self._local.throttled = 0.0
        text = json.dumps(doc, separators=(",", ":"))
        return self._retried(lambda: self._post_text(path, text, key))

    def _retried(self, once: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], int]:
        attempts = 0
        retrying = Retrying(
            retry=retry_if_exception(self._may_retry),
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
        )
        self._local.attempts = 0
        for attempt in retrying:
            with attempt:
                attempts += 1
                self._local.attempts = attempts
                return once(), attempts
        raise AssertionError("unreachable")  # pragma: no cover

    def send(self, batch: Batch) -> BatchOutcome:
        outcome = BatchOutcome()
        self._send_into(batch, outcome)
        return outcome

    def _send_into(self, batch: Batch, outcome: BatchOutcome) -> None:
        self._local.throttled = 0.0
        try:
            doc, attempts = self.post(batch)
        except RetryableError as exc:
            self._count(outcome, self._local.attempts)
            self._gave_up(batch, exc, outcome)
            return
        self._count(outcome, attempts)
        status = doc.pop("_status")
        if 200 <= status < 300:
            dispatch = str(doc.get("schedule_id") or doc.get("dispatch_id") or "")
            for m in batch.messages:
                outcome.sent[m.message_id] = dispatch
            return
        message = str(doc.get("message") or doc.get("errors") or f"HTTP {status}")[:500]
        if status in DESTINATION_ERRORS:
            # A bad key or a wrong URL rejects every batch alike: no point splitting, and the
            # recipients are not at fault, so they stay sendable once the connection is fixed.
            outcome.destination_error = f"HTTP {status}: {message}"
            for m in batch.messages:
                outcome.failed[m.message_id] = outcome.destination_error
                outcome.failed_keys[m.message_id] = batch.idempotency_key
            return
        if len(batch.messages) == 1:
            outcome.dead[batch.messages[0].message_id] = f"HTTP {status}: {message}"
            return
        half = len(batch.messages) // 2
        for part in (batch.messages[:half], batch.messages[half:]):
            self._send_into(Batch(batch.provider_campaign_id, batch.send_at, part), outcome)
