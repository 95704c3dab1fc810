"""After a real night, `campaigns erase` leaves the customer nowhere but the salted-hash tombstone,
the provider is told once, the receipt lists every store, and the next night's import of an
export that still holds them keeps them out."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_devtools.provider_sim import make_server
from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.erasure.stores import keyed_tables
from campaign_orchestrator.inbox.engagement import EngagementEvent, record_events
from campaign_orchestrator.inbox.preferences import change_preferences, sync_device
from campaign_orchestrator.warehouse.tables import (
    customers,
    erasure_subjects,
    erasure_tombstones,
    inapp_messages,
    outbox,
    quarantine,
    target_list,
)
from tests.campaign_orchestrator.erasure.night import (
    RUN_DATE,
    SALT,
    campaigns_cli,
    file_hits,
    make_export,
    needles,
    table_hits,
)


@pytest.fixture
def simulator_store() -> Iterator[tuple[str, object]]:
    server = make_server("127.0.0.1", 0, api_key="erase-key")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://:erase-key@127.0.0.1:{server.server_address[1]}", server.store
    server.shutdown()
    server.server_close()


def _chosen(engine: Engine, candidates: list[str]) -> str:
    """The candidate the night reached most: messages at the provider and in the in-app store."""
    with engine.connect() as conn:
        counts = dict(
            conn.execute(
                sa.select(
                    outbox.c.customer_id, sa.func.count(sa.distinct(outbox.c.destination)) * 100 + sa.func.count()
                )
                .where(outbox.c.customer_id.in_(candidates))
                .group_by(outbox.c.customer_id)
            ).all()
        )
        in_app = set(
            conn.execute(
                sa.select(inapp_messages.c.customer_id).where(inapp_messages.c.customer_id.in_(candidates))
            ).scalars()
        )
    best = max((c for c in candidates if c in in_app), key=lambda c: counts.get(c, 0))
    assert counts[best] >= 200, counts  # both destinations
    return best


def _use_the_inbox(engine: Engine, customer_id: str) -> None:
    """What the app does through the inbox service: events, a preference change, a device."""
    now = utcnow()
    with engine.connect() as conn:
        message = conn.execute(
            sa.select(inapp_messages.c.message_id).where(inapp_messages.c.customer_id == customer_id)
        ).scalar()
    assert message is not None
    outcomes = record_events(
        engine, customer_id, [EngagementEvent("e1", message, "displayed", now, "s1", "shop_app")], now
    )
    assert outcomes == ["accepted"]
    change_preferences(engine, customer_id, {"email": False}, "app_settings", "customer", now)
    sync_device(engine, customer_id, "shop_app", "ios", "push-token-abc", "endpoint-1", now)


def test_after_campaigns_erase_the_customer_is_nowhere_but_the_tombstone_and_stays_out_of_the_next_night(
    repo: Path, tmp_path: Path, warehouse: Engine, simulator_store: tuple[str, object]
) -> None:
    provider, sim = simulator_store
    url = warehouse.url.render_as_string(hide_password=False)
    export, archive, reports = tmp_path / "export", tmp_path / "archive", tmp_path / "reports"
    candidates = make_export(export)
    env = {"AIRFLOW_CONN_CAMPAIGNS_PROVIDER": provider, "CAMPAIGNS_ERASURE_SALT": SALT}
    folders = ["--warehouse", url, "--reports", str(reports), "--archive", str(archive)]
    night = campaigns_cli(repo, ["run", "--date", RUN_DATE.isoformat(), "--sources", str(export), *folders], env)
    assert night.returncode == 0, night.stderr[-3000:]

    subject = _chosen(warehouse, candidates)
    _use_the_inbox(warehouse, subject)
    preview = campaigns_cli(
        repo,
        [
            "preview",
            "app_feature_push",
            "--customer",
            subject,
            "--date",
            RUN_DATE.isoformat(),
            "--warehouse",
            url,
            "--html",
            str(reports / "preview.html"),
        ],
        env,
    )
    assert preview.returncode == 0, preview.stderr[-2000:]
    wanted = needles(export, subject)
    assert table_hits(warehouse, wanted) and file_hits(wanted, archive, reports)  # they were everywhere
    with warehouse.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(quarantine).where(quarantine.c.raw.contains(subject)))

    erased = campaigns_cli(repo, ["erase", "--customer", subject, *folders], env)
    assert erased.returncode == 0, erased.stdout + erased.stderr[-3000:]

    # Nowhere: no table (every column as text), no file under the archive or the reports.
    assert table_hits(warehouse, wanted) == []
    assert file_hits(wanted, archive, reports) == []
    assert not any(n.lower() in (erased.stdout + erased.stderr).lower() for n in wanted)  # nor in its output
    with warehouse.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(erasure_tombstones)) == 2  # id and e-mail
        assert conn.scalar(sa.select(sa.func.count()).select_from(erasure_subjects)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.customer_id.like("erased-%")))

    # The receipt names every store, with counts; the provider got the deletion once.
    receipt = erased.stdout
    assert "finished" in receipt.splitlines()[0]
    for table in keyed_tables():
        assert f"  {table.name} " in receipt, table.name
    for store in ("outbox", "quarantine", "run_log", "archive files rewritten", "report files rewritten"):
        assert store in receipt, store
    assert "provider braze: deletion of 1 id(s) accepted in 1 request(s)" in receipt
    deletions = _deletions(sim)
    assert deletions["succeeded"] == {subject: 1} and deletions["deleted"] == [subject]

    # The next night imports an export that still holds them: they stay out, and out of its archive.
    next_day = RUN_DATE + dt.timedelta(days=1)
    received_before = len(sim.received)  # type: ignore[attr-defined]
    second = campaigns_cli(repo, ["run", "--date", next_day.isoformat(), "--sources", str(export), *folders], env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "row(s) of erased customers not loaded" in second.stdout + second.stderr
    with warehouse.connect() as conn:
        assert (
            conn.scalar(sa.select(sa.func.count()).select_from(customers).where(customers.c.customer_id == subject))
            == 0
        )
        assert conn.scalar(sa.select(sa.func.count()).select_from(customers)) > 400
        assert conn.scalar(
            sa.select(sa.func.count()).select_from(target_list).where(target_list.c.run_date == next_day)
        )
        assert not conn.scalar(
            sa.select(sa.func.count()).select_from(target_list).where(target_list.c.customer_id == subject)
        )
    assert table_hits(warehouse, wanted) == []
    assert file_hits(wanted, archive, reports) == []
    later = sim.received[received_before:]  # type: ignore[attr-defined]
    assert later and subject not in {r["external_user_id"] for r in later}


def _deletions(sim: object) -> dict[str, object]:
    from campaign_devtools.provider_sim import _deletion_stats

    with sim.lock:  # type: ignore[attr-defined]
        return _deletion_stats(sim)  # type: ignore[arg-type]
