"""Destinations: a Braze-compatible provider API and the in-app message store."""

from campaign_orchestrator.delivery.dispatcher import DeliveryReport, deliver_shard

__all__ = ["DeliveryReport", "deliver_shard"]
