"""delivery_batches gets an index on dispatch_id: measurement ties each event of the provider's
export to the request that carried it by dispatch id (the funnel's join, the unattributed count),
which without it scans every batch ever sent for each event.

Invariant: only an index is added; no row changes.

Revision ID: 0002_batches_dispatch
Revises: 0001_baseline
"""

from __future__ import annotations

from alembic import op

revision: str = "0002_batches_dispatch"
down_revision: str | None = "0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_batches_dispatch", "delivery_batches", ["dispatch_id"])


def downgrade() -> None:
    op.drop_index("ix_batches_dispatch", table_name="delivery_batches")
