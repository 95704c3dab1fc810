"""The demo's Airflow home (`.airflow/`), usable afterwards as a real Airflow: `make ui`.

- `airflow.cfg` is written with the project's folders (dags, plugins, logs) and without Airflow's
  examples, so a plain `AIRFLOW_HOME=.airflow airflow standalone` shows `nightly_campaigns`
  (Airflow's own generated file points `dags_folder` at `.airflow/dags` and loads the examples).
- `airflow dags test` runs every task in one process and prints their logs to one stream, which
  leaves Airflow's UI with "Log file not found" for every task: `file_task_logs` cuts that stream
  at the task boundaries `dags test` prints and files each part where the UI looks for it
  (`dag_id=/run_id=/task_id=/[map_index=/]attempt=N.log`, Airflow's default log template).
- `serve_ui` starts the api-server, scheduler and dag-processor on that home until interrupted,
  with a generated admin password it prints.
"""

from __future__ import annotations

import configparser
import json
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

DAG_ID = "nightly_campaigns"
_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")
_RUN_ID = re.compile(r"run_id='([^']+)'")


def write_airflow_cfg(home: Path, project: Path) -> Path:
    """An airflow.cfg that says what the demo's environment says, for any later `airflow` command."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg["core"] = {
        "dags_folder": str(project / "dags"),
        "plugins_folder": str(project / "plugins"),
        "load_examples": "False",
        "dags_are_paused_at_creation": "True",
        "simple_auth_manager_users": "admin:admin",
        "simple_auth_manager_passwords_file": str(home / "passwords.json"),
    }
    cfg["logging"] = {"base_log_folder": str(home / "logs")}
    path = home / "airflow.cfg"
    with path.open("w") as out:
        cfg.write(out)
    return path


def file_task_logs(dags_test_log: Path, logs: Path) -> list[Path]:
    """Cut the `dags test` output into one log per task attempt, filed as Airflow's UI expects."""
    text = dags_test_log.read_text(errors="replace")
    found = _RUN_ID.search(text)
    if found is None:
        return []
    run_id = found.group(1)
    written: list[Path] = []
    attempts: dict[tuple[str, int], int] = {}
    current: tuple[str, int] | None = None
    lines: list[str] = []
    for line in text.splitlines():
        start = _START.search(line)
        if start:
            current, lines = (start.group(1), int(start.group(2))), []
        if current is not None:
            lines.append(line)
        end = _END.search(line)
        if end and current is not None:
            attempts[current] = attempts.get(current, 0) + 1
            written.append(_write(logs, run_id, current, attempts[current], lines))
            current = None
    return written


def _write(logs: Path, run_id: str, task: tuple[str, int], attempt: int, lines: list[str]) -> Path:
    task_id, map_index = task
    folder = logs / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        folder = folder / f"map_index={map_index}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"attempt={attempt}.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_ui(home: Path, env: dict[str, str], port: int = 8080) -> None:
    """api-server, scheduler and dag-processor on the demo's home until Ctrl-C."""
    if not (home / "airflow.db").exists():
        raise SystemExit(f"no Airflow home at {home}: run `make demo` first")
    password = secrets.token_urlsafe(12)
    (home / "passwords.json").write_text(json.dumps({"admin": password}))
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    env = {**env, "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}
    env["AIRFLOW__API__HOST"] = "127.0.0.1"  # the demo's UI is for this machine only
    env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(_free_port())  # its default, 8793, is often taken
    env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://127.0.0.1:{port}/execution/"
    (home / "ui-logs").mkdir(exist_ok=True)
    processes = [
        subprocess.Popen(
            [airflow, *command],
            env=env,
            stdout=(home / "ui-logs" / f"{command[0]}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for command in (["api-server"], ["scheduler"], ["dag-processor"])
    ]
    print(f"Airflow UI at http://127.0.0.1:{port}/ (user admin, password {password}); Ctrl-C stops it", flush=True)
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:
            p.wait(timeout=30)
