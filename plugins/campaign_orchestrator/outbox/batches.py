"""Forming delivery batches while rendering: the requests the provider will receive, decided once.

A batch is at most `delivery.batch_size` messages of one campaign, variant, destination and send
instant. Its id is a hash of its message ids, used as the request's Idempotency-Key, so the
request a crashed worker may have sent is the very request its successor sends again. Deciding
batches at render time, in the same transaction that writes the messages, means delivery claims
and records one row per request instead of one per message.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from campaign_orchestrator.outbox.ids import request_key, shard_key

MAX_OPEN_MESSAGES = 200_000  # open (not yet full) batches held in memory before they are closed early

BATCH_COLUMNS = (
    "batch_id",
    "run_date",
    "shard_key",
    "destination",
    "campaign_id",
    "variant",
    "send_at",
    "messages",
    "state",
    "attempts",
    "created_at",
    "updated_at",
    "content_hash",
)

BatchKey = tuple[str, str, str, dt.datetime]  # destination, campaign, variant, send instant


class BatchFormer:
    """Collects rendered messages by batch key and hands back closed batches.

    Messages arrive in any order; full batches close at once, open ones wait for more members
    until `close_all`. Each closed batch yields its outbox rows (made by `make_row`, given the
    message and its batch id and shard key) and its delivery_batches row.
    """

    def __init__(
        self, size: int, run_date: dt.date, now: dt.datetime, content_hashes: dict[tuple[str, str], str] | None = None
    ) -> None:
        if size < 1:
            raise ValueError("batch size must be at least 1")
        self.size, self.run_date, self.now = size, run_date, now
        self.content_hashes = content_hashes or {}  # (campaign, variant) -> fingerprint of its template
        self._open: dict[BatchKey, list[tuple[Any, ...]]] = {}
        self._open_messages = 0
        self.message_rows: list[tuple[Any, ...]] = []
        self.batch_rows: list[tuple[Any, ...]] = []

    def add(self, key: BatchKey, message_id: str, row: tuple[Any, ...]) -> None:
        """`row` is the message's outbox row without batch id and shard key (added on closing)."""
        members = self._open.setdefault(key, [])
        members.append((message_id, row))
        self._open_messages += 1
        if len(members) >= self.size:
            self._close(key)

    def take(self, final: bool = False) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Closed batches so far as (outbox rows, batch rows); `final` closes the open ones too, as
        does holding more than MAX_OPEN_MESSAGES (smaller batches, never unbounded memory)."""
        if final or self._open_messages > MAX_OPEN_MESSAGES:
            for key in list(self._open):
                self._close(key)
        taken = self.message_rows, self.batch_rows
        self.message_rows, self.batch_rows = [], []
        return taken

    def _close(self, key: BatchKey) -> None:
        members = self._open.pop(key)
        self._open_messages -= len(members)
        batch_id = request_key([m for m, _ in members])
        shard = shard_key(batch_id)
        self.message_rows.extend((*row, batch_id, shard) for _, row in members)
        destination, campaign_id, variant, send_at = key
        self.batch_rows.append(
            (
                batch_id,
                self.run_date,
                shard,
                destination,
                campaign_id,
                variant,
                send_at,
                len(members),
                "pending",
                0,
                self.now,
                self.now,
                self.content_hashes.get((campaign_id, variant)),
            )
        )
