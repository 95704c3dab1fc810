"""The stack test's two workers: what the kill reaches, what the stack's settings say, and what
the spread check refuses. The kill and the spread themselves run in `make stack-test`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

from campaign_devtools.stack_workers import (
    HOSTNAME_VARIABLE,
    LEASE_S,
    WORKERS,
    check_spread,
    kill_worker,
    stack_marketing,
    worker_env,
    worker_hostname,
)
from campaign_orchestrator.definitions import load_definitions
from campaign_orchestrator.ingest.contracts import load_contracts, vocabulary

# A "worker" whose child, like Airflow's task runner, puts itself in a process group of its own.
WORKER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(120)
"""


def test_killing_a_worker_kills_the_task_runners_that_left_its_process_group() -> None:
    worker = subprocess.Popen([sys.executable, "-c", WORKER], stdout=subprocess.PIPE, start_new_session=True)
    assert worker.stdout is not None
    runner = int(worker.stdout.readline())
    assert psutil.Process(runner).is_running()

    killed = kill_worker(worker.pid)

    assert set(killed) == {worker.pid, runner}
    worker.wait(timeout=10)  # kill_worker reaped it already: its own child
    deadline = time.monotonic() + 10
    for pid in (worker.pid, runner):
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, f"{pid} outlived the kill"
            time.sleep(0.05)


def test_a_worker_gone_already_is_nothing_to_kill() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert kill_worker(gone.pid) == []


def test_each_worker_names_the_task_instances_it_runs(monkeypatch) -> None:
    env = worker_env({"PATH": "x"}, WORKERS[1], 8799)
    assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "campaign_devtools.stack_workers.worker_hostname"
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "8799"
    monkeypatch.setenv(HOSTNAME_VARIABLE, env[HOSTNAME_VARIABLE])
    assert worker_hostname() == "airflow-worker-2"
    monkeypatch.delenv(HOSTNAME_VARIABLE)
    assert worker_hostname() != "airflow-worker-2"


def test_the_stacks_settings_are_the_shipped_ones_with_a_key_honouring_provider_and_a_short_lease(
    repo: Path, tmp_path: Path
) -> None:
    folder = stack_marketing(repo, tmp_path / "marketing")
    contracts = load_contracts(repo / "data_contracts")
    settings = load_definitions(folder, vocabulary(contracts)).settings  # the whole folder still loads
    assert settings.delivery.lease_s == LEASE_S and settings.delivery.max_workers == 1
    assert settings.destinations["braze"].honours_idempotency_key is True
    shipped = yaml.safe_load((repo / "marketing" / "settings.yaml").read_text())
    assert shipped["destinations"]["braze"]["honours_idempotency_key"] is False  # the copy only
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (repo / "marketing").iterdir())


def _try(n: int, worker: str, state: str) -> dict[str, object]:
    return {"try": n, "worker": worker, "state": state}


def test_the_spread_check_wants_both_workers_the_cut_shards_finished_on_the_survivor_and_a_kill_mid_delivery() -> None:
    one, two = WORKERS
    killed = {"shards": [("run", 1)], "requests_before": 8}
    good = {0: [_try(1, one, "success")], 1: [_try(1, two, "failed"), _try(2, one, "success")]}
    assert check_spread(good, killed, requests=40) == []

    only_one = {0: [_try(1, one, "success")], 1: [_try(1, one, "success")]}
    assert any("not on both workers" in p for p in check_spread(only_one, killed, 40))
    not_retried = {0: [_try(1, one, "success")], 1: [_try(1, two, "failed")]}
    problems = check_spread(not_retried, killed, 40)
    assert any("shard 1, cut by the kill" in p for p in problems) and any("not successful" in p for p in problems)
    assert any("after delivery" in p for p in check_spread(good, killed, requests=8))
