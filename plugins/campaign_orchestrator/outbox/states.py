"""The states of delivery batches and messages, declared once.

A batch moves pending -> claimed (taken ahead) -> in_flight (its request is leaving) -> sent, or
failed (transient; pending again at the next attempt, same key), dead (the provider refused its
recipients), unknown (possibly delivered: in flight when its worker died, at a destination that
cannot tell a resend). held: its campaign's render failures passed the limit. cancelled: no
message left to send. split: re-batched after a mixed outcome (no message refers to it).

A message's state is its batch's (`claimed` reads as pending), unless it left its batch's fate:
`cancelled` when no longer targeted at a re-run; `stale` when its night ran past
`settings.delivery.max_lateness`: never sent, and final (no later run of the date sends it), so it
counts against no cap. Both are Python-side only: the outbox's own state column has no CHECK.
"""

from __future__ import annotations

from typing import Literal, get_args

BatchState = Literal[
    "pending", "claimed", "in_flight", "sent", "failed", "dead", "unknown", "held", "cancelled", "split"
]
MessageState = Literal["pending", "held", "in_flight", "sent", "failed", "dead", "cancelled", "unknown", "stale"]
BATCH_STATES: tuple[BatchState, ...] = get_args(BatchState)
MESSAGE_STATES: tuple[MessageState, ...] = get_args(MessageState)

# A batch under a claim: some worker owns it, and only its lease keeps it so.
UNDER_CLAIM: tuple[BatchState, ...] = ("claimed", "in_flight")
# Messages that may have reached, or may still reach, the customer: caps count them.
SPENT_STATES: tuple[MessageState, ...] = ("pending", "in_flight", "sent", "failed", "unknown")
# Of the run date's own messages, those a re-run of the date must keep: a request for them left,
# is about to leave (claimed) or may have arrived. Its pending, failed and held messages were never
# delivered, so a re-run decides them afresh (and cancels those it no longer targets).
STANDING_STATES: tuple[BatchState, ...] = ("claimed", "in_flight", "sent", "unknown")
# Never attempted: their text may still change, and they can be cancelled.
NEVER_SENT: tuple[BatchState, ...] = ("pending", "held")
# Not delivered, and a later attempt may still deliver them.
UNSENT: tuple[BatchState, ...] = ("pending", "failed", "claimed", "in_flight")
