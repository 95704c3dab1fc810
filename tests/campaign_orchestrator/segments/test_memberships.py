"""Segment rules against an independent pandas reference, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from campaign_orchestrator.definitions.rule_values import RuleError
from campaign_orchestrator.definitions.rules import check_rule
from campaign_orchestrator.segments.compile import compile_rule
from campaign_orchestrator.segments.memberships import compute_memberships, estimate
from campaign_orchestrator.warehouse.tables import customers, lifecycle_membership, segment_membership, segment_stats
from tests.campaign_orchestrator.segments.rule_examples import (
    BASE,
    LIFECYCLES,
    PROFILES,
    RULES,
    RUN,
    VOCAB,
    loaded,
    vocab_for,
)
from tests.campaign_orchestrator.segments.rule_reference import reference

__all__ = ["loaded"]  # the fixture, from rule_examples


def test_every_rule_matches_the_pandas_reference(loaded):
    rules = {**BASE, **RULES}
    vocab = vocab_for(rules)
    with loaded.begin() as conn:
        sizes = compute_memberships(conn, rules, vocab, RUN, LIFECYCLES)
    with loaded.connect() as conn:
        got_rows = conn.execute(
            sa.select(segment_membership.c.segment_id, segment_membership.c.customer_id).where(
                segment_membership.c.run_date == RUN
            )
        ).all()
        stages = dict(conn.execute(sa.select(lifecycle_membership.c.customer_id, lifecycle_membership.c.stage)).all())
    got: dict[str, set[str]] = {}
    for sid, cid in got_rows:
        got.setdefault(sid, set()).add(cid)
    ref = reference(loaded)
    for sid in BASE:
        ref.members[sid] = ref.ids(ref(BASE[sid]))
    expected_stage = {}
    for cid in ref.df["customer_id"]:
        expected_stage[cid] = next((s for s in ("active_buyers", "lapsed") if cid in ref.members[s]), "prospect")
    ref.stages["life"] = expected_stage
    assert stages == expected_stage and len(stages) == len(PROFILES)  # every customer exactly one stage
    for sid, rule in RULES.items():
        expected = ref.ids(ref(rule))
        assert got.get(sid, set()) == expected, sid
        assert sizes[sid] == len(expected)
    assert got.get("empty_result", set()) == set() and got.get("empty_list", set()) == set()


def test_at_least_forty_rules():
    assert len(RULES) >= 70


def test_estimates_size_a_segment_without_a_run(loaded):
    rules = {**BASE, **RULES}
    vocab = vocab_for(rules)
    with loaded.connect() as conn:
        est = estimate(conn, "gold_anz_not_lapsed", rules, vocab, RUN, LIFECYCLES)
        est_seg = estimate(conn, "segment_of_segment", rules, vocab, RUN, LIFECYCLES)
    with loaded.begin() as conn:
        compute_memberships(conn, rules, vocab, RUN, LIFECYCLES)
    with loaded.connect() as conn:
        sizes = dict(conn.execute(sa.select(segment_stats.c.segment_id, segment_stats.c.members)).all())
        later = estimate(conn, "gold", rules, vocab, RUN + dt.timedelta(days=1), LIFECYCLES)
    assert est.size == sizes["gold_anz_not_lapsed"] and est_seg.size == sizes["segment_of_segment"]
    assert est.previous_size is None and later.previous_size == sizes["gold"] and later.change == 0
    assert later.sample == ["C1", "C8"]


def test_memberships_are_kept_per_day_with_entered_and_exited(loaded):
    rules = {"rich": {"attribute": "lifetime_value", "gt": 600}}
    vocab = vocab_for(rules)
    with loaded.begin() as conn:
        compute_memberships(conn, rules, vocab, RUN - dt.timedelta(days=1))
        conn.execute(customers.update().where(customers.c.customer_id == "C8").values(lifetime_value=10.0))
        conn.execute(customers.update().where(customers.c.customer_id == "C2").values(lifetime_value=1000.0))
        compute_memberships(conn, rules, vocab, RUN)
        compute_memberships(conn, rules, vocab, RUN)  # a re-run replaces, it does not add
    with loaded.connect() as conn:
        per_day = dict(
            conn.execute(
                sa.select(segment_membership.c.run_date, sa.func.count()).group_by(segment_membership.c.run_date)
            ).all()
        )
        stats = conn.execute(sa.select(segment_stats).where(segment_stats.c.run_date == RUN)).mappings().one()
    assert sorted(per_day.values()) == [3, 3]
    assert (stats["members"], stats["entered"], stats["exited"]) == (3, 1, 1)
    assert stats["previous_run_date"] == RUN - dt.timedelta(days=1)


@pytest.mark.parametrize(
    "rule, problem",
    [
        ({"attribute": "password", "eq": "x"}, "unknown attribute 'password'"),
        ({"attribute": "tier", "gt": 3, "lt": 5}, "exactly one operator"),
        ({"attribute": "lifetime_value", "contains": "1"}, "contains works on text attributes"),
        ({"attribute": "signup_date", "within_last": "soon"}, "expected a duration"),
        ({"attribute": "lifetime_value", "between": [9, 1]}, "low is greater than high"),
        ({"all": []}, "must be a non-empty list"),
        ({"segment": "ghost"}, "unknown segment 'ghost'"),
        ({"sql": "1=1"}, "expected exactly one of"),
        ({"attribute": "tier", "exists": False}, "write 'exists: true'"),
        ({"event": "purchase", "where": [{"property": "discount", "gt": 1}]}, "unknown event property 'discount'"),
        ({"event": "purchase", "count": {"most": 2}}, "expected one of"),
        ({"event": "purchase", "last": {"before": "30d"}, "count": {"gte": 1}}, "'last' cannot be combined"),
        (
            {"event": "app_open", "where": [{"property": "gift", "eq": True}]},
            ".where[0].property: 'gift' is declared for events ['purchase'], not 'app_open'",
        ),
        (
            {"event": "purchase", "sum": {"property": "category", "gt": 1}},
            ".sum.property: sum works on numeric properties, 'category' is string",
        ),
        (
            {"event": "purchase", "max": {"property": "discount", "gt": 1}},
            ".max.property: unknown event property 'discount'; allowed: ['amount', 'category', 'gift', 'items']",
        ),
        (
            {"event": "purchase", "min": {"property": "items", "lt": 1}, "distinct": {"property": "category", "eq": 1}},
            "use one of",
        ),
        ({"event": "purchase", "first": {"around": "30d"}}, ".first: expected {before: WHEN}"),
        ({"event": "purchase", "last": {"between": ["30d"]}}, ".last: expected [low, high]"),
        ({"event": "purchase", "last_value": {"property": "items", "gt": "many"}}, ".last_value.gt: expected a number"),
        ({"event": "purchase", "where": [{"property": "items", "contains": "3"}]}, "contains works on text attributes"),
        ({"in_list": "nope"}, "unknown list 'nope'"),
        ({"app": {"platform": "blackberry"}}, "unknown platform"),
        ({"stage": {"lifecycle": "life", "in": ["zombie"]}}, "unknown stage 'zombie'"),
        ({"bucket": {"salt": "s", "buckets": 1, "lt": 1}}, "from 2 to 1,000,000"),
    ],
)
def test_wrong_rules_are_refused_with_the_path(rule, problem):
    problems = check_rule({"any": [rule]}, vocab_for(BASE))
    assert problems and problem in problems[0] and problems[0].startswith(".any[0]"), problems


def test_compile_refuses_what_check_refuses():
    with pytest.raises(RuleError):
        compile_rule({"attribute": "email", "eq": "x"}, VOCAB, RUN)
