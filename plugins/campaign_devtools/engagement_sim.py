"""What the world does after a night's sends, for the demo and the uplift checks: engagement and purchases.

Given the warehouse after a night, it writes what the next nights would receive: the provider's
engagement export (`engagement.csv`: send, delivery, open, click, bounce, unsubscribe for every
provider message), the app's inbox events (stored as the inbox service stores them, in
`engagement_events`) and the customers' purchases (`events.csv`). Everything is drawn from one seed.

A true effect is built in: every customer the night measured converts (makes a purchase inside
every attribution window of theirs) with probability `base_rate` plus the `uplift` of each
campaign whose message reached them. The truth the measurement should recover is then known
exactly: per campaign, the mean of those probabilities over its treatment group minus the mean over
its holdout (intent to treat: members capped or outranked were not reached, so they add nothing).
This module reads the groups from the targeting tables itself; it shares no code with measurement.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_devtools.demo_data import CATEGORIES, CATEGORY_SHARES
from campaign_orchestrator.outbox.ledger import message_ledger
from campaign_orchestrator.warehouse.tables import campaign_candidates, engagement_events, holdout_list, outbox

# Reasons a member was left out before the holdout draw: in no group.
NOT_DRAWN = ("suppressed", "not_opted_in", "no_device", "held_out")
PROVIDER_RATES = {"delivery": 0.97, "open": 0.30, "click": 0.12, "unsubscribe": 0.004}
INBOX_RATES = {"displayed": 0.65, "read": 0.45, "clicked": 0.15, "dismissed": 0.20}
STORE_DISPATCH = "message_store"  # the dispatch id a message-store write records (delivery.message_store)
EVENT_COLUMNS = ["customer_id", "name", "ts", "amount", "items", "category", "coupon"]


@dataclass(frozen=True)
class Effects:
    base_rate: float = 0.05
    uplift: dict[str, float] = field(default_factory=dict)  # campaign -> added conversion probability
    window_hours: float = 72.0


# Absolute uplifts on the conversion rate of the customers a campaign reached; one campaign has none.
DEMO_EFFECTS = Effects(
    base_rate=0.05,
    uplift={
        "app_feature_push": 0.04,
        "churn_winback_email": 0.05,
        "winback_push": 0.06,
        "gold_inapp_offer": 0.0,
        "repeat_buyer_nudge": 0.05,
        "new_customer_welcome": 0.04,
        "ios_engagement_push": 0.03,
        "europe_newsletter": 0.02,
    },
)
LATER = dt.timedelta(days=4)  # when the purchases are imported: after every window has closed


@dataclass(frozen=True)
class Simulated:
    engagement_rows: int
    inbox_events: int
    purchases: int
    true_uplift: dict[str, float]  # campaign -> expected treatment rate minus holdout rate


@dataclass
class _Member:
    sends: dict[str, dt.datetime] = field(default_factory=dict)  # campaign -> (counterfactual) send instant
    reached: set[str] = field(default_factory=set)  # campaigns whose message was sent to them


def _members(engine: Engine, run_date: dt.date) -> tuple[dict[str, _Member], dict[str, dict[str, list[str]]]]:
    """Per customer their send instants and the campaigns that reached them; per campaign its groups."""
    cand, held = campaign_candidates.c, holdout_list.c
    people: dict[str, _Member] = defaultdict(_Member)
    groups: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"treatment": [], "holdout": []})
    with engine.connect() as conn:
        for campaign_id, customer_id, send_at, reason in conn.execute(
            sa.select(cand.campaign_id, cand.customer_id, cand.send_at, cand.exclusion_reason).where(
                cand.run_date == run_date, cand.send_at.is_not(None)
            )
        ):
            if reason is None or reason not in NOT_DRAWN:
                people[customer_id].sends[campaign_id] = send_at
                groups[campaign_id]["treatment"].append(customer_id)
        for campaign_id, customer_id, send_at, group in conn.execute(
            sa.select(held.campaign_id, held.customer_id, held.send_at, held.control_group).where(
                held.run_date == run_date, held.send_at.is_not(None)
            )
        ):
            people[customer_id].sends[campaign_id] = send_at
            if group == "campaign":
                groups[campaign_id]["holdout"].append(customer_id)
        ledger = message_ledger(outbox.c.run_date == run_date)
        for campaign_id, customer_id in conn.execute(
            sa.select(ledger.c.campaign_id, ledger.c.customer_id).where(ledger.c.state == "sent")
        ):
            people[customer_id].reached.add(campaign_id)
    return dict(people), dict(groups)


def _probability(member: _Member, effects: Effects) -> float:
    return min(0.95, effects.base_rate + sum(effects.uplift.get(c, 0.0) for c in member.reached))


@dataclass(frozen=True)
class Population:
    """Who the night measured: per customer their sends, per campaign its groups (read once, drawn often)."""

    people: dict[str, _Member]
    groups: dict[str, dict[str, list[str]]]

    @classmethod
    def read(cls, engine: Engine, run_date: dt.date) -> Population:
        return cls(*_members(engine, run_date))


def purchases(
    population: Population, effects: Effects, rng: np.random.Generator
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The purchases of the measured customers, and the true uplift per campaign."""
    people, groups = population.people, population.groups
    ids = sorted(people)
    p = np.array([_probability(people[c], effects) for c in ids])
    converts = rng.random(len(ids)) < p
    width = dt.timedelta(hours=effects.window_hours)
    rows = []
    counts_for: dict[str, set[str]] = {}  # customer -> campaigns whose window holds their conversion
    for customer_id, converted in zip(ids, converts, strict=True):
        sends = people[customer_id].sends
        first, last = min(sends.values()), max(sends.values())
        if first + width > last:  # the windows overlap: a moment inside every one of them
            start, span = last, (first + width - last).total_seconds()
            counts_for[customer_id] = set(sends)
        else:  # sends further apart than a window (a past date's "now" campaign): the latest's window
            start, span = last, width.total_seconds()
            counts_for[customer_id] = {c for c, at in sends.items() if at == last}
        if converted:
            ts = start + dt.timedelta(seconds=float(rng.uniform(0, max(0.0, span - 1))))
        elif rng.random() < 0.2:  # a purchase that counts for nothing: before the first send
            ts = first - dt.timedelta(seconds=float(rng.uniform(60, 86_400)))
        else:
            continue
        amount = round(float(rng.lognormal(3.8, 0.8)), 2)
        category = str(rng.choice(CATEGORIES, p=CATEGORY_SHARES))
        rows.append(
            (customer_id, "purchase", ts, amount, 1 + int(rng.poisson(0.8)), category, bool(rng.random() < 0.2))
        )
    frame = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    chance = dict(zip(ids, p, strict=True))

    def counted(campaign_id: str, members: list[str]) -> float:
        return float(np.mean([chance[c] if campaign_id in counts_for[c] else 0.0 for c in members]))

    truth = {
        cid: counted(cid, g["treatment"]) - counted(cid, g["holdout"])
        for cid, g in groups.items()
        if g["treatment"] and g["holdout"]
    }
    return frame, truth


def _message_fate(rng: np.random.Generator) -> list[tuple[str, float]]:
    """One provider message's events, with seconds after it left."""
    if rng.random() >= PROVIDER_RATES["delivery"]:
        return [("send", 0.0), ("bounce", 30.0)]
    fate = [("send", 0.0), ("delivery", float(rng.uniform(1, 120)))]
    if rng.random() < PROVIDER_RATES["open"]:
        fate.append(("open", float(rng.uniform(60, 36_000))))
        if rng.random() < PROVIDER_RATES["click"] / PROVIDER_RATES["open"]:
            fate.append(("click", float(rng.uniform(36_000, 40_000))))
    if rng.random() < PROVIDER_RATES["unsubscribe"]:
        fate.append(("unsubscribe", 40_000.0))
    return fate


def provider_export(engine: Engine, run_date: dt.date, rng: np.random.Generator) -> pd.DataFrame:
    """A Currents-style export for the night's provider messages (message-store ones are not the provider's)."""
    ledger = message_ledger(outbox.c.run_date == run_date)
    with engine.connect() as conn:
        sent = conn.execute(
            sa.select(
                ledger.c.customer_id, ledger.c.campaign_id, ledger.c.dispatch_id, ledger.c.send_at, ledger.c.sent_at
            ).where(ledger.c.state == "sent", ledger.c.dispatch_id != STORE_DISPATCH)
        ).all()
    rows: list[tuple[str, str, dt.datetime, str, str, str]] = []
    for customer_id, campaign_id, dispatch_id, send_at, sent_at in sent:
        at = max(send_at, sent_at or send_at)  # a scheduled message leaves at its send instant
        for name, after_s in _message_fate(rng):
            event_id = str(uuid.UUID(bytes=rng.bytes(16)))
            rows.append((event_id, name, at + dt.timedelta(seconds=after_s), customer_id, campaign_id, dispatch_id))
    return pd.DataFrame(rows, columns=["event_id", "event", "at", "customer_id", "campaign_id", "dispatch_id"])


def inbox_events(engine: Engine, run_date: dt.date, rng: np.random.Generator) -> int:
    """The app's reports for the night's in-app messages, stored as the inbox service stores them."""
    ledger = message_ledger(outbox.c.run_date == run_date)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(
                ledger.c.message_id, ledger.c.customer_id, ledger.c.campaign_id, ledger.c.variant, ledger.c.send_at
            ).where(ledger.c.state == "sent", ledger.c.dispatch_id == STORE_DISPATCH)
        ).all()
    rows = []
    for message_id, customer_id, campaign_id, variant, send_at in stored:
        if rng.random() >= INBOX_RATES["displayed"]:
            continue
        seen = send_at + dt.timedelta(seconds=float(rng.uniform(60, 86_400)))
        names = ["displayed"] + [n for n in ("read", "clicked", "dismissed") if rng.random() < INBOX_RATES[n]]
        for i, name in enumerate(names):
            at = seen + dt.timedelta(seconds=10 * i)
            rows.append(
                {
                    "customer_id": customer_id,
                    "event_id": f"sim-{message_id}-{name}",
                    "message_id": message_id,
                    "campaign_id": campaign_id,
                    "variant": variant,
                    "event": name,
                    "at": at,
                    "received_at": at,
                    "session_id": None,
                    "app_id": "shop_app",
                }
            )
    if rows:
        with engine.begin() as conn:
            conn.execute(engagement_events.delete().where(engagement_events.c.event_id.like("sim-%")))
            conn.execute(engagement_events.insert(), rows)
    return len(rows)


def _iso(frame: pd.DataFrame, column: str) -> None:
    frame[column] = pd.to_datetime(frame[column]).dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def simulate(engine: Engine, run_date: dt.date, out_dir: Path, effects: Effects, seed: int = 11) -> Simulated:
    """Write `engagement.csv` and `events.csv` (the purchases) into `out_dir`; store the inbox events."""
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    bought, truth = purchases(Population.read(engine, run_date), effects, rng)
    export = provider_export(engine, run_date, rng)
    stored = inbox_events(engine, run_date, rng)
    for frame, column, name in ((bought, "ts", "events.csv"), (export, "at", "engagement.csv")):
        if len(frame):
            _iso(frame, column)
        frame.to_csv(out_dir / name, index=False)
    return Simulated(len(export), stored, len(bought), truth)
