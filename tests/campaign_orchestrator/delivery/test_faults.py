"""Delivery under provider faults and crashes: every message exactly once, nothing lost.

The provider is the simulator over real HTTP; faults are its own (429 storms, 5xx, held requests
past the client's timeout, dropped connections, accept-then-504). Crashes are real: a
`campaigns deliver` process killed with SIGKILL at random points, then resumed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from campaign_devtools.provider_sim import make_server
from campaign_orchestrator.connections import ProviderEndpoint
from campaign_orchestrator.definitions.loader import load_definitions
from campaign_orchestrator.delivery.dispatcher import ShardDelivery
from campaign_orchestrator.ingest.contracts import load_contracts, template_variables, vocabulary
from campaign_orchestrator.render.render import render_outbox
from campaign_orchestrator.warehouse.tables import inapp_messages, target_list
from tests.builders import customer, load, messages_in_state, state_counts

RUN = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 12, 0)
PUSH, INBOX = "crash_push", "crash_inbox"


def _sim(idempotency):
    server = make_server("127.0.0.1", 0, api_key="k", idempotency=idempotency)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    yield url, server.store
    server.shutdown()
    server.server_close()


@pytest.fixture
def sim():
    """A simulator in this process (the delivery under test runs in threads or child processes) that
    honours Idempotency-Key, for the destinations these tests declare `honours_idempotency_key: true`."""
    yield from _sim("honour")


@pytest.fixture
def braze_sim():
    """The same, playing Braze: a repeated Idempotency-Key is a second delivery."""
    yield from _sim("ignore")


def set_faults(url: str, **faults: Any) -> None:
    requests.post(url + "/_sim/faults", json=faults, timeout=5).raise_for_status()


def stats(url: str) -> dict[str, Any]:
    return requests.get(url + "/_sim/stats", timeout=5).json()


def config_dir(repo: Path, tmp_path: Path, honours: bool = True, **delivery: Any) -> Path:
    """The repository's marketing folder with two campaigns (push to the provider, in-app to the
    store) and the delivery settings under test. `honours`: whether the `braze` destination honours
    Idempotency-Key (most tests here resend after faults and crashes, which only that makes safe; the
    shipped setting is false). No `max_lateness`: RUN is a past date delivered with today's clock."""
    import yaml

    target = tmp_path / "marketing"
    shutil.copytree(repo / "marketing", target)
    for f in (target / "campaigns").glob("*.yaml"):
        f.unlink()
    common = {"segment": "churned", "send_time": "now", "quiet_hours": "none"}
    (target / "campaigns" / "crash.yaml").write_text(
        yaml.safe_dump(
            {
                "campaigns": [
                    {
                        "id": PUSH,
                        "channel": "push",
                        "destination": "braze",
                        "provider_campaign_id": "p-crash",
                        "template": "winback_push",
                        **common,
                    },
                    {"id": INBOX, "channel": "in_app", "destination": "app_inbox", "template": "gold_offer", **common},
                ]
            }
        )
    )
    settings_path = target / "settings.yaml"
    settings = yaml.safe_load(settings_path.read_text())
    settings["delivery"] = {**settings["delivery"], "max_lateness": None, **delivery}
    settings["destinations"]["braze"]["honours_idempotency_key"] = honours
    settings_path.write_text(yaml.safe_dump(settings))
    return target


def seed(engine: sa.Engine, repo: Path, marketing: Path, n: int) -> tuple[Any, list[str]]:
    contracts = load_contracts(repo / "data_contracts")
    defs = load_definitions(marketing, vocabulary(contracts, frozenset({"beta_testers", "vip_list"})))
    ids = [f"K{i:05d}" for i in range(n)]
    load(engine, [customer(c, first_name=f"N{i}") for i, c in enumerate(ids)])
    with engine.begin() as conn:
        conn.execute(
            target_list.insert(),
            [
                {"run_date": RUN, "campaign_id": camp, "customer_id": c, "variant": "default", "send_at": NOW}
                for c in ids
                for camp in (PUSH, INBOX)
            ],
        )
    report = render_outbox(engine, defs, template_variables(contracts), RUN, NOW)
    assert report.rendered == {PUSH: n, INBOX: n}
    return defs, ids


def ledger(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return state_counts(conn)


def assert_exactly_once(engine: sa.Engine, url: str, store: Any, ids: list[str]) -> None:
    s = stats(url)
    assert s["duplicates"] == 0, s
    assert {user for (camp, user) in store.per_recipient if camp == "p-crash"} == set(ids)  # none outside the list
    assert all(count == 1 for count in store.per_recipient.values())
    with engine.connect() as conn:
        stored = conn.execute(sa.select(inapp_messages.c.customer_id)).scalars().all()
    assert sorted(stored) == ids
    assert ledger(engine) == {"sent": 2 * len(ids)}


# ------------------------------------------------------------------------------------ faults


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param({"storm_s": 1.0}, id="429-storm"),
        pytest.param({"rate_limit": 40, "rate_window_s": 1, "rate_burst": 4}, id="rate-limit"),
        pytest.param({"error_rate": 0.2}, id="20pct-5xx"),
        pytest.param({"timeout_rate": 0.05, "hold_s": 0.6}, id="5pct-timeouts"),
        pytest.param({"accept_then_504_rate": 0.1}, id="accept-then-504"),
        pytest.param({"drop_rate": 0.05}, id="dropped-connections"),
        pytest.param(
            {
                "storm_s": 0.5,
                "error_rate": 0.2,
                "timeout_rate": 0.05,
                "hold_s": 0.6,
                "accept_then_504_rate": 0.1,
                "drop_rate": 0.05,
                "seed": 11,
            },
            id="all-at-once",
        ),
    ],
)
def test_every_message_exactly_once_under_provider_faults(warehouse, repo, tmp_path, sim, faults):
    url, store = sim
    marketing = config_dir(repo, tmp_path, shards=2, max_workers=4, batch_size=10, timeout_s=0.3, max_attempts=10)
    defs, ids = seed(warehouse, repo, marketing, n=300)
    set_faults(url, **faults)
    resolver = lambda _conn_id: ProviderEndpoint(url, "k")  # noqa: E731
    quick = lambda s: time.sleep(s / 10)  # noqa: E731 - backoff and Retry-After, a tenth as long
    for _round in range(3):  # what Airflow's task retries would do, should a batch give up
        for shard in range(2):
            ShardDelivery(warehouse, defs, RUN, shard, 2, resolver, sleep=quick).run()
        if ledger(warehouse) == {"sent": 600}:
            break
    assert_exactly_once(warehouse, url, store, ids)
    injected = stats(url)["injected"]
    assert injected, "the faults were injected"
    if faults.get("accept_then_504_rate"):
        assert stats(url)["idempotent_replays"] >= injected["accept_then_504"]  # lost answers were recovered


def test_a_batch_that_gave_up_is_retried_later_with_the_same_key(warehouse, repo, tmp_path, sim):
    """Accepted-then-504 on every attempt: the rows give up as `failed`, though the provider has
    them. The next run must resend them under the key of the request that failed, so the provider
    recognises them instead of sending again."""
    url, store = sim
    marketing = config_dir(
        repo, tmp_path, shards=1, max_workers=2, batch_size=10, max_attempts=1, stop_after_failed_batches=100
    )
    defs, ids = seed(warehouse, repo, marketing, n=60)
    set_faults(url, accept_then_504_rate=1.0)
    resolver = lambda _conn_id: ProviderEndpoint(url, "k")  # noqa: E731
    quick = lambda s: time.sleep(s / 50)  # noqa: E731
    ShardDelivery(warehouse, defs, RUN, 0, 1, resolver, sleep=quick).run()
    assert ledger(warehouse) == {"failed": 60, "sent": 60}  # the in-app half went to the store
    assert stats(url)["unique"] == 60  # ... and the provider has every push already
    set_faults(url)
    # The next attempt (an Airflow retry, or the operator after changing the delivery settings)
    # resends them; cut into new batches they would get new keys and go out twice.
    delivery = defs.settings.delivery.model_copy(update={"max_attempts": 3, "batch_size": 7})
    retry = dataclasses.replace(defs, settings=defs.settings.model_copy(update={"delivery": delivery}))
    ShardDelivery(warehouse, retry, RUN, 0, 1, resolver, sleep=quick).run()
    assert_exactly_once(warehouse, url, store, ids)
    assert stats(url)["idempotent_replays"] >= 6  # every push batch was recognised by its old key


def test_without_idempotency_an_ambiguous_failure_is_unknown_never_resent(warehouse, repo, tmp_path, braze_sim):
    url, store = braze_sim
    marketing = config_dir(
        repo, tmp_path, False, shards=1, max_workers=2, batch_size=10, max_attempts=5, stop_after_failed_batches=100
    )
    defs, _ = seed(warehouse, repo, marketing, n=100)
    assert not defs.settings.destinations["braze"].honours_idempotency_key
    set_faults(url, accept_then_504_rate=0.3, storm_s=0.3, seed=3)
    resolver = lambda _conn_id: ProviderEndpoint(url, "k")  # noqa: E731
    ShardDelivery(warehouse, defs, RUN, 0, 1, resolver, sleep=lambda s: time.sleep(s / 10)).run()
    states = ledger(warehouse)
    assert states.get("unknown", 0) > 0 and states.get("failed", 0) == 0
    assert stats(url)["duplicates"] == 0 and stats(url)["idempotent_replays"] == 0
    assert stats(url)["repeated_keys"] == 0  # no request was offered twice: the simulator would have sent it again
    # Each unknown row was accepted once by the provider (the 504 lost only the answer), never twice.
    with warehouse.connect() as conn:
        unknown = {m.customer_id for m in messages_in_state(conn, "unknown")}
    assert unknown <= {user for (_camp, user) in store.per_recipient}
    assert states["sent"] + states["unknown"] == 200


def test_two_workers_started_at_once_deliver_each_row_once(warehouse, repo, tmp_path, sim):
    url, store = sim
    marketing = config_dir(repo, tmp_path, shards=1, max_workers=2, batch_size=10, claim_size=50)
    defs, ids = seed(warehouse, repo, marketing, n=400)
    set_faults(url, latency_ms=5)
    resolver = lambda _conn_id: ProviderEndpoint(url, "k")  # noqa: E731
    start = threading.Barrier(2)
    reports = []

    def worker() -> None:
        start.wait()
        reports.append(ShardDelivery(warehouse, defs, RUN, 0, 1, resolver).run())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.total_sent > 0 for r in reports), "both workers took part"
    assert sum(r.total_sent for r in reports) == 800
    assert stats(url)["idempotent_replays"] == 0  # no row was even offered twice
    assert_exactly_once(warehouse, url, store, ids)


# ------------------------------------------------------------------------------------ crashes


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


def batch_states(engine: sa.Engine) -> dict[str, int]:
    from campaign_orchestrator.warehouse.tables import delivery_batches

    with engine.connect() as conn:
        rows = conn.execute(sa.select(delivery_batches.c.state, sa.func.count()).group_by(delivery_batches.c.state))
        return {state: int(n) for state, n in rows}


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


def deliver_cli(url: str, warehouse: sa.Engine, marketing: Path, repo: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIRFLOW_CONN_CAMPAIGNS_PROVIDER": url}
    cmd = [sys.executable, "-m", "campaign_orchestrator.cli", "deliver", "--date", RUN.isoformat()]
    cmd += ["--warehouse", warehouse.url.render_as_string(hide_password=False), "--config", str(marketing)]
    cmd += ["--contracts", str(repo / "data_contracts")]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)


def _unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("provider", ["refuses the API key", "unreachable", "answers 500 to everything"])
def test_a_deliver_that_could_send_nothing_ends_red_naming_the_cause(warehouse, repo, tmp_path, sim, provider):
    """Nothing could be sent: the deliver exits non-zero within its retry budget with the cause,
    the messages stay pending or failed for the next attempt, and none is `unknown` that never left."""
    url, store = sim
    marketing = config_dir(repo, tmp_path, shards=2, max_workers=2, batch_size=10, max_attempts=3, timeout_s=2)
    _defs, ids = seed(warehouse, repo, marketing, n=400)
    connection = url.replace("http://", "http://:k@")
    if provider == "refuses the API key":
        connection = url.replace("http://", "http://:wrong-key@")
    elif provider == "unreachable":
        connection = f"http://:k@127.0.0.1:{_unused_port()}"
    else:
        set_faults(url, fail_next=10**6, status=500)
    started = time.monotonic()
    result = deliver_cli(connection, warehouse, marketing, repo)
    took = time.monotonic() - started
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    expected = {
        "refuses the API key": "HTTP 401: Invalid API key",
        "unreachable": "connection refused",
        "answers 500 to everything": "HTTP 500",
    }[provider]
    assert expected in out and "Traceback" not in out, out
    assert "400 sent" in out  # the in-app half went to the message store all the same
    states = ledger(warehouse)
    assert states.get("unknown", 0) == 0 and states.get("dead", 0) == 0, states
    assert states["sent"] == 400 and states.get("pending", 0) + states.get("failed", 0) == 400, states
    assert took < 120, f"{took:.0f}s"
    # The cause fixed, the next attempt sends them all, once.
    set_faults(url)
    assert deliver_cli(url.replace("http://", "http://:k@"), warehouse, marketing, repo).returncode == 0
    assert_exactly_once(warehouse, url, store, ids)


@pytest.mark.parametrize(
    "connection",
    ["http://:k@127.0.0.1:notaport", '{"conn_type": "http", "host": "127.0.0.1"', "ftp://:k@127.0.0.1:1", "http://"],
    ids=["bad port", "broken JSON", "not http", "no host"],
)
def test_a_malformed_provider_connection_claims_nothing(warehouse, repo, tmp_path, sim, connection):
    url, _store = sim
    marketing = config_dir(repo, tmp_path, shards=1, max_workers=2, batch_size=10)
    seed(warehouse, repo, marketing, n=100)
    before = batch_states(warehouse)
    result = deliver_cli(connection, warehouse, marketing, repo)
    assert result.returncode != 0 and "nothing was claimed or sent" in result.stderr, result.stderr
    assert "destination 'braze' (connection 'campaigns_provider')" in result.stderr
    assert "Traceback" not in result.stderr and ":k@" not in result.stderr
    assert batch_states(warehouse) == before  # not one batch claimed, in flight or unknown
    assert stats(url)["requests"] == 0
