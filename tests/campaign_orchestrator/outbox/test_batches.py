"""Delivery batches formed while rendering: every message in exactly one batch of its own kind."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from campaign_orchestrator.outbox import batches as batching
from campaign_orchestrator.outbox.batches import BATCH_COLUMNS, BatchFormer
from campaign_orchestrator.outbox.ids import request_key, shard_key

RUN = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 2, 0)
KEYS = [("braze", c, v, NOW + dt.timedelta(hours=h)) for c in ("a", "b") for v in ("x", "y") for h in (0, 5)]

messages = st.lists(st.sampled_from(range(len(KEYS))), max_size=400)


@settings(max_examples=200)
@given(messages, st.integers(1, 50), st.integers(1, 400), st.integers(10, 300))
def test_every_message_lands_in_one_batch_of_its_key_and_size(
    keys: list[int], size: int, take_every: int, max_open: int
) -> None:
    saved = batching.MAX_OPEN_MESSAGES
    batching.MAX_OPEN_MESSAGES = max_open  # closing open batches early must not lose or split anything
    try:
        former = BatchFormer(size, RUN, NOW)
        out_messages, out_batches = [], []
        for i, k in enumerate(keys):
            former.add(KEYS[k], f"m{i}", (f"m{i}", k))
            if i % take_every == 0:
                m, b = former.take()
                out_messages += m
                out_batches += b
        m, b = former.take(final=True)
        out_messages += m
        out_batches += b
    finally:
        batching.MAX_OPEN_MESSAGES = saved
    assert sorted(r[0] for r in out_messages) == sorted(f"m{i}" for i in range(len(keys)))
    batches = {
        dict(zip(BATCH_COLUMNS, b, strict=True))["batch_id"]: dict(zip(BATCH_COLUMNS, b, strict=True))
        for b in out_batches
    }
    assert len(batches) == len(out_batches)  # ids are unique
    members: dict[str, list[tuple[str, int]]] = {}
    for mid, k, batch_id, shard in out_messages:
        assert shard == batches[batch_id]["shard_key"] == shard_key(batch_id)
        members.setdefault(batch_id, []).append((mid, k))
    for batch_id, rows in members.items():
        b = batches[batch_id]
        assert len({k for _, k in rows}) == 1  # one campaign, variant, destination and send instant
        key = KEYS[rows[0][1]]
        assert (b["destination"], b["campaign_id"], b["variant"], b["send_at"]) == key
        assert b["messages"] == len(rows) <= size
        assert batch_id == request_key([mid for mid, _ in rows])  # the Idempotency-Key of its request
    if max_open >= len(keys):  # nothing closed early: only the last batch of each key may be short
        short = Counter(KEYS[rows[0][1]] for rows in members.values() if len(rows) < size)
        assert all(n == 1 for n in short.values())
