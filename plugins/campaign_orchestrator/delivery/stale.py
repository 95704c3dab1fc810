"""Stale nights: a night whose delivery runs more than `settings.delivery.max_lateness` after its
run date ended (midnight UTC after the run date) sends nothing. Its campaigns were meant for a day
that is over; sending them "now" would deliver yesterday's messages today (a missed schedule, the
run Airflow starts for the previous interval on unpause, a backfill, a replay of a past date).

Invariant: a stale shard makes no request and writes no in-app message, and leaves nothing that a
later run of the date could send. Its messages that reached no one (pending, held, claimed but
never started, failed where a failure means not taken, in flight to the transactional message
store) become `stale`: final, counted against no cap. Those that may have arrived (in flight under
a dead worker's claim, or failed at a destination that honours keys, where `failed` may hide an
accepted request) become `unknown`, never resent. A claim whose worker is alive is left to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.definitions.settings import DeliverySettings, Destination
from campaign_orchestrator.delivery.claims import in_shard
from campaign_orchestrator.delivery.report import cause_lines
from campaign_orchestrator.outbox.ledger import unsent_causes
from campaign_orchestrator.outbox.states import UNDER_CLAIM
from campaign_orchestrator.warehouse.bulk import set_by_key
from campaign_orchestrator.warehouse.tables import delivery_batches, outbox

B = delivery_batches.c
# Batch states a stale shard resolves: everything a later attempt could still send.
UNRESOLVED = ("pending", "held", "failed", "claimed", "in_flight")


def date_ended(run_date: dt.date) -> dt.datetime:
    """The end of the run date: midnight UTC after it (naive UTC, as the warehouse keeps time)."""
    return dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time())


@dataclass(frozen=True)
class Lateness:
    """How late a night's delivery runs against `settings.delivery.max_lateness`."""

    run_date: dt.date
    now: dt.datetime  # naive UTC
    max_lateness: str | None  # as settings.yaml says it; None: no limit
    limit: dt.timedelta | None

    @property
    def late_by(self) -> dt.timedelta:
        """Time since the run date ended (negative while the date lasts)."""
        return self.now - date_ended(self.run_date)

    @property
    def stale(self) -> bool:
        return self.limit is not None and self.late_by > self.limit

    @property
    def reason(self) -> str:
        hours = self.late_by.total_seconds() / 3600
        return (
            f"the night of {self.run_date.isoformat()} ran {hours:.1f} h after its date ended (midnight UTC), "
            f"past settings.delivery.max_lateness {self.max_lateness}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_date": self.run_date.isoformat(),
            "now": self.now.isoformat(timespec="seconds"),
            "date_ended": date_ended(self.run_date).isoformat(),
            "late_by_hours": round(self.late_by.total_seconds() / 3600, 2),
            "max_lateness": self.max_lateness,
            "stale": self.stale,
            "reason": self.reason,
        }


def lateness(run_date: dt.date, now: dt.datetime, settings: DeliverySettings) -> Lateness:
    """The night of `run_date` delivering at `now` (naive UTC), against the delivery settings."""
    return Lateness(run_date, now, settings.max_lateness, settings.max_lateness_delta)


def _fate(state: str, destination: Destination | None, expired: bool) -> str | None:
    """`stale`, `unknown`, or None (a live claim: its worker records it)."""
    if state in UNDER_CLAIM and not expired:
        return None
    if state in ("pending", "held", "claimed"):  # no request for them ever left
        return "stale"
    store = destination is not None and destination.kind == "message_store"
    if state == "in_flight":  # the store writes in the transaction that marks it sent: not written
        return "stale" if store else "unknown"
    # failed: only a destination that honours keys gives up with a request that may have arrived
    return "unknown" if destination is not None and destination.honours_idempotency_key else "stale"


def withhold_stale_shard(
    engine: Engine,
    run_date: dt.date,
    shard: int,
    shards: int,
    late: Lateness,
    destinations: dict[str, Destination],
    lease_s: float,
) -> dict[str, Any]:
    """Resolve a stale night's shard without sending (see the module); returns the deliver stage's
    detail: the lateness, messages made stale or unknown, and the shard's messages per state."""
    now, mine = late.now, sa.and_(B.run_date == run_date, in_shard(shard, shards))
    cutoff = now - dt.timedelta(seconds=lease_s)
    note = f"not sent: {late.reason}"
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(B.batch_id, B.state, B.destination, B.updated_at, B.last_error)
            .where(mine, B.state.in_(UNRESOLVED))
            .with_for_update()
        ).all()
        stale: dict[str, list[str]] = {}  # message note -> batches
        unknown: list[str] = []
        batches: list[tuple[str, str, str]] = []  # batch id, new state, note
        for r in rows:
            fate = _fate(r.state, destinations.get(r.destination), r.updated_at < cutoff)
            if fate is None:
                continue
            earlier = f"; an earlier attempt: {r.last_error}" if r.state == "failed" and r.last_error else ""
            if fate == "stale":
                stale.setdefault(note + earlier, []).append(r.batch_id)
                batches.append((r.batch_id, "cancelled", note + earlier))
            else:
                why = f"possibly delivered: {r.state.replace('_', ' ')} when the night went stale{earlier}; not resent"
                unknown.append(r.batch_id)
                batches.append((r.batch_id, "unknown", why))
        withheld = {"stale": 0, "unknown": _live_messages(conn, unknown)}
        # As selected: a claim whose lease runs is left alone. No IN (...): this runs as executemany.
        unclaimed = sa.or_(*(B.state == state for state in UNRESOLVED if state not in UNDER_CLAIM))
        expired = sa.and_(sa.or_(*(B.state == state for state in UNDER_CLAIM)), B.updated_at < cutoff)
        still_unresolved = sa.or_(unclaimed, expired)
        for message_note, ids in stale.items():
            for start in range(0, len(ids), 500):
                withheld["stale"] += int(
                    conn.execute(
                        outbox.update()
                        .where(outbox.c.batch_id.in_(ids[start : start + 500]), outbox.c.state.is_(None))
                        .values(state="stale", last_error=message_note, updated_at=now)
                    ).rowcount
                    or 0
                )
        set_by_key(
            conn,
            delivery_batches,
            "batch_id",
            batches,
            ("state", "last_error"),
            fixed={"claim_id": None, "updated_at": now},
            where=[still_unresolved],
        )
        remaining, causes = unsent_causes(conn, run_date, in_shard(shard, shards, outbox.c.shard_key))
    states = ", ".join(f"{remaining.get(s, 0)} {s}" for s in ("sent", "stale", "unknown", "pending"))
    return {
        "shard": shard,
        "stale": late.as_dict(),
        "withheld": withheld,
        "sent": {},
        "requests": 0,
        "remaining": remaining,
        "causes": causes,
        "summary": f"shard {shard}: nothing sent, {late.reason}; {states}"
        + "".join(f"; {c}" for c in cause_lines({k: v for k, v in causes.items() if k != "stale"})),
    }


def _live_messages(conn: Any, batch_ids: Sequence[str]) -> int:
    """Messages still travelling in these batches (the cancelled ones left)."""
    total = 0
    for start in range(0, len(batch_ids), 500):
        total += int(
            conn.execute(
                sa.select(sa.func.count()).where(
                    outbox.c.batch_id.in_(batch_ids[start : start + 500]), outbox.c.state.is_(None)
                )
            ).scalar()
            or 0
        )
    return total
