"""A real small night for the erasure tests, and the scans that look for a customer everywhere.

The export is the demo generator's, with a few candidates made to reach every store: a name no one
else has, gold tier, an iOS push token, opted in to every channel, on the beta list, a purchase, an
event the contract rejects (so the quarantine quotes them) and provider engagement. The night runs
as `campaigns run` does, as a process, against the provider simulator.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_devtools.demo_data import generate
from campaign_orchestrator.clock import today

# Today: a night past its date ends sends nothing (settings.delivery.max_lateness).
RUN_DATE = today()
SALT = "erasure-test-salt-" + "x" * 24
CANDIDATES = 6


def candidate_name(i: int) -> str:
    """Distinct names of one length, so none is a part of another."""
    return f"Erasmo{chr(65 + i // 26)}{chr(65 + i % 26)}"


def make_export(folder: Path, customers: int = 500) -> list[str]:
    """Generate the export and mark the candidates; returns their ids."""
    generate(folder, customers=customers, seed=5, as_of=RUN_DATE, bad_rows=2)
    profiles = pd.read_csv(folder / "customers.csv", dtype=str, keep_default_na=False)
    installs = pd.read_csv(folder / "app_installs.csv", dtype=str, keep_default_na=False)
    suppressed = set(pd.read_csv(folder / "suppressions.csv", dtype=str)["customer_id"])
    ios = set(installs[(installs.platform == "ios") & (installs.push_token_present == "true")].customer_id)
    valid = profiles[(profiles.tier.isin(["gold", "platinum"])) & (profiles.lifetime_value != "n/a")]
    chosen = [c for c in valid.customer_id if c in ios and c not in suppressed][:CANDIDATES]
    assert len(chosen) == CANDIDATES
    for i, cid in enumerate(chosen):
        profiles.loc[profiles.customer_id == cid, "first_name"] = candidate_name(i)
        profiles.loc[profiles.customer_id == cid, "timezone"] = "Europe/London"
    profiles.to_csv(folder / "customers.csv", index=False)
    ts = f"{RUN_DATE - dt.timedelta(days=1)}T10:00:00"
    prefs = pd.DataFrame(
        [
            {"customer_id": c, "channel": ch, "enabled": "true", "ts": ts, "source": "signup_form"}
            for c in chosen
            for ch in ("push", "email", "in_app")
        ]
    )
    prefs.to_csv(folder / "preferences.csv", mode="a", header=False, index=False)
    with (folder / "events.csv").open("a", encoding="utf-8") as fh:
        for cid in chosen:
            fh.write(f"{cid},purchase,{ts},42.5,1,books,false\n")
            fh.write(f"{cid},purchase,{ts},not-a-number,1,books,false\n")  # quarantined, raw kept
    with (folder / "lists" / "beta_testers.csv").open("a", encoding="utf-8") as fh:
        fh.writelines(f"{cid}\n" for cid in chosen)
    engagement = pd.DataFrame(
        [
            {
                "event_id": f"ev-{cid}",
                "event": "open",
                "at": ts,
                "customer_id": cid,
                "campaign_id": "x",
                "dispatch_id": "d1",
            }
            for cid in chosen
        ]
    )
    engagement.to_csv(folder / "engagement.csv", index=False)
    return chosen


def campaigns_cli(
    repo: Path, args: list[str], env: dict[str, str], timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "campaign_orchestrator.cli", *args],
        cwd=repo,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def table_hits(engine: Engine, needles: list[str]) -> list[str]:
    """Every table (every column cast to text) and where a needle occurs in it, case-insensitively."""
    found = []
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for name in inspector.get_table_names():
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            for row in conn.execute(sa.select(*(sa.cast(c, sa.Text) for c in table.c))):
                text = " | ".join("" if v is None else str(v) for v in row).lower()
                found += [f"{name}: {n}" for n in needles if n.lower() in text]
    return sorted(set(found))


def _file_text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace").lower()


def files(*folders: Path) -> Iterator[Path]:
    for folder in folders:
        yield from (p for p in folder.rglob("*") if p.is_file())


def file_hits(needles: list[str], *folders: Path) -> list[str]:
    return sorted({f"{p}: {n}" for p in files(*folders) for n in needles if n.lower() in _file_text(p)})


def needles(export: Path, customer_id: str) -> list[str]:
    """The customer's id, e-mail and name as the export has them."""
    profiles = pd.read_csv(export / "customers.csv", dtype=str, keep_default_na=False)
    row = profiles[profiles.customer_id == customer_id].iloc[0]
    return [customer_id, row.email, row.first_name]
