"""Marketer-written rules cannot run SQL: hostile names are refused, hostile values are bound."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from campaign_orchestrator.definitions.rules import Vocabulary, check_rule
from campaign_orchestrator.segments.compile import compile_rule
from campaign_orchestrator.warehouse.tables import customers
from tests.builders import customer, load

RUN = dt.date(2026, 11, 22)
VOCAB = Vocabulary(
    attributes={"tier": "string", "country": "string", "lifetime_value": "float", "signup_date": "date"},
    event_properties={"amount": "float"},
    segments=frozenset({"gold"}),
    lifecycles={"life": ("active", "other")},
    lists=frozenset({"vip"}),
)
HOSTILE_TEXT = [
    "' OR '1'='1",
    "'; DROP TABLE customers; --",
    "gold' --",
    "gold'/*",
    "*/ OR 1=1 /*",
    "\\'; DELETE FROM customers; --",
    '" OR ""="',
    "`tier`",
    "$$; DROP TABLE customers; $$",
    "gold\nDROP TABLE customers",
    "gold\x00' OR 1=1",
    "\u0261old",  # a Latin small script g that is not 'g'
    "\uff47\uff4f\uff4c\uff44",  # full-width look-alikes
    "gold%",
    "%' OR 'x' LIKE '%",
    "1; SELECT pg_sleep(10)",
    "'||(SELECT password FROM users)||'",
    "x" * 1000,
]
# Names are looked up in allow-lists, so anything not listed is refused before any SQL exists.
HOSTILE_NAMES: list[tuple[dict[str, Any], str]] = [
    ({"attribute": "tier; DROP TABLE customers", "eq": "x"}, "unknown attribute"),
    ({"attribute": "tier--", "eq": "x"}, "unknown attribute"),
    ({"attribute": "tier OR 1=1", "eq": "x"}, "unknown attribute"),
    ({"attribute": "t\u0456er", "eq": "gold"}, "unknown attribute"),  # a Cyrillic i
    ({"attribute": "customers.tier", "eq": "gold"}, "unknown attribute"),
    ({"attribute": "(SELECT 1)", "eq": "1"}, "unknown attribute"),
    ({"attribute": "x" * 10_000, "eq": "1"}, "unknown attribute"),
    ({"attribute": "email", "eq": "a@b.c"}, "unknown attribute"),  # PII not on the allow-list
    ({"segment": "gold' OR 1=1 --"}, "unknown segment"),
    ({"in_list": "vip'; DROP TABLE list_members; --"}, "a list id is lower-case"),
    ({"event": "purchase' OR '1'='1"}, "an event name is lower-case"),
    ({"event": "purchase", "where": [{"property": "amount; DROP TABLE events", "gt": 1}]}, "unknown event property"),
    ({"stage": {"lifecycle": "life' --", "in": ["active"]}}, "unknown lifecycle"),
    ({"stage": {"lifecycle": "life", "in": ["active' OR 1=1"]}}, "unknown stage"),
    ({"attribute": "tier", "eq": "x" * 5000}, "longer than 1000"),
    ({"attribute": "lifetime_value", "gt": "1 OR 1=1"}, "expected a number"),
    ({"attribute": "signup_date", "before": "2026-01-01'; DROP TABLE customers; --"}, "expected a date"),
    ({"app": {"platform": "ios' OR '1'='1"}}, "unknown platform"),
    ({"tier": "gold", "attribute": "tier", "eq": "x"}, "an attribute condition takes exactly one operator"),
]
DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect(), "mysql": mysql.dialect()}


def value_rules(text: str) -> list[dict[str, Any]]:
    return [
        {"attribute": "tier", "eq": text},
        {"attribute": "tier", "in": [text, "gold"]},
        {"attribute": "country", "contains": text},
        {"attribute": "tier", "starts_with": text},
        {"app": {"app_id": text}},
        {"bucket": {"salt": text, "buckets": 10, "lt": 5}},
    ]


def test_at_least_thirty_injection_attempts():
    assert len(HOSTILE_NAMES) + len(HOSTILE_TEXT) >= 30


def test_control_characters_are_refused_not_truncated():
    # SQLite's LIKE stops at NUL: 'gold\0...' would match 'gold'. Refusing is the only portable answer.
    for text in ("gold\x00' OR 1=1", "gold\nDROP TABLE customers"):
        assert check_rule({"attribute": "tier", "starts_with": text}, VOCAB)


def test_most_hostile_values_are_accepted_and_bound():
    bound = sum(1 for text in HOSTILE_TEXT for _ in accepted(value_rules(text)))
    assert bound >= 80


@pytest.mark.parametrize("rule, problem", HOSTILE_NAMES, ids=[str(i) for i in range(len(HOSTILE_NAMES))])
def test_hostile_names_are_refused(rule, problem):
    problems = check_rule(rule, VOCAB)
    assert problems and any(problem in p for p in problems), problems


def accepted(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Refusing a value is a safe outcome too; what is accepted must be bound."""
    return [r for r in rules if not check_rule(r, VOCAB)]


@pytest.mark.parametrize("text", HOSTILE_TEXT, ids=[str(i) for i in range(len(HOSTILE_TEXT))])
def test_hostile_values_never_reach_the_sql_text(text):
    for rule in value_rules(text):
        if check_rule(rule, VOCAB):
            continue
        predicate = compile_rule(rule, VOCAB, RUN)
        for name, dialect in DIALECTS.items():
            sql = str(sa.select(customers.c.customer_id).where(predicate).compile(dialect=dialect))
            fragments = [text, text.strip("'"), "DROP", "DELETE", "pg_sleep", "password"]
            leaked = [f for f in fragments if f and f in sql]
            assert not leaked, (name, rule, leaked)


def test_hostile_values_run_harmlessly_on_every_engine(any_warehouse):
    load(any_warehouse, [customer("C1", tier="gold"), customer("C2", tier="silver")])
    with any_warehouse.connect() as conn:
        for text in HOSTILE_TEXT:
            for rule in accepted(value_rules(text)[:4]):
                found = set(
                    conn.execute(sa.select(customers.c.customer_id).where(compile_rule(rule, VOCAB, RUN))).scalars()
                )
                expected = {"C1"} if rule.get("in") else set()
                assert found == expected, (text, rule, found)
        assert conn.scalar(sa.select(sa.func.count()).select_from(customers)) == 2


def test_every_kind_of_rule_has_its_compile_function():
    from campaign_orchestrator.definitions.rules import NODE_CLASSES
    from campaign_orchestrator.segments.compile import COMPILERS

    assert list(COMPILERS) == list(NODE_CLASSES)
