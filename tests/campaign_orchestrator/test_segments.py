"""Segment rules against an independent pandas reference, on every engine we can reach."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from campaign_orchestrator.segments import RuleError, check_rule, compile_rule, compute_memberships
from campaign_orchestrator.tables import customers, segment_membership
from tests.builders import customer, load

RUN = dt.date(2026, 11, 22)
ATTRS = {
    "customer_id": "string",
    "tier": "string",
    "country": "string",
    "lifetime_value": "float",
    "signup_date": "date",
    "last_purchase_at": "datetime",
    "locale": "string",
}

PROFILES = [
    customer(
        "C1",
        tier="gold",
        country="GB",
        lifetime_value=900.0,
        signup_date=dt.date(2024, 1, 5),
        last_purchase_at=dt.datetime(2026, 11, 20, 8),
    ),
    customer(
        "C2",
        tier="silver",
        country="DE",
        lifetime_value=120.5,
        signup_date=dt.date(2025, 6, 1),
        last_purchase_at=dt.datetime(2026, 6, 1),
    ),
    customer("C3", tier=None, country="FR", lifetime_value=None, signup_date=None, last_purchase_at=None),
    customer(
        "C4",
        tier="platinum",
        country="US",
        lifetime_value=5000.0,
        signup_date=dt.date(2020, 2, 29),
        last_purchase_at=dt.datetime(2026, 9, 23, 23, 59),
        locale="en-US",
    ),
    customer(
        "C5",
        tier="bronze",
        country="GB",
        lifetime_value=0.0,
        signup_date=dt.date(2026, 11, 1),
        last_purchase_at=dt.datetime(2026, 10, 23),
        locale="en-GB",
    ),
    customer(
        "C6",
        tier="Gold",
        country="ES",
        lifetime_value=500.0,
        signup_date=dt.date(2026, 11, 21),
        last_purchase_at=None,
        locale="es-ES",
    ),
    customer("C7_100%", tier="silver", country="AU", lifetime_value=499.99, locale="en_AU"),
]


def reference(rule: dict[str, Any], df: pd.DataFrame, members: dict[str, set[str]]) -> pd.Series:
    """An independent evaluation of a rule, row by row in pandas: the specification by example."""
    if "all" in rule:
        out = pd.Series(True, index=df.index)
        for child in rule["all"]:
            out &= reference(child, df, members)
        return out
    if "any" in rule:
        out = pd.Series(False, index=df.index)
        for child in rule["any"]:
            out |= reference(child, df, members)
        return out
    if "not" in rule:
        return ~reference(rule["not"], df, members)
    if "segment" in rule:
        return df["customer_id"].isin(members[rule["segment"]])
    col = df[rule["attribute"]]
    op, value = next((k, v) for k, v in rule.items() if k != "attribute")
    present = col.notna()
    anchor = pd.Timestamp(RUN)
    if ATTRS[rule["attribute"]] == "date" and op not in ("within_last", "more_than_ago", "exists", "is_null"):
        value = [pd.Timestamp(v) for v in value] if isinstance(value, list) else pd.Timestamp(value)
    if ATTRS[rule["attribute"]] == "datetime" and op in ("gt", "gte", "lt", "lte", "eq"):
        value = pd.Timestamp(value)
    match op:
        case "eq":
            return present & (col == value)
        case "ne":
            return ~present | (col != value)
        case "gt":
            return present & (col > value)
        case "gte":
            return present & (col >= value)
        case "lt":
            return present & (col < value)
        case "lte":
            return present & (col <= value)
        case "in":
            return present & col.isin(value)
        case "not_in":
            return ~present | ~col.isin(value)
        case "between":
            return present & (col >= value[0]) & (col <= value[1])
        case "exists":
            return present
        case "is_null":
            return ~present
        case "contains":
            return present & col.fillna("").str.lower().str.contains(value.lower(), regex=False)
        case "starts_with":
            return present & col.fillna("").str.lower().str.startswith(value.lower())
        case "within_last":
            return present & (col >= anchor - _duration(value))
        case "more_than_ago":
            return present & (col < anchor - _duration(value))
    raise AssertionError(op)


def _duration(text: str) -> pd.Timedelta:
    unit = {"d": "D", "h": "h", "w": "W"}[text[-1]]
    return pd.Timedelta(int(text[:-1]), unit=unit)


RULES: dict[str, dict[str, Any]] = {
    "eq": {"attribute": "tier", "eq": "gold"},
    "ne_includes_missing": {"attribute": "tier", "ne": "gold"},
    "gt": {"attribute": "lifetime_value", "gt": 500},
    "gte": {"attribute": "lifetime_value", "gte": 500},
    "lt": {"attribute": "lifetime_value", "lt": 120.5},
    "lte": {"attribute": "lifetime_value", "lte": 120.5},
    "in": {"attribute": "country", "in": ["GB", "DE"]},
    "not_in": {"attribute": "tier", "not_in": ["gold", "silver"]},
    "between": {"attribute": "lifetime_value", "between": [100, 900]},
    "exists": {"attribute": "lifetime_value", "exists": True},
    "is_null": {"attribute": "tier", "is_null": True},
    "contains_escapes_wildcards": {"attribute": "customer_id", "contains": "100%"},
    "contains_case_insensitive": {"attribute": "tier", "contains": "OLD"},
    "starts_with_underscore_literal": {"attribute": "locale", "starts_with": "en_"},
    "date_before": {"attribute": "signup_date", "lt": "2025-01-01"},
    "date_between": {"attribute": "signup_date", "between": ["2024-01-05", "2026-11-01"]},
    "datetime_after": {"attribute": "last_purchase_at", "gt": "2026-09-23T23:59:00"},
    "within_last_30d": {"attribute": "last_purchase_at", "within_last": "30d"},
    "more_than_ago_60d": {"attribute": "last_purchase_at", "more_than_ago": "60d"},
    "within_last_2w_date": {"attribute": "signup_date", "within_last": "2w"},
    "within_last_48h": {"attribute": "last_purchase_at", "within_last": "48h"},
    "not_of_condition_keeps_missing": {"not": {"attribute": "lifetime_value", "gt": 500}},
    "nested_three_deep": {
        "all": [
            {"any": [{"attribute": "country", "in": ["GB", "ES"]}, {"not": {"attribute": "tier", "exists": True}}]},
            {"not": {"all": [{"attribute": "lifetime_value", "lt": 100}, {"attribute": "country", "eq": "GB"}]}},
        ]
    },
    "empty_result": {"all": [{"attribute": "tier", "eq": "gold"}, {"attribute": "tier", "eq": "silver"}]},
    "segment_of_segment": {"all": [{"segment": "base_gt"}, {"attribute": "country", "ne": "US"}]},
}


@pytest.fixture
def loaded(any_warehouse):
    load(any_warehouse, PROFILES)
    return any_warehouse


def test_every_rule_matches_the_pandas_reference(loaded):
    rules = {"base_gt": {"attribute": "lifetime_value", "gt": 400}, **RULES}
    with loaded.begin() as conn:
        sizes = compute_memberships(conn, rules, ATTRS, RUN)
    with loaded.connect() as conn:
        df = pd.DataFrame(conn.execute(sa.select(customers)).mappings().all())
        got_rows = conn.execute(
            sa.select(segment_membership.c.segment_id, segment_membership.c.customer_id).where(
                segment_membership.c.run_date == RUN
            )
        ).all()
    for col in ("signup_date", "last_purchase_at"):
        df[col] = pd.to_datetime(df[col])
    got: dict[str, set[str]] = {}
    for sid, cid in got_rows:
        got.setdefault(sid, set()).add(cid)
    members: dict[str, set[str]] = {}
    for sid in ["base_gt", *RULES]:
        expected = set(df.loc[reference(rules[sid], df, members), "customer_id"])
        members[sid] = expected
        assert got.get(sid, set()) == expected, sid
        assert sizes[sid] == len(expected)
    assert got.get("empty_result", set()) == set()


def test_rules_bind_values_as_parameters():
    hostile = "x'); DROP TABLE customers; --"
    sql = str(compile_rule({"attribute": "tier", "eq": hostile}, ATTRS, RUN).compile())
    assert hostile not in sql and "DROP" not in sql


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
        ({"sql": "1=1"}, "unknown rule keys"),
        ({"attribute": "tier", "exists": False}, "write 'exists: true'"),
    ],
)
def test_wrong_rules_are_refused_with_the_path(rule, problem):
    problems = check_rule({"any": [rule]}, ATTRS, set())
    assert problems and problem in problems[0] and problems[0].startswith(".any[0]")


def test_compile_refuses_unknown_attributes_even_without_check():
    with pytest.raises(RuleError):
        compile_rule({"attribute": "email", "eq": "x"}, ATTRS, RUN)


def test_memberships_are_kept_per_day_and_replaced_on_rerun(loaded):
    rules = {"gold": {"attribute": "tier", "eq": "gold"}}
    with loaded.begin() as conn:
        compute_memberships(conn, rules, ATTRS, RUN)
        compute_memberships(conn, rules, ATTRS, RUN - dt.timedelta(days=1))
        compute_memberships(conn, rules, ATTRS, RUN)
    with loaded.connect() as conn:
        per_day = dict(
            conn.execute(
                sa.select(segment_membership.c.run_date, sa.func.count()).group_by(segment_membership.c.run_date)
            ).all()
        )
    assert list(per_day.values()) == [1, 1]
