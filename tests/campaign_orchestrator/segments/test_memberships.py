"""Segment rules against an independent pandas reference, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from campaign_orchestrator.definitions.rule_values import RuleError
from campaign_orchestrator.definitions.rules import LifecycleSpec, Vocabulary, check_rule
from campaign_orchestrator.segments.compile import compile_rule
from campaign_orchestrator.segments.memberships import compute_memberships, estimate
from campaign_orchestrator.warehouse.engine import hash32
from campaign_orchestrator.warehouse.event_properties import ensure_event_properties, events_table
from campaign_orchestrator.warehouse.sqlfuncs import hash_bucket  # noqa: F401 - the reference below re-implements it
from campaign_orchestrator.warehouse.tables import (
    app_installs,
    customers,
    lifecycle_membership,
    list_members,
    segment_membership,
    segment_stats,
)
from tests.builders import customer, load

RUN = dt.date(2026, 11, 22)
T = dt.datetime.combine(RUN, dt.time())  # the anchor of relative dates
ATTRS = {
    "customer_id": "string",
    "tier": "string",
    "country": "string",
    "lifetime_value": "float",
    "signup_date": "date",
    "last_purchase_at": "datetime",
    "locale": "string",
}
# Properties besides amount, of every kind a rule compares differently; `gift` only on purchases.
PROPS = {"amount": "float", "items": "int", "category": "string", "gift": "bool"}
VOCAB = Vocabulary(
    attributes=ATTRS,
    event_properties=PROPS,
    property_events={"gift": frozenset({"purchase"})},
    lists=frozenset({"vip", "empty_list"}),
    segments=frozenset({"base_gt", "gold", "lapsed", "active_buyers"}),
    lifecycles={"life": ("active_buyers", "lapsed", "prospect")},
)
LIFECYCLES = [LifecycleSpec("life", ("active_buyers", "lapsed"), "prospect")]

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
    customer("C8", tier="gold", country="NZ", lifetime_value=650.0, signup_date=dt.date(2026, 11, 15)),
]
EVENTS = [  # (customer, name, ts, amount, items, category, gift)
    ("C1", "purchase", T - dt.timedelta(days=2), 120.0, 3, "books", True),
    ("C1", "purchase", T - dt.timedelta(days=40), 80.0, 1, "music", None),
    ("C1", "app_open", T - dt.timedelta(hours=5), None, None, None, None),
    ("C2", "purchase", T - dt.timedelta(days=45), 600.0, 2, "books", False),
    ("C2", "purchase", T - dt.timedelta(days=60), 20.0, None, "Music", None),
    ("C2", "purchase", T - dt.timedelta(days=100), 15.0, 1, "books", True),
    ("C4", "purchase", T - dt.timedelta(days=10), 700.0, 5, "garden", False),
    ("C4", "purchase", T - dt.timedelta(days=10), 90.0, 1, "books", True),  # same moment as the one above
    ("C4", "app_open", T - dt.timedelta(days=1), None, None, None, None),
    ("C4", "app_open", T - dt.timedelta(days=3), None, None, None, None),
    ("C4", "app_open", T - dt.timedelta(days=20), None, None, None, None),
    ("C5", "app_open", T - dt.timedelta(days=31), None, None, None, None),
    ("C8", "purchase", T - dt.timedelta(days=89), 10.0, 1, None, None),
    ("C8", "purchase", T - dt.timedelta(days=91), 10.0, 4, "music", True),
]
INSTALLS = [
    ("C1", "ios", True),
    ("C2", "android", False),
    ("C4", "ios", False),
    ("C4", "web", True),
    ("C6", "android", True),
]
LIST = {"vip": ["C2", "C6", "C9-not-a-customer"]}


# ---------------------------------------------------------------- the reference


class Ref:
    """The specification by example: every rule evaluated again, independently, in pandas."""

    def __init__(self, df: pd.DataFrame, ev: pd.DataFrame, apps: pd.DataFrame, lists: dict[str, list[str]]) -> None:
        self.df, self.ev, self.apps, self.lists = df, ev, apps, lists
        self.members: dict[str, set[str]] = {}
        self.stages: dict[str, dict[str, str]] = {}

    def ids(self, mask: pd.Series) -> set[str]:
        return set(self.df.loc[mask, "customer_id"])

    def __call__(self, rule: dict[str, Any]) -> pd.Series:
        df = self.df
        if "all" in rule:
            out = pd.Series(True, index=df.index)
            for child in rule["all"]:
                out &= self(child)
            return out
        if "any" in rule:
            out = pd.Series(False, index=df.index)
            for child in rule["any"]:
                out |= self(child)
            return out
        if "not" in rule:
            return ~self(rule["not"])
        if "segment" in rule:
            return df["customer_id"].isin(self.members[rule["segment"]])
        if "in_list" in rule:
            return df["customer_id"].isin(self.lists.get(rule["in_list"], []))
        if "app" in rule:
            spec, apps = rule["app"], self.apps
            keep = pd.Series(True, index=apps.index)
            if "platform" in spec:
                keep &= apps["platform"].isin(
                    spec["platform"] if isinstance(spec["platform"], list) else [spec["platform"]]
                )
            if "push_token" in spec:
                keep &= apps["push_token_present"] == spec["push_token"]
            return df["customer_id"].isin(apps.loc[keep, "customer_id"])
        if "bucket" in rule:
            spec = rule["bucket"]
            buckets = spec.get("buckets", 100)
            b = df["customer_id"].map(lambda c: hash32(f"bucket:{spec['salt']}:{c}") % buckets)
            if "lt" in spec:
                return b < spec["lt"]
            if "gte" in spec:
                return b >= spec["gte"]
            return b.isin(spec["in"]) if "in" in spec else b.between(*spec["between"])
        if "stage" in rule:
            spec = rule["stage"]
            op = next(k for k in spec if k != "lifecycle")
            wanted = spec[op] if isinstance(spec[op], list) else [spec[op]]
            stage = df["customer_id"].map(self.stages[spec["lifecycle"]])
            hit = stage.isin(wanted)
            return ~hit if op in ("not_in", "ne") else hit
        if "event" in rule:
            return self.event(rule)
        return self.condition(
            df[rule["attribute"]], ATTRS[rule["attribute"]], *next((k, v) for k, v in rule.items() if k != "attribute")
        )

    def moment(self, value: Any, kind: str) -> pd.Timestamp:
        if isinstance(value, str) and value[-1] in "hdw" and value[:-1].isdigit():
            when = pd.Timestamp(T) - pd.Timedelta(int(value[:-1]), unit={"h": "h", "d": "D", "w": "W"}[value[-1]])
            return when.normalize() if kind == "date" else when
        return pd.Timestamp(value)

    def condition(self, col: pd.Series, kind: str, op: str, value: Any) -> pd.Series:
        present = col.notna()
        if kind in ("date", "datetime") and op not in ("exists", "is_null", "within_last", "more_than_ago"):
            value = [self.moment(v, kind) for v in value] if isinstance(value, list) else self.moment(value, kind)
        match op:
            case "eq":
                return present & (col == value)
            case "ne":
                return ~present | (col != value)
            case "gt" | "after":
                return present & (col > value)
            case "gte":
                return present & (col >= value)
            case "lt" | "before":
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
                return present & (col >= self.moment(value, kind))
            case "more_than_ago":
                return present & (col < self.moment(value, kind))
            case "on":
                return present & (col.dt.normalize() == value.normalize())
        raise AssertionError(op)

    def event(self, rule: dict[str, Any]) -> pd.Series:
        ev = self.ev[self.ev["name"] == rule["event"]]
        if "within_last" in rule:
            ev = ev[ev["ts"] >= self.moment(rule["within_last"], "datetime")]
        if "more_than_ago" in rule:
            ev = ev[ev["ts"] < self.moment(rule["more_than_ago"], "datetime")]
        if "between" in rule:
            low, high = (self.moment(v, "datetime") for v in rule["between"])
            ev = ev[(ev["ts"] >= low) & (ev["ts"] <= high)]
        for cond in rule.get("where", []):
            op = next(k for k in cond if k != "property")
            ev = ev[self.condition(ev[cond["property"]], PROPS[cond["property"]], op, cond[op])]
        ids = self.df["customer_id"]
        for key in ("first", "last"):
            if key in rule:
                ((side, when),) = rule[key].items()
                edge = ev.groupby("customer_id")["ts"].agg("min" if key == "first" else "max")
                if side == "between":
                    low, high = (self.moment(v, "datetime") for v in when)
                    return ids.isin(edge[(edge >= low) & (edge <= high)].index)
                moment = self.moment(when, "datetime")
                return ids.isin(edge[edge < moment].index if side == "before" else edge[edge > moment].index)
        for key in ("first_value", "last_value"):
            if key in rule:
                spec = rule[key]
                prop, (op, value) = spec["property"], next((k, v) for k, v in spec.items() if k != "property")
                edge = ev.groupby("customer_id")["ts"].transform("min" if key == "first_value" else "max")
                on_edge = ev[ev["ts"] == edge]
                column = on_edge[prop].astype(float) if PROPS[prop] == "bool" else on_edge[prop]
                values = column.groupby(on_edge["customer_id"]).max()  # a tied moment: the greatest value
                if PROPS[prop] == "bool":
                    values = values.map(lambda v: None if pd.isna(v) else bool(v)).astype(object)
                ok = values[self.condition(values, PROPS[prop], op, value)].index
                return ids.isin(ok)
        for key in ("min", "max"):
            if key in rule:
                spec = rule[key]
                op, value = next((k, v) for k, v in spec.items() if k != "property")
                measure = ev.groupby("customer_id")[spec["property"]].agg(key).reindex(ids)
                if op == "between":
                    hit = (measure >= value[0]) & (measure <= value[1])
                else:
                    hit = {"eq": measure.eq, "gte": measure.ge, "lte": measure.le, "gt": measure.gt, "lt": measure.lt}[
                        op
                    ](value)
                return pd.Series(hit.fillna(False).to_numpy(dtype=bool), index=ids.index)
        if "distinct" in rule:
            spec = rule["distinct"]
            measure = ev.groupby("customer_id")[spec["property"]].nunique().reindex(ids).fillna(0)
            op = next(k for k in spec if k != "property")
            return pd.Series(self.condition(measure, "float", op, spec[op]).to_numpy(), index=ids.index)
        if "sum" in rule:
            spec = rule["sum"]
            measure = ev.groupby("customer_id")[spec["property"]].sum().reindex(ids).fillna(0)
            op = next(k for k in spec if k != "property")
            return pd.Series(self.condition(measure, "float", op, spec[op]).to_numpy(), index=ids.index)
        counts = ev.groupby("customer_id").size().reindex(ids).fillna(0)
        op, value = next(iter(rule.get("count", {"gte": 1}).items()))
        return pd.Series(self.condition(counts, "float", op, value).to_numpy(), index=ids.index)


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
    "date_before_absolute": {"attribute": "signup_date", "before": "2025-01-01"},
    "date_after_absolute": {"attribute": "signup_date", "after": "2026-11-01"},
    "date_on": {"attribute": "signup_date", "on": "2026-11-21"},
    "datetime_on": {"attribute": "last_purchase_at", "on": "2026-11-20"},
    "datetime_before_relative": {"attribute": "last_purchase_at", "before": "60d"},
    "date_between": {"attribute": "signup_date", "between": ["2024-01-05", "2026-11-01"]},
    "datetime_gt": {"attribute": "last_purchase_at", "gt": "2026-09-23T23:59:00"},
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
    "performed_once": {"event": "purchase"},
    "bought_twice_in_90d_not_in_30d": {
        "all": [
            {"event": "purchase", "count": {"gte": 2}, "within_last": "90d"},
            {"not": {"event": "purchase", "within_last": "30d"}},
        ]
    },
    "at_most_one_purchase_includes_none": {"event": "purchase", "count": {"lte": 1}},
    "exactly_three_app_opens_30d": {"event": "app_open", "count": {"eq": 3}, "within_last": "30d"},
    "never_opened_the_app": {"event": "app_open", "count": {"eq": 0}},
    "count_between": {"event": "purchase", "count": {"between": [2, 3]}},
    "purchase_over_500": {"event": "purchase", "where": [{"property": "amount", "gt": 500}]},
    "big_spender_90d_sum": {"event": "purchase", "within_last": "90d", "sum": {"property": "amount", "gt": 600}},
    "spent_under_50_includes_none": {"event": "purchase", "sum": {"property": "amount", "lt": 50}},
    "last_purchase_before_30d": {"event": "purchase", "last": {"before": "30d"}},
    "last_app_open_after_date": {"event": "app_open", "last": {"after": "2026-11-20"}},
    "events_more_than_ago": {"event": "purchase", "more_than_ago": "90d"},
    # properties besides amount, of each kind
    "items_at_least_3": {"event": "purchase", "where": [{"property": "items", "gte": 3}]},
    "two_books": {"event": "purchase", "count": {"gte": 2}, "where": [{"property": "category", "eq": "books"}]},
    "books_or_music_in_90d": {
        "event": "purchase",
        "within_last": "90d",
        "where": [{"property": "category", "in": ["books", "music"]}],
    },
    "category_starts_with_mu_any_case": {"event": "purchase", "where": [{"property": "category", "starts_with": "MU"}]},
    "bought_a_gift": {"event": "purchase", "where": [{"property": "gift", "eq": True}]},
    "bought_not_a_gift_includes_unknown": {"event": "purchase", "where": [{"property": "gift", "ne": True}]},
    "few_items_not_books": {
        "event": "purchase",
        "where": [{"property": "items", "between": [1, 2]}, {"property": "category", "ne": "books"}],
    },
    "category_unknown": {"event": "purchase", "where": [{"property": "category", "is_null": True}]},
    "sum_items_at_least_5": {"event": "purchase", "sum": {"property": "items", "gte": 5}},
    "sum_items_under_2_includes_none": {"event": "purchase", "sum": {"property": "items", "lt": 2}},
    "max_amount_over_500": {"event": "purchase", "max": {"property": "amount", "gt": 500}},
    "min_items_at_most_1": {"event": "purchase", "min": {"property": "items", "lte": 1}},
    "max_items_between": {"event": "purchase", "within_last": "90d", "max": {"property": "items", "between": [2, 4]}},
    "two_categories": {"event": "purchase", "distinct": {"property": "category", "gte": 2}},
    "no_category_includes_none": {"event": "purchase", "distinct": {"property": "category", "eq": 0}},
    "last_purchase_over_100": {"event": "purchase", "last_value": {"property": "amount", "gt": 100}},
    "last_purchase_tie_takes_greatest": {"event": "purchase", "last_value": {"property": "amount", "gte": 700}},
    "first_purchase_books": {"event": "purchase", "first_value": {"property": "category", "eq": "books"}},
    "last_purchase_in_window_items": {
        "event": "purchase",
        "within_last": "50d",
        "last_value": {"property": "items", "gte": 2},
    },
    "last_purchase_gift": {"event": "purchase", "last_value": {"property": "gift", "eq": True}},
    "last_purchase_gift_unknown": {"event": "purchase", "last_value": {"property": "gift", "is_null": True}},
    "last_non_books_purchase_not_music": {
        "event": "purchase",
        "where": [{"property": "category", "ne": "books"}],
        "last_value": {"property": "category", "ne": "music"},
    },
    # first and last occurrence
    "first_purchase_between": {"event": "purchase", "first": {"between": ["2026-08-01", "2026-10-15"]}},
    "first_purchase_before_60d": {"event": "purchase", "first": {"before": "60d"}},
    "first_purchase_after_date": {"event": "purchase", "first": {"after": "2026-10-01"}},
    "last_purchase_between_relative": {"event": "purchase", "last": {"between": ["50d", "5d"]}},
    "purchases_in_absolute_window": {
        "event": "purchase",
        "between": ["2026-09-01", "2026-11-01"],
        "count": {"gte": 1},
    },
    "static_list": {"in_list": "vip"},
    "empty_list": {"in_list": "empty_list"},
    "ios_with_push_token": {"app": {"platform": "ios", "push_token": True}},
    "any_app_no_token": {"app": {"push_token": False}},
    "bucket_lt": {"bucket": {"salt": "test", "buckets": 10, "lt": 5}},
    "bucket_in": {"bucket": {"salt": "other", "buckets": 4, "in": [0, 3]}},
    "stage_in": {"stage": {"lifecycle": "life", "in": ["lapsed", "prospect"]}},
    "gold_anz_not_lapsed": {
        "all": [
            {"attribute": "tier", "eq": "gold"},
            {"attribute": "country", "in": ["AU", "NZ"]},
            {"stage": {"lifecycle": "life", "ne": "lapsed"}},
        ]
    },
}
BASE = {
    "base_gt": {"attribute": "lifetime_value", "gt": 400},
    "gold": {"attribute": "tier", "eq": "gold"},
    "active_buyers": {"event": "purchase", "within_last": "30d"},
    "lapsed": {"event": "purchase", "last": {"before": "30d"}},
}


def vocab_for(rules: dict[str, Any]) -> Vocabulary:
    return Vocabulary(
        attributes=VOCAB.attributes,
        event_properties=VOCAB.event_properties,
        property_events=VOCAB.property_events,
        lists=VOCAB.lists,
        segments=frozenset(rules),
        lifecycles=VOCAB.lifecycles,
    )


@pytest.fixture
def loaded(any_warehouse):
    load(any_warehouse, PROFILES, installs=INSTALLS)
    ensure_event_properties(any_warehouse, PROPS)
    with any_warehouse.begin() as conn:
        conn.execute(
            events_table(PROPS).insert(),
            [
                {"customer_id": c, "name": n, "ts": ts, "import_date": RUN, **dict(zip(PROPS, values, strict=True))}
                for c, n, ts, *values in EVENTS
            ],
        )
        conn.execute(
            list_members.insert(),
            [{"list_id": lid, "customer_id": c, "import_date": RUN} for lid, ids in LIST.items() for c in ids],
        )
    return any_warehouse


def reference(engine) -> Ref:
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(sa.select(customers)).mappings().all())
        ev = pd.DataFrame(conn.execute(sa.select(events_table(PROPS))).mappings().all())
        apps = pd.DataFrame(conn.execute(sa.select(app_installs)).mappings().all())
    for col in ("signup_date", "last_purchase_at"):
        df[col] = pd.to_datetime(df[col])
    ev["ts"] = pd.to_datetime(ev["ts"])
    ev["amount"] = ev["amount"].astype(float)
    ev["items"] = ev["items"].astype("Int64")
    ev["gift"] = ev["gift"].map(lambda v: None if v is None or pd.isna(v) else bool(v)).astype(object)
    apps["push_token_present"] = apps["push_token_present"].astype(bool)
    return Ref(df, ev, apps, LIST)


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
