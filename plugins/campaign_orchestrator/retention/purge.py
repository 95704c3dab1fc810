"""What `campaigns purge` and the DAG's `purge` task do: each store older than its retention.

Per store, against `settings.retention` (days before `today`; None keeps it for ever):
- `quarantine_raw_days`: quarantined rows keep source, line, reason and counts; their raw
  values (the row as it came, personal data) become empty.
- `archive_days`: the archive's dated folders (`<archive>/<YYYY-MM-DD>/`) of older nights are
  removed whole; anything else there is left alone.
- `rendered_payload_days`: messages that left for good (sent, dead, cancelled) keep their ledger
  row; their rendered payload becomes `{}`. In the in-app store, messages that ended that long
  ago are removed with their display states.
- `outbox_days`: older messages in a final state are removed, and the batches left empty; a
  message that may still be sent (pending, failed, held, claimed, in flight) or whose fate is
  `unknown` stays until someone decides it.
- `engagement_days`: engagement events from the apps and the provider's export, older than that.

Invariant: every statement is one set-based UPDATE or DELETE per table (bounded by indexes on
dates), the same on every engine; running it twice changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.definitions.retention import Retention
from campaign_orchestrator.outbox.states import BatchState
from campaign_orchestrator.warehouse.inbox_tables import engagement_events, inapp_states
from campaign_orchestrator.warehouse.measurement_tables import provider_engagement
from campaign_orchestrator.warehouse.tables import delivery_batches, inapp_messages, outbox, quarantine

EMPTIED = "{}"  # a payload that was purged (or erased): the row stays, its text is gone
LEFT_FOR_GOOD: tuple[BatchState, ...] = ("sent", "dead", "cancelled")


@dataclass
class PurgeReport:
    today: dt.date
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)  # store -> rows (or folders) purged
    cutoffs: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "dry_run": self.dry_run,
            "counts": self.counts,
            "cutoffs": self.cutoffs,
        }


def _cutoff(today: dt.date, days: int | None) -> dt.date | None:
    return None if days is None else today - dt.timedelta(days=days)


def _moment(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def _left_for_good() -> sa.ColumnElement[bool]:
    """A message whose delivery is over: cancelled itself, or in a batch that was sent, dead or cancelled."""
    finished = sa.select(delivery_batches.c.batch_id).where(delivery_batches.c.state.in_(LEFT_FOR_GOOD))
    return sa.or_(outbox.c.state == "cancelled", sa.and_(outbox.c.state.is_(None), outbox.c.batch_id.in_(finished)))


def _count_or_run(conn: Connection, statement: Any, count: sa.Select[Any], dry_run: bool) -> int:
    if dry_run:
        return int(conn.execute(count).scalar_one())
    return int(conn.execute(statement).rowcount or 0)


def _quarantine(conn: Connection, cutoff: dt.date, dry_run: bool) -> int:
    where = (quarantine.c.run_date < cutoff, quarantine.c.raw != "")
    count = sa.select(sa.func.count()).select_from(quarantine).where(*where)
    return _count_or_run(conn, quarantine.update().where(*where).values(raw=""), count, dry_run)


def _payloads(conn: Connection, cutoff: dt.date, dry_run: bool) -> dict[str, int]:
    where = (outbox.c.run_date < cutoff, outbox.c.payload != EMPTIED, _left_for_good())
    count = sa.select(sa.func.count()).select_from(outbox).where(*where)
    emptied = _count_or_run(conn, outbox.update().where(*where).values(payload=EMPTIED), count, dry_run)
    ended = sa.select(inapp_messages.c.message_id).where(inapp_messages.c.end_at < _moment(cutoff))
    states = sa.select(sa.func.count()).select_from(inapp_states).where(inapp_states.c.message_id.in_(ended))
    messages = sa.select(sa.func.count()).select_from(inapp_messages).where(inapp_messages.c.end_at < _moment(cutoff))
    in_app_states = _count_or_run(
        conn, inapp_states.delete().where(inapp_states.c.message_id.in_(ended)), states, dry_run
    )
    in_app = _count_or_run(
        conn, inapp_messages.delete().where(inapp_messages.c.end_at < _moment(cutoff)), messages, dry_run
    )
    return {"rendered_payloads": emptied, "inapp_messages": in_app, "inapp_states": in_app_states}


def _outbox(conn: Connection, cutoff: dt.date, dry_run: bool) -> dict[str, int]:
    going = sa.and_(outbox.c.run_date < cutoff, _left_for_good())

    def empty_batches(staying: sa.ColumnElement[bool]) -> tuple[sa.ColumnElement[bool], ...]:
        """Batches of those dates that no staying message refers to (split ones never had their own)."""
        used = sa.select(outbox.c.batch_id).where(outbox.c.batch_id.is_not(None), staying)
        return (
            delivery_batches.c.run_date < cutoff,
            delivery_batches.c.state.in_((*LEFT_FOR_GOOD, "split")),
            delivery_batches.c.batch_id.not_in(used),
        )

    if dry_run:
        would = sa.select(sa.func.count()).select_from(outbox).where(going)
        batches = sa.select(sa.func.count()).select_from(delivery_batches).where(*empty_batches(sa.not_(going)))
        counted = int(conn.execute(would).scalar_one())
        return {"outbox": counted, "delivery_batches": int(conn.execute(batches).scalar_one())}
    # The messages first: whether one is over is read from its batch.
    removed = int(conn.execute(outbox.delete().where(going)).rowcount or 0)
    gone = int(conn.execute(delivery_batches.delete().where(*empty_batches(sa.true()))).rowcount or 0)
    return {"outbox": removed, "delivery_batches": gone}


def _engagement(conn: Connection, cutoff: dt.date, dry_run: bool) -> dict[str, int]:
    out = {}
    for name, table in (("engagement_events", engagement_events), ("provider_engagement", provider_engagement)):
        where = table.c.at < _moment(cutoff)
        count = sa.select(sa.func.count()).select_from(table).where(where)
        out[name] = _count_or_run(conn, table.delete().where(where), count, dry_run)
    return out


def _archives(archive_dir: Path | None, cutoff: dt.date, dry_run: bool) -> int:
    if archive_dir is None or not archive_dir.is_dir():
        return 0
    removed = 0
    for folder in sorted(archive_dir.iterdir()):
        try:
            night = dt.date.fromisoformat(folder.name)
        except ValueError:
            continue  # not a night's folder: not ours to judge
        if folder.is_dir() and not folder.is_symlink() and night < cutoff:
            removed += 1
            if not dry_run:
                shutil.rmtree(folder)
    return removed


def purge(
    engine: Engine, retention: Retention, today: dt.date, archive_dir: Path | None = None, dry_run: bool = False
) -> PurgeReport:
    """Apply `retention` as of `today`; with `dry_run`, count what would go and change nothing."""
    report = PurgeReport(today, dry_run)
    days = {
        "quarantine_raw": retention.quarantine_raw_days,
        "archives": retention.archive_days,
        "rendered_payloads": retention.rendered_payload_days,
        "outbox": retention.outbox_days,
        "engagement": retention.engagement_days,
    }
    cutoffs = {store: _cutoff(today, n) for store, n in days.items()}
    report.cutoffs = {store: day.isoformat() for store, day in cutoffs.items() if day is not None}
    with engine.begin() as conn:
        if (day := cutoffs["quarantine_raw"]) is not None:
            report.counts["quarantine_raw"] = _quarantine(conn, day, dry_run)
        if (day := cutoffs["rendered_payloads"]) is not None:
            report.counts.update(_payloads(conn, day, dry_run))
        if (day := cutoffs["outbox"]) is not None:
            report.counts.update(_outbox(conn, day, dry_run))
        if (day := cutoffs["engagement"]) is not None:
            report.counts.update(_engagement(conn, day, dry_run))
    if (day := cutoffs["archives"]) is not None:
        report.counts["archives"] = _archives(archive_dir, day, dry_run)
    return report
