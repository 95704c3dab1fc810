"""The warehouse's views, for people querying it: `message_ledger`, one row per message with the
state its batch gives it (a message's own state wins when it left its batch's fate). The code
reads the same SELECT (`ledger_select`), so the view and the code never disagree."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from campaign_orchestrator.warehouse.tables import delivery_batches, outbox

VIEW = "message_ledger"


def ledger_select(*where: sa.ColumnElement[bool]) -> sa.Select[Any]:
    b = delivery_batches.c
    return (
        sa.select(
            outbox.c.message_id,
            outbox.c.run_date,
            outbox.c.slot_date,
            outbox.c.campaign_id,
            outbox.c.customer_id,
            outbox.c.variant,
            outbox.c.channel,
            outbox.c.destination,
            outbox.c.send_at,
            outbox.c.batch_id,
            sa.func.coalesce(outbox.c.state, sa.case((b.state == "claimed", "pending"), else_=b.state)).label("state"),
            sa.func.coalesce(b.attempts, 0).label("attempts"),
            b.dispatch_id,
            sa.func.coalesce(outbox.c.last_error, b.last_error).label("last_error"),
            b.sent_at,
        )
        .select_from(outbox.outerjoin(delivery_batches, b.batch_id == outbox.c.batch_id))
        .where(*where)
    )


def view_ddl(dialect: sa.Dialect) -> str:
    """The `message_ledger` view for people querying the warehouse: one row per message with its
    state, as the code reads it."""
    body = ledger_select().compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    create = "CREATE VIEW IF NOT EXISTS" if dialect.name == "sqlite" else "CREATE OR REPLACE VIEW"
    return f"{create} {VIEW} AS\n{body}"


def create_view(engine: sa.Engine) -> None:
    if VIEW in sa.inspect(engine).get_view_names():
        return
    with engine.begin() as conn:
        conn.exec_driver_sql(view_ddl(engine.dialect))


def drop_view(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP VIEW IF EXISTS {VIEW}")
