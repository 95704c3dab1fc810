"""A real console process per test module over a copy of the repository's marketing folder.

The console runs as `campaigns console` on a loopback port, exactly as deployed; tests talk HTTP
to it (requests, or Playwright's chromium) as users of each role. Unit tests of the store and the
workflow use the same parts in-process, on their own copy of the folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from campaign_orchestrator.console.checks import Checker
from campaign_orchestrator.console.history import History
from campaign_orchestrator.console.store import DefinitionStore
from campaign_orchestrator.console.users import User, hash_password
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, ensure_schema
from tests.conftest import ROOT, free_port

SECRET = "console-test-session-secret-" + "s" * 20
PASSWORDS = {"vi": "viewer-pass-1", "ana": "editor-pass-1", "eli": "editor-pass-2", "bo": "approver-pass-1"}
PASSWORDS["cy"] = "approver-pass-2"
ROLES = {"vi": "viewer", "ana": "editor", "eli": "editor", "bo": "approver", "cy": "approver"}
_HASHES = {name: hash_password(pw) for name, pw in PASSWORDS.items()}
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


def users_json() -> str:
    return json.dumps({"users": [{"name": n, "role": ROLES[n], "password_hash": h} for n, h in _HASHES.items()]})


def user(name: str) -> User:
    return User(name, ROLES[name], _HASHES[name], name)  # type: ignore[arg-type]


@pytest.fixture
def marketing(tmp_path: Path) -> Path:
    target = tmp_path / "marketing"
    shutil.copytree(ROOT / "marketing", target)
    return target


@pytest.fixture(scope="session")
def checker() -> Checker:
    return Checker(ROOT / "data_contracts")


@pytest.fixture
def store(marketing: Path, checker: Checker, tmp_path: Path) -> DefinitionStore:
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'wh.sqlite'}")
    ensure_schema(engine)
    return DefinitionStore(marketing, checker, History(engine))


@dataclass
class ConsoleServer:
    url: str
    config_dir: Path
    warehouse_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def session(self, name: str | None = None) -> Client:
        client = Client(self.url, requests.Session())
        if name is not None:
            client.login(name)
        return client


@dataclass
class Client:
    url: str
    http: requests.Session

    def csrf(self, path: str = "/login") -> str:
        page = self.http.get(self.url + path, timeout=30)
        found = CSRF_RE.search(page.text)
        assert found, page.text[:500]
        return found.group(1)

    def login(self, name: str) -> None:
        data = {"csrf_token": self.csrf(), "name": name, "password": PASSWORDS[name], "next": "/"}
        response = self.http.post(self.url + "/login", data=data, timeout=30, allow_redirects=False)
        assert response.status_code == 303, response.text

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.url + path, timeout=30, allow_redirects=False)

    def post(self, path: str, data: dict[str, str], csrf: bool = True) -> requests.Response:
        body = {**data, **({"csrf_token": self.csrf("/campaigns")} if csrf else {})}
        return self.http.post(self.url + path, data=body, timeout=60, allow_redirects=False)


def start_console(
    config_dir: Path, warehouse_url: str, log_path: Path, **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environment = {
        **os.environ,
        "CAMPAIGNS_CONSOLE_SECRET": SECRET,
        "CAMPAIGNS_CONSOLE_USERS_JSON": users_json(),
        "PYTHONPATH": str(ROOT / "plugins"),
        **env,
    }
    command = [sys.executable, "-m", "campaign_orchestrator.cli", "console", "--port", str(port)]
    command += ["--config", str(config_dir), "--contracts", str(ROOT / "data_contracts"), "--warehouse", warehouse_url]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the console exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the console did not start within 60 s")


def serve(tmp: Path, warehouse_url: str | None = None) -> Iterator[ConsoleServer]:
    config_dir = tmp / "marketing"
    if not config_dir.exists():
        shutil.copytree(ROOT / "marketing", config_dir)
    url = warehouse_url or f"sqlite:///{tmp / 'warehouse.sqlite'}"
    log_path = tmp / "console.log"
    process, base = start_console(config_dir, url, log_path)
    try:
        yield ConsoleServer(base, config_dir, url, log_path)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    yield from serve(tmp_path_factory.mktemp("console"))


DATA_DAY = "2026-12-03"


def import_demo(tmp: Path, customers: int = 400) -> str:
    """A small real warehouse: the demo's CSVs for DATA_DAY imported with `campaigns import`."""
    from campaign_devtools.demo_data import generate

    generate(tmp / "in", customers=customers, as_of=dt.date.fromisoformat(DATA_DAY))
    url = f"sqlite:///{tmp / 'warehouse.sqlite'}"
    command = [sys.executable, "-m", "campaign_orchestrator.cli", "import", "--date", DATA_DAY, "--warehouse", url]
    command += ["--sources", str(tmp / "in"), "--archive", str(tmp / "archive")]
    environment = {**os.environ, "PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"}
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return url


@pytest.fixture(scope="module")
def data_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """A console over a small warehouse holding the demo's customers, events and apps."""
    tmp = tmp_path_factory.mktemp("data-console")
    yield from serve(tmp, import_demo(tmp))
