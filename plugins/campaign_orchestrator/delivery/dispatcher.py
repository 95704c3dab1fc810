"""Delivering one shard of the outbox: claim, send, record; safe to retry and to run in parallel.

Shards are disjoint ranges of `shard_key`, so parallel workers never meet on a row; within a
shard a claim is a conditional UPDATE (`state = 'pending'`) tagged with a claim id, so even a
zombie retry of the same shard cannot take a row twice. A row is sent only from `pending`.

A claim is a lease: its worker touches it every quarter of `delivery.lease_s` while sending,
and records outcomes only on rows that still carry its claim id. Rows `in_flight` under a claim
nobody touched for a whole lease belong to a worker that died (SIGKILL, lost node); the next
worker on the shard takes them over atomically and resolves them by one documented rule:
- a destination that honours `Idempotency-Key` gets the same batch again with the same key
  (the provider answers without sending twice);
- any other destination gets nothing: the rows become `unknown` ("possibly delivered") and are
  reported, never silently sent again and never silently dropped;
- the message store is transactional, so its rows are simply written again by message id.
A worker that finds a live claim of another worker in its shard waits for it to finish, or for
its lease to run out, before it reports the shard done.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.connections import EndpointResolver
from campaign_orchestrator.definitions import Definitions, DeliverySettings
from campaign_orchestrator.delivery.message_store import store_messages
from campaign_orchestrator.delivery.provider import (
    Batch,
    BatchOutcome,
    Message,
    ProviderClient,
    TokenBucket,
    request_key,
)
from campaign_orchestrator.outbox import SHARD_KEYS
from campaign_orchestrator.tables import outbox

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


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

    def add(self, bucket: dict[str, int], campaign_id: str, n: int = 1) -> None:
        bucket[campaign_id] = bucket.get(campaign_id, 0) + n

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
        }


COLUMNS = (
    outbox.c.message_id,
    outbox.c.campaign_id,
    outbox.c.customer_id,
    outbox.c.variant,
    outbox.c.destination,
    outbox.c.send_at,
    outbox.c.payload,
    outbox.c.request_key,
    outbox.c.claim_id,
)


def set_by_message_id(
    conn: Connection,
    rows: Sequence[tuple[Any, ...]],
    columns: dict[str, int],
    fixed: dict[str, Any] | None = None,
    where: list[sa.ColumnElement[bool]] | None = None,
) -> None:
    """Set per-row values on outbox rows by message id: `rows` are (message_id, value, ...), `columns`
    maps a column to its position in the row. On PostgreSQL one UPDATE ... FROM unnest(arrays),
    whatever the number of rows (array parameters, not thousands of scalars); an executemany
    elsewhere (in-process on SQLite, so as quick)."""
    if not rows:
        return
    names = list(columns)
    fixed = fixed or {}
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        arrays = [sa.bindparam("a_mid", [r[0] for r in rows], type_=ARRAY(sa.String))]
        arrays += [sa.bindparam(f"a_{n}", [r[columns[n]] for r in rows], type_=ARRAY(sa.String)) for n in names]
        v = sa.func.unnest(*arrays).table_valued("mid", *names).render_derived(name="v")
        conn.execute(
            outbox.update()
            .where(outbox.c.message_id == v.c.mid, *(where or []))
            .values(**{n: v.c[n] for n in names}, **fixed)
        )
        return
    stmt = outbox.update().where(outbox.c.message_id == sa.bindparam("mid"), *(where or []))
    conn.execute(
        stmt.values(**{n: sa.bindparam(f"v_{n}") for n in names}, **fixed),
        [{"mid": r[0], **{f"v_{n}": r[columns[n]] for n in names}} for r in rows],
    )


def shard_range(shard: int, shards: int) -> tuple[int, int]:
    """Shard i of n owns the shard keys [floor(i*K/n), floor((i+1)*K/n)) of K = SHARD_KEYS."""
    return shard * SHARD_KEYS // shards, (shard + 1) * SHARD_KEYS // shards


def _in_shard(shard: int, shards: int) -> sa.ColumnElement[bool]:
    # A range, not a modulo: the planner estimates it from the column's histogram and walks the
    # claim index in batch order instead of sorting the whole day.
    low, high = shard_range(shard, shards)
    return sa.and_(outbox.c.shard_key >= low, outbox.c.shard_key < high)


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
        self.report = DeliveryReport(shard=shard)
        self._clients: dict[str, ProviderClient] = {}
        self._resolver = resolver
        self._sleep = sleep

    def client(self, destination: str) -> ProviderClient:
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

    # ---------------------------------------------------------------- claiming

    def _requeue_failed(self, conn: Connection) -> None:
        """Rows that gave up on transient errors in an earlier attempt get another chance."""
        conn.execute(
            outbox.update()
            .where(
                outbox.c.run_date == self.run_date,
                outbox.c.state == "failed",
                _in_shard(self.shard, self.shards),
                outbox.c.attempts < self.settings.max_attempts,
            )
            .values(state="pending", updated_at=self.clock())
        )

    def _claim(self) -> tuple[str, list[Any], list[tuple[str, list[Any]]], bool]:
        """A claim id, the rows this worker now owns under it, their provider batches as (key, rows),
        and whether any pending rows were seen.

        One conditional UPDATE takes up to claim_size pending rows (the derived table keeps the
        LIMIT legal on MySQL); the outer `state = 'pending'` is re-checked under the row lock, so
        two workers can never both take a row. The batches' keys are written in the same
        transaction, so whoever takes the claim over later resends exactly these requests. Rows
        that come back from `failed` keep the key of the request that failed: they may have been
        accepted, and only the same key lets the provider recognise them.
        """
        claim_id = str(uuid.uuid4())
        picked = (
            sa.select(outbox.c.message_id)
            .where(outbox.c.run_date == self.run_date, outbox.c.state == "pending", _in_shard(self.shard, self.shards))
            .order_by(outbox.c.campaign_id, outbox.c.variant, outbox.c.send_at)
            .limit(self.settings.claim_size)
            .subquery("picked")
        )
        with self.engine.begin() as conn:
            taken = conn.execute(
                outbox.update()
                .where(outbox.c.message_id.in_(sa.select(picked.c.message_id)), outbox.c.state == "pending")
                .values(state="in_flight", claim_id=claim_id, attempts=outbox.c.attempts + 1, updated_at=self.clock())
            ).rowcount
            if not taken:
                return claim_id, [], [], self._any_pending()
            rows = list(
                conn.execute(
                    sa.select(*COLUMNS)
                    .where(outbox.c.claim_id == claim_id)
                    .order_by(outbox.c.campaign_id, outbox.c.variant, outbox.c.send_at, outbox.c.message_id)
                ).all()
            )
            provider_rows = [r for r in rows if not self._is_store(r.destination)]
            batches = self._keyed(r for r in provider_rows if r.request_key)
            keys: list[tuple[str, Any]] = []
            for group in self._groups(r for r in provider_rows if not r.request_key):
                key = request_key([m.message_id for m in group])
                keys.extend((m.message_id, key) for m in group)
                batches.append((key, group))
            set_by_message_id(conn, keys, {"request_key": 1})
        return claim_id, rows, batches, True

    @staticmethod
    def _keyed(rows: Iterable[Any]) -> list[tuple[str, list[Any]]]:
        """Rows that already carry a request key, grouped by it: the same requests as before."""
        by_key: dict[str, list[Any]] = defaultdict(list)
        for r in rows:
            by_key[r.request_key].append(r)
        return list(by_key.items())

    def _any_pending(self) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(outbox.c.message_id)
                    .where(
                        outbox.c.run_date == self.run_date,
                        outbox.c.state == "pending",
                        _in_shard(self.shard, self.shards),
                    )
                    .limit(1)
                ).first()
                is not None
            )

    def _groups(self, rows: Iterable[Any]) -> list[list[Any]]:
        """Provider batches: same destination, campaign, variant and send instant; at most batch_size."""
        by_key: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
        for r in rows:
            by_key[(r.destination, r.campaign_id, r.variant, r.send_at)].append(r)
        size = self.settings.batch_size
        return [group[i : i + size] for group in by_key.values() for i in range(0, len(group), size)]

    # ---------------------------------------------------------------- sending

    def _is_store(self, destination: str) -> bool:
        return self.definitions.settings.destinations[destination].kind == "message_store"

    def _deliver_rows(self, claim_id: str, rows: list[Any], batches: list[tuple[str, list[Any]]]) -> None:
        with self._heartbeat(claim_id) as lost:
            store_rows = [r for r in rows if self._is_store(r.destination)]
            if store_rows:
                with self.engine.begin() as conn:
                    stored = store_messages(conn, store_rows, self.definitions.campaigns, self.clock(), claim_id)
                for r in stored:
                    self.report.add(self.report.sent, r.campaign_id)
            if not batches:
                return
            with ThreadPoolExecutor(max_workers=self.settings.max_workers) as pool:
                outcomes = list(pool.map(lambda b: self._send_batch(b, lost), batches))
            if not lost.is_set():
                self._record(claim_id, [rows for _, rows in batches], outcomes)

    @contextmanager
    def _heartbeat(self, claim_id: str) -> Iterator[threading.Event]:
        """Touch the claim every quarter lease while it is worked on, so nobody takes it over.
        Yields an event set when the lease is lost (another worker took the claim, or the
        warehouse could not be reached): from then on this worker sends nothing more of it."""
        stop, lost = threading.Event(), threading.Event()
        every = self.settings.lease_s / 4

        def beat() -> None:
            while not stop.wait(every):
                try:
                    with self.engine.begin() as conn:
                        touched = conn.execute(
                            outbox.update()
                            .where(outbox.c.claim_id == claim_id, outbox.c.state == "in_flight")
                            .values(updated_at=self.clock())
                        ).rowcount
                except Exception:
                    log.exception("shard %d: could not renew a delivery claim; stopping it", self.shard)
                    touched = 0
                if not touched:
                    lost.set()
                    return

        thread = threading.Thread(target=beat, name=f"claim-heartbeat-{self.shard}", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            stop.set()
            thread.join()

    def _send_batch(self, keyed: tuple[str, list[Any]], lost: threading.Event) -> BatchOutcome:
        key, rows = keyed
        if lost.is_set():
            return BatchOutcome()  # the claim is someone else's now: they resend it with the same key
        first = rows[0]
        campaign = self.definitions.campaigns[first.campaign_id]
        assert campaign.provider_campaign_id is not None
        batch = Batch(
            provider_campaign_id=campaign.provider_campaign_id,
            send_at=first.send_at,
            messages=tuple(Message(r.message_id, r.customer_id, json.loads(r.payload)) for r in rows),
            key=key,
        )
        return self.client(first.destination).send(batch)

    def _record(self, claim_id: str, batches: list[list[Any]], outcomes: list[BatchOutcome]) -> None:
        """Write outcomes back, one UPDATE per (state, dispatch or error) group, only on rows still
        in flight under this claim (a worker whose lease was taken over records nothing)."""
        now = self.clock()
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)  # (state, detail) -> message ids
        failed: list[tuple[str, str, str]] = []  # message id, error, key of the request that gave up
        for rows, outcome in zip(batches, outcomes, strict=True):
            self.report.requests += outcome.requests
            campaign_id = rows[0].campaign_id
            if outcome.retried:
                self.report.add(self.report.retried, campaign_id, outcome.retried)
            if outcome.throttled_s:
                self.report.throttled_s[campaign_id] = (
                    self.report.throttled_s.get(campaign_id, 0.0) + outcome.throttled_s
                )
            for r in rows:
                if r.message_id in outcome.sent:
                    groups[("sent", outcome.sent[r.message_id])].append(r.message_id)
                    self.report.add(self.report.sent, r.campaign_id)
                elif r.message_id in outcome.dead:
                    groups[("dead", outcome.dead[r.message_id])].append(r.message_id)
                    self.report.add(self.report.dead, r.campaign_id)
                    if len(self.report.dead_samples) < 10:
                        self.report.dead_samples.append(f"{r.campaign_id}: {outcome.dead[r.message_id]}")
                elif r.message_id in outcome.unknown:
                    groups[("unknown", outcome.unknown[r.message_id])].append(r.message_id)
                    self.report.unknown += 1
                else:
                    error = outcome.failed.get(r.message_id, "no outcome")
                    failed.append((r.message_id, error, outcome.failed_keys.get(r.message_id, r.request_key)))
                    self.report.add(self.report.failed, r.campaign_id)
        sent = [(mid, detail) for (state, detail), ids in groups.items() if state == "sent" for mid in ids]
        with self.engine.begin() as conn:
            # All sent rows in one statement: each batch has its own dispatch id.
            set_by_message_id(
                conn,
                sent,
                {"dispatch_id": 1},
                fixed={"state": "sent", "sent_at": now, "updated_at": now, "last_error": None},
                where=[outbox.c.state == "in_flight", outbox.c.claim_id == claim_id],
            )
            # Failed rows keep the key of the request that gave up: a retry must reuse it.
            set_by_message_id(
                conn,
                failed,
                {"last_error": 1, "request_key": 2},
                fixed={"state": "failed", "updated_at": now},
                where=[outbox.c.state == "in_flight", outbox.c.claim_id == claim_id],
            )
            for (state, detail), ids in groups.items():
                if state == "sent":
                    continue
                conn.execute(
                    outbox.update()
                    .where(outbox.c.message_id.in_(ids), outbox.c.state == "in_flight", outbox.c.claim_id == claim_id)
                    .values(state=state, updated_at=now, last_error=detail)
                )

    # ---------------------------------------------------------------- recovery

    def _in_flight_elsewhere(self) -> tuple[list[tuple[str, dt.datetime]], dt.datetime]:
        """(claim id, last touched) of in-flight claims in this shard, and the lease cutoff now."""
        cutoff = self.clock() - dt.timedelta(seconds=self.settings.lease_s)
        with self.engine.connect() as conn:
            claims = conn.execute(
                sa.select(outbox.c.claim_id, sa.func.max(outbox.c.updated_at))
                .where(
                    outbox.c.run_date == self.run_date,
                    outbox.c.state == "in_flight",
                    _in_shard(self.shard, self.shards),
                )
                .group_by(outbox.c.claim_id)
            ).all()
        return [(c, t) for c, t in claims], cutoff

    def _recover_in_flight(self) -> bool:
        """Take over claims whose lease ran out and resolve them; True if live claims remain."""
        claims, cutoff = self._in_flight_elsewhere()
        expired = [c for c, touched in claims if touched < cutoff]
        for old_claim in expired:
            new_claim = str(uuid.uuid4())
            with self.engine.begin() as conn:
                taken = conn.execute(
                    outbox.update()
                    .where(
                        outbox.c.claim_id == old_claim,
                        outbox.c.state == "in_flight",
                        outbox.c.updated_at < cutoff,
                        _in_shard(self.shard, self.shards),
                    )
                    .values(claim_id=new_claim, updated_at=self.clock())
                ).rowcount
            if taken:
                self._resolve_taken_over(new_claim)
        return len(expired) < len(claims)

    def _resolve_taken_over(self, claim_id: str) -> None:
        with self.engine.connect() as conn:
            stuck = conn.execute(sa.select(*COLUMNS).where(outbox.c.claim_id == claim_id)).all()
        store_rows: list[Any] = []
        resend: list[Any] = []
        unknown: list[str] = []
        for r in stuck:
            dest = self.definitions.settings.destinations.get(r.destination)
            if dest is not None and dest.kind == "message_store":
                store_rows.append(r)
            elif dest is not None and dest.honours_idempotency_key and r.request_key:
                resend.append(r)
            else:  # no idempotency, or no key recorded: it may have gone out; never guess
                unknown.append(r.message_id)
        if unknown:
            with self.engine.begin() as conn:
                for start in range(0, len(unknown), 1000):
                    conn.execute(
                        outbox.update()
                        .where(
                            outbox.c.message_id.in_(unknown[start : start + 1000]),
                            outbox.c.claim_id == claim_id,
                            outbox.c.state == "in_flight",
                        )
                        .values(
                            state="unknown",
                            updated_at=self.clock(),
                            last_error="possibly delivered: in flight when its worker stopped; not resent",
                        )
                    )
            self.report.unknown += len(unknown)
            log.warning(
                "shard %d: %d messages were in flight when a worker stopped; marked unknown", self.shard, len(unknown)
            )
        batches = self._keyed(resend)
        if batches or store_rows:
            self.report.resent_in_flight += len(resend)
            self._deliver_rows(claim_id, store_rows + resend, batches)

    def run(self) -> DeliveryReport:
        with self.engine.begin() as conn:
            self._requeue_failed(conn)
        self._recover_in_flight()
        while True:
            claim_id, rows, batches, seen = self._claim()
            if not seen:
                break
            if rows:
                self._deliver_rows(claim_id, rows, batches)
        # Another worker's live claim in this shard: wait for it, or take it over when its lease ends.
        started = time.monotonic()
        deadline = started + self.settings.lease_s * 2 + 5
        while self._recover_in_flight():
            if time.monotonic() > deadline:  # its worker keeps it alive: it is still sending
                log.warning("shard %d: another worker is still delivering part of it", self.shard)
                break
            time.sleep(min(1.0, self.settings.lease_s / 4))
        self.report.waited_for_other_workers_s += time.monotonic() - started
        return self.report


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
