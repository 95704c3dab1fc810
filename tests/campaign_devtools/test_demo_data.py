from __future__ import annotations

import datetime as dt
import hashlib

import pandas as pd

from campaign_devtools.demo_data import generate

AS_OF = dt.date(2026, 11, 22)


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.csv"))}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    generate(tmp_path / "a", customers=500, seed=3, as_of=AS_OF)
    generate(tmp_path / "b", customers=500, seed=3, as_of=AS_OF)
    generate(tmp_path / "c", customers=500, seed=4, as_of=AS_OF)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def test_the_sample_has_what_the_product_needs(tmp_path):
    s = generate(tmp_path, customers=3000, as_of=AS_OF)
    profiles = pd.read_csv(tmp_path / "customers.csv", keep_default_na=False)
    installs = pd.read_csv(tmp_path / "app_installs.csv")
    prefs = pd.read_csv(tmp_path / "preferences.csv")
    events = pd.read_csv(tmp_path / "events.csv", parse_dates=["ts"])
    assert len(profiles) == s.customers == 3000 and profiles["customer_id"].is_unique
    assert profiles.loc[profiles["timezone"] != "", "timezone"].nunique() >= 8
    assert set(installs["platform"]) == {"ios", "android", "web"}
    assert set(prefs["channel"]) == {"push", "email", "in_app"}
    assert set(events["name"]) == {"purchase", "app_open"}
    span = (pd.Timestamp(AS_OF) - events["ts"].min()).days
    assert 85 <= span <= 90 and events["ts"].max() < pd.Timestamp(AS_OF)
    assert (prefs.groupby(["customer_id", "channel"]).size() > 1).any()  # some preference history


def test_bad_rows_are_broken_on_purpose(tmp_path):
    generate(tmp_path, customers=200, as_of=AS_OF, bad_rows=4)
    profiles = pd.read_csv(tmp_path / "customers.csv", dtype=str, keep_default_na=False)
    assert (profiles["tier"] == "diamond").sum() == 2 and (profiles["lifetime_value"] == "n/a").sum() == 2


def test_past_one_part_the_data_is_appended_part_by_part_and_begins_with_the_smaller_set(tmp_path, monkeypatch):
    import campaign_devtools.demo_data as demo_data

    monkeypatch.setattr(demo_data, "PART", 2000)
    day = dt.date(2026, 11, 22)
    small = demo_data.generate(tmp_path / "small", customers=2000, as_of=day)
    big = demo_data.generate(tmp_path / "big", customers=5000, as_of=day)

    profiles = pd.read_csv(tmp_path / "big" / "customers.csv", dtype=str)
    assert profiles["customer_id"].is_unique and len(profiles) == 5000
    assert profiles["customer_id"].iloc[-1] == "C0005000"
    first = pd.read_csv(tmp_path / "small" / "customers.csv", dtype=str)
    pd.testing.assert_frame_equal(profiles.iloc[:2000], first)  # part 0 is the 2,000 set
    events = pd.read_csv(tmp_path / "big" / "events.csv", dtype=str)
    assert len(events) == big.events > small.events * 2
    assert set(events["customer_id"]) <= set(profiles["customer_id"])
