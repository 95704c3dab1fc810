"""Targeting invariants over random worlds and several consecutive nights, on SQLite and PostgreSQL.

Each generated case builds customers (consent, suppressions, devices, tiers, zones), campaigns
(channels, priorities with ties, holdouts, total caps, audiences) and global caps, then runs
2-3 nights on both engines, delivering each night's list into the ledger. On some nights the
marketers change the campaigns (priorities, holdouts, audiences, total caps) and the same date
is run again, as a fix would be applied. A plain-Python model computes the expected lists
independently; the engines must agree with it and with each other, and the caps must hold over
what customers received that day, whichever run sent it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign_orchestrator.definitions.rules import Vocabulary
from campaign_orchestrator.ingest.consent import refresh_preference_state
from campaign_orchestrator.segments.memberships import compute_memberships
from campaign_orchestrator.targeting.arbitration import build_target_lists
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, drop_schema, ensure_schema, hash32
from campaign_orchestrator.warehouse.tables import (
    app_installs,
    campaign_candidates,
    customers,
    metadata,
    preferences,
    suppressions,
    target_list,
)
from tests.builders import customer, definitions, deliver_target_list

EXAMPLES = int(os.environ.get("INVARIANT_EXAMPLES", "500"))
FIRST_NIGHT = dt.date(2026, 5, 4)
CHANNELS = ("push", "email")


@dataclass(frozen=True)
class Person:
    opted: tuple[bool, bool]  # push, email
    suppressed: bool
    ios_token: bool
    gold: bool


@dataclass(frozen=True)
class CampaignSpec:
    id: str
    channel: str
    priority: int
    holdout: int
    total: int | None
    gold_only: bool


@dataclass(frozen=True)
class World:
    people: tuple[Person, ...]
    campaigns: tuple[CampaignSpec, ...]
    daily_cap: int
    push_cap: int | None
    nights: int
    # per night: the campaigns as changed before the date is run again, or None for no re-run
    changes: tuple[tuple[CampaignSpec, ...] | None, ...] = ()


@st.composite
def worlds(draw: Any) -> World:
    people = draw(
        st.lists(
            st.builds(
                Person,
                opted=st.tuples(st.booleans(), st.booleans()),
                suppressed=st.booleans(),
                ios_token=st.booleans(),
                gold=st.booleans(),
            ),
            min_size=1,
            max_size=10,
        )
    )
    n = draw(st.integers(1, 4))
    channels = [draw(st.sampled_from(CHANNELS)) for _ in range(n)]

    def specs() -> tuple[CampaignSpec, ...]:
        return tuple(
            CampaignSpec(
                id=f"c{i}",
                channel=channels[i],
                priority=draw(st.integers(0, 2)),
                holdout=draw(st.sampled_from([0, 0, 30, 100])),
                total=draw(st.sampled_from([None, None, 1, 2])),
                gold_only=draw(st.booleans()),
            )
            for i in range(n)
        )

    campaigns = specs()
    nights = draw(st.integers(2, 3))
    changes = tuple(specs() if draw(st.booleans()) else None for _ in range(nights))
    return World(
        tuple(people),
        campaigns,
        draw(st.integers(0, 3)),
        draw(st.sampled_from([None, 0, 1, 2])),
        nights,
        changes,
    )


def defs_for(world: World, campaigns: tuple[CampaignSpec, ...] | None = None) -> Any:
    defs = definitions(
        [
            {
                "id": c.id,
                "channel": c.channel,
                "priority": c.priority,
                "holdout_percent": c.holdout,
                "caps": {"total": c.total},
                "segment": "gold" if c.gold_only else "everyone",
            }
            for c in campaigns or world.campaigns
        ],
        segments={
            "everyone": {"attribute": "customer_id", "exists": True},
            "gold": {"attribute": "tier", "eq": "gold"},
        },
        per_customer_per_day=world.daily_cap,
    )
    if world.push_cap is not None:
        defs.settings.caps.per_channel_per_day["push"] = world.push_cap
    return defs


# ---------------------------------------------------------------- the model


def expected_night(
    world: World,
    campaigns: tuple[CampaignSpec, ...],
    history: Counter[tuple[str, str]],
    today: set[tuple[str, str]],
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(campaign, customer) pairs a correct orchestrator targets on a run, and which of them are
    kept: `history` counts earlier nights' messages, `today` holds those an earlier run of this
    date already sent (they stand, and use the day's budget first)."""
    channel = {c.id: c.channel for c in world.campaigns}
    targets: set[tuple[str, str]] = set()
    kept: set[tuple[str, str]] = set()
    for i, p in enumerate(world.people):
        cid = f"C{i}"
        eligible = []
        for c in campaigns:
            if c.gold_only and not p.gold:
                continue  # not in the audience
            if (c.id, cid) in today:
                kept.add((c.id, cid))
                continue
            if p.suppressed or not p.opted[CHANNELS.index(c.channel)]:
                continue
            if c.channel == "push" and not p.ios_token:
                continue
            if hash32(f"holdout:{c.id}:{cid}") % 10_000 < c.holdout * 100:
                continue
            if c.total is not None and history[(c.id, cid)] >= c.total:
                continue
            eligible.append(c)
        mine = [c_id for c_id, u in today if u == cid]
        total_used = len(mine)
        push_used = sum(channel[c_id] == "push" for c_id in mine)
        for c in sorted(eligible, key=lambda c: (c.priority, c.id)):  # greedy by priority
            if c.channel == "push" and world.push_cap is not None and push_used >= world.push_cap:
                continue
            if total_used >= world.daily_cap:
                continue
            targets.add((c.id, cid))
            total_used += 1
            push_used += c.channel == "push"
    return targets | kept, kept


# ---------------------------------------------------------------- the engines


@pytest.fixture(scope="module")
def engines(postgres_url: str | None, tmp_path_factory: Any) -> dict[str, Any]:
    found = {"sqlite": create_warehouse_engine(f"sqlite:///{tmp_path_factory.mktemp('inv') / 'w.sqlite'}")}
    if postgres_url:
        found["postgres"] = create_warehouse_engine(postgres_url)
    for engine in found.values():
        drop_schema(engine)
        ensure_schema(engine)
    yield found
    for engine in found.values():
        engine.dispose()


def load_world(engine: Any, world: World) -> None:
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
        ids = [f"C{i}" for i in range(len(world.people))]
        conn.execute(
            customers.insert(),
            [customer(c, tier="gold" if p.gold else "silver") for c, p in zip(ids, world.people, strict=True)],
        )
        t0 = dt.datetime(2026, 1, 1)
        prefs = [
            {"customer_id": c, "channel": ch, "enabled": p.opted[k], "ts": t0, "source": "t", "import_date": t0.date()}
            for c, p in zip(ids, world.people, strict=True)
            for k, ch in enumerate(CHANNELS)
        ]
        conn.execute(preferences.insert(), prefs)
        sup = [
            {"customer_id": c, "reason": "erased", "since": t0, "import_date": t0.date()}
            for c, p in zip(ids, world.people, strict=True)
            if p.suppressed
        ]
        if sup:
            conn.execute(suppressions.insert(), sup)
        apps = [
            {
                "customer_id": c,
                "app_id": "shop_app",
                "platform": "ios",
                "push_token_present": p.ios_token,
                "last_seen_at": t0,
            }
            for c, p in zip(ids, world.people, strict=True)
        ]
        conn.execute(app_installs.insert(), apps)
        refresh_preference_state(conn)


def run_night(
    engine: Any, defs: Any, night: dt.date
) -> tuple[set[tuple[str, str]], set[tuple[str, str]], dict[tuple[str, str], str]]:
    vocab = Vocabulary(attributes={"customer_id": "string", "tier": "string"}, segments=frozenset(defs.segments))
    now = dt.datetime.combine(night, dt.time(2))
    with engine.begin() as conn:
        compute_memberships(conn, defs.rules(), vocab, night)
        build_target_lists(conn, defs, night, now)
        deliver_target_list(conn, night, now)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(target_list.c.campaign_id, target_list.c.customer_id, target_list.c.kept).where(
                target_list.c.run_date == night
            )
        ).all()
        got = {(c, u) for c, u, _k in rows}
        kept = {(c, u) for c, u, k in rows if k}
        reasons = {
            (c, u): r
            for c, u, r in conn.execute(
                sa.select(
                    campaign_candidates.c.campaign_id,
                    campaign_candidates.c.customer_id,
                    campaign_candidates.c.exclusion_reason,
                ).where(campaign_candidates.c.run_date == night)
            )
        }
    return got, kept, reasons


def check_world(engines: dict[str, Any], world: World) -> None:
    """Run the world's nights (and same-date re-runs) on every engine against the model."""
    by_engine: dict[str, list[set[tuple[str, str]]]] = {}
    channel = {c.id: c.channel for c in world.campaigns}
    for name, engine in engines.items():
        load_world(engine, world)
        history: Counter[tuple[str, str]] = Counter()
        nights = []
        campaigns = world.campaigns
        for k in range(world.nights):
            night = FIRST_NIGHT + dt.timedelta(days=k)
            today: set[tuple[str, str]] = set()
            change = world.changes[k] if k < len(world.changes) else None
            for attempt in (campaigns, change) if change else (campaigns,):
                campaigns = attempt
                got, kept, reasons = run_night(engine, defs_for(world, campaigns), night)
                expected, expected_kept = expected_night(world, campaigns, history, today)
                assert got == expected, (name, night, sorted(got ^ expected))
                assert kept == expected_kept, (name, night, sorted(kept ^ expected_kept))
                assert kept <= today
                for campaign_id, cid in got - kept:
                    person = world.people[int(cid[1:])]
                    spec = next(c for c in campaigns if c.id == campaign_id)
                    # nobody opted out or suppressed; nobody held out by that campaign
                    assert not person.suppressed and person.opted[CHANNELS.index(spec.channel)]
                    assert hash32(f"holdout:{campaign_id}:{cid}") % 10_000 >= spec.holdout * 100
                    assert reasons[(campaign_id, cid)] is None
                today |= got
                # the caps hold over everything the customer received that day, whichever run sent it
                per_customer = Counter(cid for _c, cid in today)
                assert all(n <= world.daily_cap for n in per_customer.values()), (name, night, per_customer)
                if world.push_cap is not None:
                    push = Counter(cid for c, cid in today if channel[c] == "push")
                    assert all(n <= world.push_cap for n in push.values()), (name, night, push)
                for c in campaigns:  # totals hold across nights (a cap lowered later cannot unsend)
                    if c.total is not None:
                        assert all(history[(cc, u)] < c.total for cc, u in got - kept if cc == c.id)
            history.update(today)
            nights.append(today)
        by_engine[name] = nights
    assert len({repr(v) for v in by_engine.values()}) == 1  # the same lists on every engine


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(world=worlds())
def test_targeting_invariants_over_consecutive_nights_and_same_date_reruns(
    engines: dict[str, Any], world: World
) -> None:
    check_world(engines, world)


def _spent_of_earlier_run_dates_only(run_date: dt.date, by_channel: bool) -> sa.Subquery:
    """The mutant: the budget as it was counted before, from earlier run dates only."""
    from campaign_orchestrator.outbox.ledger import message_ledger
    from campaign_orchestrator.warehouse.tables import outbox

    name = "spent_channel" if by_channel else "spent_total"
    ledger = message_ledger(outbox.c.slot_date == run_date, outbox.c.run_date < run_date, name=f"{name}_ledger")
    keys = [ledger.c.customer_id, *([ledger.c.channel] if by_channel else [])]
    return sa.select(*keys, sa.func.count().label("n")).group_by(*keys).subquery(name)


def test_the_invariants_catch_a_budget_that_ignores_the_dates_earlier_runs(
    engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One push a day; a push went out; the marketers swap two push campaigns' priorities and
    re-run the date. Counting only earlier run dates' messages sends the customer a second push."""
    person = Person(opted=(True, True), suppressed=False, ios_token=True, gold=True)
    first = (CampaignSpec("c0", "push", 0, 0, None, False), CampaignSpec("c1", "push", 1, 0, None, False))
    swapped = (CampaignSpec("c0", "push", 1, 0, None, False), CampaignSpec("c1", "push", 0, 0, None, False))
    world = World((person,), first, daily_cap=2, push_cap=1, nights=2, changes=(swapped, None))
    check_world(engines, world)  # the real budget holds
    monkeypatch.setattr("campaign_orchestrator.targeting.arbitration._spent", _spent_of_earlier_run_dates_only)
    with pytest.raises(AssertionError):
        check_world(engines, world)
