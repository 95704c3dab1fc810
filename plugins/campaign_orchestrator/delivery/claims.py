"""Claiming delivery batches: the only place two workers could meet, so every step is atomic.

Shards are disjoint ranges of the batches' `shard_key`, so parallel workers normally never meet
on a row; within a shard a claim is a conditional UPDATE (`state = 'pending'`) tagged with a
claim id, so even a zombie retry of the same shard cannot take a batch twice. A claim is a lease:
its worker touches it until its outcomes are written (`Leases`), and a claim nobody touched for a
whole lease can be taken over, again by one conditional UPDATE, by exactly one successor.

A claim is taken (`claimed`) ahead of sending, while the previous one is still being sent, and
turns `in_flight` only just before its first request leaves (`start`). So a successor can tell a
claim that never reached the provider (given back to `pending`, for any destination) from one
that may have (the resend-or-unknown rule).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.outbox.ids import SHARD_KEYS
from campaign_orchestrator.outbox.states import UNDER_CLAIM
from campaign_orchestrator.warehouse.tables import delivery_batches, outbox

log = logging.getLogger(__name__)

B = delivery_batches.c


@dataclass
class ClaimedBatch:
    """A batch under this worker's claim, with the messages it still carries (cancelled ones left)."""

    batch_id: str
    destination: str
    campaign_id: str
    variant: str
    send_at: dt.datetime
    attempts: int = 0
    messages: list[Any] = field(default_factory=list)  # rows: message_id, customer_id, payload
    content_hash: str | None = None


def shard_range(shard: int, shards: int) -> tuple[int, int]:
    """Shard i of n owns the shard keys [floor(i*K/n), floor((i+1)*K/n)) of K = SHARD_KEYS."""
    return shard * SHARD_KEYS // shards, (shard + 1) * SHARD_KEYS // shards


def in_shard(shard: int, shards: int, column: sa.ColumnElement[Any] = B.shard_key) -> sa.ColumnElement[bool]:
    low, high = shard_range(shard, shards)
    return sa.and_(column >= low, column < high)


class Claims:
    """Claim, load, keep alive and take over batches of one shard of one run date."""

    def __init__(self, engine: Engine, run_date: dt.date, shard: int, shards: int, lease_s: float, clock: Any) -> None:
        self.engine, self.run_date, self.shard, self.shards = engine, run_date, shard, shards
        self.lease_s = lease_s
        self.clock: Callable[[], dt.datetime] = clock
        self._mine = sa.and_(B.run_date == run_date, in_shard(shard, shards))

    def requeue_failed(self, max_attempts: int) -> int:
        """Batches that gave up on transient errors in an earlier attempt get another chance,
        with the same Idempotency-Key (their id), since the provider may have accepted them."""
        with self.engine.begin() as conn:
            result = conn.execute(
                delivery_batches.update()
                .where(self._mine, B.state == "failed", B.attempts < max_attempts)
                .values(state="pending", updated_at=self.clock())
            )
        return int(result.rowcount or 0)

    def claim(self, size: int, exclude: Collection[str] = ()) -> tuple[str, list[ClaimedBatch], bool]:
        """A claim id, the batches this worker now owns under it, and whether any pending batch
        was seen (a concurrent worker may have won the race for all of them). Batches of the
        destinations in `exclude` (found down in this attempt) are left pending.

        The outer `state = 'pending'` is re-checked under the row lock, so two workers can never
        both take a batch; PostgreSQL skips rows another claim is locking instead of queueing
        behind it. The derived table keeps the LIMIT legal on MySQL."""
        claim_id = str(uuid.uuid4())
        picked = (
            sa.select(B.batch_id)
            .where(self._mine, B.state == "pending", *self._not_in(exclude))
            .order_by(B.send_at, B.campaign_id, B.variant, B.batch_id)
            .limit(size)
        )
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                chosen: Any = picked.with_for_update(skip_locked=True)
            else:
                sub = picked.subquery("picked")
                chosen = sa.select(sub.c.batch_id)
            taken = conn.execute(
                delivery_batches.update()
                .where(B.batch_id.in_(chosen), B.state == "pending")
                .values(state="claimed", claim_id=claim_id, attempts=B.attempts + 1, updated_at=self.clock())
            ).rowcount
            if not taken:
                return claim_id, [], self._any_pending(conn, exclude)
            return claim_id, load(conn, claim_id), True

    @staticmethod
    def _not_in(exclude: Collection[str]) -> list[sa.ColumnElement[bool]]:
        return [B.destination.not_in(sorted(exclude))] if exclude else []

    def start(self, claim_id: str) -> bool:
        """Mark a claim's batches in flight just before they are sent; False if the claim is no
        longer this worker's (it was taken over while it waited)."""
        with self.engine.begin() as conn:
            started = conn.execute(
                delivery_batches.update()
                .where(B.claim_id == claim_id, B.state == "claimed")
                .values(state="in_flight", updated_at=self.clock())
            ).rowcount
        return bool(started)

    def give_back_unsent(self, conn: Connection, claim_id: str, batch_ids: list[str]) -> None:
        """Batches of a started claim that were never sent (their destination was found down)
        go back to pending, their attempt uncounted: no request for them ever left."""
        for start in range(0, len(batch_ids), 500):
            conn.execute(
                delivery_batches.update()
                .where(B.claim_id == claim_id, B.state == "in_flight", B.batch_id.in_(batch_ids[start : start + 500]))
                .values(state="pending", claim_id=None, attempts=B.attempts - 1, updated_at=self.clock())
            )

    def give_back(self, claim_id: str) -> int:
        """A claim that was taken but never started goes back to pending (its attempt uncounted)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                delivery_batches.update()
                .where(B.claim_id == claim_id, B.state == "claimed")
                .values(state="pending", claim_id=None, attempts=B.attempts - 1, updated_at=self.clock())
            )
        return int(result.rowcount or 0)

    def _any_pending(self, conn: Connection, exclude: Collection[str] = ()) -> bool:
        query = sa.select(B.batch_id).where(self._mine, B.state == "pending", *self._not_in(exclude)).limit(1)
        return conn.execute(query).first() is not None

    def any_pending(self, exclude: Collection[str] = ()) -> bool:
        """Whether the shard still has a batch this worker could claim (one given back included)."""
        with self.engine.connect() as conn:
            return self._any_pending(conn, exclude)

    def destinations_to_send(self) -> list[str]:
        """Destinations of the shard's batches that may still be sent (pending, failed, in flight)."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(B.destination)
                    .where(self._mine, B.state.in_(("pending", "failed", "claimed", "in_flight")))
                    .distinct()
                ).scalars()
            )

    def in_flight_claims(self) -> tuple[list[tuple[str, dt.datetime]], dt.datetime]:
        """(claim id, last touched) of the shard's in-flight claims, and the lease cutoff now."""
        cutoff = self.clock() - dt.timedelta(seconds=self.lease_s)
        with self.engine.connect() as conn:
            claims = conn.execute(
                sa.select(B.claim_id, sa.func.max(B.updated_at))
                .where(self._mine, B.state.in_(UNDER_CLAIM))
                .group_by(B.claim_id)
            ).all()
        return [(c, t) for c, t in claims], cutoff

    def take_over(self, old_claim: str, cutoff: dt.datetime) -> tuple[str, list[ClaimedBatch]]:
        """Move an expired claim's in-flight batches to a new claim id (only one worker can
        succeed; empty if not us); its batches that were never started simply go back to pending."""
        new_claim = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(
                delivery_batches.update()
                .where(self._mine, B.claim_id == old_claim, B.state == "claimed", B.updated_at < cutoff)
                .values(state="pending", claim_id=None, attempts=B.attempts - 1, updated_at=self.clock())
            )
            taken = conn.execute(
                delivery_batches.update()
                .where(self._mine, B.claim_id == old_claim, B.state == "in_flight", B.updated_at < cutoff)
                .values(claim_id=new_claim, updated_at=self.clock())
            ).rowcount
            return new_claim, load(conn, new_claim) if taken else []


class Leases:
    """Keeps every claim this worker holds alive: one thread touches them each quarter lease.

    `hold` returns an event set when that claim's lease is lost (another worker took it over, or
    the warehouse could not be reached): from then on this worker sends nothing more of it."""

    def __init__(self, engine: Engine, lease_s: float, clock: Callable[[], dt.datetime], shard: int) -> None:
        self.engine, self.lease_s, self.clock, self.shard = engine, lease_s, clock, shard
        self._held: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, claim_id: str) -> threading.Event:
        lost = threading.Event()
        with self._lock:
            self._held[claim_id] = lost
        return lost

    def release(self, claim_id: str) -> None:
        with self._lock:
            self._held.pop(claim_id, None)

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            with self._lock:
                held = dict(self._held)
            for claim_id, lost in held.items():
                try:
                    with self.engine.begin() as conn:
                        touched = conn.execute(
                            delivery_batches.update()
                            .where(B.claim_id == claim_id, B.state.in_(UNDER_CLAIM))
                            .values(updated_at=self.clock())
                        ).rowcount
                except Exception:
                    log.exception("shard %d: could not renew a delivery claim; stopping it", self.shard)
                    touched = 0
                if not touched:
                    lost.set()
                    self.release(claim_id)

    @contextmanager
    def running(self) -> Iterator[Leases]:
        self._thread = threading.Thread(target=self._beat, name=f"claim-leases-{self.shard}", daemon=True)
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def load(conn: Connection, claim_id: str) -> list[ClaimedBatch]:
    """The claim's batches with their messages, in claim order."""
    batches = {
        r.batch_id: ClaimedBatch(
            r.batch_id, r.destination, r.campaign_id, r.variant, r.send_at, r.attempts, content_hash=r.content_hash
        )
        for r in conn.execute(
            sa.select(B.batch_id, B.destination, B.campaign_id, B.variant, B.send_at, B.attempts, B.content_hash)
            .where(B.claim_id == claim_id, B.state.in_(UNDER_CLAIM))
            .order_by(B.send_at, B.campaign_id, B.variant, B.batch_id)
        )
    }
    if not batches:
        return []
    ids = list(batches)
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            sa.select(outbox.c.batch_id, outbox.c.message_id, outbox.c.customer_id, outbox.c.payload).where(
                outbox.c.batch_id.in_(ids[start : start + 500]), outbox.c.state.is_(None)
            )
        ).all()  # one fetch, not a round of the driver per row; no ORDER BY (a sort of text keys)
        for r in rows:
            batches[r.batch_id].messages.append(r)
    for batch in batches.values():  # a fixed order, so a split after a 4xx halves the same way on a resend
        batch.messages.sort(key=lambda m: m.message_id)
    return list(batches.values())
