"""Step 4, the providers: each provider destination that supports deletion (`supports_deletion`,
true by default for the Braze-compatible kind) gets `POST /users/delete` with the request's
customer ids as `external_ids`, at most 50 a request, through delivery's own client (token bucket,
retries with backoff on 429, 5xx, timeouts and dropped connections).

Exactly once: each request of ids (a `part`) has a fixed Idempotency-Key (request, destination,
part), and a part the provider accepted is recorded (`erasure_forwarded`) in its own transaction
and never sent again, so a re-run sends only the parts not yet accepted. A retry after an answer
that may have been lost (a read timeout, a 504) carries the same key, so a provider that honours
keys (the simulator does, for deletions always) answers it without deleting twice; deleting a user
is idempotent at Braze in any case. The message store is erased with the warehouse (step 2).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.connections import EndpointResolver
from campaign_orchestrator.definitions.settings import Settings
from campaign_orchestrator.delivery.provider import ProviderClient, RetryableError, TokenBucket
from campaign_orchestrator.ingest.scrub import ERASED, Values
from campaign_orchestrator.warehouse.tables import erasure_forwarded

log = logging.getLogger(__name__)
DELETE_PATH = "/users/delete"
IDS_PER_REQUEST = 50


@dataclass
class Forwarded:
    destinations: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> ids, requests, or why not
    problems: list[str] = field(default_factory=list)  # without personal data


def deletion_key(request_id: str, destination: str, part: int) -> str:
    return hashlib.sha256(f"erasure|{request_id}|{destination}|{part}".encode()).hexdigest()


def forward_deletions(
    engine: Engine,
    request_id: str,
    ids: Sequence[str],
    settings: Settings,
    resolver: EndpointResolver,
    clock: Callable[[], dt.datetime],
    values: Values | None,
    sleep: Callable[[float], None] | None = None,
) -> Forwarded:
    out = Forwarded()
    parts = [sorted(ids)[i : i + IDS_PER_REQUEST] for i in range(0, len(ids), IDS_PER_REQUEST)]
    for name, dest in sorted(settings.destinations.items()):
        if dest.kind != "provider":
            continue
        if not dest.supports_deletion:
            out.destinations[name] = {"forwarded": False, "why": "supports_deletion: false"}
            continue
        with engine.connect() as conn:
            done = set(
                conn.execute(
                    sa.select(erasure_forwarded.c.part).where(
                        erasure_forwarded.c.request_id == request_id, erasure_forwarded.c.destination == name
                    )
                ).scalars()
            )
        try:
            assert dest.connection_id is not None
            client = ProviderClient(
                resolver(dest.connection_id),
                TokenBucket(settings.delivery.requests_per_hour),
                max_attempts=settings.delivery.max_attempts,
                timeout_s=settings.delivery.timeout_s,
                now=clock,
                honours_idempotency_key=dest.honours_idempotency_key,
                **({"sleep": sleep} if sleep else {}),
            )
            client.check()
        except Exception as exc:  # a missing or malformed connection: nothing was sent there
            out.problems.append(f"provider {name}: {type(exc).__name__}: {_clean(str(exc), values)}")
            continue
        for part, chunk in enumerate(parts):
            if part in done:
                continue
            problem = _send_part(engine, client, request_id, name, part, chunk, clock)
            if problem:
                out.problems.append(f"provider {name}: {_clean(problem, values)}")
                break
            done.add(part)
        out.destinations[name] = {"forwarded": len(done) == len(parts), "ids": len(ids), "requests": len(parts)}
    return out


def _send_part(
    engine: Engine,
    client: ProviderClient,
    request_id: str,
    destination: str,
    part: int,
    ids: list[str],
    clock: Callable[[], dt.datetime],
) -> str | None:
    """Send one part; record it once accepted. Returns what went wrong, or None."""
    try:
        doc, attempts = client.post_json(
            DELETE_PATH, {"external_ids": ids}, deletion_key(request_id, destination, part)
        )
    except RetryableError as exc:
        return f"gave up after {client.max_attempts} attempts: {exc}"
    status = int(doc.pop("_status"))
    if not 200 <= status < 300:
        return f"HTTP {status}: {str(doc.get('message') or doc.get('errors') or '')[:300]}"
    with engine.begin() as conn:
        conn.execute(
            erasure_forwarded.insert().values(
                request_id=request_id,
                destination=destination,
                part=part,
                ids=len(ids),
                attempts=attempts,
                accepted_at=clock(),
            )
        )
    log.info("erasure %s: %s accepted the deletion of %d customer(s)", request_id, destination, len(ids))
    return None


def _clean(text: str, values: Values | None) -> str:
    """A provider's message may quote an id: the receipt keeps none."""
    return values.pattern.sub(ERASED, text) if values is not None else text
