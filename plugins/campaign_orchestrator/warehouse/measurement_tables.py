"""What comes back after a send and what it adds up to: the provider's engagement export and the
campaign metrics measured against the holdouts.

`provider_engagement` is an imported source (a Braze Currents-style file, `data_contracts/engagement.json`),
merged by event id so an overlapping or re-sent export counts each event once. `campaign_metrics`
is derived: one row per run date, campaign and variant (`*` = the campaign as a whole; campaign `*`
= every campaign of the date against the global control group), rebuilt for a date whenever its
engagement or conversions may have changed, so late arrivals update it and a re-run writes the same rows.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Date, DateTime, Float, Index, Integer, PrimaryKeyConstraint, String, Table

from campaign_orchestrator.warehouse.metadata import ID, NAME, metadata

# One row per provider event: send, delivery, open, click, bounce, unsubscribe.
provider_engagement = Table(
    "provider_engagement",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("event", String(16), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("customer_id", ID, nullable=False),
    Column("campaign_id", NAME, nullable=False),
    # The provider's id of the request that carried the message (delivery_batches.dispatch_id).
    Column("dispatch_id", String(128)),
    Column("import_date", Date, nullable=False),
    Index("ix_provider_engagement_dispatch", "dispatch_id", "customer_id"),
    Index("ix_provider_engagement_campaign", "campaign_id", "customer_id", "at"),
)

ALL = "*"  # the variant (or campaign) column's value for "all of them"

_COUNTS = (
    # arm sizes: treatment = eligible members the holdouts did not hold out (intent to treat)
    "treatment",
    "targeted",
    "held_out",
    "global_control",
    # what happened to the messages
    "sent",
    "scheduled",
    "delivered",
    "displayed",
    "opened",
    "clicked",
    "dismissed",
    "bounced",
    "unsubscribed",
    # conversions within the attribution window, counted from each member's (counterfactual) send instant
    "converted",
    "held_out_converted",
    "global_converted",
)
_FIGURES = (
    "revenue",
    "held_out_revenue",
    "global_revenue",
    "conversion_rate",
    "held_out_rate",
    "global_rate",
    "revenue_per_customer",
    "held_out_revenue_per_customer",
    # against the campaign's holdout: absolute (rate difference) and relative (ratio - 1), 95% CIs
    "uplift",
    "uplift_low",
    "uplift_high",
    "uplift_relative",
    "uplift_relative_low",
    "uplift_relative_high",
    "p_value",
    "revenue_p_value",
    # against the global control group
    "global_uplift",
    "global_uplift_low",
    "global_uplift_high",
    "global_uplift_relative",
    "global_uplift_relative_low",
    "global_uplift_relative_high",
    "global_p_value",
    # chi-squared across the A/B variants (on the campaign's `*` row)
    "variants_p_value",
    # sample-ratio mismatch: observed vs configured holdout (and variant) shares
    "srm_p_value",
)
_FLAGS = ("significant", "global_significant", "srm_mismatch", "too_small")
METRIC_COUNTS: tuple[str, ...] = _COUNTS
METRIC_FIGURES: tuple[str, ...] = _FIGURES
METRIC_FLAGS: tuple[str, ...] = _FLAGS

campaign_metrics = Table(
    "campaign_metrics",
    metadata,
    Column("run_date", Date, nullable=False),
    Column("campaign_id", NAME, nullable=False),
    Column("variant", NAME, nullable=False),
    *(Column(name, Integer, nullable=False, default=0) for name in _COUNTS),
    *(Column(name, Float) for name in _FIGURES),
    *(Column(name, Boolean, nullable=False, default=False) for name in _FLAGS),
    Column("conversion_event", NAME),
    Column("window_hours", Float),
    Column("computed_at", DateTime, nullable=False),
    PrimaryKeyConstraint("run_date", "campaign_id", "variant"),
)
