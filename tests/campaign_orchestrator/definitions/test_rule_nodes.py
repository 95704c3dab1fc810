"""The rule language is declared once, as typed nodes: the checker, the parser, the compiler and the
published JSON Schema agree on what a rule is."""

from __future__ import annotations

import datetime as dt
import typing
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign_orchestrator.definitions.json_schemas import json_schemas
from campaign_orchestrator.definitions.rule_conditions import Operators
from campaign_orchestrator.definitions.rule_nodes import NODE_CLASSES, NODE_KEYS, Rule
from campaign_orchestrator.definitions.rule_values import OPERATORS
from campaign_orchestrator.definitions.rules import Vocabulary, check_rule, dependencies, parse_rule
from campaign_orchestrator.segments.compile import compile_rule

VOCAB = Vocabulary(
    attributes={"tier": "string", "lifetime_value": "float", "signup_date": "date", "last_purchase_at": "datetime"},
    event_properties={"amount": "float", "category": "string", "items": "int"},
    segments=frozenset({"gold", "churned"}),
    lifecycles={"life": ("active", "lapsed", "other")},
    lists=frozenset({"vip"}),
)
SEGMENTS_SCHEMA = json_schemas()["segments"]
RUN = dt.date(2026, 11, 22)

names = st.sampled_from(["tier", "lifetime_value", "signup_date", "last_purchase_at", "email"])
scalars = st.one_of(
    st.sampled_from(["gold", "silver", "", "30d", "2026-01-01"]),
    st.integers(-5, 1000),
    st.floats(-10, 1e6, allow_nan=False),
    st.booleans(),
)
operands = st.one_of(scalars, st.lists(scalars, min_size=0, max_size=3))
numbers = st.one_of(st.integers(-1, 10), st.floats(0, 100, allow_nan=False))
counts = st.one_of(
    st.fixed_dictionaries({}, optional={"gte": numbers, "eq": numbers}),
    st.builds(lambda a, b: {"between": [a, b]}, numbers, numbers),
)
properties = st.builds(
    lambda prop, op, value: {"property": prop, op: value},
    st.sampled_from(["amount", "category", "nope"]),
    st.sampled_from(OPERATORS[:9]),
    operands,
)
leaves = st.one_of(
    st.builds(lambda n, op, v: {"attribute": n, op: v}, names, st.sampled_from(OPERATORS), operands),
    st.builds(
        lambda e, extra: {"event": e, **extra},
        st.sampled_from(["purchase", "app_open", "Bad Name"]),
        st.fixed_dictionaries(
            {},
            optional={
                "count": counts,
                "within_last": st.sampled_from(["30d", "2w", "soon"]),
                "where": st.lists(properties, max_size=2),
                "sum": st.builds(lambda op, v: {"property": "amount", op: v}, st.sampled_from(["gt", "gte"]), numbers),
                "max": st.builds(
                    lambda p, v: {"property": p, "lte": v}, st.sampled_from(["items", "category"]), numbers
                ),
                "distinct": st.builds(lambda p, v: {"property": p, "eq": v}, st.sampled_from(["category"]), numbers),
                "first": st.builds(
                    lambda w: {"between": w}, st.lists(st.sampled_from(["30d", "2026-01-01"]), max_size=3)
                ),
                "last_value": st.builds(
                    lambda p, op, v: {"property": p, op: v},
                    st.sampled_from(["amount", "category"]),
                    st.sampled_from(["gt", "eq", "is_null"]),
                    scalars,
                ),
                "last": st.builds(
                    lambda side, v: {side: v},
                    st.sampled_from(["before", "after"]),
                    st.sampled_from(["30d", "2026-01-01"]),
                ),
            },
        ),
    ),
    st.builds(lambda s: {"segment": s}, st.sampled_from(["gold", "churned", "unknown"])),
    st.builds(lambda s: {"in_list": s}, st.sampled_from(["vip", "Nope"])),
    st.builds(
        lambda spec: {"app": spec},
        st.fixed_dictionaries(
            {},
            optional={
                "platform": st.one_of(
                    st.sampled_from(["ios", "web", "palm"]), st.lists(st.sampled_from(["ios", "android"]), max_size=2)
                ),
                "push_token": st.one_of(st.booleans(), st.just("yes")),
                "app_id": st.sampled_from(["com.example", "x" * 200]),
            },
        ),
    ),
    st.builds(
        lambda salt, n, op, v: {"bucket": {"salt": salt, "buckets": n, op: v}},
        st.sampled_from(["ab", ""]),
        st.integers(1, 200),
        st.sampled_from(["lt", "gte", "in"]),
        st.one_of(st.integers(0, 100), st.lists(st.integers(0, 99), min_size=1, max_size=3)),
    ),
    st.builds(
        lambda op, v: {"stage": {"lifecycle": "life", op: v}},
        st.sampled_from(["in", "not_in", "eq", "ne"]),
        st.one_of(
            st.sampled_from(["active", "gone"]), st.lists(st.sampled_from(["active", "lapsed", "other"]), min_size=1)
        ),
    ),
)
rules = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda c: {"all": c}, st.lists(inner, max_size=3)),
        st.builds(lambda c: {"any": c}, st.lists(inner, max_size=3)),
        st.builds(lambda c: {"not": c}, inner),
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules)
def test_a_rule_the_checker_passes_parses_validates_against_the_schema_and_compiles(rule: dict[str, Any]) -> None:
    if check_rule(rule, VOCAB):
        return
    node = parse_rule(rule)
    assert node.model_dump(by_alias=True, exclude_unset=True) == rule  # a node is the rule as written
    jsonschema.validate({"id": "x", "rule": rule}, SEGMENTS_SCHEMA)
    compile_rule(rule, VOCAB, RUN)


@settings(max_examples=200, deadline=None)
@given(rules)
def test_a_rule_the_schema_refuses_is_refused_by_the_checker(rule: dict[str, Any]) -> None:
    try:
        jsonschema.validate({"id": "x", "rule": rule}, SEGMENTS_SCHEMA)
    except jsonschema.ValidationError:
        assert check_rule(rule, VOCAB), rule


def test_the_union_tags_are_the_node_keywords_in_order():
    union, _discriminator = typing.get_args(Rule)
    tags = [typing.get_args(member)[1].tag for member in typing.get_args(union)]
    assert tags == list(NODE_KEYS) == [cls.keyword for cls in NODE_CLASSES]


def test_the_operators_are_the_fields_of_the_operand_node():
    assert tuple(info.alias or name for name, info in Operators.model_fields.items()) == OPERATORS


def test_dependencies_come_from_the_nodes():
    rule = {"all": [{"segment": "gold"}, {"not": {"any": [{"stage": {"lifecycle": "life", "in": ["active"]}}]}}]}
    assert dependencies(rule) == {"segment:gold", "lifecycle:life"}


@pytest.mark.parametrize(
    "rule, problem",
    [
        ({"segment": ["a"]}, ".segment: unknown segment ['a']"),
        ({"stage": {"lifecycle": ["x"], "in": ["a"]}}, ".stage.lifecycle: unknown lifecycle ['x']"),
        (
            {"event": "purchase", "where": [{"property": ["amount"], "gt": 1}]},
            ".where[0].property: unknown event property",
        ),
    ],
)
def test_unhashable_names_are_problems_not_crashes(rule: dict[str, Any], problem: str) -> None:
    assert any(problem in p for p in check_rule(rule, VOCAB))
