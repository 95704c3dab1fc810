"""Two Celery workers for the stack test, and one of them killed with SIGKILL in mid-delivery.

Each worker is its own `airflow celery worker` process group with its own concurrency, Celery
hostname and log-server port. The task instances it runs carry its name as their hostname
(`worker_hostname` is the `hostname_callable` and reads it from the worker's environment), so
Airflow's own record of each try says which worker ran which shard.

Killing a worker kills every process it started, as the loss of a node or a container would: the
Celery pool, the task supervisors and the task runners (which put themselves in process groups of
their own). The scheduler then finds the dead worker's task instances without a heartbeat
(`task_instance_heartbeat_timeout`, short here), fails them into their retry, and the retry on the
surviving worker waits out the dead claims' lease and takes their batches over: a provider that
honours the Idempotency-Key is sent the in-flight batch again under the same key and does not
deliver it twice. The stack plays that provider (the simulator in `honour` mode, the destination
saying so); with Braze's own semantics the same crash leaves that batch `unknown`, never resent,
which the delivery tests cover (tests/campaign_orchestrator/delivery/test_faults.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

WORKERS = ("airflow-worker-1", "airflow-worker-2")
VICTIM = WORKERS[1]
CONCURRENCY = 2  # each worker's own: with Celery's prefetch of 1, 4 shards cannot all go to one
HOSTNAME_VARIABLE = "CAMPAIGNS_STACK_WORKER"
HEARTBEAT_TIMEOUT_S = 20  # the scheduler's: a dead worker's task instances fail into their retry
LEASE_S = 10.0  # the stack's delivery.lease_s: the retry takes the dead claims over this soon
SEND_LATENCY_MS = 1200  # the simulator's, so that a shard's delivery lasts long enough to be cut
KILL_AFTER_REQUESTS = 8  # the kill comes once the night has sent this many requests, not before
SENDERS_PER_SHARD = 1  # the stack's delivery.max_workers, for the same reason


def worker_hostname() -> str:
    """`[core] hostname_callable` of the stack's workers: the worker's name, else this host's."""
    return os.environ.get(HOSTNAME_VARIABLE) or socket.getfqdn()


def worker_env(env: dict[str, str], name: str, log_server_port: int) -> dict[str, str]:
    """A worker's environment: its name as the hostname its task instances record, its own log server."""
    return {
        **env,
        HOSTNAME_VARIABLE: name,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_server_port),
    }


def worker_args(name: str) -> list[str]:
    """`airflow celery worker` as docker-compose runs it, named and with its own concurrency."""
    return ["celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", str(CONCURRENCY)]


def stack_marketing(project: Path, target: Path) -> Path:
    """The shipped marketing folder with the stack's delivery settings: a provider that honours the
    Idempotency-Key (the simulator plays one here), a short lease and one sender per shard."""
    import shutil

    shutil.copytree(project / "marketing", target)
    settings_file = target / "settings.yaml"
    settings = yaml.safe_load(settings_file.read_text())
    settings["delivery"].update({"lease_s": LEASE_S, "max_workers": SENDERS_PER_SHARD})
    for destination in settings["destinations"].values():
        if destination["kind"] == "provider":
            destination["honours_idempotency_key"] = True
    settings_file.write_text(yaml.safe_dump(settings, sort_keys=False))
    return target


def kill_worker(pid: int) -> list[int]:
    """SIGKILL a worker and every process it started; the pids killed."""
    import psutil

    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for proc in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(family, timeout=10)
    return [p.pid for p in family]


def deliver_tries(call: Callable[..., Any], dag_id: str, run_id: str) -> dict[int, list[dict[str, Any]]]:
    """Every try of every `deliver` shard of a run: which worker, which state, in order."""
    listed = call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"task_id": "deliver"})
    tries: dict[int, list[dict[str, Any]]] = {}
    for ti in listed["task_instances"]:
        if ti["task_id"] != "deliver":
            continue
        shard = int(ti["map_index"])
        found = call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/deliver/{shard}/tries")
        tries[shard] = [
            {"try": t["try_number"], "worker": t["hostname"], "state": t["state"]}
            for t in sorted(found["task_instances"], key=lambda t: t["try_number"])
        ]
    return dict(sorted(tries.items()))


def running_on(call: Callable[..., Any], dag_id: str, worker: str) -> list[tuple[str, int]]:
    """The (run, shard) of every `deliver` task instance running on `worker` now, in any run."""
    listed = call("GET", f"/dags/{dag_id}/dagRuns/~/taskInstances", params={"state": "running", "limit": 100})
    return [
        (ti["dag_run_id"], int(ti["map_index"]))
        for ti in listed["task_instances"]
        if ti["task_id"] == "deliver" and ti.get("hostname") == worker
    ]


def wait_and_kill(
    call: Callable[..., Any],
    dag_id: str,
    pid: int,
    requests_so_far: Callable[[], int],
    alive: Callable[[], None],
    timeout: float = 600,
) -> dict[str, Any]:
    """Wait until the victim runs a deliver shard that has sent to the provider, then kill it.

    Stale nights send nothing, so "the provider has had requests and the victim runs a shard" is
    the sending night mid-delivery, whichever of the stack's two runs that is. With one sender per
    shard and a slow provider, the victim's shards each have a request out most of the time: it
    is recorded by the simulator, never answered to the victim, and taken over by the retry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive()
        shards = running_on(call, dag_id, VICTIM)
        sent = requests_so_far()
        if shards and sent >= KILL_AFTER_REQUESTS:
            killed = kill_worker(pid)
            return {"worker": VICTIM, "shards": shards, "requests_before": sent, "pids": len(killed)}
        time.sleep(0.3)
    raise TimeoutError(f"{VICTIM} never ran a deliver shard while the provider was being sent to")


def check_spread(tries: dict[int, list[dict[str, Any]]], killed: dict[str, Any], requests: int) -> list[str]:
    """What must hold of the sending night's shards: the kill came mid-delivery (requests followed
    it), both workers ran shards, the victim's were tried again on the survivor, and every shard
    ended in success."""
    problems = []
    if requests <= killed["requests_before"]:
        problems.append(f"the kill came after delivery: {requests} requests, {killed['requests_before']} before it")
    first = {t[0]["worker"] for t in tries.values() if t}
    if set(WORKERS) - first:
        problems.append(f"the shards' first tries ran on {sorted(first)} only, not on both workers")
    cut = {shard for run, shard in killed["shards"]}
    for shard in cut:
        later = tries.get(shard, [])[1:]
        if not any(t["worker"] == WORKERS[0] and t["state"] == "success" for t in later):
            problems.append(f"shard {shard}, cut by the kill, was not finished on {WORKERS[0]}: {tries.get(shard)}")
    unfinished = {s: t[-1] for s, t in tries.items() if not t or t[-1]["state"] != "success"}
    if unfinished:
        problems.append(f"shards not successful: {unfinished}")
    return problems
