"""The inbox service's tables: what apps reported (states, engagement, displays under caps) and
what customers changed through the API (preferences, devices). Written by the inbox only; the
night reads preference changes when it rebuilds consent, and measurement reads the engagement.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, PrimaryKeyConstraint, String, Table, Text

from campaign_orchestrator.warehouse.metadata import ID, NAME, metadata

# Per (customer, message): when the customer first saw, read, clicked, ... it. NULL = not yet.
inapp_states = Table(
    "inapp_states",
    metadata,
    Column("customer_id", ID, nullable=False),
    Column("message_id", String(36), nullable=False),
    Column("seen_at", DateTime),
    Column("read_at", DateTime),
    Column("clicked_at", DateTime),
    Column("dismissed_at", DateTime),
    Column("archived_at", DateTime),
    Column("acknowledged_at", DateTime),
    Column("updated_at", DateTime, nullable=False),
    PrimaryKeyConstraint("customer_id", "message_id"),
)

# Every engagement event an app reported, once per client event id: what measurement reads.
engagement_events = Table(
    "engagement_events",
    metadata,
    Column("customer_id", ID, nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("message_id", String(36), nullable=False),
    Column("campaign_id", NAME, nullable=False),
    Column("variant", NAME, nullable=False),
    Column("event", String(16), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("session_id", String(64)),
    Column("app_id", NAME),
    PrimaryKeyConstraint("customer_id", "event_id"),
    Index("ix_engagement_campaign_event_at", "campaign_id", "event", "at"),
)

# Displays counted per (customer, campaign, scope) in the transaction that stores the displayed
# event; scope is `total`, `day:<customer's local date>` or `session:<id>`. A display is stored
# only while every count is under its cap, with the rows locked, so two devices cannot overshoot.
display_counts = Table(
    "display_counts",
    metadata,
    Column("customer_id", ID, nullable=False),
    Column("campaign_id", NAME, nullable=False),
    Column("scope", String(80), nullable=False),
    Column("displays", Integer, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    PrimaryKeyConstraint("customer_id", "campaign_id", "scope"),
)

# Preference changes made through the inbox API: the audit trail's other half (who, when, from
# where). Never touched by an import, so a night loading an older export cannot undo one.
preference_changes = Table(
    "preference_changes",
    metadata,
    Column("customer_id", ID, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("ts", DateTime, nullable=False),
    Column("source", NAME, nullable=False),
    Column("caller", String(64), nullable=False),
    PrimaryKeyConstraint("customer_id", "channel", "ts", "enabled"),
)

# Devices the apps registered through the API (platform, push token, Pinpoint endpoint id).
device_tokens = Table(
    "device_tokens",
    metadata,
    Column("customer_id", ID, nullable=False),
    Column("app_id", NAME, nullable=False),
    Column("platform", String(16), nullable=False),
    Column("push_token", Text),
    Column("endpoint_id", String(64)),
    Column("updated_at", DateTime, nullable=False),
    PrimaryKeyConstraint("customer_id", "app_id"),
    Index("ix_device_tokens_endpoint", "endpoint_id"),
)
