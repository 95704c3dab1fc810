"""Destinations: a Braze-compatible provider API and the in-app message store."""

from campaign_orchestrator.delivery.dispatcher import deliver_shard
from campaign_orchestrator.delivery.report import DeliveryReport

__all__ = ["DeliveryReport", "deliver_shard"]
