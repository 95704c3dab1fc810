"""The two servers the bench loads, each a uvicorn process tree started and stopped by the bench.

The service is started exactly as an operator would (`campaigns inbox serve ...`), the floor with
the same uvicorn arguments (floor.serve). Each runs in its own session so its workers are stopped
with it; the bench waits until a real feed request answers 200 before any load starts, and
counts the CPU seconds the tree used, which says how much of the two cores the server took.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil


class ServerError(RuntimeError):
    """A server did not come up (its log says why)."""


@dataclass
class Server:
    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and its workers so far (workers still alive)."""
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for proc in tree:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
        return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _campaigns_cli() -> str:
    beside = Path(sys.executable).with_name("campaigns")
    return str(beside) if beside.exists() else "campaigns"


def service_command(port: int, store_url: str, config_dir: Path, workers: int) -> list[str]:
    return [
        _campaigns_cli(),
        "inbox",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--store",
        store_url,
        "--config",
        str(config_dir),
        "--rate-limit",
        "1000000/minute",
        "--workers",
        str(workers),
    ]


def floor_command(port: int, store_url: str, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "campaign_devtools.bench.inbox.floor",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--store",
        store_url,
        "--workers",
        str(workers),
    ]


def _wait_ready(server: Server, probe: urllib.request.Request, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise ServerError(f"the {server.name} exited ({server.process.returncode}); see {server.log}")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(probe, timeout=5) as answer,  # noqa: S310 - our own loopback server
        ):
            if answer.status == 200:
                return
        if time.monotonic() > deadline:
            raise ServerError(f"the {server.name} did not answer {probe.full_url} in {timeout_s:.0f} s: {server.log}")
        time.sleep(0.2)


@contextmanager
def running(
    name: str,
    command: list[str],
    env: dict[str, str],
    port: int,
    probe_path: str,
    probe_headers: dict[str, str],
    log: Path,
) -> Iterator[Server]:
    """Start `command`, wait until GET probe_path answers 200, yield, then stop the whole tree."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        server = Server(name, f"http://127.0.0.1:{port}", process, log)
        try:
            probe = urllib.request.Request(server.base_url + probe_path, headers=probe_headers)  # noqa: S310
            _wait_ready(server, probe)
            yield server
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (uvicorn's graceful shutdown, workers included), then SIGKILL to the session we created."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
    with suppress(ProcessLookupError):  # a worker left behind, or a leader that did not stop
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
