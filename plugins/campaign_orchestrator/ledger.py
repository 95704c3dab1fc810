"""The ledger as people read it: one row per message, its delivery state taken from its batch.

Messages travel in delivery batches, one provider request (or message-store write) each.
Claiming, sending and recording touch the batch row, never its fifty message rows: that is what
lets delivery keep pace with the provider on an ordinary warehouse. A message row carries a
state of its own only when it leaves its batch's fate (cancelled at a re-run); otherwise its
state is its batch's. Everything that asks "was this message sent?" reads `message_ledger`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.tables import delivery_batches, outbox

# A message reads as pending, held, in_flight, sent, failed, dead, cancelled or unknown. Batches
# also pass through `claimed` (taken ahead of sending; its messages read as pending) and `split`
# (re-batched; no message refers to it any more).
# States in which a message may have reached, or may still reach, the customer: caps count them.
SPENT_STATES = ("pending", "in_flight", "sent", "failed", "unknown")


VIEW = "message_ledger"


def message_ledger(*where: sa.ColumnElement[bool], name: str = "ledger") -> sa.Subquery:
    """Messages with their effective state, dispatch id, attempts and error; `where` filters on
    `outbox` columns before the join, so a run date or campaign narrows the scan."""
    return _ledger_select(*where).subquery(name)


def _ledger_select(*where: sa.ColumnElement[bool]) -> sa.Select[Any]:
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
    body = _ledger_select().compile(dialect=dialect, compile_kwargs={"literal_binds": True})
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


def ledger_counts(conn: Connection, run_date: dt.date) -> dict[str, dict[str, int]]:
    """Messages per campaign and state for the run date."""
    ledger = message_ledger(outbox.c.run_date == run_date)
    out: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        sa.select(ledger.c.campaign_id, ledger.c.state, sa.func.count()).group_by(ledger.c.campaign_id, ledger.c.state)
    )
    for campaign_id, state, count in rows:
        out.setdefault(campaign_id, {})[state] = int(count)
    return out


def state_counts(conn: Connection, *where: sa.ColumnElement[bool]) -> dict[str, int]:
    """Messages per effective state (all dates unless `where` narrows it)."""
    ledger = message_ledger(*where)
    rows = conn.execute(sa.select(ledger.c.state, sa.func.count()).group_by(ledger.c.state))
    return {state: int(n) for state, n in rows}


def messages_in_state(conn: Connection, state: str, *where: sa.ColumnElement[bool]) -> list[Any]:
    """(customer id, campaign id, destination, last error) of the messages in `state`."""
    ledger = message_ledger(*where)
    return list(
        conn.execute(
            sa.select(ledger.c.customer_id, ledger.c.campaign_id, ledger.c.destination, ledger.c.last_error).where(
                ledger.c.state == state
            )
        ).all()
    )
