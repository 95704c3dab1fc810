"""The outbox and its ledger: one row per (campaign, customer, slot date) with a deterministic id,
grouped in delivery batches (one provider request each) whose state is the message's.

Guarantee: the ledger is the source of truth for what was sent; a re-run computes the same ids
and batch keys, so nothing can be inserted or sent twice.

Only the leaf modules are exported here (ids, states): the warehouse's tables import the states,
so this package must not import the tables back. The ledger is `outbox.ledger`.
"""

from campaign_orchestrator.outbox.ids import message_id, request_key, shard_key
from campaign_orchestrator.outbox.states import BATCH_STATES, BatchState, MessageState

__all__ = ["BATCH_STATES", "BatchState", "MessageState", "message_id", "request_key", "shard_key"]
