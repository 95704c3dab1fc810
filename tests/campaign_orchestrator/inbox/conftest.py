"""A real inbox service process per store engine (SQLite, PostgreSQL), and what tests put in its store.

The service runs as `campaigns inbox serve` in its own process on a loopback port, exactly as
deployed; tests write messages and consent straight into the store (as the night does) and talk
HTTP to it. Every test uses customers of its own, so one server serves a whole module.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.engine import Engine

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.inbox.tokens import issue_token
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, drop_schema, ensure_schema
from campaign_orchestrator.warehouse.tables import customers, inapp_messages, preference_state
from tests.conftest import ROOT, free_port

SECRET = "test-signing-secret-" + "s" * 24
SERVER_KEY = "test-server-key-" + "k" * 24
RATE_LIMIT_PER_MINUTE = 40
ERASURE_SALT = "inbox-test-erasure-salt-" + "e" * 24


@dataclass
class Inbox:
    url: str
    engine: Engine
    config_dir: Path
    log_path: Path
    store_url: str = ""
    http: requests.Session = field(default_factory=requests.Session)

    # ---- the store, written as the night writes it ----

    def customer(self, timezone: str = "Europe/London", in_app: bool | None = True) -> str:
        customer_id = "C" + uuid.uuid4().hex[:12]
        with self.engine.begin() as conn:
            conn.execute(customers.insert().values(customer_id=customer_id, first_name="Ana", timezone=timezone))
            if in_app is not None:
                conn.execute(
                    preference_state.insert().values(
                        customer_id=customer_id, channel="in_app", enabled=in_app, ts=dt.datetime(2026, 1, 1)
                    )
                )
        return customer_id

    def message(self, customer_id: str | None, **kw: Any) -> str:
        now = utcnow()
        content = kw.pop("content", None) or {
            "layout": "MOBILE_FEED",
            "header": kw.pop("header", "Hello"),
            "body": "A message",
            "buttons": kw.pop("buttons", []),
            "data": {"k": "v"},
        }
        if "min_app_version" in kw:
            content["min_app_version"] = kw.pop("min_app_version")
        row = {
            "message_id": str(uuid.uuid4()),
            "customer_id": customer_id,
            "campaign_id": kw.pop("campaign_id", "camp_" + uuid.uuid4().hex[:6]),
            "treatment_id": "default",
            "content": json.dumps(content),
            "priority": 3,
            "start_at": now - dt.timedelta(hours=1),
            "end_at": now + dt.timedelta(days=1),
            "created_at": now,
            **kw,
        }
        with self.engine.begin() as conn:
            conn.execute(inapp_messages.insert().values(**row))
        return str(row["message_id"])

    # ---- the API ----

    def end_public_messages(self) -> None:
        """Public messages show to everyone: a test that adds some ends them after itself."""
        with self.engine.begin() as conn:
            conn.execute(inapp_messages.update().where(inapp_messages.c.customer_id.is_(None)).values(end_at=utcnow()))

    def token(self, customer_id: str, ttl: int = 600, secret: str = SECRET) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(customer_id, secret, ttl)}"}

    def get(self, path: str, customer_id: str | None = None, **kw: Any) -> requests.Response:
        headers = {**(self.token(customer_id) if customer_id else {}), **kw.pop("headers", {})}
        return self.http.get(self.url + path, headers=headers, timeout=30, **kw)

    def post(self, path: str, customer_id: str | None, body: Any, **kw: Any) -> requests.Response:
        headers = {**(self.token(customer_id) if customer_id else {}), **kw.pop("headers", {})}
        return self.http.post(self.url + path, json=body, headers=headers, timeout=30, **kw)

    def put(self, path: str, customer_id: str | None, body: Any, **kw: Any) -> requests.Response:
        headers = {**(self.token(customer_id) if customer_id else {}), **kw.pop("headers", {})}
        return self.http.put(self.url + path, json=body, headers=headers, timeout=30, **kw)

    def feed(self, customer_id: str, **params: Any) -> dict[str, Any]:
        response = self.get(f"/v1/customers/{customer_id}/feed", customer_id, params=params)
        assert response.status_code == 200, response.text
        doc: dict[str, Any] = response.json()
        return doc

    def feed_ids(self, customer_id: str, **params: Any) -> list[str]:
        return [i["id"] for i in self.feed(customer_id, **params)["items"]]

    def events(self, customer_id: str, *events: dict[str, Any]) -> list[str]:
        response = self.post(f"/v1/customers/{customer_id}/events", customer_id, {"events": list(events)})
        assert response.status_code == 200, response.text
        return [r["outcome"] for r in response.json()["results"]]

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace")


def event(message_id: str, kind: str = "displayed", **kw: Any) -> dict[str, Any]:
    return {"id": kw.pop("id", uuid.uuid4().hex), "message_id": message_id, "type": kind, **kw}


def start_inbox(
    store_url: str, config_dir: Path, log_path: Path, rate_limit: str = f"{RATE_LIMIT_PER_MINUTE}/minute", **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environment = {
        **os.environ,
        "CAMPAIGNS_INBOX_SECRET": SECRET,
        "CAMPAIGNS_INBOX_SERVER_KEY": SERVER_KEY,
        "CAMPAIGNS_INBOX_RELOAD_SECONDS": "0.2",
        "CAMPAIGNS_ERASURE_SALT": ERASURE_SALT,  # DELETE /v1/customers/{id} works (tests/.../erasure)
        "PYTHONPATH": str(ROOT / "plugins"),
        **env,
    }
    command = [sys.executable, "-m", "campaign_orchestrator.cli", "inbox", "serve", "--port", str(port)]
    command += ["--store", store_url, "--config", str(config_dir), "--rate-limit", rate_limit]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the inbox exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the inbox did not start within 60 s")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def inbox(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inbox]:
    tmp = tmp_path_factory.mktemp(f"inbox-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'store.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
        if url is None:
            pytest.skip("postgres is not reachable here; the test ran on SQLite only")
    engine = create_warehouse_engine(url)
    drop_schema(engine)
    ensure_schema(engine)
    config_dir = tmp / "marketing"
    shutil.copytree(ROOT / "marketing", config_dir)
    log_path = tmp / "inbox.log"
    process, base = start_inbox(url, config_dir, log_path)
    yield Inbox(base, engine, config_dir, log_path, store_url=url)
    process.terminate()
    process.wait(timeout=30)
    engine.dispose()
