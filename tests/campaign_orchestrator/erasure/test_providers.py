"""Forwarding erasures to the providers: `/users/delete` in parts of at most 50 ids through the
delivery client, each id deleted successfully exactly once even under injected faults and re-runs,
and a destination that does not support deletion is named in the receipt, not called."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.engine import Engine

from campaign_devtools.provider_sim import _deletion_stats, make_server
from campaign_orchestrator.connections import ProviderEndpoint
from campaign_orchestrator.definitions.settings import Settings
from campaign_orchestrator.erasure import Places, continue_erasure, erase_customers
from tests.builders import customer, load
from tests.campaign_orchestrator.erasure.night import SALT


@pytest.fixture
def sim() -> Iterator[tuple[str, Any]]:
    """The simulator in this process: its deletions do not depend on Idempotency-Key (a deleted id
    deleted again is a no-op, as at Braze), so its idempotency mode does not matter here."""
    server = make_server("127.0.0.1", 0, api_key="k")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.store
    server.shutdown()
    server.server_close()


def settings(honours: bool, supports_deletion: bool = True) -> Settings:
    return Settings.model_validate(
        {
            "delivery": {"max_attempts": 4, "timeout_s": 1.0},
            "destinations": {
                "braze": {
                    "kind": "provider",
                    "connection_id": "campaigns_provider",
                    "honours_idempotency_key": honours,
                    "supports_deletion": supports_deletion,
                },
                "inbox": {"kind": "message_store"},
            },
        }
    )


def places(url: str, honours: bool, **kw: Any) -> Places:
    """No archive nor reports here (empty folders), the provider at `url`, no backoff sleeps."""
    return Places(
        archive_dir=Path("no-archive-here"),
        reports_dir=Path("no-reports-here"),
        settings=settings(honours, **kw),
        resolver=lambda _id: ProviderEndpoint(url, "k"),
        sleep=lambda _s: None,
    )


# honours: an ambiguous failure is retried at once under the same key; else the part waits for
# the next run (`campaigns erase --pending`), which sends it again under the same key.
@pytest.mark.parametrize("honours", [True, False], ids=["retried at once", "retried by the next run"])
def test_120_customers_reach_the_provider_in_3_requests_each_id_deleted_once_despite_faults(
    warehouse: Engine, sim: tuple[str, Any], honours: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, store = sim
    monkeypatch.setenv("CAMPAIGNS_ERASURE_SALT", SALT)
    ids = [f"C{n:07d}" for n in range(1, 121)]
    load(warehouse, [customer(c) for c in ids])
    faults = {
        "error_rate": 0.15,
        "accept_then_504_rate": 0.25,
        "drop_rate": 0.1,
        "timeout_rate": 0.1,
        "hold_s": 1.5,
        "seed": 3,
    }
    requests.post(url + "/_sim/faults", json=faults, timeout=5).raise_for_status()
    receipt = erase_customers(warehouse, ids, places(url, honours))
    rounds = 1
    while not receipt.finished:  # what `campaigns erase --pending` does after a part gave up
        assert rounds < 30, receipt.waiting_for
        receipt = continue_erasure(warehouse, receipt.request_id, places(url, honours))
        rounds += 1
    with store.lock:
        books = _deletion_stats(store)
    assert books["succeeded"] == dict.fromkeys(ids, 1)  # each id: one answer of success
    assert books["deleted"] == ids
    assert all(r["ids"] <= 50 for r in books["requests"])
    assert len({r["key"] for r in books["requests"]}) == 3  # three parts, each always under its own key
    assert sum(1 for r in books["requests"] if r["status"] == 201) == 3
    assert store.injected["accept_then_504"] and len(books["requests"]) > 3  # faults did happen
    assert receipt.destinations["braze"] == {"forwarded": True, "ids": 120, "requests": 3}
    assert "inbox" not in receipt.destinations  # the message store is erased with the warehouse


def test_a_re_run_sends_no_part_the_provider_already_accepted(
    warehouse: Engine, sim: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, store = sim
    monkeypatch.setenv("CAMPAIGNS_ERASURE_SALT", SALT)
    ids = [f"C{n:07d}" for n in range(1, 61)]
    requests.post(url + "/_sim/faults", json={"fail_next": 1, "status": 400}, timeout=5).raise_for_status()
    first = erase_customers(warehouse, ids, places(url, True))
    assert not first.finished and any("HTTP 400" in w for w in first.waiting_for)
    assert not any(c in " ".join(first.waiting_for) for c in ids)  # no id in the receipt
    done = continue_erasure(warehouse, first.request_id, places(url, True))
    assert done.finished
    with store.lock:
        books = _deletion_stats(store)
    assert [r["ids"] for r in books["requests"]] == [50, 10]  # the 400 was the first part, sent once more
    assert books["succeeded"] == dict.fromkeys(ids, 1)
    again = continue_erasure(warehouse, first.request_id, places(url, True))
    assert again.finished and len(_deletion_stats(store)["requests"]) == 2


def test_a_provider_without_deletion_is_named_in_the_receipt_and_not_called(
    warehouse: Engine, sim: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, store = sim
    monkeypatch.setenv("CAMPAIGNS_ERASURE_SALT", SALT)
    receipt = erase_customers(warehouse, ["C0000001"], places(url, True, supports_deletion=False))
    assert receipt.finished
    assert receipt.destinations == {"braze": {"forwarded": False, "why": "supports_deletion: false"}}
    assert store.requests == 0
    assert "  provider braze: not forwarded (supports_deletion: false)" in receipt.lines()
