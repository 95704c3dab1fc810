"""The warehouse schema, defined once in SQLAlchemy Core so it stays portable across engines.

Times are naive UTC everywhere; dates are run dates (the day a run sends for).
`sql/schema.<dialect>.sql` is generated from this module (`campaigns schema --dialect`).
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
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from campaign_orchestrator.outbox.states import BATCH_STATES
from campaign_orchestrator.warehouse.console_tables import (
    definition_changes as definition_changes,
)
from campaign_orchestrator.warehouse.erasure_tables import (
    erasure_forwarded as erasure_forwarded,
)
from campaign_orchestrator.warehouse.erasure_tables import (
    erasure_requests as erasure_requests,
)
from campaign_orchestrator.warehouse.erasure_tables import (
    erasure_subjects as erasure_subjects,
)
from campaign_orchestrator.warehouse.erasure_tables import (
    erasure_tombstones as erasure_tombstones,
)
from campaign_orchestrator.warehouse.inbox_tables import (
    device_tokens as device_tokens,
)
from campaign_orchestrator.warehouse.inbox_tables import (
    display_counts as display_counts,
)
from campaign_orchestrator.warehouse.inbox_tables import (
    engagement_events as engagement_events,
)
from campaign_orchestrator.warehouse.inbox_tables import (
    inapp_states as inapp_states,
)
from campaign_orchestrator.warehouse.inbox_tables import (
    preference_changes as preference_changes,
)
from campaign_orchestrator.warehouse.measurement_tables import (
    campaign_metrics as campaign_metrics,
)
from campaign_orchestrator.warehouse.measurement_tables import (
    provider_engagement as provider_engagement,
)
from campaign_orchestrator.warehouse.metadata import ID, NAME
from campaign_orchestrator.warehouse.metadata import metadata as metadata

# The inbox service's tables live in `inbox_tables` and share this metadata; named here too.
INBOX_TABLES = (inapp_states, engagement_events, display_counts, preference_changes, device_tokens)


# ---- imported sources (replaced nightly, except events which append) ----

customers = Table(
    "customers",
    metadata,
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

app_installs = Table(
    "app_installs",
    metadata,
    Column("customer_id", ID, nullable=False),
    Column("app_id", NAME, nullable=False),
    Column("platform", String(16), nullable=False),
    Column("push_token_present", Boolean, nullable=False),
    Column("last_seen_at", DateTime),
    PrimaryKeyConstraint("customer_id", "app_id", "platform"),
)

# The audit trail: every opt-in or opt-out change ever imported, never overwritten.
preferences = Table(
    "preferences",
    metadata,
    Column("customer_id", ID, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("ts", DateTime, nullable=False),
    Column("source", NAME),
    Column("import_date", Date, nullable=False),
    PrimaryKeyConstraint("customer_id", "channel", "ts", "enabled"),
)

events = Table(
    "events",
    metadata,
    Column("customer_id", ID, nullable=False),
    Column("name", NAME, nullable=False),
    Column("ts", DateTime, nullable=False),
    Column("amount", Float),
    # The run date whose import brought the row: re-importing a date replaces only its own batch.
    Column("import_date", Date, nullable=False),
    Index("ix_events_customer_name_ts", "customer_id", "name", "ts"),
    # Segment rules filter events by name and window, then group by customer: an index-only scan
    # on PostgreSQL (the console's live sizes at 1M customers); (name, ts) elsewhere.
    Index("ix_events_name_ts", "name", "ts", postgresql_include=["customer_id"]),
    Index("ix_events_import_date", "import_date"),
)

# Derived after every import: the latest change per (customer, channel); an opt-out wins a tie.
preference_state = Table(
    "preference_state",
    metadata,
    Column("customer_id", ID, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("ts", DateTime, nullable=False),
    PrimaryKeyConstraint("customer_id", "channel"),
)

# Merged, never replaced: a suppression survives the customer reappearing in later exports.
suppressions = Table(
    "suppressions",
    metadata,
    Column("customer_id", ID, primary_key=True),
    Column("reason", String(32), nullable=False),
    Column("since", DateTime),
    Column("import_date", Date, nullable=False),
)

# Static lists imported from files (event attendees, a sales team's picks, ...).
list_members = Table(
    "list_members",
    metadata,
    Column("list_id", NAME, nullable=False),
    Column("customer_id", ID, nullable=False),
    Column("import_date", Date, nullable=False),
    PrimaryKeyConstraint("list_id", "customer_id"),
)

# ---- import bookkeeping ----

import_log = Table(
    "import_log",
    metadata,
    Column("run_date", Date, nullable=False),
    Column("source", NAME, nullable=False),
    Column("file", Text, nullable=False),
    # validated (checked, waiting to publish) -> published | failed
    Column("status", String(16), nullable=False),
    Column("rows_read", Integer, nullable=False),
    Column("rows_loaded", Integer, nullable=False),
    Column("rows_quarantined", Integer, nullable=False),
    Column("quarantined_by_rule", Text),
    Column("duration_s", Float),
    Column("error", Text),
    Column("archived_as", Text),
    Column("imported_at", DateTime, nullable=False),
    # JSON list of what needs a look but did not stop the import (columns the contract does not declare)
    Column("warnings", Text),
    PrimaryKeyConstraint("run_date", "source"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("run_date", Date, nullable=False),
    Column("source", NAME, nullable=False),
    Column("file", Text, nullable=False),
    # 1-based data row (the header is not a row); for CSV with no quoted newlines, line = row_number + 1
    Column("row_number", Integer, nullable=False),
    Column("rules", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Index("ix_quarantine_run_source", "run_date", "source"),
)

# ---- segments ----

segment_membership = Table(
    "segment_membership",
    metadata,
    Column("run_date", Date, nullable=False),
    Column("segment_id", NAME, nullable=False),
    Column("customer_id", ID, nullable=False),
    PrimaryKeyConstraint("run_date", "segment_id", "customer_id"),
)

# Every customer's stage in each lifecycle, per run date: the first stage segment that matches wins.
lifecycle_membership = Table(
    "lifecycle_membership",
    metadata,
    Column("run_date", Date, nullable=False),
    Column("lifecycle_id", NAME, nullable=False),
    Column("customer_id", ID, nullable=False),
    Column("stage", NAME, nullable=False),
    PrimaryKeyConstraint("run_date", "lifecycle_id", "customer_id"),
)

# Size and movement of each segment per run date, for plots of how customers come and go.
segment_stats = Table(
    "segment_stats",
    metadata,
    Column("run_date", Date, nullable=False),
    Column("segment_id", NAME, nullable=False),
    Column("members", Integer, nullable=False),
    Column("entered", Integer, nullable=False),
    Column("exited", Integer, nullable=False),
    Column("previous_run_date", Date),
    PrimaryKeyConstraint("run_date", "segment_id"),
)

# ---- targeting ----

campaign_candidates = Table(
    "campaign_candidates",
    metadata,
    Column("run_date", Date, nullable=False),
    Column("campaign_id", NAME, nullable=False),
    Column("customer_id", ID, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("variant", NAME, nullable=False),
    Column("send_at", DateTime),
    # The first reason the customer was left out before arbitration, NULL if eligible; arbitration
    # results (capped, lost) are in target_exclusions, which holds every reason.
    Column("exclusion_reason", String(32)),
    # The customer already has this campaign's message for the day from an earlier run (sent, in
    # flight or possibly delivered): it stands, whatever this run would decide.
    Column("kept", Boolean, nullable=False, default=False),
    PrimaryKeyConstraint("run_date", "campaign_id", "customer_id"),
    Index("ix_candidates_run_customer", "run_date", "customer_id"),
)

# Work table of a run: eligible candidates ranked per customer and channel against their budgets.
arbitration = Table(
    "arbitration",
    metadata,
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

target_list = Table(
    "target_list",
    metadata,
    Column("run_date", Date, nullable=False),
    Column("campaign_id", NAME, nullable=False),
    Column("customer_id", ID, nullable=False),
    Column("variant", NAME, nullable=False),
    Column("send_at", DateTime, nullable=False),
    # True: the message was decided by an earlier run of the day and already left (or may have);
    # it is listed because the customer gets it, and it counted against tonight's caps.
    Column("kept", Boolean, nullable=False, default=False),
    PrimaryKeyConstraint("run_date", "campaign_id", "customer_id"),
)

# Held-out customers with their control group (campaign, global or both) and the instant they
# would have been sent at: measurement counts their conversions from it.
holdout_list = Table(
    "holdout_list",
    metadata,
    Column("run_date", Date, nullable=False),
    Column("campaign_id", NAME, nullable=False),
    Column("customer_id", ID, nullable=False),
    Column("control_group", String(16)),
    Column("send_at", DateTime),
    PrimaryKeyConstraint("run_date", "campaign_id", "customer_id"),
)

target_exclusions = Table(
    "target_exclusions",
    metadata,
    Column("run_date", Date, nullable=False),
    Column("campaign_id", NAME, nullable=False),
    Column("customer_id", ID, nullable=False),
    Column("reason", String(32), nullable=False),
    PrimaryKeyConstraint("run_date", "campaign_id", "customer_id"),
)

# Per-run work table: the UTC instant each campaign sends at in each time zone.
send_slots = Table(
    "send_slots",
    metadata,
    Column("run_date", Date, nullable=False),
    Column("campaign_id", NAME, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("send_at", DateTime, nullable=False),
    # Quiet hours with fallback "drop": nobody in this time zone gets the campaign tonight.
    Column("dropped", Boolean, nullable=False),
    PrimaryKeyConstraint("run_date", "campaign_id", "timezone"),
)

# ---- outbox / ledger ----

outbox = Table(
    "outbox",
    metadata,
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
    # The delivery request this message travels in; its state is the batch's (see ledger.py)...
    Column("batch_id", String(64)),
    # ...unless the message left its batch's fate: `cancelled` (no longer targeted at a re-run).
    # NULL otherwise, so delivering a message writes nothing to its row.
    Column("state", String(16)),
    Column("shard_key", Integer, nullable=False),
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("campaign_id", "customer_id", "slot_date", name="uq_outbox_slot"),
    Index("ix_outbox_batch", "batch_id"),
    Index("ix_outbox_run", "run_date", "campaign_id"),
    Index("ix_outbox_customer_slot", "customer_id", "slot_date"),
)

# One row per provider request (at most 50 recipients of one campaign, variant and send instant)
# or message-store write: the unit that is claimed, sent and recorded. Its id is the request's
# Idempotency-Key, so a resend after a crash is the same request to the provider.
delivery_batches = Table(
    "delivery_batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("run_date", Date, nullable=False),
    Column("shard_key", Integer, nullable=False),
    Column("destination", NAME, nullable=False),
    Column("campaign_id", NAME, nullable=False),
    Column("variant", NAME, nullable=False),
    Column("send_at", DateTime, nullable=False),
    Column("messages", Integer, nullable=False),
    # one of outbox.states.BATCH_STATES (see there for what each means), checked by the database
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    # A fingerprint of the template the messages were rendered from: a batch never attempted whose
    # campaign's template changed since is rendered again at the next render (see outbox.py).
    Column("content_hash", String(64)),
    Column("claim_id", String(36)),
    Column("dispatch_id", String(128)),
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Index("ix_batches_claimable", "run_date", "state", "shard_key"),
    # Claims take a shard's next pending batches in this order (migration 0004 says why).
    Index("ix_batches_claim_order", "run_date", "state", "send_at", "campaign_id", "variant", "batch_id", "shard_key"),
    Index("ix_batches_claim", "claim_id"),
    # The provider's export names its request by dispatch id: measurement looks batches up by it.
    Index("ix_batches_dispatch", "dispatch_id"),
    CheckConstraint(sa.column("state").in_(BATCH_STATES), name="ck_batches_state"),
)

# Messages that could not be rendered for a customer: never sent; the reason names the field and
# the rule broken, never the customer's values.
render_errors = Table(
    "render_errors",
    metadata,
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

inapp_messages = Table(
    "inapp_messages",
    metadata,
    Column("message_id", String(36), primary_key=True),
    # NULL for public messages shown to every customer (outage, forced update).
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

# ---- runs ----

run_log = Table(
    "run_log",
    metadata,
    Column("run_id", String(250), nullable=False),
    Column("run_date", Date, nullable=False),
    Column("stage", String(32), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("rows", Integer),
    Column("detail", Text),
    Index("ix_run_log_run", "run_date", "run_id"),
)

SOURCE_TABLES: dict[str, Table] = {
    "customers": customers,
    "app_installs": app_installs,
    "preferences": preferences,
    "events": events,
    "suppressions": suppressions,
    "lists": list_members,
    "engagement": provider_engagement,
}

# Text compares case-sensitively on every engine (MySQL/MariaDB default collations do not), so a
# rule like `tier eq gold` selects the same customers everywhere.
for _table in metadata.tables.values():
    _table.dialect_options["mysql"]["charset"] = "utf8mb4"
    _table.dialect_options["mysql"]["collate"] = "utf8mb4_bin"
