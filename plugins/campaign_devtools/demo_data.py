"""A deterministic sample data set: the nightly export of an imaginary retailer with an app.

Same seed and as-of date, same files, byte for byte. Vectorised with numpy, so a million
customers take seconds, not minutes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# (country, locale, currency, time zone, weight)
MARKETS = [
    ("US", "en-US", "USD", "America/New_York", 0.22),
    ("US", "en-US", "USD", "America/Los_Angeles", 0.12),
    ("BR", "pt-BR", "BRL", "America/Sao_Paulo", 0.08),
    ("GB", "en-GB", "GBP", "Europe/London", 0.12),
    ("DE", "de-DE", "EUR", "Europe/Berlin", 0.10),
    ("FR", "fr-FR", "EUR", "Europe/Paris", 0.08),
    ("ES", "es-ES", "EUR", "Europe/Madrid", 0.06),
    ("IN", "en-IN", "INR", "Asia/Kolkata", 0.06),
    ("JP", "ja-JP", "JPY", "Asia/Tokyo", 0.08),
    ("AU", "en-AU", "AUD", "Australia/Sydney", 0.08),
]
FIRST_NAMES = [
    "Ana",
    "Ben",
    "Chloé",
    "Daniel",
    "Emma",
    "Felipe",
    "Grace",
    "Hiro",
    "Isla",
    "Jonas",
    "Kavya",
    "Liam",
    "Maya",
    "Noah",
    "Olivia",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tomás",
    "Uma",
    "Victor",
    "Wen",
    "Yuki",
    "Zoe",
]
TIERS = ["bronze", "silver", "gold", "platinum"]
CHANNELS = ["push", "email", "in_app"]
PREF_SOURCES = ["app_settings", "signup_form", "support", "preference_center"]
SUPPRESSION_REASONS = ["unsubscribed_all", "erased", "legal_hold"]
EVENT_DAYS = 90

CATEGORIES = ["books", "music", "garden", "kitchen", "toys"]
CATEGORY_SHARES = [0.35, 0.25, 0.15, 0.15, 0.10]


@dataclass(frozen=True)
class DemoDataSummary:
    out_dir: Path
    customers: int
    app_installs: int
    preferences: int
    events: int
    suppressions: int
    bad_rows: int


def _iso(ts: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(ts.astype("datetime64[s]"), unit="s")


FILES = (
    "customers.csv",
    "app_installs.csv",
    "preferences.csv",
    "events.csv",
    "suppressions.csv",
    "lists/beta_testers.csv",
)
PART = 1_000_000  # customers generated (and held in memory) at a time


def generate(
    out_dir: Path, customers: int = 20_000, seed: int = 7, as_of: dt.date | None = None, bad_rows: int = 0
) -> DemoDataSummary:
    """Write customers, app_installs, preferences, events and suppressions CSVs into out_dir.

    Past a million customers the data is made a million at a time and appended, so memory stays
    that of one part (10M at once needed over 22 GB): the first part is exactly the 1M data set,
    each later one drawn from its own seed; within a file rows are sorted per part."""
    as_of = as_of or dt.date.today()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "lists").mkdir(exist_ok=True)
    end = np.datetime64(as_of.isoformat(), "s")  # midnight UTC of the run date: the export cut-off
    totals = np.zeros(4, dtype=np.int64)
    for part, start in enumerate(range(0, customers, PART)):
        rng = np.random.default_rng(seed if part == 0 else [seed, part])
        n = min(PART, customers - start)
        ids = np.char.add("C", np.char.zfill(np.arange(start + 1, start + n + 1).astype(str), 7))
        frames = _part(rng, ids, end, bad_rows if part == 0 else 0)
        for name, frame in zip(FILES, frames, strict=True):
            frame.to_csv(out_dir / name, index=False, mode="w" if part == 0 else "a", header=part == 0)
        totals += [len(frames[1]), len(frames[2]), len(frames[3]), len(frames[4])]
    installs, prefs, events, sup = (int(t) for t in totals)
    return DemoDataSummary(out_dir, customers, installs, prefs, events, sup, bad_rows)


def _part(rng: np.random.Generator, ids: np.ndarray, end: np.datetime64, bad_rows: int) -> list[pd.DataFrame]:
    """One part's files, in FILES order."""
    n = len(ids)

    weights = np.array([m[4] for m in MARKETS])
    market = rng.choice(len(MARKETS), size=n, p=weights / weights.sum())
    country = np.array([m[0] for m in MARKETS])[market]
    locale = np.array([m[1] for m in MARKETS])[market]
    currency = np.array([m[2] for m in MARKETS])[market]
    timezone = np.array([m[3] for m in MARKETS], dtype=object)[market]
    timezone[rng.random(n) < 0.03] = ""  # some profiles have no time zone: the default applies
    first_name = np.array(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), n)]
    first_name[rng.random(n) < 0.06] = ""  # and some no first name: templates fall back
    activity = rng.gamma(shape=1.2, scale=1.0, size=n)  # latent engagement drives events and value
    tier = np.array(TIERS)[np.clip((activity * 1.3).astype(int), 0, 3)]
    signup = end - rng.integers(30, 1500, n).astype("timedelta64[D]")

    # ---- app installs: ~70% of customers, mobile mostly with a push token
    has_app = rng.random(n) < 0.7
    platform_pick = rng.choice(3, size=n, p=[0.45, 0.40, 0.15])
    second = has_app & (rng.random(n) < 0.15)
    inst_cust = np.concatenate([ids[has_app], ids[second]])
    inst_platform = np.concatenate([platform_pick[has_app], (platform_pick[second] + 1) % 3])
    platforms = np.array(["ios", "android", "web"])[inst_platform]
    token = np.where(platforms == "web", rng.random(len(platforms)) < 0.4, rng.random(len(platforms)) < 0.85)
    app_id = np.where(platforms == "web", "shop_web", "shop_app")
    last_seen = end - rng.integers(0, 60 * 24 * 3600, len(platforms)).astype("timedelta64[s]")
    installs = pd.DataFrame(
        {
            "customer_id": inst_cust,
            "app_id": app_id,
            "platform": platforms,
            "push_token_present": np.where(token, "true", "false"),
            "last_seen_at": _iso(last_seen),
        }
    ).sort_values(["customer_id", "platform"], kind="stable")

    # ---- events over the last 90 days
    app_users = np.isin(ids, inst_cust)
    opens = rng.poisson(np.where(app_users, activity * 5.1, 0.0))
    buys = rng.poisson(activity * 0.6)
    ev_cust = np.concatenate([np.repeat(ids, opens), np.repeat(ids, buys)])
    ev_name = np.concatenate([np.full(opens.sum(), "app_open"), np.full(buys.sum(), "purchase")])
    ev_ts = end - rng.integers(1, EVENT_DAYS * 24 * 3600, len(ev_cust)).astype("timedelta64[s]")
    amounts = np.round(rng.lognormal(mean=3.8, sigma=0.8, size=len(ev_cust)), 2)
    ev_amount = np.where(ev_name == "purchase", amounts.astype(str), "")
    bought = ev_name == "purchase"
    ev_items = np.where(bought, (1 + rng.poisson(0.8, len(ev_cust))).astype(str), "")
    ev_category = np.where(bought, rng.choice(CATEGORIES, len(ev_cust), p=CATEGORY_SHARES), "")
    ev_coupon = np.where(bought, np.where(rng.random(len(ev_cust)) < 0.2, "true", "false"), "")
    events = pd.DataFrame(
        {
            "customer_id": ev_cust,
            "name": ev_name,
            "ts": _iso(ev_ts),
            "amount": ev_amount,
            "items": ev_items,
            "category": ev_category,
            "coupon": ev_coupon,
        }
    )
    events = events.sort_values(["ts", "customer_id"], kind="stable")

    purchases = events[events["name"] == "purchase"]
    spend = purchases.assign(amount=purchases["amount"].astype(float)).groupby("customer_id")["amount"].sum()
    last_buy = purchases.groupby("customer_id")["ts"].max()
    history = np.round(rng.lognormal(mean=4.5, sigma=1.1, size=n) * (0.5 + activity), 2)
    ltv = history + spend.reindex(ids).fillna(0.0).to_numpy()
    older = end - rng.integers(EVENT_DAYS + 1, 720, n).astype("timedelta64[D]")
    last_purchase = last_buy.reindex(ids).to_numpy(dtype=object)
    no_recent = pd.isna(last_purchase)
    bought_before = no_recent & (rng.random(n) < 0.6)
    last_purchase[bought_before] = _iso(older[bought_before])
    last_purchase[no_recent & ~bought_before] = ""

    profiles = pd.DataFrame(
        {
            "customer_id": ids,
            "first_name": first_name,
            "email": np.char.add(np.char.lower(ids.astype(str)), "@example.com"),
            "locale": locale,
            "timezone": timezone,
            "country": country,
            "currency": currency,
            "tier": tier,
            "lifetime_value": np.round(ltv, 2),
            "signup_date": np.datetime_as_string(signup, unit="D"),
            "last_purchase_at": last_purchase,
        }
    )

    # ---- preferences: one row per channel, a fifth with an earlier opposite change (history)
    pref_cust = np.repeat(ids, len(CHANNELS))
    pref_channel = np.tile(CHANNELS, n)
    p_enabled = np.tile([0.72, 0.6, 0.9], n)
    enabled = rng.random(len(pref_cust)) < p_enabled
    pref_ts = end - rng.integers(3600, 365 * 24 * 3600, len(pref_cust)).astype("timedelta64[s]")
    source = np.array(PREF_SOURCES)[rng.integers(0, len(PREF_SOURCES), len(pref_cust))]
    earlier = rng.random(len(pref_cust)) < 0.2
    prefs = pd.DataFrame(
        {
            "customer_id": np.concatenate([pref_cust, pref_cust[earlier]]),
            "channel": np.concatenate([pref_channel, pref_channel[earlier]]),
            "enabled": np.where(np.concatenate([enabled, ~enabled[earlier]]), "true", "false"),
            "ts": _iso(np.concatenate([pref_ts, pref_ts[earlier] - np.timedelta64(30, "D")])),
            "source": np.concatenate([source, source[earlier]]),
        }
    ).sort_values(["customer_id", "channel", "ts"], kind="stable")

    # ---- suppressions: ~1%
    suppressed = rng.random(n) < 0.01
    sup = pd.DataFrame(
        {
            "customer_id": ids[suppressed],
            "reason": np.array(SUPPRESSION_REASONS)[rng.integers(0, 3, suppressed.sum())],
            "since": _iso(end - rng.integers(1, 400, suppressed.sum()).astype("timedelta64[D]")),
        }
    )

    if bad_rows:
        # Rows an export really produces: an unknown tier, a value that is not a number.
        bad_at = rng.choice(n, size=min(bad_rows, n), replace=False)
        half = len(bad_at) // 2
        profiles.loc[bad_at[:half], "tier"] = "diamond"
        profiles["lifetime_value"] = profiles["lifetime_value"].astype(object)
        profiles.loc[bad_at[half:], "lifetime_value"] = "n/a"

    beta = pd.DataFrame({"customer_id": ids[rng.random(n) < 0.02]})
    return [profiles, installs, prefs, events, sup, beta]
