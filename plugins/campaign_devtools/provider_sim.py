"""A Braze-compatible provider simulator: a real HTTP server process for demos and tests.

It validates requests the way Braze does (bearer API key, campaign_id, 1 to 50 recipients each
with an external_user_id, a schedule time on schedule requests), answers with a dispatch id,
sends `X-RateLimit-*` headers, and keeps every accepted recipient so tests can ask what arrived.
It plays either kind of provider (`idempotency`, `--idempotency`): `ignore` (the default) is Braze,
which documents no `Idempotency-Key`: a repeated key is a second delivery, its recipients recorded
again (counted in `repeated_keys`); `honour` answers a replayed key with the first answer and
stores nothing (`idempotent_replays`), as a destination with `honours_idempotency_key: true`.

`POST /users/delete` (`{"external_ids": [...]}`, 1 to 50) deletes users as Braze does: whatever
the key, an id already deleted is a no-op. Every request goes through the same faults; per id it
counts the requests that named it and the successful deletions (a 2xx answer naming it: an
accept-then-504 deleted it but did not succeed for the client), for `GET /_sim/deletions`.

Control endpoints (no API key, loopback use only): `GET /_sim/stats`, `GET /_sim/recipients`,
`GET /_sim/deletions`, `POST /_sim/reset`, `POST /_sim/faults` and `GET /healthz`.
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
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

MAX_RECIPIENTS = 50
SEND_PATH = "/campaigns/trigger/send"
SCHEDULE_PATH = "/campaigns/trigger/schedule/create"
DELETE_PATH = "/users/delete"
Idempotency = Literal["honour", "ignore"]


@dataclass
class Faults:
    """What goes wrong, set when the simulator starts (`--faults JSON`) or by `POST /_sim/faults`.

    Shares are drawn per request from a seeded generator, so a test run is reproducible.
    """

    fail_next: int = 0  # the next N requests answer `status`
    status: int = 500
    reject_ids: set[str] = field(default_factory=set)  # these external ids make a batch a 400
    rate_limit: int = 250_000  # requests per rate_window_s, as a token bucket
    rate_window_s: float = 3600.0
    rate_burst: int = 0  # bucket size; 0: a hundredth of the limit, at least 1
    storm_s: float = 0.0  # a 429 storm: every request in the first storm_s seconds is refused
    error_rate: float = 0.0  # share answered 500 or 503; nothing recorded
    timeout_rate: float = 0.0  # share held for hold_s (past the client's timeout); nothing recorded
    hold_s: float = 2.0
    drop_rate: float = 0.0  # share whose connection is closed without an answer; nothing recorded
    accept_then_504_rate: float = 0.0  # share recorded, then answered 504 (the answer is lost)
    latency_ms: float = 0.0  # added to every answer, after the request is recorded
    seed: int = 7

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Faults:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(doc) - known - {"rate_limit_per_hour"}
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}; known {sorted(known)}")
        values = dict(doc)
        if "rate_limit_per_hour" in values:  # the older spelling
            values["rate_limit"], values["rate_window_s"] = values.pop("rate_limit_per_hour"), 3600.0
        values["reject_ids"] = set(values.get("reject_ids", []))
        faults = cls(**values)
        numbers = {k: v for k, v in vars(faults).items() if k not in ("reject_ids",)}
        if not all(isinstance(v, int | float) for v in numbers.values()):
            raise ValueError(f"fault settings must be numbers: {numbers}")
        if faults.rate_limit <= 0 or faults.rate_window_s <= 0 or faults.hold_s < 0 or faults.latency_ms < 0:
            raise ValueError("rate_limit and rate_window_s must be positive; hold_s and latency_ms not negative")
        shares = ("error_rate", "timeout_rate", "drop_rate", "accept_then_504_rate")
        if any(not 0 <= numbers[s] <= 1 for s in shares) or sum(numbers[s] for s in shares) > 1:
            raise ValueError(f"{', '.join(shares)} are shares between 0 and 1 that add up to at most 1")
        return faults


@dataclass
class SimStore:
    api_key: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    received: list[dict[str, Any]] = field(default_factory=list)
    per_recipient: Counter[tuple[str, str]] = field(default_factory=Counter)
    idempotent: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    requests: int = 0
    replays: int = 0
    idempotency: Idempotency = "ignore"
    repeated: int = 0  # requests under a key already seen, delivered again (idempotency "ignore")
    rejected: int = 0
    deletions: list[dict[str, Any]] = field(default_factory=list)  # per request: key, ids, status
    deleted: set[str] = field(default_factory=set)
    injected: Counter[str] = field(default_factory=Counter)
    faults: Faults = field(default_factory=Faults)
    tokens: float = -1.0  # the rate limit's bucket; -1: full
    refilled: float = field(default_factory=time.monotonic)
    faults_since: float = field(default_factory=time.monotonic)
    random: Any = None

    def __post_init__(self) -> None:
        self.set_faults(self.faults)

    def set_faults(self, faults: Faults) -> None:
        import random

        self.faults = faults
        self.tokens = -1.0
        self.refilled = self.faults_since = time.monotonic()
        self.random = random.Random(faults.seed)

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.per_recipient.clear()
            self.idempotent.clear()
            self.deletions.clear()
            self.deleted.clear()
            self.requests = self.replays = self.rejected = self.repeated = 0
            self.injected.clear()
            self.set_faults(Faults())

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
                "idempotency": self.idempotency,
                "idempotent_replays": self.replays,
                "repeated_keys": self.repeated,
                "rejected": self.rejected,
                "injected": dict(self.injected),
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
        elif url.path == "/_sim/deletions":
            with store.lock:
                self._reply(200, _deletion_stats(store))
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
            try:
                faults = Faults.from_doc(body if isinstance(body, dict) else {})
            except (TypeError, ValueError) as exc:
                self._reply(400, {"message": str(exc)})
                return
            with store.lock:
                store.set_faults(faults)
            self._reply(200, {"message": "faults set"})
            return
        if path not in (SEND_PATH, SCHEDULE_PATH, DELETE_PATH):
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
            faults = store.faults
        if status == -1:  # dropped: close without a word
            self.close_connection = True
            return
        if status == -2:  # held past the client's timeout, then answered (to nobody)
            time.sleep(faults.hold_s)
            status = 504
        elif faults.latency_ms:
            time.sleep(faults.latency_ms / 1000.0)
        try:
            self._reply(status, doc, headers)
        except OSError:
            self.close_connection = True  # the client gave up (timeout) or died

    @staticmethod
    def _accept(store: SimStore, path: str, body: Any, key: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Decide the answer and record what was accepted; runs under the store's lock."""
        store.requests += 1
        faults = store.faults
        now = time.monotonic()
        rate = faults.rate_limit / faults.rate_window_s
        burst = float(faults.rate_burst or max(1, faults.rate_limit // 100))
        if store.tokens < 0:
            store.tokens = burst
        store.tokens = min(burst, store.tokens + (now - store.refilled) * rate)
        store.refilled = now
        storm_left = faults.storm_s - (now - store.faults_since)
        if storm_left > 0 or store.tokens < 1.0:
            store.injected["429"] += 1
            wait = storm_left if storm_left > 0 else (1.0 - store.tokens) / rate
            return (
                429,
                {"message": "rate limit exceeded"},
                {
                    "X-RateLimit-Limit": str(faults.rate_limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(int(time.time() + wait + 0.999)),
                    "Retry-After": str(max(1, int(wait + 0.999))),
                },
            )
        store.tokens -= 1.0
        headers = {
            "X-RateLimit-Limit": str(faults.rate_limit),
            "X-RateLimit-Remaining": str(int(store.tokens)),
            "X-RateLimit-Reset": str(int(time.time() + (burst - store.tokens) / rate + 0.999)),
        }
        draw = store.random.random()
        for kind, share in (("drop", faults.drop_rate), ("timeout", faults.timeout_rate), ("5xx", faults.error_rate)):
            if draw < share:
                store.injected[kind] += 1
                if kind == "drop":
                    return -1, {}, {}
                if kind == "timeout":
                    return -2, {"message": "gateway timeout"}, headers
                status = 500 if store.random.random() < 0.5 else 503
                return status, {"message": "injected failure"}, headers
            draw -= share
        accept_then_504 = draw < faults.accept_then_504_rate
        if store.faults.fail_next > 0:
            store.faults.fail_next -= 1
            return store.faults.status, {"message": "injected failure"}, headers
        if path == DELETE_PATH:
            return _delete_users(store, body, key, accept_then_504, headers)
        if key and key in store.idempotent and store.idempotency == "honour":
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
                    "schedule_id": doc.get("schedule_id"),
                }
            )
            store.per_recipient[(body["campaign_id"], recipient["external_user_id"])] += 1
        if key:
            if key in store.idempotent:  # "ignore": delivered again, as Braze would
                store.repeated += 1
            store.idempotent[key] = (201, doc)
        if accept_then_504:
            store.injected["accept_then_504"] += 1
            return 504, {"message": "gateway timeout"}, headers
        return 201, doc, headers


def _delete_users(
    store: SimStore, body: Any, key: str | None, accept_then_504: bool, headers: dict[str, str]
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Braze's /users/delete: ids already deleted are no-ops; the lost answer of accept-then-504 is
    recorded as such, so a successful deletion is one the client was told of."""
    ids = body.get("external_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_RECIPIENTS or not all(isinstance(i, str) for i in ids):
        store.rejected += 1
        problem = f"external_ids must be 1 to {MAX_RECIPIENTS} ids"
        return 400, {"message": problem, "errors": [problem]}, headers
    new = [i for i in dict.fromkeys(ids) if i not in store.deleted]
    store.deleted.update(new)
    status = 504 if accept_then_504 else 201
    store.deletions.append({"key": key, "ids": list(ids), "status": status})
    if accept_then_504:
        store.injected["accept_then_504"] += 1
        return 504, {"message": "gateway timeout"}, headers
    return 201, {"deleted": len(new), "message": "success"}, headers


def _deletion_stats(store: SimStore) -> dict[str, Any]:
    named: Counter[str] = Counter()
    succeeded: Counter[str] = Counter()
    for request in store.deletions:
        named.update(request["ids"])
        if 200 <= request["status"] < 300:
            succeeded.update(request["ids"])
    return {
        "requests": [{"key": r["key"], "ids": len(r["ids"]), "status": r["status"]} for r in store.deletions],
        "deleted": sorted(store.deleted),
        "named": dict(named),
        "succeeded": dict(succeeded),
    }


class _SimServer(ThreadingHTTPServer):
    daemon_threads = True
    store: SimStore

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that timed out or was killed: expected under test
        super().handle_error(request, client_address)


def make_server(
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str = "sim-api-key",
    faults: Faults | None = None,
    idempotency: Idempotency = "ignore",
) -> _SimServer:
    if idempotency not in ("honour", "ignore"):
        raise ValueError(f"idempotency is honour or ignore, not {idempotency!r}")
    server = _SimServer((host, port), _Handler)
    server.store = SimStore(api_key=api_key, faults=faults or Faults(), idempotency=idempotency)
    return server


def serve(
    host: str,
    port: int,
    api_key: str,
    port_file: str | None = None,
    faults: Faults | None = None,
    idempotency: Idempotency = "ignore",
) -> None:
    server = make_server(host, port, api_key, faults, idempotency)
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
