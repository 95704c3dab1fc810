"""The baseline: the warehouse as it stood when schema revisions began (every table, index and
constraint, the `message_ledger` view), frozen in `baseline_night` and `baseline_services`.

Invariant: after this revision a warehouse holds exactly that schema, whether it was empty (all of
it is created) or made by a release before revisions (`create_all` then, plus the columns and
indexes added to tables that predate them): only what it lacks is created, nothing is dropped or
rewritten, so every row it holds is kept.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from campaign_orchestrator.warehouse.migrations.baseline_night import add_night_tables
from campaign_orchestrator.warehouse.migrations.baseline_services import add_service_tables

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

VIEW = "message_ledger"
# What releases before revisions added to tables that predate them (ensure_schema's ADDED_COLUMNS
# and ADDED_INDEXES): a warehouse made by create_all back then may lack them.
ADDED_COLUMNS = {"import_log": ("warnings",), "holdout_list": ("control_group", "send_at")}
ADDED_INDEXES = {"events": ("ix_events_name_ts",)}


def baseline_metadata() -> sa.MetaData:
    m = sa.MetaData()
    add_night_tables(m)
    add_service_tables(m)
    for table in m.tables.values():  # text compares case-sensitively on MySQL/MariaDB too
        table.dialect_options["mysql"]["charset"] = "utf8mb4"
        table.dialect_options["mysql"]["collate"] = "utf8mb4_bin"
    return m


def ledger_select(m: sa.MetaData) -> sa.Select[Any]:
    """The view's body at the baseline: one row per message with its batch's state (its own
    when it left the batch's fate)."""
    o, b = m.tables["outbox"].c, m.tables["delivery_batches"].c
    return sa.select(
        o.message_id,
        o.run_date,
        o.slot_date,
        o.campaign_id,
        o.customer_id,
        o.variant,
        o.channel,
        o.destination,
        o.send_at,
        o.batch_id,
        sa.func.coalesce(o.state, sa.case((b.state == "claimed", "pending"), else_=b.state)).label("state"),
        sa.func.coalesce(b.attempts, 0).label("attempts"),
        b.dispatch_id,
        sa.func.coalesce(o.last_error, b.last_error).label("last_error"),
        b.sent_at,
    ).select_from(m.tables["outbox"].outerjoin(m.tables["delivery_batches"], b.batch_id == o.batch_id))


def view_ddl(dialect: sa.Dialect, m: sa.MetaData) -> str:
    body = ledger_select(m).compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    create = "CREATE VIEW IF NOT EXISTS" if dialect.name == "sqlite" else "CREATE OR REPLACE VIEW"
    return f"{create} {VIEW} AS\n{body}"


def _complete(bind: Connection, m: sa.MetaData) -> None:
    """Add what an earlier release's warehouse may lack: nullable columns, then indexes."""
    inspector = sa.inspect(bind)
    prep = bind.dialect.identifier_preparer
    for table_name, names in ADDED_COLUMNS.items():
        table = m.tables[table_name]
        present = {c["name"] for c in inspector.get_columns(table_name)}
        for name in (n for n in names if n not in present):
            ddl = sa.schema.CreateColumn(table.c[name]).compile(dialect=bind.dialect)
            bind.exec_driver_sql(f"ALTER TABLE {prep.format_table(table)} ADD COLUMN {ddl}")
    for table_name, names in ADDED_INDEXES.items():
        indexes = {i["name"] for i in inspector.get_indexes(table_name)}
        for index in m.tables[table_name].indexes:
            if index.name in names and index.name not in indexes:
                index.create(bind)


def upgrade() -> None:
    bind = op.get_bind()
    m = baseline_metadata()
    m.create_all(bind, checkfirst=True)
    _complete(bind, m)
    if VIEW not in sa.inspect(bind).get_view_names():
        bind.exec_driver_sql(view_ddl(bind.dialect, m))


def downgrade() -> None:
    raise NotImplementedError("0001_baseline is the first revision: below it there is no warehouse to keep")
