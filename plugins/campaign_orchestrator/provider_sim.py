"""A Braze-compatible provider simulator: a real HTTP server process for demos and tests.

It validates requests the way Braze does (bearer API key, campaign_id, 1 to 50 recipients each
with an external_user_id, a schedule time on schedule requests), answers with a dispatch id,
sends `X-RateLimit-*` headers, honours `Idempotency-Key` (a replayed key gets the first answer
and stores nothing), and keeps every accepted recipient so tests can ask what arrived.

Control endpoints (no API key, loopback use only): `GET /_sim/stats`, `GET /_sim/recipients`,
`POST /_sim/reset`, `POST /_sim/faults` and `GET /healthz`.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_RECIPIENTS = 50
SEND_PATH = "/campaigns/trigger/send"
SCHEDULE_PATH = "/campaigns/trigger/schedule/create"


@dataclass
class Faults:
    """Injected failures: the next N requests fail with `status`; listed ids make a batch invalid."""

    fail_next: int = 0
    status: int = 500
    reject_ids: set[str] = field(default_factory=set)
    rate_limit_per_hour: int = 250_000


@dataclass
class SimStore:
    api_key: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    received: list[dict[str, Any]] = field(default_factory=list)
    per_recipient: Counter[tuple[str, str]] = field(default_factory=Counter)
    idempotent: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    requests: int = 0
    replays: int = 0
    rejected: int = 0
    window: list[float] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.per_recipient.clear()
            self.idempotent.clear()
            self.requests = self.replays = self.rejected = 0
            self.window.clear()
            self.faults = Faults()

    def stats(self) -> dict[str, Any]:
        with self.lock:
            by_campaign: dict[str, dict[str, int]] = {}
            for (campaign, _user), count in self.per_recipient.items():
                entry = by_campaign.setdefault(campaign, {"recipients": 0, "unique": 0, "duplicates": 0})
                entry["recipients"] += count
                entry["unique"] += 1
                entry["duplicates"] += count - 1
            scheduled = sum(1 for r in self.received if r["schedule_time"])
            return {
                "requests": self.requests,
                "idempotent_replays": self.replays,
                "rejected": self.rejected,
                "recipients": len(self.received),
                "unique": len(self.per_recipient),
                "duplicates": len(self.received) - len(self.per_recipient),
                "scheduled": scheduled,
                "sent_now": len(self.received) - scheduled,
                "by_campaign": by_campaign,
            }


def _validate(path: str, body: Any, faults: Faults) -> str | None:
    """Braze's answer to a malformed request, or None when it is acceptable."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not isinstance(body.get("campaign_id"), str) or not body["campaign_id"]:
        return "campaign_id is required"
    recipients = body.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        return "recipients must be a non-empty array"
    if len(recipients) > MAX_RECIPIENTS:
        return f"too many recipients: {len(recipients)} (at most {MAX_RECIPIENTS} per request)"
    for i, recipient in enumerate(recipients):
        if not isinstance(recipient, dict):
            return f"recipients[{i}] must be an object"
        user = recipient.get("external_user_id")
        if not isinstance(user, str) or not user.strip() or len(user) > 512:
            return f"recipients[{i}].external_user_id is required"
        if user in faults.reject_ids:
            return f"recipients[{i}].external_user_id is not a valid user: {user}"
        props = recipient.get("trigger_properties", {})
        if not isinstance(props, dict):
            return f"recipients[{i}].trigger_properties must be an object"
    if path == SCHEDULE_PATH:
        schedule = body.get("schedule")
        if not isinstance(schedule, dict) or not isinstance(schedule.get("time"), str):
            return "schedule.time is required"
        try:
            dt.datetime.fromisoformat(schedule["time"].replace("Z", "+00:00"))
        except ValueError:
            return "schedule.time must be an ISO 8601 time"
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server: _SimServer

    def log_message(self, format: str, *args: Any) -> None:
        return  # recipients are personal data: the simulator keeps no access log

    def _reply(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return None

    def do_GET(self) -> None:
        store = self.server.store
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self._reply(200, {"status": "ok"})
        elif url.path == "/_sim/stats":
            self._reply(200, store.stats())
        elif url.path == "/_sim/recipients":
            campaign = parse_qs(url.query).get("campaign_id", [None])[0]
            with store.lock:
                rows = [r for r in store.received if campaign is None or r["campaign_id"] == campaign]
            self._reply(200, {"recipients": rows})
        else:
            self._reply(404, {"message": "not found"})

    def do_POST(self) -> None:
        store = self.server.store
        path = urlsplit(self.path).path
        body = self._body()
        if path == "/_sim/reset":
            store.reset()
            self._reply(200, {"message": "reset"})
            return
        if path == "/_sim/faults":
            doc = body if isinstance(body, dict) else {}
            with store.lock:
                store.faults = Faults(
                    fail_next=int(doc.get("fail_next", 0)),
                    status=int(doc.get("status", 500)),
                    reject_ids=set(doc.get("reject_ids", [])),
                    rate_limit_per_hour=int(doc.get("rate_limit_per_hour", 250_000)),
                )
            self._reply(200, {"message": "faults set"})
            return
        if path not in (SEND_PATH, SCHEDULE_PATH):
            self._reply(404, {"message": "not found"})
            return
        self._trigger(path, body)

    def _trigger(self, path: str, body: Any) -> None:
        store = self.server.store
        if self.headers.get("Authorization") != f"Bearer {store.api_key}":
            self._reply(401, {"message": "Invalid API key"})
            return
        with store.lock:
            status, doc, headers = self._accept(store, path, body, self.headers.get("Idempotency-Key"))
        self._reply(status, doc, headers)

    @staticmethod
    def _accept(store: SimStore, path: str, body: Any, key: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Decide the answer and record what was accepted; runs under the store's lock."""
        store.requests += 1
        now = time.time()
        store.window = [t for t in store.window if t > now - 3600]
        limit = store.faults.rate_limit_per_hour
        reset = int((store.window[0] if store.window else now) + 3600)
        if len(store.window) >= limit:
            return (
                429,
                {"message": "rate limit exceeded"},
                {
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(reset),
                    "Retry-After": str(max(1, int(reset - now))),
                },
            )
        store.window.append(now)
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(limit - len(store.window)),
            "X-RateLimit-Reset": str(reset),
        }
        if store.faults.fail_next > 0:
            store.faults.fail_next -= 1
            return store.faults.status, {"message": "injected failure"}, headers
        if key and key in store.idempotent:
            store.replays += 1
            status, doc = store.idempotent[key]
            return status, doc, headers
        problem = _validate(path, body, store.faults)
        if problem:
            store.rejected += 1
            return 400, {"message": problem, "errors": [problem]}, headers
        dispatch_id = uuid.uuid4().hex
        doc = {"dispatch_id": dispatch_id, "message": "success"}
        schedule_time = None
        if path == SCHEDULE_PATH:
            doc["schedule_id"] = uuid.uuid4().hex
            schedule_time = body["schedule"]["time"]
        for recipient in body["recipients"]:
            store.received.append(
                {
                    "campaign_id": body["campaign_id"],
                    "external_user_id": recipient["external_user_id"],
                    "trigger_properties": recipient.get("trigger_properties", {}),
                    "schedule_time": schedule_time,
                    "dispatch_id": dispatch_id,
                }
            )
            store.per_recipient[(body["campaign_id"], recipient["external_user_id"])] += 1
        if key:
            store.idempotent[key] = (201, doc)
        return 201, doc, headers


class _SimServer(ThreadingHTTPServer):
    daemon_threads = True
    store: SimStore


def make_server(host: str = "127.0.0.1", port: int = 0, api_key: str = "sim-api-key") -> _SimServer:
    server = _SimServer((host, port), _Handler)
    server.store = SimStore(api_key=api_key)
    return server


def serve(host: str, port: int, api_key: str, port_file: str | None = None) -> None:
    server = make_server(host, port, api_key)
    bound = server.server_address[1]
    if port_file:
        with open(port_file, "w", encoding="utf-8") as fh:
            fh.write(str(bound))
    print(f"provider simulator listening on http://{host}:{bound}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
