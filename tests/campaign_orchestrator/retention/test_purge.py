"""Retention purges each store older than its setting, keeps whatever a night still needs (a message
that may still be sent, an `unknown` one), says what it would do in a dry run, and is idempotent."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from campaign_orchestrator.definitions.retention import Retention
from campaign_orchestrator.retention import purge
from campaign_orchestrator.warehouse.inbox_tables import engagement_events, inapp_states
from campaign_orchestrator.warehouse.measurement_tables import provider_engagement
from campaign_orchestrator.warehouse.tables import delivery_batches, inapp_messages, outbox, quarantine

TODAY = dt.date(2026, 12, 7)
OLD, RECENT = TODAY - dt.timedelta(days=100), TODAY - dt.timedelta(days=3)
RETENTION = Retention(
    quarantine_raw_days=30, archive_days=30, rendered_payload_days=30, outbox_days=60, engagement_days=30
)


def at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12))


def fill(engine: sa.Engine) -> None:
    rows, batches = [], []
    for day in (OLD, RECENT):
        for state in ("sent", "dead", "cancelled", "pending", "failed", "unknown", "held"):
            batch = f"b-{day}-{state}"
            batches.append(
                {
                    "batch_id": batch,
                    "run_date": day,
                    "shard_key": 0,
                    "destination": "braze",
                    "campaign_id": "c",
                    "variant": "default",
                    "send_at": at(day),
                    "messages": 1,
                    "state": state,
                    "attempts": 1,
                    "created_at": at(day),
                    "updated_at": at(day),
                }
            )
            rows.append(
                {
                    "message_id": f"m-{day}-{state}",
                    "run_date": day,
                    "slot_date": day,
                    "campaign_id": "c",
                    "customer_id": f"C-{day}-{state}",
                    "variant": "default",
                    "channel": "push",
                    "destination": "braze",
                    "send_at": at(day),
                    "payload": '{"title": "Hi Ana"}',
                    "batch_id": batch,
                    "state": None,
                    "shard_key": 0,
                    "created_at": at(day),
                    "updated_at": at(day),
                }
            )
        # a message cancelled on its own (no longer targeted) in a batch that was sent
        rows.append(
            {
                **rows[0],
                "message_id": f"m-{day}-self-cancelled",
                "customer_id": f"C-{day}-x",
                "batch_id": f"b-{day}-sent",
                "state": "cancelled",
                "run_date": day,
                "slot_date": day,
            }
        )
    with engine.begin() as conn:
        conn.execute(delivery_batches.insert(), batches)
        conn.execute(outbox.insert(), rows)
        conn.execute(
            quarantine.insert(),
            [
                {
                    "run_date": d,
                    "source": "customers",
                    "file": "customers.csv",
                    "row_number": 2,
                    "rules": "tier",
                    "raw": "C1,Ana,ana@example.com",
                }
                for d in (OLD, RECENT)
            ],
        )
        conn.execute(
            engagement_events.insert(),
            [
                {
                    "customer_id": "C1",
                    "event_id": f"e{d}",
                    "message_id": "m",
                    "campaign_id": "c",
                    "variant": "default",
                    "event": "displayed",
                    "at": at(d),
                    "received_at": at(d),
                }
                for d in (OLD, RECENT)
            ],
        )
        conn.execute(
            provider_engagement.insert(),
            [
                {
                    "event_id": f"p{d}",
                    "event": "open",
                    "at": at(d),
                    "customer_id": "C1",
                    "campaign_id": "c",
                    "import_date": d,
                }
                for d in (OLD, RECENT)
            ],
        )
        conn.execute(
            inapp_messages.insert(),
            [
                {
                    "message_id": f"i{d}",
                    "customer_id": "C1",
                    "campaign_id": "c",
                    "treatment_id": "default",
                    "content": "{}",
                    "priority": 3,
                    "start_at": at(d),
                    "end_at": at(d) + dt.timedelta(days=1),
                    "created_at": at(d),
                }
                for d in (OLD, RECENT)
            ],
        )
        conn.execute(
            inapp_states.insert(),
            [
                {"customer_id": "C1", "message_id": f"i{d}", "seen_at": at(d), "updated_at": at(d)}
                for d in (OLD, RECENT)
            ],
        )


def messages(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(outbox.c.message_id, outbox.c.payload)).all())


def column(engine: sa.Engine, col: sa.Column[object]) -> list[object]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(col)).scalars().all(), key=str)


def test_each_store_loses_what_is_older_than_its_setting_and_nothing_a_night_still_needs(any_warehouse, tmp_path: Path):
    warehouse = any_warehouse
    fill(warehouse)
    archive = tmp_path / "archive"
    for day in (OLD, RECENT):
        (archive / day.isoformat() / "raw").mkdir(parents=True)
        (archive / day.isoformat() / "raw" / "customers.csv").write_text("customer_id\nC1\n")
    (archive / "notes").mkdir()  # not a night's folder: left alone

    dry = purge(warehouse, RETENTION, TODAY, archive, dry_run=True)
    assert (archive / OLD.isoformat()).exists() and len(messages(warehouse)) == 16  # a dry run changes nothing
    report = purge(warehouse, RETENTION, TODAY, archive)
    assert report.counts == dry.counts, (report.counts, dry.counts)  # it said exactly what would go

    kept = messages(warehouse)
    old_final = {f"m-{OLD}-{s}" for s in ("sent", "dead", "cancelled", "self-cancelled")}
    assert not old_final & set(kept)  # older than outbox_days and over: removed
    # What may still be sent, or whose fate a person must decide, stays with its payload.
    for state in ("pending", "failed", "unknown", "held"):
        assert kept[f"m-{OLD}-{state}"] == '{"title": "Hi Ana"}'
    assert all(p == '{"title": "Hi Ana"}' for m, p in kept.items() if str(RECENT) in m)
    assert column(warehouse, delivery_batches.c.batch_id) == sorted(
        [f"b-{OLD}-{s}" for s in ("pending", "failed", "unknown", "held")]
        + [f"b-{RECENT}-{s}" for s in ("sent", "dead", "cancelled", "pending", "failed", "unknown", "held")]
    )
    assert report.counts["outbox"] == 4 and report.counts["delivery_batches"] == 3
    assert column(warehouse, quarantine.c.raw) == ["", "C1,Ana,ana@example.com"]
    assert column(warehouse, engagement_events.c.event_id) == [f"e{RECENT}"]
    assert column(warehouse, provider_engagement.c.event_id) == [f"p{RECENT}"]
    assert column(warehouse, inapp_messages.c.message_id) == [f"i{RECENT}"]
    assert column(warehouse, inapp_states.c.message_id) == [f"i{RECENT}"]
    assert sorted(p.name for p in archive.iterdir()) == [RECENT.isoformat(), "notes"]

    again = purge(warehouse, RETENTION, TODAY, archive)
    assert set(again.counts.values()) == {0}  # idempotent


def test_payloads_of_messages_that_left_go_before_their_rows(any_warehouse):
    warehouse = any_warehouse
    fill(warehouse)
    report = purge(warehouse, Retention(rendered_payload_days=30), TODAY)
    kept = messages(warehouse)
    assert report.counts["rendered_payloads"] == 4 and len(kept) == 16
    for state in ("sent", "dead", "cancelled", "self-cancelled"):
        assert kept[f"m-{OLD}-{state}"] == "{}"
    for state in ("pending", "failed", "unknown", "held"):
        assert kept[f"m-{OLD}-{state}"] != "{}"


def test_no_setting_keeps_everything(any_warehouse):
    warehouse = any_warehouse
    fill(warehouse)
    assert purge(warehouse, Retention(), TODAY).counts == {}
    assert len(messages(warehouse)) == 16
