"""End-to-end fixtures: a generated export and the provider simulator as its own process."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from campaign_devtools.demo_data import generate

RUN_DATE = dt.date(2026, 11, 22)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    generate(folder, customers=1500, seed=11, as_of=RUN_DATE, bad_rows=3)
    return folder


class SimProcess:
    def __init__(self, url: str, api_key: str) -> None:
        self.url, self.api_key = url, api_key

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.load(r)

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/_sim/reset", data=b"{}", method="POST")
        urllib.request.urlopen(req, timeout=10).close()

    @property
    def connection_uri(self) -> str:
        return self.url.replace("http://", f"http://:{self.api_key}@")


@pytest.fixture
def sim_process(tmp_path) -> Iterator[SimProcess]:
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "campaign_devtools",
            "provider-sim",
            "--port",
            "0",
            "--port-file",
            str(port_file),
        ],
        env={**os.environ, "PROVIDER_SIM_API_KEY": "e2e-key"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.05)
    yield SimProcess(f"http://127.0.0.1:{port_file.read_text()}", "e2e-key")
    proc.terminate()
    proc.wait(timeout=10)


def not_allowed(export: Path) -> dict[str, set[str]]:
    """Per channel, customers who must receive nothing, computed from the raw files, not the warehouse."""
    prefs = pd.read_csv(export / "preferences.csv", parse_dates=["ts"])
    prefs["enabled"] = prefs["enabled"].astype(str).str.lower() == "true"
    newest = prefs.groupby(["customer_id", "channel"])["ts"].max().reset_index()
    # The newest change per channel decides; at a tie an opt-out wins (min of enabled).
    latest = (
        prefs.merge(newest, on=["customer_id", "channel", "ts"]).groupby(["customer_id", "channel"])["enabled"].min()
    )
    suppressed = set(pd.read_csv(export / "suppressions.csv")["customer_id"])
    everyone = set(pd.read_csv(export / "customers.csv")["customer_id"])
    out = {}
    for channel in ("push", "email", "in_app"):
        opted_in = {cid for (cid, ch), ok in latest.items() if ch == channel and ok}
        out[channel] = (everyone - opted_in) | suppressed
    return out
