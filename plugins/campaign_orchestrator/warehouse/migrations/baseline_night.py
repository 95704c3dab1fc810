"""The night's tables as revision 0001_baseline creates them, frozen: imported sources, import
bookkeeping, segments, targeting, the outbox and ledger, the run log.

Invariant: never edited. `warehouse/tables.py` is the schema the code uses now; this is what the
baseline meant when it was released, so a warehouse created at the baseline is the same table for
table whatever tables.py says later. A change to the schema is a new revision in `versions/`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import (
    Boolean,
    CheckConstraint,
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
    UniqueConstraint,
)

ID = String(64)
NAME = String(128)
# outbox.states.BATCH_STATES at the baseline: the CHECK on delivery_batches.state.
BATCH_STATES = ("pending", "claimed", "in_flight", "sent", "failed", "dead", "unknown", "held", "cancelled", "split")


def add_night_tables(m: MetaData) -> None:
    Table(
        "customers",
        m,
        Column("customer_id", ID, primary_key=True),
        Column("first_name", String(100)),
        Column("email", String(254)),
        Column("locale", String(16)),
        Column("timezone", String(64)),
        Column("country", String(2)),
        Column("currency", String(3)),
        Column("tier", String(16)),
        Column("lifetime_value", Float),
        Column("signup_date", Date),
        Column("last_purchase_at", DateTime),
    )
    Table(
        "app_installs",
        m,
        Column("customer_id", ID, nullable=False),
        Column("app_id", NAME, nullable=False),
        Column("platform", String(16), nullable=False),
        Column("push_token_present", Boolean, nullable=False),
        Column("last_seen_at", DateTime),
        PrimaryKeyConstraint("customer_id", "app_id", "platform"),
    )
    Table(
        "preferences",
        m,
        Column("customer_id", ID, nullable=False),
        Column("channel", String(16), nullable=False),
        Column("enabled", Boolean, nullable=False),
        Column("ts", DateTime, nullable=False),
        Column("source", NAME),
        Column("import_date", Date, nullable=False),
        PrimaryKeyConstraint("customer_id", "channel", "ts", "enabled"),
    )
    Table(
        "events",
        m,
        Column("customer_id", ID, nullable=False),
        Column("name", NAME, nullable=False),
        Column("ts", DateTime, nullable=False),
        Column("amount", Float),
        Column("import_date", Date, nullable=False),
        PrimaryKeyConstraint(),
        Index("ix_events_import_date", "import_date"),
        Index("ix_events_name_ts", "name", "ts", postgresql_include=["customer_id"]),
        Index("ix_events_customer_name_ts", "customer_id", "name", "ts"),
    )
    Table(
        "preference_state",
        m,
        Column("customer_id", ID, nullable=False),
        Column("channel", String(16), nullable=False),
        Column("enabled", Boolean, nullable=False),
        Column("ts", DateTime, nullable=False),
        PrimaryKeyConstraint("customer_id", "channel"),
    )
    Table(
        "suppressions",
        m,
        Column("customer_id", ID, primary_key=True),
        Column("reason", String(32), nullable=False),
        Column("since", DateTime),
        Column("import_date", Date, nullable=False),
    )
    Table(
        "list_members",
        m,
        Column("list_id", NAME, nullable=False),
        Column("customer_id", ID, nullable=False),
        Column("import_date", Date, nullable=False),
        PrimaryKeyConstraint("list_id", "customer_id"),
    )
    Table(
        "import_log",
        m,
        Column("run_date", Date, nullable=False),
        Column("source", NAME, nullable=False),
        Column("file", Text, nullable=False),
        Column("status", String(16), nullable=False),
        Column("rows_read", Integer, nullable=False),
        Column("rows_loaded", Integer, nullable=False),
        Column("rows_quarantined", Integer, nullable=False),
        Column("quarantined_by_rule", Text),
        Column("duration_s", Float),
        Column("error", Text),
        Column("archived_as", Text),
        Column("imported_at", DateTime, nullable=False),
        Column("warnings", Text),
        PrimaryKeyConstraint("run_date", "source"),
    )
    Table(
        "quarantine",
        m,
        Column("run_date", Date, nullable=False),
        Column("source", NAME, nullable=False),
        Column("file", Text, nullable=False),
        Column("row_number", Integer, nullable=False),
        Column("rules", Text, nullable=False),
        Column("raw", Text, nullable=False),
        PrimaryKeyConstraint(),
        Index("ix_quarantine_run_source", "run_date", "source"),
    )
    Table(
        "segment_membership",
        m,
        Column("run_date", Date, nullable=False),
        Column("segment_id", NAME, nullable=False),
        Column("customer_id", ID, nullable=False),
        PrimaryKeyConstraint("run_date", "segment_id", "customer_id"),
    )
    Table(
        "lifecycle_membership",
        m,
        Column("run_date", Date, nullable=False),
        Column("lifecycle_id", NAME, nullable=False),
        Column("customer_id", ID, nullable=False),
        Column("stage", NAME, nullable=False),
        PrimaryKeyConstraint("run_date", "lifecycle_id", "customer_id"),
    )
    Table(
        "segment_stats",
        m,
        Column("run_date", Date, nullable=False),
        Column("segment_id", NAME, nullable=False),
        Column("members", Integer, nullable=False),
        Column("entered", Integer, nullable=False),
        Column("exited", Integer, nullable=False),
        Column("previous_run_date", Date),
        PrimaryKeyConstraint("run_date", "segment_id"),
    )
    Table(
        "campaign_candidates",
        m,
        Column("run_date", Date, nullable=False),
        Column("campaign_id", NAME, nullable=False),
        Column("customer_id", ID, nullable=False),
        Column("channel", String(16), nullable=False),
        Column("priority", Integer, nullable=False),
        Column("variant", NAME, nullable=False),
        Column("send_at", DateTime),
        Column("exclusion_reason", String(32)),
        Column("kept", Boolean, nullable=False),
        PrimaryKeyConstraint("run_date", "campaign_id", "customer_id"),
        Index("ix_candidates_run_customer", "run_date", "customer_id"),
    )
    Table(
        "arbitration",
        m,
        Column("run_date", Date, nullable=False),
        Column("campaign_id", NAME, nullable=False),
        Column("customer_id", ID, nullable=False),
        Column("channel", String(16), nullable=False),
        Column("priority", Integer, nullable=False),
        Column("variant", NAME, nullable=False),
        Column("send_at", DateTime, nullable=False),
        Column("channel_rank", Integer, nullable=False),
        Column("channel_budget", Integer, nullable=False),
        Column("total_budget", Integer, nullable=False),
        PrimaryKeyConstraint("run_date", "campaign_id", "customer_id"),
    )
    Table(
        "target_list",
        m,
        Column("run_date", Date, nullable=False),
        Column("campaign_id", NAME, nullable=False),
        Column("customer_id", ID, nullable=False),
        Column("variant", NAME, nullable=False),
        Column("send_at", DateTime, nullable=False),
        Column("kept", Boolean, nullable=False),
        PrimaryKeyConstraint("run_date", "campaign_id", "customer_id"),
    )
    Table(
        "holdout_list",
        m,
        Column("run_date", Date, nullable=False),
        Column("campaign_id", NAME, nullable=False),
        Column("customer_id", ID, nullable=False),
        Column("control_group", String(16)),
        Column("send_at", DateTime),
        PrimaryKeyConstraint("run_date", "campaign_id", "customer_id"),
    )
    Table(
        "target_exclusions",
        m,
        Column("run_date", Date, nullable=False),
        Column("campaign_id", NAME, nullable=False),
        Column("customer_id", ID, nullable=False),
        Column("reason", String(32), nullable=False),
        PrimaryKeyConstraint("run_date", "campaign_id", "customer_id"),
    )
    Table(
        "send_slots",
        m,
        Column("run_date", Date, nullable=False),
        Column("campaign_id", NAME, nullable=False),
        Column("timezone", String(64), nullable=False),
        Column("send_at", DateTime, nullable=False),
        Column("dropped", Boolean, nullable=False),
        PrimaryKeyConstraint("run_date", "campaign_id", "timezone"),
    )
    Table(
        "outbox",
        m,
        Column("message_id", String(36), primary_key=True),
        Column("run_date", Date, nullable=False),
        Column("slot_date", Date, nullable=False),
        Column("campaign_id", NAME, nullable=False),
        Column("customer_id", ID, nullable=False),
        Column("variant", NAME, nullable=False),
        Column("channel", String(16), nullable=False),
        Column("destination", NAME, nullable=False),
        Column("send_at", DateTime, nullable=False),
        Column("payload", Text, nullable=False),
        Column("batch_id", String(64)),
        Column("state", String(16)),
        Column("shard_key", Integer, nullable=False),
        Column("last_error", Text),
        Column("created_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
        UniqueConstraint("campaign_id", "customer_id", "slot_date", name="uq_outbox_slot"),
        Index("ix_outbox_run", "run_date", "campaign_id"),
        Index("ix_outbox_customer_slot", "customer_id", "slot_date"),
        Index("ix_outbox_batch", "batch_id"),
    )
    Table(
        "delivery_batches",
        m,
        Column("batch_id", String(64), primary_key=True),
        Column("run_date", Date, nullable=False),
        Column("shard_key", Integer, nullable=False),
        Column("destination", NAME, nullable=False),
        Column("campaign_id", NAME, nullable=False),
        Column("variant", NAME, nullable=False),
        Column("send_at", DateTime, nullable=False),
        Column("messages", Integer, nullable=False),
        Column("state", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("content_hash", String(64)),
        Column("claim_id", String(36)),
        Column("dispatch_id", String(128)),
        Column("last_error", Text),
        Column("created_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
        Column("sent_at", DateTime),
        CheckConstraint(sa.column("state").in_(BATCH_STATES), name="ck_batches_state"),
        Index("ix_batches_claimable", "run_date", "state", "shard_key"),
        Index("ix_batches_claim", "claim_id"),
    )
    Table(
        "render_errors",
        m,
        Column("run_date", Date, nullable=False),
        Column("campaign_id", NAME, nullable=False),
        Column("customer_id", ID, nullable=False),
        Column("variant", NAME, nullable=False),
        Column("template_id", NAME, nullable=False),
        Column("locale", String(16)),
        Column("field", String(64)),
        Column("reason", String(500), nullable=False),
        Column("created_at", DateTime, nullable=False),
        PrimaryKeyConstraint("run_date", "campaign_id", "customer_id", name="pk_render_errors"),
    )
    Table(
        "inapp_messages",
        m,
        Column("message_id", String(36), primary_key=True),
        Column("customer_id", ID),
        Column("campaign_id", NAME, nullable=False),
        Column("treatment_id", NAME, nullable=False),
        Column("content", Text, nullable=False),
        Column("priority", Integer, nullable=False),
        Column("start_at", DateTime, nullable=False),
        Column("end_at", DateTime),
        Column("session_cap", Integer),
        Column("daily_cap", Integer),
        Column("total_cap", Integer),
        Column("created_at", DateTime, nullable=False),
        Index("ix_inapp_customer_start", "customer_id", "start_at"),
    )
    Table(
        "run_log",
        m,
        Column("run_id", String(250), nullable=False),
        Column("run_date", Date, nullable=False),
        Column("stage", String(32), nullable=False),
        Column("started_at", DateTime, nullable=False),
        Column("finished_at", DateTime),
        Column("rows", Integer),
        Column("detail", Text),
        PrimaryKeyConstraint(),
        Index("ix_run_log_run", "run_date", "run_id"),
    )
