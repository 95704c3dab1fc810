"""Delivery under provider faults: every message exactly once, nothing lost.

The provider is the simulator over real HTTP; faults are its own (429 storms, 5xx, held requests
past the client's timeout, dropped connections, accept-then-504), and a provider that can take
nothing (refused key, unreachable, 500 to everything, a malformed connection) ends the task red."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from campaign_orchestrator.connections import ProviderEndpoint
from campaign_orchestrator.delivery.dispatcher import ShardDelivery
from tests.builders import messages_in_state
from tests.campaign_orchestrator.delivery.faults_harness import (
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
