"""Erasure (issue 19): the requests and their receipts, the salted-hash tombstones a later import
checks, the work list of unfinished requests and the provider deletions already accepted.

Invariant: four new, empty tables; no existing table or row changes.

Revision ID: 0003_erasure
Revises: 0002_batches_dispatch
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003_erasure"
down_revision: str | None = "0002_batches_dispatch"
branch_labels: str | None = None
depends_on: str | None = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    op.create_table(
        "erasure_requests",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("requested_at", sa.DateTime, nullable=False),
        sa.Column("requested_by", sa.String(16), nullable=False),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows_done_at", sa.DateTime),
        sa.Column("files_done_at", sa.DateTime),
        sa.Column("forwarded_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("stores", sa.Text),
        sa.Column("destinations", sa.Text),
        sa.Column("waiting_for", sa.Text),
        **MYSQL,
    )
    op.create_table(
        "erasure_tombstones",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        **MYSQL,
    )
    op.create_table(
        "erasure_subjects",
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("first_name", sa.String(100)),
        sa.Column("token", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "customer_id"),
        **MYSQL,
    )
    op.create_table(
        "erasure_forwarded",
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("destination", sa.String(128), nullable=False),
        sa.Column("part", sa.Integer, nullable=False),
        sa.Column("ids", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("accepted_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("request_id", "destination", "part"),
        **MYSQL,
    )


def downgrade() -> None:
    for table in ("erasure_forwarded", "erasure_subjects", "erasure_tombstones", "erasure_requests"):
        op.drop_table(table)
