"""delivery_batches gets an index in claim order: a claim takes the next pending batches of its
shard ordered by (send_at, campaign_id, variant, batch_id). With only (run_date, state, shard_key)
every claim read and sorted all the shard's pending batches: 63-131 ms a claim at 10M customers,
about 450 claims a shard, warehouse work that grows with the square of the night. Walking this
index stops after the claim's batches (0.3 ms). (Delivery's wall time at 10M did not move with
it, 249.7 s vs 253.1 s; what grew there is not known yet.)

Invariant: only an index is added; no row changes.

Revision ID: 0004_batches_claim_order
Revises: 0003_erasure
"""

from __future__ import annotations

from alembic import op

revision: str = "0004_batches_claim_order"
down_revision: str | None = "0003_erasure"
branch_labels: str | None = None
depends_on: str | None = None

COLUMNS = ["run_date", "state", "send_at", "campaign_id", "variant", "batch_id", "shard_key"]


def upgrade() -> None:
    op.create_index("ix_batches_claim_order", "delivery_batches", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_batches_claim_order", table_name="delivery_batches")
