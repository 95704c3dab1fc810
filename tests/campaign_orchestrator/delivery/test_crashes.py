"""Delivery under crashes: a real `campaigns deliver` process killed with SIGKILL at random points,
then resumed, sends every message exactly once; at a provider without idempotency what a killed
worker had in flight is unknown, never resent, and reported."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from campaign_orchestrator.warehouse.tables import inapp_messages
from tests.builders import messages_in_state
from tests.campaign_orchestrator.delivery.faults_harness import (
    PUSH,
    RUN,
    assert_exactly_once,
    batch_states,
    braze_sim,
    config_dir,
    ledger,
    seed,
    set_faults,
    sim,
    stats,
)

__all__ = ["braze_sim", "sim"]  # the fixtures, from faults_harness


def deliver_process(url: str, warehouse_url: str, marketing: Path, repo: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AIRFLOW_CONN_CAMPAIGNS_PROVIDER": url.replace("http://", "http://:k@")}
    cmd = [
        sys.executable,
        "-m",
        "campaign_orchestrator.cli",
        "deliver",
        "--date",
        RUN.isoformat(),
        "--warehouse",
        warehouse_url,
        "--config",
        str(marketing),
        "--contracts",
        str(repo / "data_contracts"),
    ]
    return subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_sigkill_at_random_points_then_resume_delivers_each_message_once(warehouse, repo, tmp_path, sim):
    url, store = sim
    marketing = config_dir(
        repo, tmp_path, shards=2, max_workers=2, batch_size=10, claim_size=50, lease_s=1, timeout_s=5
    )
    _defs, ids = seed(warehouse, repo, marketing, n=600)
    warehouse_url = warehouse.url.render_as_string(hide_password=False)
    log = tmp_path / "deliver.log"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "5")))
    kills = []
    # Kill points: during start-up or the first claim, after a random number of accepted requests
    # (some mid-batch, some between batches), and, with the provider holding its answers for two
    # seconds, right after it accepted a request and before the worker could record it.
    points: list[tuple[str, float]] = [("seconds", 0.3), ("requests", float(rng.randint(2, 8)))]
    points += [("accepted_unanswered", 0.0)]
    points += [("requests", float(rng.randint(2, 8))) for _ in range(3)]
    for kind, value in points:
        set_faults(url, latency_ms=2000 if kind == "accepted_unanswered" else 15)
        before = stats(url)
        proc = deliver_process(url, warehouse_url, marketing, repo, log)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            now = stats(url)
            if kind == "seconds" and time.monotonic() > deadline - 60 + value:
                break
            if kind == "requests" and now["requests"] - before["requests"] >= value:
                break
            if kind == "accepted_unanswered" and now["recipients"] > before["recipients"]:
                break
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills.append(kind)
        else:
            assert proc.returncode == 0, log.read_text()[-3000:]
    assert len(kills) >= 5, f"only {len(kills)} kills landed: {kills}"
    assert "accepted_unanswered" in kills
    interrupted = ledger(warehouse)
    assert interrupted.get("pending", 0) + interrupted.get("in_flight", 0) > 0, "the kills left work undone"
    set_faults(url)
    proc = deliver_process(url, warehouse_url, marketing, repo, log)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert_exactly_once(warehouse, url, store, ids)
    assert stats(url)["idempotent_replays"] >= 1  # a batch accepted before a kill was resent with its key


def test_at_a_provider_without_idempotency_a_killed_workers_requests_are_unknown_never_resent_and_reported(
    warehouse, repo, tmp_path, braze_sim
):
    """Braze documents no Idempotency-Key: kill -9 a deliver right after the provider accepted a
    request and before the worker knew, resume it. The batches it had in flight may have arrived,
    so they are `unknown`, not resent (the simulator would deliver them again), and the run report
    lists them for a person to decide; everything else goes out exactly once."""
    from campaign_orchestrator.reporting.report import write_run_report
    from campaign_orchestrator.run.context import RunConfig

    url, store = braze_sim
    marketing = config_dir(
        repo, tmp_path, False, shards=1, max_workers=2, batch_size=10, claim_size=50, lease_s=1, timeout_s=5
    )
    defs, ids = seed(warehouse, repo, marketing, n=200)
    warehouse_url = warehouse.url.render_as_string(hide_password=False)
    log = tmp_path / "deliver.log"
    set_faults(url, latency_ms=2000)  # each answer is held after the request is recorded
    proc = deliver_process(url, warehouse_url, marketing, repo, log)
    deadline = time.monotonic() + 60
    while proc.poll() is None and stats(url)["recipients"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, log.read_text()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ledger(warehouse).get("in_flight", 0) > 0
    set_faults(url)
    again = deliver_process(url, warehouse_url, marketing, repo, log)
    assert again.wait(timeout=120) == 0, log.read_text()[-3000:]  # unknown is settled: nothing left to retry

    states = ledger(warehouse)
    assert states.get("unknown", 0) > 0 and states["sent"] + states["unknown"] == 400, states
    s = stats(url)
    assert s["repeated_keys"] == 0 and s["duplicates"] == 0, s  # no request went out twice
    with warehouse.connect() as conn:
        unknown = {m.customer_id for m in messages_in_state(conn, "unknown")}
        sent = {m.customer_id for m in messages_in_state(conn, "sent") if m.destination == "braze"}
    received = {user for (_camp, user) in store.per_recipient}
    assert sent <= received <= sent | unknown and received & unknown  # what was accepted unanswered is unknown
    with warehouse.connect() as conn:
        stored = conn.execute(sa.select(inapp_messages.c.customer_id)).scalars().all()
    assert sorted(stored) == ids  # the message store is transactional: its batches were simply written

    config = RunConfig(run_date=RUN, warehouse_url=warehouse_url, reports_dir=tmp_path / "reports", run_id="check")
    report_path = write_run_report(warehouse, defs, config)
    report = json.loads(report_path.read_text())
    listed = report["possibly_delivered"]
    assert listed["messages"] == states["unknown"] == report["campaigns"][PUSH]["unknown"]
    assert {r["campaign"] for r in listed["listed"]} == {PUSH} and sum(r["messages"] for r in listed["listed"]) == len(
        unknown
    )
    assert all("possibly delivered" in r["why"] and "not resent" in r["why"] for r in listed["listed"])
    assert sum(report["not_delivered"]["unknown"].values()) == len(unknown)
    md = report_path.with_suffix(".md").read_text()
    assert "## Possibly delivered (unknown)" in md and listed["listed"][0]["batch_id"] in md


def test_a_deliver_started_within_the_lease_of_a_killed_one_sends_what_it_had_claimed_ahead(
    warehouse, repo, tmp_path, sim
):
    """Kill -9 a deliver while its next claim is taken ahead, start another within the lease: the
    dead worker's unstarted claim goes back to pending when its lease ends, and the new worker
    claims it again before it says it is done (it used to exit 0 with those messages pending)."""
    url, store = sim
    marketing = config_dir(repo, tmp_path, shards=1, max_workers=1, batch_size=10, claim_size=50, lease_s=3)
    _defs, ids = seed(warehouse, repo, marketing, n=300)
    warehouse_url = warehouse.url.render_as_string(hide_password=False)
    log = tmp_path / "deliver.log"
    set_faults(url, latency_ms=400)  # a claim takes 2 s to send: the next one waits, claimed, that long
    for _try in range(3):  # the kill must land while a claim is taken ahead; rarely it lands just after
        proc = deliver_process(url, warehouse_url, marketing, repo, log)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            states = batch_states(warehouse)
            if states.get("claimed") and states.get("in_flight"):  # one claim being sent, the next taken ahead
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the deliver ended before a claim was taken ahead"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if batch_states(warehouse).get("claimed"):
            break
        time.sleep(3.5)  # let that kill's lease run out before the next try
    assert batch_states(warehouse).get("claimed"), "no kill left a claim taken ahead"
    set_faults(url)
    again = deliver_process(url, warehouse_url, marketing, repo, log)  # well within the 3 s lease
    assert again.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert_exactly_once(warehouse, url, store, ids)
    assert "600 sent, 0 pending, 0 failed, 0 unknown, 0 dead" in log.read_text()
