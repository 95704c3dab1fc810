"""A stale shard is resolved without a request: what reached no one becomes `stale`, what may have
arrived becomes `unknown`, a live claim is left to its worker; and the rule's arithmetic."""

from __future__ import annotations

import datetime as dt

import pydantic
import pytest
import sqlalchemy as sa

from campaign_orchestrator.definitions.settings import DeliverySettings
from campaign_orchestrator.delivery.stale import date_ended, lateness, withhold_stale_shard
from campaign_orchestrator.warehouse.tables import delivery_batches
from tests.builders import definitions, state_counts
from tests.campaign_orchestrator.delivery.test_dispatcher import RUN, prepare

ENDED = dt.datetime(2026, 11, 23)
LATE = ENDED + dt.timedelta(hours=30)


def test_a_night_is_stale_only_past_max_lateness_after_midnight_utc_ending_its_date():
    assert date_ended(RUN) == ENDED
    six = DeliverySettings(max_lateness="6h")
    assert not lateness(RUN, ENDED + dt.timedelta(hours=6), six).stale  # at the limit: still in time
    assert lateness(RUN, ENDED + dt.timedelta(hours=6, seconds=1), six).stale
    shipped = DeliverySettings()
    assert shipped.max_lateness == "0h" and shipped.max_lateness_delta == dt.timedelta(0)
    assert not lateness(RUN, ENDED - dt.timedelta(hours=22), shipped).stale  # the DAG's 02:00 UTC run
    assert lateness(RUN, ENDED + dt.timedelta(minutes=1), shipped).stale  # Airflow's catch-up run after midnight
    assert not lateness(RUN, ENDED + dt.timedelta(days=400), DeliverySettings(max_lateness=None)).stale
    assert DeliverySettings(max_lateness="2d").max_lateness_delta == dt.timedelta(days=2)
    late = lateness(RUN, LATE, shipped)
    assert late.as_dict()["late_by_hours"] == 30.0 and "ran 30.0 h after its date ended" in late.reason
    for bad in ("6", "6m", "-1h", "1.5h", ""):
        with pytest.raises(pydantic.ValidationError):
            DeliverySettings(max_lateness=bad)


def states_by_batch(engine: sa.Engine) -> dict[str, str]:
    b = delivery_batches.c
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(b.batch_id, b.state)).all())


@pytest.mark.parametrize("honours", [True, False], ids=["honours keys", "does not"])
def test_a_stale_shard_makes_stale_what_reached_no_one_and_unknown_what_may_have_arrived(warehouse, honours):
    defs = definitions([{"id": "p"}], batch_size=5)
    dest = defs.settings.destinations["braze"].model_copy(update={"honours_idempotency_key": honours})
    defs.settings.destinations["braze"] = dest
    prepare(warehouse, defs, n=30)
    b = delivery_batches.c
    old, live = LATE - dt.timedelta(hours=1), LATE
    with warehouse.begin() as conn:
        ids = sorted(conn.execute(sa.select(b.batch_id)).scalars())
        assert len(ids) == 6
        for batch_id, state, touched in zip(
            ids,
            ("pending", "held", "failed", "claimed", "in_flight", "in_flight"),
            (old, old, old, old, old, live),  # the last one's worker is alive: its lease runs
            strict=True,
        ):
            conn.execute(
                delivery_batches.update()
                .where(b.batch_id == batch_id)
                .values(state=state, claim_id=None if state == "pending" else f"c-{batch_id[:6]}", updated_at=touched)
            )
    late = lateness(RUN, LATE, defs.settings.delivery)
    detail = withhold_stale_shard(warehouse, RUN, 0, 1, late, defs.settings.destinations, lease_s=120)

    after = states_by_batch(warehouse)
    failed = "unknown" if honours else "cancelled"  # a failure where keys are honoured may hide an accepted request
    assert [after[i] for i in ids] == ["cancelled", "cancelled", failed, "cancelled", "unknown", "in_flight"]
    with warehouse.connect() as conn:
        counts = state_counts(conn)
    stale = 5 * (3 if honours else 4)
    assert counts == {"stale": stale, "unknown": 30 - 5 - stale, "in_flight": 5}
    assert detail["withheld"] == {"stale": stale, "unknown": 30 - 5 - stale}
    assert detail["stale"]["stale"] and detail["requests"] == 0 and detail["remaining"]["stale"] == stale
    # Run again (a retry of the stale task): nothing changes, the live claim still untouched.
    withhold_stale_shard(warehouse, RUN, 0, 1, late, defs.settings.destinations, lease_s=120)
    assert states_by_batch(warehouse) == after


def test_a_stale_shard_leaves_nothing_in_flight_to_the_message_store_unwritten_as_unknown(warehouse):
    """The store writes a batch in the transaction that marks it sent: still in flight, it was not written."""
    defs = definitions([{"id": "inbox", "channel": "in_app", "destination": "inbox"}])
    prepare(warehouse, defs, n=10)
    with warehouse.begin() as conn:
        conn.execute(
            delivery_batches.update().values(
                state="in_flight", claim_id="dead", updated_at=LATE - dt.timedelta(hours=1)
            )
        )
    withhold_stale_shard(
        warehouse, RUN, 0, 1, lateness(RUN, LATE, defs.settings.delivery), defs.settings.destinations, 120
    )
    with warehouse.connect() as conn:
        assert state_counts(conn) == {"stale": 10}
