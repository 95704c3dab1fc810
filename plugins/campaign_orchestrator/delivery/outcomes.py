"""A batch's outcome as fates: the groups of its messages that met the same end (sent with one
dispatch id, dead, unknown, or failed under the key of the request that gave up). A batch with
one fate keeps its row; a mixed one is re-batched, one batch per fate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.delivery.claims import ClaimedBatch, Claims
from campaign_orchestrator.delivery.provider import BatchOutcome
from campaign_orchestrator.delivery.report import DeliveryReport
from campaign_orchestrator.outbox.batches import BATCH_COLUMNS
from campaign_orchestrator.outbox.ids import request_key, shard_key
from campaign_orchestrator.warehouse.bulk import bulk_insert, set_by_key
from campaign_orchestrator.warehouse.tables import delivery_batches, outbox

# The order a batch's groups take when its outcome is mixed: the original row keeps a final fate.
B = delivery_batches.c
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


SPLIT_COLUMNS = (*BATCH_COLUMNS, "dispatch_id", "last_error", "sent_at")


class OutcomeRecorder:
    """Writes a claim's outcomes on the batch rows still in flight under that claim, and counts
    them in the attempt's report. A worker whose lease was taken over records nothing."""

    def __init__(
        self,
        engine: Engine,
        run_date: dt.date,
        claims: Claims,
        report: DeliveryReport,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.engine, self.run_date, self.claims, self.report, self.clock = engine, run_date, claims, report, clock

    def record(
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
