"""An erasure from request to receipt, each step run once and safe to run again.

`request_erasure` is step 1 (the transaction after which nothing is sent). `continue_erasure` runs
every later step not done yet with what it was given: the warehouse always (step 2), the files
when the archive and reports folders are named (step 3), the providers when the settings are
(step 4), and finishes the request (step 5) once all are done. So a crash anywhere is finished by
`campaigns erase --pending`, and the inbox's `DELETE` (which has no folders nor provider
connections) leaves steps 3 and 4 to it.

Logs name the request id and counts, never a customer.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.connections import EndpointResolver, env_endpoint_resolver
from campaign_orchestrator.definitions.settings import Settings
from campaign_orchestrator.erasure.accept import accept
from campaign_orchestrator.erasure.files import erase_files
from campaign_orchestrator.erasure.providers import forward_deletions
from campaign_orchestrator.erasure.receipt import Receipt, finish, read_receipt, record
from campaign_orchestrator.erasure.rows import Subject, erase_rows, name_values, subject_values
from campaign_orchestrator.ingest.tombstones import erasure_salt
from campaign_orchestrator.warehouse.tables import erasure_requests, erasure_subjects

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class Places:
    """What the later steps reach: folders (None: step 3 waits) and settings (None: step 4 waits)."""

    archive_dir: Path | None = None
    reports_dir: Path | None = None
    settings: Settings | None = None
    resolver: EndpointResolver = env_endpoint_resolver
    sleep: Callable[[float], None] | None = None  # the provider client's, for tests


def request_erasure(engine: Engine, customer_ids: Iterable[str], requested_by: str, clock: Clock = utcnow) -> str:
    """Step 1; needs the salt (ErasureSaltMissing otherwise). Returns the request id."""
    request_id = accept(engine, customer_ids, erasure_salt(), requested_by, clock())
    log.info("erasure %s accepted (%s): nothing more is sent to its customers", request_id, requested_by)
    return request_id


def erase_customers(
    engine: Engine, customer_ids: Iterable[str], places: Places, requested_by: str = "cli", clock: Clock = utcnow
) -> Receipt:
    return continue_erasure(engine, request_erasure(engine, customer_ids, requested_by, clock), places, clock)


def pending_requests(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(erasure_requests.c.request_id)
                .where(erasure_requests.c.finished_at.is_(None))
                .order_by(erasure_requests.c.requested_at)
            ).scalars()
        )


def _subjects(engine: Engine, request_id: str) -> list[Subject]:
    s = erasure_subjects.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(s.customer_id, s.email, s.token, s.first_name).where(s.request_id == request_id)
        ).all()
    return [Subject(r.customer_id, r.email, r.token, r.first_name) for r in rows]


def continue_erasure(engine: Engine, request_id: str, places: Places, clock: Clock = utcnow) -> Receipt:
    """Run the steps not done yet; returns the receipt as it stands."""
    with engine.connect() as conn:
        receipt = read_receipt(conn, request_id)
        row = conn.execute(sa.select(erasure_requests).where(erasure_requests.c.request_id == request_id)).one()
    assert receipt is not None
    if receipt.finished:
        return receipt
    subjects = _subjects(engine, request_id)
    values = subject_values(subjects)
    waiting: list[str] = []
    if row.rows_done_at is None:
        with engine.begin() as conn:
            erased = erase_rows(conn, subjects)
            busy = erased.in_flight
            if busy:
                waiting.append(
                    f"{busy} message(s) in a request a delivery worker holds right now (claimed or in flight): "
                    "run `campaigns erase --pending` once delivery is done"
                )
            record(conn, request_id, erased.counts, None if busy else "rows_done_at", clock())
        log.info("erasure %s: %d warehouse row(s) erased", request_id, sum(erased.counts.values()))
    if row.files_done_at is None:
        if places.archive_dir is None and places.reports_dir is None:
            waiting.append("the archive and reports folders: run `campaigns erase --pending`")
        else:
            names = name_values(subjects)
            counts = erase_files(values, names, places.archive_dir, places.reports_dir) if values else {}
            with engine.begin() as conn:
                record(conn, request_id, counts, "files_done_at", clock())
            log.info("erasure %s: %d archive and report file(s) rewritten", request_id, _files_changed(counts))
    if row.forwarded_at is None:
        if places.settings is None:
            waiting.append("the providers: run `campaigns erase --pending`")
        else:
            ids = [s.customer_id for s in subjects]
            sent = forward_deletions(
                engine, request_id, ids, places.settings, places.resolver, clock, values, places.sleep
            )
            waiting += sent.problems
            with engine.begin() as conn:
                record(conn, request_id, {}, None if sent.problems else "forwarded_at", clock(), sent.destinations)
    with engine.begin() as conn:
        if not finish(conn, request_id, clock()):
            record(conn, request_id, {}, None, clock(), waiting=waiting)
        final = read_receipt(conn, request_id)
    assert final is not None
    log.info("erasure %s: %s", request_id, "finished" if final.finished else f"waiting for {len(waiting)} thing(s)")
    return final


def _files_changed(counts: dict[str, int]) -> int:
    return counts.get("archive_files", 0) + counts.get("report_files", 0)
