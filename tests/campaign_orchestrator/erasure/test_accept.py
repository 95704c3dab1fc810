"""From acceptance on nothing is sent: messages already in the outbox are cancelled, the ledger
keeps its counts with the customer's rows anonymised, and a batch a worker holds is waited for."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.delivery.claims import Claims
from campaign_orchestrator.erasure import NoCustomers, Places, continue_erasure, request_erasure
from campaign_orchestrator.erasure.stores import unclassified
from campaign_orchestrator.warehouse.tables import delivery_batches, inapp_messages, outbox, suppressions
from tests.builders import definitions
from tests.campaign_orchestrator.delivery.test_dispatcher import NOW, RUN, deliver_all, prepare, stats
from tests.campaign_orchestrator.erasure.night import SALT

FOLDERS = Places(archive_dir=None, reports_dir=None)


@pytest.fixture(autouse=True)
def salt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGNS_ERASURE_SALT", SALT)


def two_campaigns() -> object:
    return definitions(
        [{"id": "p", "send_time": "now"}, {"id": "inbox", "channel": "in_app", "destination": "inbox"}],
        per_customer_per_day=2,
    )


def test_every_table_is_classified_for_erasure() -> None:
    assert unclassified() == []


def test_messages_already_in_the_outbox_are_not_sent_once_the_erasure_is_accepted(
    any_warehouse: Engine, simulator: tuple[str, str]
) -> None:
    warehouse = any_warehouse  # MariaDB too: every statement of steps 1 and 2 runs there
    defs = two_campaigns()
    prepare(warehouse, defs, n=60)
    request_id = request_erasure(warehouse, ["C0003", "C0007"], "cli", clock=lambda: NOW)
    with warehouse.connect() as conn:
        assert set(conn.execute(sa.select(suppressions.c.customer_id)).scalars()) >= {"C0003", "C0007"}
    sent, _ = deliver_all(warehouse, defs, simulator)
    assert sent == 2 * 58
    received = {r["external_user_id"] for r in _recipients(simulator)}
    assert len(received) == 58 and not received & {"C0003", "C0007"}
    with warehouse.connect() as conn:
        stored = set(conn.execute(sa.select(inapp_messages.c.customer_id)).scalars())
        assert len(stored) == 58 and not stored & {"C0003", "C0007"}
    receipt = continue_erasure(warehouse, request_id, FOLDERS, clock=lambda: NOW)
    assert receipt.stores["outbox"] == 4  # two campaigns, two customers: kept in the ledger, anonymised
    with warehouse.connect() as conn:
        rows = conn.execute(sa.select(outbox.c.customer_id, outbox.c.state, outbox.c.payload)).all()
    assert len(rows) == 120  # the ledger still counts every message
    erased = [r for r in rows if r.customer_id.startswith("erased-")]
    assert len(erased) == 4 and {r.state for r in erased} == {"cancelled"} and {r.payload for r in erased} == {"{}"}
    assert len({r.customer_id for r in erased}) == 2  # one token per customer
    assert stats(simulator)["recipients"] == 58


def test_a_message_in_a_batch_a_worker_holds_is_waited_for_then_anonymised(warehouse: Engine) -> None:
    defs = two_campaigns()
    prepare(warehouse, defs, n=10)
    claims = Claims(warehouse, RUN, 0, 1, 120.0, lambda: NOW)
    claim_id, batches, _seen = claims.claim(10_000)
    held = {m.customer_id for b in batches for m in b.messages}
    assert "C0004" in held
    request_id = request_erasure(warehouse, ["C0004"], "cli", clock=lambda: NOW)
    first = continue_erasure(warehouse, request_id, FOLDERS, clock=lambda: NOW)
    assert not first.finished
    assert any("in a request a delivery worker holds" in w for w in first.waiting_for)
    assert not any("C0004" in w for w in first.waiting_for)
    with warehouse.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.customer_id == "C0004")) == 2
    with warehouse.begin() as conn:  # the worker sends its claim and records it
        conn.execute(delivery_batches.update().where(delivery_batches.c.claim_id == claim_id).values(state="sent"))
    done = continue_erasure(warehouse, request_id, FOLDERS, clock=lambda: NOW)
    assert done.stores["outbox"] == 2 and not any("delivery worker" in w for w in done.waiting_for)
    with warehouse.connect() as conn:
        assert not conn.scalar(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.customer_id == "C0004"))


def test_an_erasure_without_customers_or_salt_is_refused_before_anything_is_written(
    warehouse: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(NoCustomers):
        request_erasure(warehouse, [" ", ""], "cli")
    monkeypatch.delenv("CAMPAIGNS_ERASURE_SALT")
    from campaign_orchestrator.erasure import ErasureSaltMissing

    with pytest.raises(ErasureSaltMissing, match="CAMPAIGNS_ERASURE_SALT"):
        request_erasure(warehouse, ["C1"], "cli")
    monkeypatch.setenv("CAMPAIGNS_ERASURE_SALT", "short")
    with pytest.raises(ErasureSaltMissing, match="at least 32"):
        request_erasure(warehouse, ["C1"], "cli")
    with warehouse.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(suppressions)) == 0


def _recipients(sim: tuple[str, str]) -> list[dict[str, object]]:
    import requests

    rows: list[dict[str, object]] = requests.get(sim[0] + "/_sim/recipients", timeout=5).json()["recipients"]
    return rows
