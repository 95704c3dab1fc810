"""Step 2, the warehouse: every row of the request's customers deleted or anonymised, in one
transaction, as `stores` classifies the tables.

The ledger stays whole: each outbox row of theirs keeps its campaign, date, channel, state and
batch (so counts, caps and reports still add up) but gets a random message id, the subject's
random token as customer id, an empty payload and its error without their values. Rows whose batch
a delivery worker holds right now (claimed or in flight) are left until it is done: the step then
reports them and is not done, and a re-run finishes them.

Invariant: safe to repeat; a repeat finds nothing left of what an earlier run erased, and counts
only what it erased itself.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.erasure.accept import chunks
from campaign_orchestrator.erasure.stores import CONTENT_DELETED, TEXT_SCRUBBED, keyed_tables
from campaign_orchestrator.ingest.scrub import ERASED, Values
from campaign_orchestrator.outbox.states import UNDER_CLAIM
from campaign_orchestrator.warehouse.tables import delivery_batches, metadata, outbox


@dataclass(frozen=True)
class Subject:
    customer_id: str
    email: str | None
    token: str
    first_name: str | None = None


@dataclass
class RowsErased:
    counts: dict[str, int] = field(default_factory=dict)  # table -> rows deleted, anonymised or scrubbed
    in_flight: int = 0  # outbox rows left because a worker holds their batch


def subject_values(subjects: Sequence[Subject]) -> Values | None:
    """The plain values to look for in text: ids, e-mails, and their JSON-escaped spellings."""
    plain = {s.customer_id for s in subjects} | {s.email for s in subjects if s.email}
    escaped = {json.dumps(v)[1:-1] for v in plain}
    return Values.of(plain | escaped)


def name_values(subjects: Sequence[Subject]) -> Values | None:
    """Their first names: replaced in a report file only where it names them by id or e-mail."""
    plain = {s.first_name for s in subjects if s.first_name and len(s.first_name.strip()) > 1}
    return Values.of(plain | {json.dumps(v)[1:-1] for v in plain})


def erase_rows(conn: Connection, subjects: Sequence[Subject]) -> RowsErased:
    done = RowsErased()
    ids = sorted(s.customer_id for s in subjects)
    values = subject_values(subjects)
    done.counts["outbox"], done.in_flight = _anonymise_outbox(conn, subjects, values)
    for table in keyed_tables():
        deleted = 0
        for part in chunks(ids):
            deleted += int(conn.execute(table.delete().where(table.c.customer_id.in_(part))).rowcount or 0)
        done.counts[table.name] = deleted
    if values is not None:
        for name, columns in CONTENT_DELETED.items():
            done.counts[name] = _delete_naming(conn, metadata.tables[name], columns, values)
        for name, columns in TEXT_SCRUBBED.items():
            done.counts[name] = sum(_scrub(conn, metadata.tables[name], column, values) for column in columns)
    return done


def _anonymise_outbox(conn: Connection, subjects: Sequence[Subject], values: Values | None) -> tuple[int, int]:
    o, b = outbox.c, delivery_batches.c
    tokens = {s.customer_id: s.token for s in subjects}
    held = sa.select(b.batch_id).where(b.state.in_(UNDER_CLAIM))
    anonymised = in_flight = 0
    for part in chunks(sorted(tokens)):
        in_flight += int(
            conn.scalar(
                sa.select(sa.func.count()).select_from(outbox).where(o.customer_id.in_(part), o.batch_id.in_(held))
            )
            or 0
        )
        rows = conn.execute(
            sa.select(o.message_id, o.customer_id, o.last_error).where(
                o.customer_id.in_(part), sa.or_(o.batch_id.is_(None), o.batch_id.not_in(held))
            )
        ).all()
        if not rows:
            continue
        conn.execute(
            outbox.update()
            .where(o.message_id == sa.bindparam("old_id"))
            .values(
                message_id=sa.bindparam("new_id"),
                customer_id=sa.bindparam("token"),
                payload="{}",
                last_error=sa.bindparam("error"),
            ),
            [
                {
                    "old_id": r.message_id,
                    "new_id": str(uuid.uuid4()),
                    "token": tokens[r.customer_id],
                    "error": values.pattern.sub(ERASED, r.last_error) if values and r.last_error else r.last_error,
                }
                for r in rows
            ],
        )
        anonymised += len(rows)
    return anonymised, in_flight


def _naming(table: sa.Table, columns: Sequence[str], values: Values) -> sa.ColumnElement[bool]:
    """A pre-filter the database can run: a column contains a value (case-insensitive)."""
    return sa.or_(
        *(sa.func.lower(table.c[c]).contains(w, autoescape=True) for c in columns for w in sorted(values.words))
    )


def _delete_naming(conn: Connection, table: sa.Table, columns: Sequence[str], values: Values) -> int:
    """Delete the rows whose columns name a value as a whole token; rows deleted."""
    deleted = 0
    rows = conn.execute(sa.select(*table.c).where(_naming(table, columns, values))).all()
    for row in rows:
        if any(row._mapping[c] and values.pattern.search(str(row._mapping[c])) for c in columns):
            where = [table.c[k] == v if v is not None else table.c[k].is_(None) for k, v in row._mapping.items()]
            deleted += int(conn.execute(table.delete().where(*where)).rowcount or 0)
    return deleted


def _scrub(conn: Connection, table: sa.Table, column: str, values: Values) -> int:
    """Replace each mention of a value in a text column by `[erased]`; rows changed."""
    changed = 0
    found = conn.execute(sa.select(table.c[column]).where(_naming(table, [column], values)).distinct()).scalars()
    for text in list(found):
        new = values.pattern.sub(ERASED, text)
        if new != text:
            changed += int(
                conn.execute(table.update().where(table.c[column] == text).values({column: new})).rowcount or 0
            )
    return changed
