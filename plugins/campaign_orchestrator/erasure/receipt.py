"""Step 5, the receipt: what an erasure did, kept in `erasure_requests` and printed by the CLI.

It holds the request id, when it was asked and by whom (`cli` or `inbox`), how many customers, the
count per store (every table the step looked at, zeros included, and the files), the provider
destinations it was forwarded to, when it finished, and what it still waits for. Never an id, an
address or a name: a receipt can be shown to anyone who may see that an erasure happened.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.clock import iso_utc
from campaign_orchestrator.erasure.stores import ANONYMISED, CONTENT_DELETED, TEXT_SCRUBBED
from campaign_orchestrator.warehouse.tables import erasure_requests, erasure_subjects

FILE_STORES = {
    "archive_files": "archive files rewritten",
    "archive_rows": "archive rows removed",
    "report_files": "report files rewritten",
    "report_mentions": "mentions replaced in reports",
    "files_not_text": "files that are not text (not read)",
}


@dataclass(frozen=True)
class Receipt:
    request_id: str
    requested_at: dt.datetime
    requested_by: str
    customers: int
    status: str
    finished_at: dt.datetime | None
    stores: dict[str, int] = field(default_factory=dict)
    destinations: dict[str, dict[str, Any]] = field(default_factory=dict)
    waiting_for: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "requested_at": iso_utc(self.requested_at),
            "requested_by": self.requested_by,
            "customers": self.customers,
            "status": self.status,
            "finished_at": iso_utc(self.finished_at) if self.finished_at else None,
            "stores": self.stores,
            "destinations": self.destinations,
            "waiting_for": self.waiting_for,
        }

    def lines(self) -> list[str]:
        when = f"finished {iso_utc(self.finished_at)}" if self.finished_at else "not finished"
        lines = [
            f"erasure {self.request_id}: {self.customers} customer(s), requested {iso_utc(self.requested_at)} "
            f"({self.requested_by}), {when}",
        ]
        for store in sorted(s for s in self.stores if s not in FILE_STORES):
            lines.append(f"  {store:<24} {self.stores[store]:>8,} {_action(store)}")
        for store, label in FILE_STORES.items():
            if store in self.stores:
                lines.append(f"  {label:<40} {self.stores[store]:>8,}")
        for name, done in sorted(self.destinations.items()):
            if done.get("forwarded"):
                lines.append(
                    f"  provider {name}: deletion of {done['ids']} id(s) accepted in {done['requests']} request(s)"
                )
            else:
                lines.append(f"  provider {name}: not forwarded ({done.get('why', 'not yet')})")
        lines += [f"  waiting for: {w}" for w in self.waiting_for]
        return lines


def _action(store: str) -> str:
    if store in ANONYMISED:
        return "row(s) anonymised (re-keyed, payload emptied)"
    if store in TEXT_SCRUBBED:
        return "row(s) whose text was scrubbed"
    if store in CONTENT_DELETED:
        return "row(s) deleted (they quoted the customer)"
    return "row(s) deleted"


def read_receipt(conn: Connection, request_id: str) -> Receipt | None:
    row = conn.execute(sa.select(erasure_requests).where(erasure_requests.c.request_id == request_id)).first()
    if row is None:
        return None
    return Receipt(
        request_id=row.request_id,
        requested_at=row.requested_at,
        requested_by=row.requested_by,
        customers=row.customers,
        status=row.status,
        finished_at=row.finished_at,
        stores=json.loads(row.stores or "{}"),
        destinations=json.loads(row.destinations or "{}"),
        waiting_for=json.loads(row.waiting_for or "[]"),
    )


def record(
    conn: Connection,
    request_id: str,
    counts: dict[str, int],
    done: str | None,
    now: dt.datetime,
    destinations: dict[str, dict[str, Any]] | None = None,
    waiting: list[str] | None = None,
) -> None:
    """Add a step's counts to the receipt (a repeat adds what it erased itself) and mark the step
    done (`done`: its column) or say what it waits for."""
    current = read_receipt(conn, request_id)
    assert current is not None
    stores = dict(current.stores)
    for name, n in counts.items():
        stores[name] = stores.get(name, 0) + n
    values: dict[str, Any] = {"stores": json.dumps(stores, sort_keys=True)}
    if destinations is not None:
        values["destinations"] = json.dumps(destinations, sort_keys=True)
    if done is not None:
        values[done] = now
    if waiting is not None:
        values["waiting_for"] = json.dumps(waiting)
    conn.execute(erasure_requests.update().where(erasure_requests.c.request_id == request_id).values(**values))


def finish(conn: Connection, request_id: str, now: dt.datetime) -> bool:
    """Once every step is done: the work list's plain values go, and the request is finished."""
    r = erasure_requests.c
    row = conn.execute(
        sa.select(r.rows_done_at, r.files_done_at, r.forwarded_at).where(r.request_id == request_id)
    ).one()
    if None in tuple(row):
        return False
    conn.execute(erasure_subjects.delete().where(erasure_subjects.c.request_id == request_id))
    conn.execute(
        erasure_requests.update()
        .where(r.request_id == request_id, r.finished_at.is_(None))
        .values(status="finished", finished_at=now, waiting_for="[]")
    )
    return True
