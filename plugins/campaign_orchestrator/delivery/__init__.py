"""Delivering the outbox, shard by shard: to a Braze-compatible provider API or the in-app message store.

Guarantees: a batch is sent only from `pending`, under a lease, and its outcome is written only
where the claim is still this worker's, so no message is sent twice by a retry, a re-run or a
second worker; a batch that may have left is resent under the same key or marked `unknown`,
never silently dropped; a destination is checked before anything is claimed; a delivery ends
only when nothing in its shard is claimable, failing (to be retried) while messages remain; and a
stale night (`stale`: later than settings.delivery.max_lateness after its date) sends nothing.
"""

from campaign_orchestrator.delivery.dispatcher import deliver_shard
from campaign_orchestrator.delivery.report import DeliveryIncomplete, DeliveryReport

__all__ = ["DeliveryIncomplete", "DeliveryReport", "deliver_shard"]
