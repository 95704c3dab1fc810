"""Rendering into the outbox and delivering it exactly once, over real HTTP to the simulator."""

from __future__ import annotations

import datetime as dt
import json

import requests
import sqlalchemy as sa

from campaign_orchestrator.connections import ProviderEndpoint
from campaign_orchestrator.definitions.rules import Vocabulary
from campaign_orchestrator.delivery import deliver_shard
from campaign_orchestrator.delivery.provider import Batch, Message, ProviderClient, TokenBucket
from campaign_orchestrator.outbox.ids import message_id
from campaign_orchestrator.render.render import render_outbox
from campaign_orchestrator.segments.memberships import compute_memberships
from campaign_orchestrator.targeting.arbitration import build_target_lists
from campaign_orchestrator.warehouse.tables import delivery_batches, inapp_messages, outbox
from tests.builders import customer, definitions, load, messages_in_state, state_counts

RUN = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 2, 0)
VARS = {"first_name"}


def prepare(engine, defs, n=120):
    ids = [f"C{i:04d}" for i in range(n)]
    load(
        engine,
        [customer(c, first_name=None if i % 7 == 0 else f"N{i}") for i, c in enumerate(ids)],
        opted_in={"push": ids, "in_app": ids},
        installs=[(c, "ios", True) for c in ids],
    )
    with engine.begin() as conn:
        compute_memberships(
            conn, defs.rules(), Vocabulary({"customer_id": "string"}, segments=frozenset(defs.segments)), RUN
        )
        build_target_lists(conn, defs, RUN, NOW)
    render_outbox(engine, defs, VARS, RUN, NOW)
    return ids


def resolver(sim):
    return lambda _conn_id: ProviderEndpoint(sim[0], sim[1])


def stats(sim):
    return requests.get(sim[0] + "/_sim/stats", timeout=5).json()


def deliver_all(engine, defs, sim, clock=lambda: NOW):
    reports = [deliver_shard(engine, defs, RUN, s, 2, resolver(sim), clock=clock) for s in range(2)]
    return sum(r.total_sent for r in reports), reports


def states(engine):
    with engine.connect() as conn:
        return state_counts(conn)


def test_message_ids_are_deterministic():
    assert message_id("c", "u", RUN) == message_id("c", "u", RUN) != message_id("c", "u", RUN + dt.timedelta(days=1))


def test_render_twice_writes_each_message_once_with_fallbacks(warehouse):
    defs = definitions([{"id": "p"}], per_customer_per_day=2)
    prepare(warehouse, defs)
    render_outbox(warehouse, defs, VARS, RUN, NOW)
    with warehouse.connect() as conn:
        payloads = dict(conn.execute(sa.select(outbox.c.customer_id, outbox.c.payload)).all())
    assert len(payloads) == 120
    assert json.loads(payloads["C0000"])["title"] == "Hi there" and json.loads(payloads["C0001"])["title"] == "Hi N1"


def test_delivery_sends_each_message_exactly_once_across_reruns(warehouse, simulator):
    defs = definitions(
        [{"id": "p", "send_time": "now"}, {"id": "inbox", "channel": "in_app", "destination": "inbox"}],
        per_customer_per_day=2,
    )
    prepare(warehouse, defs)
    sent, reports = deliver_all(warehouse, defs, simulator)
    assert sent == 240
    s = stats(simulator)
    assert s["recipients"] == 120 and s["duplicates"] == 0
    assert s["requests"] == sum(r.requests for r in reports) >= 120 / 50
    with warehouse.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(inapp_messages)) == 120
    again, _ = deliver_all(warehouse, defs, simulator)
    assert again == 0 and stats(simulator)["recipients"] == 120
    assert states(warehouse) == {"sent": 240}
    with warehouse.connect() as conn:  # the view people query says the same
        view = conn.execute(sa.text("SELECT state, count(*), min(attempts) FROM message_ledger GROUP BY state")).all()
    assert [tuple(r) for r in view] == [("sent", 240, 1)]


def test_future_sends_are_scheduled_and_due_ones_sent(warehouse, simulator):
    defs = definitions([{"id": "p", "send_time": "10:00"}])
    prepare(warehouse, defs, n=10)
    deliver_all(warehouse, defs, simulator)
    got = requests.get(simulator[0] + "/_sim/recipients", timeout=5).json()["recipients"]
    assert {r["schedule_time"] for r in got} == {"2026-11-22T10:00:00Z"}  # customers are in London


def test_transient_failures_are_retried_and_bad_recipients_isolated(warehouse, simulator):
    defs = definitions([{"id": "p"}])
    prepare(warehouse, defs, n=60)
    requests.post(
        simulator[0] + "/_sim/faults", json={"fail_next": 2, "status": 503, "reject_ids": ["C0007"]}, timeout=5
    )
    sent, _reports = deliver_all(warehouse, defs, simulator)
    assert sent == 59
    assert states(warehouse) == {"sent": 59, "dead": 1}
    with warehouse.connect() as conn:
        (dead,) = messages_in_state(conn, "dead")
    assert dead.customer_id == "C0007" and "not a valid user" in dead.last_error
    assert stats(simulator)["duplicates"] == 0


def test_a_provider_that_stays_down_leaves_messages_failed_for_the_next_run(warehouse, simulator):
    defs = definitions([{"id": "p"}])
    prepare(warehouse, defs, n=5)
    requests.post(simulator[0] + "/_sim/faults", json={"fail_next": 1000, "status": 500}, timeout=5)
    client_sleep = []
    from campaign_orchestrator.delivery.dispatcher import ShardDelivery

    for shard in range(2):
        ShardDelivery(
            warehouse, defs, RUN, shard, 2, resolver(simulator), clock=lambda: NOW, sleep=client_sleep.append
        ).run()
    assert states(warehouse) == {"failed": 5}
    requests.post(simulator[0] + "/_sim/faults", json={}, timeout=5)
    sent, _ = deliver_all(warehouse, defs, simulator)
    assert sent == 5 and states(warehouse) == {"sent": 5} and stats(simulator)["unique"] == 5


def test_rows_left_in_flight_by_a_crash_are_resent_with_the_same_key(warehouse, simulator):
    defs = definitions([{"id": "p"}])
    prepare(warehouse, defs, n=30)
    deliver_all(warehouse, defs, simulator)
    # Simulate a crash after the provider accepted the requests but before the ledger was updated.
    with warehouse.begin() as conn:
        conn.execute(delivery_batches.update().values(state="in_flight", updated_at=NOW - dt.timedelta(hours=1)))
    _resent, reports = deliver_all(warehouse, defs, simulator)
    assert sum(r.resent_in_flight for r in reports) == 30
    s = stats(simulator)
    assert s["unique"] == 30 and s["duplicates"] == 0 and s["idempotent_replays"] >= 1
    assert states(warehouse) == {"sent": 30}


def test_without_idempotency_in_flight_rows_become_unknown_not_resent(warehouse, braze_simulator):
    simulator = braze_simulator  # it would deliver a resent request again, as Braze does
    defs = definitions([{"id": "p"}])
    dest = defs.settings.destinations["braze"].model_copy(update={"honours_idempotency_key": False})
    defs.settings.destinations["braze"] = dest
    prepare(warehouse, defs, n=10)
    with warehouse.begin() as conn:
        conn.execute(
            delivery_batches.update().values(
                state="in_flight", claim_id="crashed", updated_at=NOW - dt.timedelta(hours=1)
            )
        )
    sent, reports = deliver_all(warehouse, defs, simulator)
    assert sent == 0 and sum(r.unknown for r in reports) == 10
    assert states(warehouse) == {"unknown": 10} and stats(simulator)["recipients"] == 0
    assert stats(simulator)["repeated_keys"] == 0


def test_batches_never_exceed_fifty_recipients(simulator):
    client = ProviderClient(ProviderEndpoint(simulator[0], simulator[1]), TokenBucket(10_000))
    batch = Batch("camp", NOW, tuple(Message(f"m{i}", f"U{i}", {}) for i in range(50)))
    assert len(client.send(batch).sent) == 50


def test_the_token_bucket_paces_requests():
    t = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        t[0] += s

    bucket = TokenBucket(per_hour=3600, burst=2, clock=lambda: t[0])
    for _ in range(5):
        bucket.acquire(sleep)
    assert round(sum(slept), 3) == 3.0  # two from the burst, then one a second


def test_a_batch_whose_messages_meet_different_fates_is_rebatched_by_request(warehouse):
    from campaign_orchestrator.delivery.dispatcher import ShardDelivery
    from campaign_orchestrator.delivery.provider import BatchOutcome
    from campaign_orchestrator.outbox.ids import request_key

    defs = definitions([{"id": "p"}])
    prepare(warehouse, defs, n=40)
    delivery = ShardDelivery(warehouse, defs, RUN, 0, 1, resolver(("http://127.0.0.1:9", "k")), clock=lambda: NOW)
    claim_id, batches, _ = delivery.claims.claim(10)
    assert delivery.claims.start(claim_id)
    assert [len(b.messages) for b in batches] == [40]  # one request's worth, rendered as one batch
    (batch,) = batches
    ids = sorted(m.message_id for m in batch.messages)
    sent, failed, dead = ids[:20], ids[20:30], ids[30:]
    failed_key = request_key(failed)  # the split request that gave up on 503s
    outcome = BatchOutcome(
        sent=dict.fromkeys(sent, "dispatch-1"),
        failed=dict.fromkeys(failed, "gave up after 5 attempts: HTTP 503"),
        failed_keys=dict.fromkeys(failed, failed_key),
        dead=dict.fromkeys(dead, "HTTP 400: not a valid user"),
    )
    delivery.recorder.record(claim_id, [batch], [outcome], [])
    with warehouse.connect() as conn:
        assert state_counts(conn) == {"sent": 20, "failed": 10, "dead": 10}
        rows = {r.batch_id: r for r in conn.execute(sa.select(delivery_batches))}
    assert rows[batch.batch_id].state == "split" and rows[failed_key].messages == 10
    assert rows[request_key(sent)].dispatch_id == "dispatch-1"
    # The next attempt sends the failed group again as the very request that gave up: same key.
    assert delivery.claims.requeue_failed(max_attempts=5) == 1
    _, again, _ = delivery.claims.claim(10)
    assert [(b.batch_id, sorted(m.message_id for m in b.messages)) for b in again] == [(failed_key, failed)]


def test_a_dead_workers_claim_that_never_started_is_sent_not_marked_unknown(warehouse, braze_simulator):
    simulator = braze_simulator
    defs = definitions([{"id": "p"}], batch_size=5)
    dest = defs.settings.destinations["braze"].model_copy(update={"honours_idempotency_key": False})
    defs.settings.destinations["braze"] = dest
    prepare(warehouse, defs, n=20)
    b = delivery_batches.c
    with warehouse.begin() as conn:
        ids = sorted(conn.execute(sa.select(b.batch_id)).scalars())
        assert len(ids) == 4
        # A killed worker: two batches it was sending, two it had taken ahead and not started.
        for state, part in (("in_flight", ids[:2]), ("claimed", ids[2:])):
            conn.execute(
                delivery_batches.update()
                .where(b.batch_id.in_(part))
                .values(state=state, claim_id="crashed", attempts=1, updated_at=NOW - dt.timedelta(hours=1))
            )
    sent, reports = deliver_all(warehouse, defs, simulator)
    assert sent == 10 and sum(r.unknown for r in reports) == 10
    assert states(warehouse) == {"sent": 10, "unknown": 10}
    with warehouse.connect() as conn:
        attempts = dict(conn.execute(sa.select(b.batch_id, b.attempts)).all())
    assert [attempts[i] for i in ids[2:]] == [1, 1]  # given back uncounted, then sent once
    assert stats(simulator)["repeated_keys"] == 0 and stats(simulator)["duplicates"] == 0
