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
from typing import Any

from sqlalchemy.engine import Engine

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.connections import EndpointResolver
from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.definitions.settings import DeliverySettings
from campaign_orchestrator.delivery.claims import ClaimedBatch, Claims, Leases, in_shard
from campaign_orchestrator.delivery.message_store import store_messages
from campaign_orchestrator.delivery.outcomes import OutcomeRecorder
from campaign_orchestrator.delivery.provider import Batch, BatchOutcome, Message, ProviderClient, TokenBucket
from campaign_orchestrator.delivery.report import DeliveryReport
from campaign_orchestrator.errors import CampaignError, InvalidInput
from campaign_orchestrator.outbox.ledger import unsent_causes
from campaign_orchestrator.warehouse.bulk import set_by_key
from campaign_orchestrator.warehouse.tables import delivery_batches, outbox

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
B = delivery_batches.c


class DestinationConfigError(CampaignError, InvalidInput, ValueError):
    """A destination's connection or settings cannot make a request; nothing was claimed."""


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
        self.recorder = OutcomeRecorder(engine, run_date, self.claims, self.report, clock)
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
                self.recorder.record(claim_id, batches, outcomes, empty)
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
