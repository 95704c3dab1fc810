"""The rule language's examples: a small warehouse of customers, events, apps and lists, and more
than seventy rules over it. Shared by the membership, live-size and dialect tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from campaign_orchestrator.definitions.rules import LifecycleSpec, Vocabulary
from campaign_orchestrator.warehouse.event_properties import ensure_event_properties, events_table
from campaign_orchestrator.warehouse.tables import list_members
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
