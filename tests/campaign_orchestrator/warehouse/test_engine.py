from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign_orchestrator.warehouse.bulk import bulk_insert, insert_ignore
from campaign_orchestrator.warehouse.engine import hash32 as py_hash32
from campaign_orchestrator.warehouse.engine import normalise_url, redacted
from campaign_orchestrator.warehouse.sqlfuncs import hash32, hash_bucket
from campaign_orchestrator.warehouse.tables import events, outbox


def test_bulk_insert_round_trips_every_type(any_warehouse):
    rows = [
        ("C1", "purchase", dt.datetime(2026, 3, 1, 10, 30, 5), 12.5, dt.date(2026, 3, 2)),
        ("C2", "app_open", dt.datetime(2026, 3, 1, 11, 0), None, dt.date(2026, 3, 2)),
        ('C"3,x', "purchase", dt.datetime(2026, 3, 1, 12, 0), 0.0, dt.date(2026, 3, 2)),
    ]
    with any_warehouse.begin() as conn:
        n = bulk_insert(conn, events, ["customer_id", "name", "ts", "amount", "import_date"], iter(rows))
    assert n == 3
    with any_warehouse.connect() as conn:
        got = conn.execute(
            sa.select(events.c.customer_id, events.c.name, events.c.ts, events.c.amount, events.c.import_date).order_by(
                events.c.customer_id
            )
        ).all()
    assert [tuple(r) for r in got] == sorted(rows)


def test_bulk_insert_rolls_back_with_the_transaction(warehouse):
    try:
        with warehouse.begin() as conn:
            bulk_insert(
                conn,
                events,
                ["customer_id", "name", "ts", "import_date"],
                [("C1", "x", dt.datetime(2026, 1, 1), dt.date(2026, 1, 1))],
            )
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    with warehouse.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(events)) == 0


@settings(max_examples=30, deadline=None)
@given(keys=st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=20))
def test_hash_is_the_same_in_python_and_sqlite(keys, tmp_path_factory):
    from campaign_orchestrator.warehouse.engine import create_warehouse_engine

    engine = create_warehouse_engine(f"sqlite:///{tmp_path_factory.mktemp('h') / 'h.sqlite'}")
    with engine.connect() as conn:
        for key in keys:
            assert conn.scalar(sa.select(hash32(sa.literal(key)))) == py_hash32(key)


def test_hash_bucket_is_the_same_on_every_engine(any_warehouse):
    keys = [f"C{i:07d}" for i in range(200)] + ["ünïcødé", ""]
    with any_warehouse.connect() as conn:
        for key in keys:
            got = conn.scalar(sa.select(hash_bucket(sa.literal(key, sa.String()), "holdout:camp", 10_000)))
            assert got == py_hash32(f"holdout:camp:{key}") % 10_000


def test_insert_ignore_skips_existing_keys(any_warehouse):
    now = dt.datetime(2026, 1, 1)
    row = {
        "message_id": "m1",
        "run_date": now.date(),
        "slot_date": now.date(),
        "campaign_id": "c",
        "customer_id": "u",
        "variant": "default",
        "channel": "push",
        "destination": "d",
        "send_at": now,
        "payload": "{}",
        "state": "sent",
        "shard_key": 1,
        "created_at": now,
        "updated_at": now,
    }
    with any_warehouse.begin() as conn:
        insert_ignore(conn, outbox, [row])
    with any_warehouse.begin() as conn:
        insert_ignore(
            conn,
            outbox,
            [{**row, "state": "pending"}, {**row, "message_id": "m2", "customer_id": "v", "state": "pending"}],
        )
    with any_warehouse.connect() as conn:
        states = dict(conn.execute(sa.select(outbox.c.message_id, outbox.c.state)).all())
    assert states == {"m1": "sent", "m2": "pending"}


def test_urls_default_to_installed_drivers_and_hide_passwords():
    assert normalise_url("mysql://root@127.0.0.1/test").drivername == "mysql+pymysql"
    assert "secret" not in redacted("postgresql://u:secret@h/db")
