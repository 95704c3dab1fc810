"""The ledger as people read it: one row per message, its delivery state taken from its batch.

Messages travel in delivery batches, one provider request (or message-store write) each.
Claiming, sending and recording touch the batch row, never its fifty message rows: that is what
lets delivery keep pace with the provider on an ordinary warehouse. A message row carries a
state of its own only when it leaves its batch's fate (cancelled at a re-run); otherwise its
state is its batch's. Everything that asks "was this message sent?" reads `message_ledger`.
"""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.outbox.states import SPENT_STATES, STANDING_STATES
from campaign_orchestrator.warehouse.tables import delivery_batches, outbox
from campaign_orchestrator.warehouse.views import ledger_select


def message_ledger(*where: sa.ColumnElement[bool], name: str = "ledger") -> sa.Subquery:
    """Messages with their effective state, dispatch id, attempts and error; `where` filters on
    `outbox` columns before the join, so a run date or campaign narrows the scan."""
    return ledger_select(*where).subquery(name)


def standing_messages(run_date: dt.date, *where: sa.ColumnElement[bool], name: str) -> sa.Subquery:
    """Messages that count against the caps of a run for `run_date` and that it does not re-decide:
    the date's own standing messages, and every other date's messages in SPENT_STATES, whichever
    run wrote them. `where` filters on `outbox` columns (slot date, campaign)."""
    b = delivery_batches.c
    raw = sa.func.coalesce(outbox.c.state, b.state)  # `claimed` is told apart from `pending` here
    return (
        sa.select(outbox.c.campaign_id, outbox.c.customer_id, outbox.c.channel, outbox.c.slot_date)
        .select_from(outbox.outerjoin(delivery_batches, b.batch_id == outbox.c.batch_id))
        .where(
            *where,
            sa.or_(
                sa.and_(outbox.c.run_date == run_date, raw.in_(STANDING_STATES)),
                sa.and_(outbox.c.run_date != run_date, raw.in_((*SPENT_STATES, "claimed"))),
            ),
        )
        .subquery(name)
    )


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


_GAVE_UP = re.compile(r"^gave up after \d+ attempts: ")


def unsent_causes(
    conn: Connection, run_date: dt.date, *where: sa.ColumnElement[bool], down: dict[str, str] | None = None
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Messages of the run date per state, and for those not delivered (pending, failed, unknown,
    dead, stale) how many per cause: their last error without the attempt count, or for pending messages
    of a destination in `down` (found down by this attempt) that cause."""
    ledger = message_ledger(outbox.c.run_date == run_date, *where)
    states: dict[str, int] = {}
    causes: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        sa.select(ledger.c.state, ledger.c.destination, ledger.c.last_error, sa.func.count()).group_by(
            ledger.c.state, ledger.c.destination, ledger.c.last_error
        )
    )
    for state, destination, error, n in rows:
        states[state] = states.get(state, 0) + int(n)
        if state not in ("failed", "unknown", "dead", "pending", "stale"):
            continue
        if state == "pending" and down and destination in down:
            cause = f"not sent, {destination} is down: {down[destination]}"
        elif error:
            cause = _GAVE_UP.sub("", error)
        else:
            cause = "not attempted yet" if state == "pending" else "no reason recorded"
        by_cause = causes.setdefault(state, {})
        by_cause[cause] = by_cause.get(cause, 0) + int(n)
    return states, causes
