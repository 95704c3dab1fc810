"""No personal data where it does not belong: canary values in every customer's name and email and in
event properties go through a night in Airflow (with render errors), a failed import, the measurement
commands and the inbox service's calls; none of them appears in any log, task log, XCom (Airflow's
whole metadata database is scanned), run report, error message or metrics output.

The canary is one random token per test run inside every planted value, so a leak of any of them,
anywhere, is found by looking for the token. The data itself (the warehouse, the import archive,
quarantine rows) is where personal data is meant to be, and is not scanned.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import requests

from campaign_devtools.demo import DemoError, airflow_env, dags_test, ensure_airflow_db
from campaign_devtools.demo_data import generate
from tests.builders import marketing_copy
from tests.campaign_orchestrator.inbox.conftest import SERVER_KEY, Inbox, event, start_inbox
from tests.e2e.conftest import RUN_DATE, SimProcess

TOKEN = "cnry" + uuid.uuid4().hex[:12]
LONG = "x" * 70  # a name this long breaks the push title's 65 characters: a render error for them


def plant(folder: Path) -> int:
    """Canaries in every first name and email, in purchase categories; a few names too long to send.
    Returns how many customers got a name too long for a push title."""
    people = pd.read_csv(folder / "customers.csv", dtype=str, keep_default_na=False)
    people["first_name"] = [f"{TOKEN}n{i}" for i in range(len(people))]
    too_long = people.index % 20 == 0
    people.loc[too_long, "first_name"] = people.loc[too_long, "first_name"] + LONG
    people["email"] = [f"{TOKEN}.{i}@example.com" for i in range(len(people))]
    people.to_csv(folder / "customers.csv", index=False)
    events = pd.read_csv(folder / "events.csv", dtype=str, keep_default_na=False)
    events.loc[events["category"] != "", "category"] = TOKEN + events["category"]
    events.to_csv(folder / "events.csv", index=False)
    return int(too_long.sum())


def leaks(text: str) -> list[str]:
    """Each place the token appears, with a little context, for the failure message."""
    return [text[max(0, m.start() - 80) : m.end() + 40] for m in re.finditer(TOKEN, text)]


def scan_files(folder: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        hits = leaks(path.read_bytes().decode("utf-8", errors="replace"))
        if hits:
            found[str(path.relative_to(folder))] = hits[:3]
    return found


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "campaign_orchestrator.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env or dict(os.environ),
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )


@pytest.mark.airflow
@pytest.mark.xdist_group("airflow")
def test_no_canary_leaves_the_data_for_logs_reports_errors_or_metrics(
    repo: Path, sim_process: SimProcess, tmp_path: Path
):
    export = tmp_path / "export"
    generate(export, customers=600, seed=5, as_of=RUN_DATE, bad_rows=3)
    too_long = plant(export)
    home, reports, warehouse = tmp_path / "airflow_home", tmp_path / "reports", f"sqlite:///{tmp_path / 'wh.sqlite'}"
    env = airflow_env(repo, home)
    env.update(
        CAMPAIGNS_CONFIG_DIR=str(marketing_copy(repo, tmp_path / "marketing")),  # no lateness limit: RUN_DATE is past
        CAMPAIGNS_WAREHOUSE_URL=warehouse,
        CAMPAIGNS_SOURCES_DIR=str(export),
        CAMPAIGNS_REPORTS_DIR=str(reports),
        CAMPAIGNS_ARCHIVE_DIR=str(tmp_path / "archive"),
        AIRFLOW_CONN_CAMPAIGNS_PROVIDER=sim_process.connection_uri,
    )
    home.mkdir()
    ensure_airflow_db(env, tmp_path / "migrate.log")

    # 1. A night in Airflow: every task's log, XCom and rendered field lands in the home folder. The
    # long names hold winback_push (render errors over the share), so the night ends failed: its
    # error messages are scanned too.
    with contextlib.suppress(DemoError):
        dags_test(env, RUN_DATE, tmp_path / "night.log")
    assert "held, not delivered (render failures" in (tmp_path / "night.log").read_text()
    report = (reports / RUN_DATE.isoformat() / "run_report.json").read_text()
    assert '"render_errors"' in report and sim_process.get("/_sim/stats")["recipients"] > 0
    received = str(sim_process.get("/_sim/recipients"))
    assert TOKEN in received  # the canaries did go out, to the provider, where they belong
    assert too_long > 0 and re.search(r'"render_errors": [1-9]', report), report[:2000]

    # 2. A failed import: a tenth of tomorrow's profiles break the contract, with canaries in them.
    broken = tmp_path / "broken"
    generate(broken, customers=600, seed=6, as_of=RUN_DATE, bad_rows=0)
    plant(broken)
    people = pd.read_csv(broken / "customers.csv", dtype=str, keep_default_na=False)
    people.loc[people.index % 10 == 0, "tier"] = TOKEN + "tier"
    people.to_csv(broken / "customers.csv", index=False)
    failed = cli("import", "--date", RUN_DATE.isoformat(), "--warehouse", warehouse, "--sources", str(broken),
                 "--archive", str(tmp_path / "archive2"))  # fmt: skip
    assert failed.returncode != 0 and "customers" in failed.stderr + failed.stdout

    # 3. Measurement and the report commands.
    measured = cli("measure", "--date", RUN_DATE.isoformat(), "--warehouse", warehouse)
    reported = cli("report", "--date", RUN_DATE.isoformat(), "--warehouse", warehouse, "--html",
                   str(tmp_path / "report.html"))  # fmt: skip

    # 4. The inbox, over HTTP, for a canary customer: feed, events with canary sessions, a bad request.
    log = tmp_path / "inbox.log"
    process, url = start_inbox(warehouse, repo / "marketing", log)
    try:
        inbox = Inbox(url, None, repo / "marketing", log)  # type: ignore[arg-type]
        customer = pd.read_csv(export / "customers.csv", dtype=str)["customer_id"].iloc[1]
        items = inbox.feed(customer)["items"]
        target = items[0]["id"] if items else str(uuid.uuid4())
        inbox.post(f"/v1/customers/{customer}/events", customer,
                   {"events": [event(target, session=TOKEN + "s", app=TOKEN + "a")]})  # fmt: skip
        bad = inbox.post(f"/v1/customers/{customer}/events", customer, {"events": [{"type": TOKEN + "t"}]})
        assert bad.status_code == 422
        inbox.put(f"/v1/customers/{customer}/preferences", customer, {"push": {"enabled": TOKEN}})
        requests.get(f"{url}/v1/customers/{TOKEN}/feed", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        requests.delete(f"{url}/v1/customers/{TOKEN}", headers={"Authorization": f"Bearer {SERVER_KEY}"}, timeout=30)
    finally:
        process.terminate()
        process.wait(timeout=30)

    found = {
        **{f"airflow home: {k}": v for k, v in scan_files(home).items()},
        **{f"reports: {k}": v for k, v in scan_files(reports).items()},
        "the night's output": leaks((tmp_path / "night.log").read_text(errors="replace"))[:3],
        "the failed import's output": leaks(failed.stdout + failed.stderr)[:3],
        "campaigns measure": leaks(measured.stdout + measured.stderr)[:3],
        "campaigns report": leaks(reported.stdout + reported.stderr + (tmp_path / "report.html").read_text())[:3],
        "the inbox's log": leaks(log.read_text(errors="replace"))[:3],
    }
    assert {k: v for k, v in found.items() if v} == {}
