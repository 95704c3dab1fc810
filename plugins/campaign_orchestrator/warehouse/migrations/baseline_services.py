"""The services' and measurement's tables as revision 0001_baseline creates them, frozen: the
inbox's (states, engagement, display counts, preference changes, devices), the provider's
engagement export, the campaign metrics and the console's definition history.

Invariant: never edited (see `baseline_night`); a change to the schema is a new revision.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

ID = String(64)
NAME = String(128)
# campaign_metrics' measured columns at the baseline, in their order.
METRIC_COUNTS = (
    "treatment",
    "targeted",
    "held_out",
    "global_control",
    "sent",
    "scheduled",
    "delivered",
    "displayed",
    "opened",
    "clicked",
    "dismissed",
    "bounced",
    "unsubscribed",
    "converted",
    "held_out_converted",
    "global_converted",
)
METRIC_FIGURES = (
    "revenue",
    "held_out_revenue",
    "global_revenue",
    "conversion_rate",
    "held_out_rate",
    "global_rate",
    "revenue_per_customer",
    "held_out_revenue_per_customer",
    "uplift",
    "uplift_low",
    "uplift_high",
    "uplift_relative",
    "uplift_relative_low",
    "uplift_relative_high",
    "p_value",
    "revenue_p_value",
    "global_uplift",
    "global_uplift_low",
    "global_uplift_high",
    "global_uplift_relative",
    "global_uplift_relative_low",
    "global_uplift_relative_high",
    "global_p_value",
    "variants_p_value",
    "srm_p_value",
)
METRIC_FLAGS = ("significant", "global_significant", "srm_mismatch", "too_small")


def add_service_tables(m: MetaData) -> None:
    Table(
        "inapp_states",
        m,
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
    Table(
        "engagement_events",
        m,
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
    Table(
        "display_counts",
        m,
        Column("customer_id", ID, nullable=False),
        Column("campaign_id", NAME, nullable=False),
        Column("scope", String(80), nullable=False),
        Column("displays", Integer, nullable=False),
        Column("updated_at", DateTime, nullable=False),
        PrimaryKeyConstraint("customer_id", "campaign_id", "scope"),
    )
    Table(
        "preference_changes",
        m,
        Column("customer_id", ID, nullable=False),
        Column("channel", String(16), nullable=False),
        Column("enabled", Boolean, nullable=False),
        Column("ts", DateTime, nullable=False),
        Column("source", NAME, nullable=False),
        Column("caller", String(64), nullable=False),
        PrimaryKeyConstraint("customer_id", "channel", "ts", "enabled"),
    )
    Table(
        "device_tokens",
        m,
        Column("customer_id", ID, nullable=False),
        Column("app_id", NAME, nullable=False),
        Column("platform", String(16), nullable=False),
        Column("push_token", Text),
        Column("endpoint_id", String(64)),
        Column("updated_at", DateTime, nullable=False),
        PrimaryKeyConstraint("customer_id", "app_id"),
        Index("ix_device_tokens_endpoint", "endpoint_id"),
    )
    Table(
        "provider_engagement",
        m,
        Column("event_id", String(128), primary_key=True),
        Column("event", String(16), nullable=False),
        Column("at", DateTime, nullable=False),
        Column("customer_id", ID, nullable=False),
        Column("campaign_id", NAME, nullable=False),
        Column("dispatch_id", String(128)),
        Column("import_date", Date, nullable=False),
        Index("ix_provider_engagement_dispatch", "dispatch_id", "customer_id"),
        Index("ix_provider_engagement_campaign", "campaign_id", "customer_id", "at"),
    )
    Table(
        "definition_changes",
        m,
        Column("change_id", Integer, primary_key=True, autoincrement=True),
        Column("changed_at", DateTime, nullable=False),
        Column("changed_by", NAME, nullable=False),
        Column("action", String(32), nullable=False),
        Column("kind", String(32), nullable=False),
        Column("definition_id", NAME, nullable=False),
        Column("file", String(255), nullable=False),
        Column("version_before", String(64)),
        Column("version_after", String(64)),
        Column("diff", Text, nullable=False),
        Index("ix_definition_changes_definition", "kind", "definition_id", "changed_at"),
    )
    Table(
        "campaign_metrics",
        m,
        Column("run_date", Date, nullable=False),
        Column("campaign_id", NAME, nullable=False),
        Column("variant", NAME, nullable=False),
        *(Column(name, Integer, nullable=False) for name in METRIC_COUNTS),
        *(Column(name, Float) for name in METRIC_FIGURES),
        *(Column(name, Boolean, nullable=False) for name in METRIC_FLAGS),
        Column("conversion_event", NAME),
        Column("window_hours", Float),
        Column("computed_at", DateTime, nullable=False),
        PrimaryKeyConstraint("run_date", "campaign_id", "variant"),
    )
