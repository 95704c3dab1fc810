"""Delivering one shard of the outbox: claim batches, send them, record; safe to retry and to run in parallel.

The unit of work is the delivery batch (one provider request or message-store write), formed at
render time with its Idempotency-Key as its id; claiming and recording touch batch rows only
(`claims`). A batch is sent only from `pending`, and outcomes are written only where the claim is
still this worker's.

Batches `in_flight` under a claim nobody touched for a whole lease belong to a worker that died
(SIGKILL, lost node); the next worker on the shard takes them over atomically and resolves them by
one documented rule:
- a destination that honours `Idempotency-Key` gets the same batch again with the same key
  (the provider answers without sending twice);
- any other destination gets nothing: the batch becomes `unknown` ("possibly delivered") and is
  reported, never silently sent again and never silently dropped;
- the message store is transactional, so its batch is simply written again by message id.
A worker that finds a live claim of another worker in its shard waits for it to finish, or for
its lease to run out, and then claims again what a take-over gave back: it ends only when its
shard has nothing claimable left.

A destination is checked before anything is claimed (its connection resolved, its client built),
so a configuration error claims nothing. A destination that refuses the requests themselves
(bad API key, no such endpoint), or whose last `stop_after_failed_batches` batches in a row all
gave up, is found down: its remaining batches are not sent in this attempt and stay pending, so
the task fails with the cause and Airflow's retry (or the next `campaigns deliver`) sends them.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.batching import BATCH_COLUMNS, request_key, shard_key
from campaign_orchestrator.connections import EndpointResolver
from campaign_orchestrator.definitions import Definitions, DeliverySettings
from campaign_orchestrator.delivery.claims import ClaimedBatch, Claims, Leases, in_shard
from campaign_orchestrator.delivery.message_store import store_messages
from campaign_orchestrator.delivery.provider import Batch, BatchOutcome, Message, ProviderClient, TokenBucket
from campaign_orchestrator.tables import delivery_batches, outbox
from campaign_orchestrator.warehouse import bulk_insert, set_by_key

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
B = delivery_batches.c


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass
class DeliveryReport:
    shard: int
    sent: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    unknown: int = 0
    resent_in_flight: int = 0
    requests: int = 0
    # per campaign: requests beyond the first per batch (429, 5xx, timeouts, dropped connections),
    # and seconds its requests waited for the rate limit (client bucket, Retry-After, 429 backoff)
    retried: dict[str, int] = field(default_factory=dict)
    throttled_s: dict[str, float] = field(default_factory=dict)
    waited_for_other_workers_s: float = 0.0
    dead_samples: list[str] = field(default_factory=list)
    # destinations found down in this attempt, with the cause
    down: dict[str, str] = field(default_factory=dict)
    # after the attempt: the shard's messages per state, and why the unsent ones are not sent
    remaining: dict[str, int] = field(default_factory=dict)
    causes: dict[str, dict[str, int]] = field(default_factory=dict)  # state -> cause -> messages
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, bucket: dict[str, int], campaign_id: str, n: int = 1) -> None:
        with self._lock:  # the ledger thread and the main thread both count
            bucket[campaign_id] = bucket.get(campaign_id, 0) + n

    def count_unknown(self, n: int) -> None:
        with self._lock:
            self.unknown += n

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "sent": self.sent,
            "dead": self.dead,
            "failed": self.failed,
            "unknown": self.unknown,
            "resent_in_flight": self.resent_in_flight,
            "requests": self.requests,
            "retried": self.retried,
            "throttled_s": {k: round(v, 3) for k, v in self.throttled_s.items()},
            "waited_for_other_workers_s": round(self.waited_for_other_workers_s, 3),
            "down": self.down,
            "remaining": self.remaining,
            "causes": self.causes,
        }

    @property
    def incomplete(self) -> int:
        """Messages of the shard still to be sent: another attempt may deliver them."""
        return sum(self.remaining.get(s, 0) for s in ("pending", "failed", "in_flight"))

    def summary(self) -> str:
        """One line: the shard's messages per state, and the causes of what is not sent."""
        states = ", ".join(f"{self.remaining.get(s, 0)} {s}" for s in ("sent", "pending", "failed", "unknown", "dead"))
        return f"shard {self.shard}: {states}" + "".join(f"; {c}" for c in cause_lines(self.causes))


def cause_lines(causes: dict[str, dict[str, int]], most: int = 3) -> list[str]:
    """'3690 failed: HTTP 401: Invalid API key', the commonest causes first, per state."""
    lines = []
    for state, by_cause in causes.items():
        ranked = sorted(by_cause.items(), key=lambda kv: (-kv[1], kv[0]))
        lines += [f"{n} {state}: {cause}" for cause, n in ranked[:most]]
        if len(ranked) > most:
            lines.append(f"{sum(n for _, n in ranked[most:])} {state} for {len(ranked) - most} other reasons")
    return lines


class DestinationConfigError(ValueError):
    """A destination's connection or settings cannot make a request; nothing was claimed."""


# The order a batch's groups take when its outcome is mixed: the original row keeps a final fate.
_FATE_ORDER = {"sent": 0, "dead": 1, "unknown": 2, "failed": 3}


@dataclass
class _Fate:
    """One group of a batch's messages that share an outcome."""

    state: str
    detail: str  # dispatch id when sent, else the error
    key: str | None  # for failed groups: the Idempotency-Key of the request that gave up
    message_ids: list[str] = field(default_factory=list)


def _fates(batch: ClaimedBatch, outcome: BatchOutcome) -> list[_Fate]:
    if len(outcome.sent) == len(batch.messages) and len(set(outcome.sent.values())) == 1:  # the usual case
        return [_Fate("sent", next(iter(outcome.sent.values())), None, list(outcome.sent))]
    groups: dict[tuple[str, str, str | None], _Fate] = {}
    for m in batch.messages:
        mid = m.message_id
        if mid in outcome.sent:
            state, detail, key = "sent", outcome.sent[mid], None
        elif mid in outcome.dead:
            state, detail, key = "dead", outcome.dead[mid], None
        elif mid in outcome.unknown:
            state, detail, key = "unknown", outcome.unknown[mid], None
        else:
            state, detail = "failed", outcome.failed.get(mid, "no outcome")
            key = outcome.failed_keys.get(mid, batch.batch_id)
        groups.setdefault((state, detail, key), _Fate(state, detail, key)).message_ids.append(mid)
    return sorted(groups.values(), key=lambda f: _FATE_ORDER[f.state])


class ShardDelivery:
    def __init__(
        self,
        engine: Engine,
        definitions: Definitions,
        run_date: dt.date,
        shard: int,
        shards: int,
        resolver: EndpointResolver,
        clock: Clock = utcnow,
        sleep: Callable[[float], None] | None = None,
        concurrent_shards: int | None = None,
    ) -> None:
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} is not in [0, {shards})")
        self.engine, self.definitions, self.run_date = engine, definitions, run_date
        self.shard, self.shards = shard, shards
        # Shards that send at the same time split the provider's hourly budget between them.
        self.concurrent_shards = max(1, concurrent_shards or shards)
        self.settings: DeliverySettings = definitions.settings.delivery
        self.clock = clock
        self.claims = Claims(engine, run_date, shard, shards, self.settings.lease_s, clock)
        self.leases = Leases(engine, self.settings.lease_s, clock, shard)
        self._writes: deque[Future[None]] = deque()  # warehouse writes queued on the ledger thread
        self._senders: ThreadPoolExecutor
        self._ledger: ThreadPoolExecutor
        self.report = DeliveryReport(shard=shard)
        self._clients: dict[str, ProviderClient] = {}
        self._clients_lock = threading.Lock()
        self._failed_in_a_row: dict[str, int] = {}  # per destination, guarded by _clients_lock
        self._resolver = resolver
        self._sleep = sleep

    def client(self, destination: str) -> ProviderClient:
        with self._clients_lock:  # sender threads meet here first: one client (and bucket) each
            return self._client(destination)

    def _client(self, destination: str) -> ProviderClient:
        if destination not in self._clients:
            dest = self.definitions.settings.destinations[destination]
            assert dest.connection_id is not None
            bucket = TokenBucket(max(1, self.settings.requests_per_hour // self.concurrent_shards))
            kwargs: dict[str, Any] = {"sleep": self._sleep} if self._sleep else {}
            self._clients[destination] = ProviderClient(
                self._resolver(dest.connection_id),
                bucket,
                max_attempts=self.settings.max_attempts,
                timeout_s=self.settings.timeout_s,
                now=self.clock,
                honours_idempotency_key=dest.honours_idempotency_key,
                **kwargs,
            )
        return self._clients[destination]

    def check_destinations(self) -> None:
        """Build and check the client of every provider destination the shard may still send to,
        before anything is claimed: a missing or malformed connection claims nothing."""
        destinations = self.definitions.settings.destinations
        problems = []
        for name in sorted(self.claims.destinations_to_send()):
            dest = destinations.get(name)
            if dest is None:
                problems.append(f"destination {name!r} has batches to send but is not in settings.yaml")
                continue
            if dest.kind == "message_store":
                continue
            try:
                self.client(name).check()
            except Exception as exc:  # the resolver's and the URL parser's errors alike
                problems.append(
                    f"destination {name!r} (connection {dest.connection_id!r}): {type(exc).__name__}: {exc}"
                )
        if problems:
            raise DestinationConfigError(f"shard {self.shard}: nothing was claimed or sent: " + "; ".join(problems))

    def _found_down(self, destination: str, outcome: BatchOutcome) -> None:
        """Count a batch's outcome towards its destination being down for this attempt."""
        with self._clients_lock:
            if destination in self.report.down:
                return
            if outcome.destination_error:
                cause = outcome.destination_error
            elif outcome.sent:
                self._failed_in_a_row[destination] = 0
                return
            else:
                n = self._failed_in_a_row[destination] = self._failed_in_a_row.get(destination, 0) + 1
                if n < self.settings.stop_after_failed_batches:
                    return
                errors = [*outcome.failed.values(), *outcome.unknown.values(), *outcome.dead.values()]
                cause = f"{n} batches in a row not delivered, the last: {errors[0] if errors else 'no outcome'}"
            self.report.down[destination] = cause
        log.error("shard %d: stopped sending to %s in this attempt: %s", self.shard, destination, cause)

    def _is_store(self, destination: str) -> bool:
        return self.definitions.settings.destinations[destination].kind == "message_store"

    # ---------------------------------------------------------------- sending

    def _deliver(
        self, claim_id: str, batches: list[ClaimedBatch], lost: threading.Event, started: bool = False
    ) -> None:
        """Send a claim's provider batches on the sender pool; its warehouse writes (message store,
        outcomes) queue on the ledger thread, so the next claim is sent meanwhile."""
        if not started and not self.claims.start(claim_id):
            self.leases.release(claim_id)  # taken over while it waited: its new owner sends it
            return
        store = [b for b in batches if self._is_store(b.destination) and b.messages]
        provider = [b for b in batches if not self._is_store(b.destination) and b.messages]
        empty = [b for b in batches if not b.messages]
        if store:
            self._writes.append(self._ledger.submit(self._store, claim_id, store))
        outcomes = list(self._senders.map(lambda b: self._send_batch(b, lost), provider))
        self._writes.append(self._ledger.submit(self._finish, claim_id, provider, outcomes, empty, lost))

    def _store(self, claim_id: str, batches: list[ClaimedBatch]) -> None:
        with self.engine.begin() as conn:
            stored = store_messages(conn, batches, self.definitions.campaigns, self.clock(), claim_id)
        for b in stored:
            self.report.add(self.report.sent, b.campaign_id, len(b.messages))

    def _finish(
        self,
        claim_id: str,
        batches: list[ClaimedBatch],
        outcomes: list[BatchOutcome],
        empty: list[ClaimedBatch],
        lost: threading.Event,
    ) -> None:
        try:
            if not lost.is_set():
                self._record(claim_id, batches, outcomes, empty)
        finally:
            self.leases.release(claim_id)

    def _drain(self, wait: bool) -> None:
        """Surface the ledger thread's errors (all of them when `wait`, else the finished ones)."""
        while self._writes and (wait or self._writes[0].done()):
            self._writes.popleft().result()

    def _send_batch(self, claimed: ClaimedBatch, lost: threading.Event) -> BatchOutcome:
        if lost.is_set():
            return BatchOutcome()  # the claim is someone else's now: they resend it with the same key
        if claimed.destination in self.report.down:
            return BatchOutcome(skipped=True)  # no request leaves: it goes back to pending
        campaign = self.definitions.campaigns[claimed.campaign_id]
        assert campaign.provider_campaign_id is not None
        batch = Batch(
            provider_campaign_id=campaign.provider_campaign_id,
            send_at=claimed.send_at,
            messages=tuple(Message(m.message_id, m.customer_id, m.payload) for m in claimed.messages),
            key=claimed.batch_id,
        )
        outcome = self.client(claimed.destination).send(batch)
        self._found_down(claimed.destination, outcome)
        return outcome

    # ---------------------------------------------------------------- recording

    def _record(
        self, claim_id: str, batches: list[ClaimedBatch], outcomes: list[BatchOutcome], empty: list[ClaimedBatch]
    ) -> None:
        """Write outcomes on the batch rows still in flight under this claim (a worker whose lease
        was taken over records nothing). A batch whose messages met different fates (the provider
        rejected some recipients, or half of a split request gave up) is re-batched: each group
        becomes a batch of its own, keyed by the request that carried it, and the original row
        keeps the group its key belongs to or is marked `split`."""
        now = self.clock()
        whole: list[tuple[Any, ...]] = []  # batch id, state, dispatch id, last error, sent at
        splits: list[tuple[ClaimedBatch, list[_Fate]]] = []
        unsent: list[str] = []
        ours = [B.state == "in_flight", B.claim_id == claim_id]
        with self.engine.begin() as conn:
            # Lock what is still ours: a take-over now waits, and only these are counted and written.
            held = set(conn.execute(sa.select(B.batch_id).where(*ours).with_for_update()).scalars())
            for claimed, outcome in zip(batches, outcomes, strict=True):
                if claimed.batch_id not in held:
                    continue
                if outcome.skipped:
                    unsent.append(claimed.batch_id)
                    continue
                self._count(claimed, outcome)
                fates = _fates(claimed, outcome)
                if len(fates) == 1 and fates[0].key in (None, claimed.batch_id):
                    whole.append(self._row(claimed.batch_id, fates[0], now))
                else:
                    splits.append((claimed, fates))
            for claimed in empty:
                if claimed.batch_id in held:
                    whole.append((claimed.batch_id, "cancelled", None, "every message was cancelled", None))
            set_by_key(
                conn,
                delivery_batches,
                "batch_id",
                whole,
                ("state", "dispatch_id", "last_error", "sent_at"),
                fixed={"updated_at": now},
                where=ours,
            )
            for claimed, fates in splits:
                self._split(conn, claimed, fates, ours, now)
            if unsent:
                self.claims.give_back_unsent(conn, claim_id, unsent)

    def _row(self, batch_id: str, fate: _Fate, now: dt.datetime) -> tuple[Any, ...]:
        sent = fate.state == "sent"
        if sent:
            return (batch_id, "sent", fate.detail, None, now)
        return (batch_id, fate.state, None, fate.detail, None)

    def _split(self, conn: Any, claimed: ClaimedBatch, fates: list[_Fate], ours: list[Any], now: dt.datetime) -> None:
        ids = [fate.key or request_key(fate.message_ids) for fate in fates]
        kept = next((f for f, i in zip(fates, ids, strict=True) if i == claimed.batch_id), None)
        state, dispatch_id, last_error, sent_at = (
            self._row(claimed.batch_id, kept, now)[1:]
            if kept
            else ("split", None, "re-batched: its messages met different fates", None)
        )
        marked = conn.execute(
            delivery_batches.update()
            .where(B.batch_id == claimed.batch_id, *ours)
            .values(state=state, dispatch_id=dispatch_id, last_error=last_error, sent_at=sent_at, updated_at=now)
        ).rowcount
        if not marked:
            return  # the claim was taken over meanwhile: the new owner decides
        rows = []
        for fate, batch_id in zip(fates, ids, strict=True):
            if fate is kept:
                continue
            state, dispatch_id, last_error, sent_at = self._row(batch_id, fate, now)[1:]
            rows.append(
                (
                    *(batch_id, self.run_date, shard_key(batch_id), claimed.destination, claimed.campaign_id),
                    *(claimed.variant, claimed.send_at, len(fate.message_ids), state, claimed.attempts),
                    *(now, now, claimed.content_hash, dispatch_id, last_error, sent_at),
                )
            )
            for start in range(0, len(fate.message_ids), 500):
                conn.execute(
                    outbox.update()
                    .where(outbox.c.message_id.in_(fate.message_ids[start : start + 500]))
                    .values(batch_id=batch_id, shard_key=shard_key(batch_id), updated_at=now)
                )
        bulk_insert(conn, delivery_batches, SPLIT_COLUMNS, rows)

    def _count(self, claimed: ClaimedBatch, outcome: BatchOutcome) -> None:
        campaign_id = claimed.campaign_id
        self.report.requests += outcome.requests
        if outcome.retried:
            self.report.add(self.report.retried, campaign_id, outcome.retried)
        if outcome.throttled_s:
            self.report.throttled_s[campaign_id] = self.report.throttled_s.get(campaign_id, 0.0) + outcome.throttled_s
        self.report.add(self.report.sent, campaign_id, len(outcome.sent))
        if outcome.dead:
            self.report.add(self.report.dead, campaign_id, len(outcome.dead))
            for error in list(outcome.dead.values())[: max(0, 10 - len(self.report.dead_samples))]:
                self.report.dead_samples.append(f"{campaign_id}: {error}")
        self.report.count_unknown(len(outcome.unknown))
        settled = len(outcome.sent) + len(outcome.dead) + len(outcome.unknown)
        if len(claimed.messages) > settled:
            self.report.add(self.report.failed, campaign_id, len(claimed.messages) - settled)

    # ---------------------------------------------------------------- recovery

    def _recover_in_flight(self) -> bool:
        """Take over claims whose lease ran out and resolve them; True if live claims remain."""
        claims, cutoff = self.claims.in_flight_claims()
        expired = [c for c, touched in claims if touched < cutoff]
        for old_claim in expired:
            new_claim, batches = self.claims.take_over(old_claim, cutoff)
            if batches:
                self._resolve_taken_over(new_claim, batches)
        return len(expired) < len(claims)

    def _resolve_taken_over(self, claim_id: str, batches: list[ClaimedBatch]) -> None:
        unknown: list[ClaimedBatch] = []
        again: list[ClaimedBatch] = []
        for b in batches:
            dest = self.definitions.settings.destinations.get(b.destination)
            if dest is not None and (dest.kind == "message_store" or dest.honours_idempotency_key):
                again.append(b)
            else:  # no idempotency: it may have gone out; never guess
                unknown.append(b)
        if unknown:
            note = "possibly delivered: in flight when its worker stopped; not resent"
            with self.engine.begin() as conn:
                set_by_key(
                    conn,
                    delivery_batches,
                    "batch_id",
                    [(b.batch_id, "unknown", note) for b in unknown],
                    ("state", "last_error"),
                    fixed={"updated_at": self.clock()},
                    where=[B.state == "in_flight", B.claim_id == claim_id],
                )
            count = sum(len(b.messages) for b in unknown)
            self.report.count_unknown(count)
            log.warning("shard %d: %d messages were in flight when a worker stopped; marked unknown", self.shard, count)
        if again:
            self.report.resent_in_flight += sum(len(b.messages) for b in again if not self._is_store(b.destination))
            self._deliver(claim_id, again, self.leases.hold(claim_id), started=True)

    def run(self) -> DeliveryReport:
        self.check_destinations()
        self.claims.requeue_failed(self.settings.max_attempts)
        per_claim = max(1, self.settings.claim_size // self.settings.batch_size)
        with (
            self.leases.running(),
            ThreadPoolExecutor(self.settings.max_workers, thread_name_prefix=f"send-{self.shard}") as self._senders,
            ThreadPoolExecutor(1, thread_name_prefix=f"ledger-{self.shard}") as self._ledger,
        ):
            self._recover_in_flight()
            self._drain(wait=True)
            # Until nothing is claimable: a take-over while waiting for another worker gives its
            # unstarted batches back to pending, and those are claimed again here.
            while True:
                self._send_claimable(per_claim)
                self._wait_for_other_workers()
                self._drain(wait=True)
                if not self.claims.any_pending(exclude=self.report.down):
                    break
        self._tally()
        return self.report

    def _send_claimable(self, per_claim: int) -> None:
        """Claim and send until no batch of the shard is claimable (destinations found down aside)."""
        upcoming: Future[tuple[str, list[ClaimedBatch], bool, threading.Event]] | None = None
        try:
            # The next claim is taken and loaded on the ledger thread while this one is sent.
            upcoming = self._ledger.submit(self._take, per_claim)
            while True:
                claim_id, batches, seen, lost = upcoming.result()
                if not seen:
                    break
                upcoming = self._ledger.submit(self._take, per_claim)
                if batches:
                    self._deliver(claim_id, batches, lost)
                self._drain(wait=False)
            upcoming = None
            self._drain(wait=True)
        finally:
            if upcoming is not None:  # stopped on an error
                self._writes.clear()  # the executors still finish what was queued
                self._give_back(upcoming)

    def _take(self, batches_per_claim: int) -> tuple[str, list[ClaimedBatch], bool, threading.Event]:
        claim_id, batches, seen = self.claims.claim(batches_per_claim, exclude=set(self.report.down))
        lost = self.leases.hold(claim_id) if batches else threading.Event()
        return claim_id, batches, seen, lost

    def _tally(self) -> None:
        """The shard's messages per state after this attempt, and the causes of those not sent."""
        from campaign_orchestrator.ledger import unsent_causes

        with self.engine.connect() as conn:
            self.report.remaining, self.report.causes = unsent_causes(
                conn, self.run_date, in_shard(self.shard, self.shards, outbox.c.shard_key), down=self.report.down
            )

    def _give_back(self, upcoming: Future[tuple[str, list[ClaimedBatch], bool, threading.Event]]) -> None:
        """A claim taken ahead but never sent (the run stopped on an error) goes back to pending
        at once, rather than waiting for its lease to run out."""
        if upcoming.cancel():
            return
        try:
            claim_id = upcoming.result()[0]
            self.leases.release(claim_id)
            self.claims.give_back(claim_id)
        except Exception:
            log.exception("shard %d: could not give back a claim; its lease will run out", self.shard)

    def _wait_for_other_workers(self) -> None:
        """Another worker's live claim in this shard: wait for it, or take it over when its lease ends."""
        started = time.monotonic()
        deadline = started + self.settings.lease_s * 2 + 5
        while self._recover_in_flight():
            self._drain(wait=True)
            if time.monotonic() > deadline:  # its worker keeps it alive: it is still sending
                log.warning("shard %d: another worker is still delivering part of it", self.shard)
                break
            time.sleep(min(1.0, self.settings.lease_s / 4))
        self.report.waited_for_other_workers_s += time.monotonic() - started


SPLIT_COLUMNS = (*BATCH_COLUMNS, "dispatch_id", "last_error", "sent_at")


def deliver_shard(
    engine: Engine,
    definitions: Definitions,
    run_date: dt.date,
    shard: int,
    shards: int,
    resolver: EndpointResolver,
    clock: Clock = utcnow,
    concurrent_shards: int | None = None,
) -> DeliveryReport:
    """Deliver one shard; `concurrent_shards` (default: all) is how many send at once, for rate limits."""
    return ShardDelivery(
        engine, definitions, run_date, shard, shards, resolver, clock, concurrent_shards=concurrent_shards
    ).run()
