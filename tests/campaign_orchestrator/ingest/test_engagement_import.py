"""The provider's engagement export comes in like every other source: its contract, its quarantine."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from campaign_orchestrator.ingest.contracts import ContractError, load_contracts
from campaign_orchestrator.ingest.sources import SourcesConfig
from campaign_orchestrator.ingest.validate import ImportContext, ImportFailed
from campaign_orchestrator.warehouse.tables import import_log, provider_engagement, quarantine
from tests.builders import import_night

NIGHT = dt.date(2026, 11, 25)
HEADER = "event_id,event,at,customer_id,campaign_id,dispatch_id"
CONFIG = SourcesConfig.model_validate({"sources": {"engagement": {"path": "engagement.csv", "mode": "merge"}}})


@pytest.fixture(scope="module")
def contracts(repo: Path):
    return load_contracts(repo / "data_contracts")


def night(engine, folder: Path, contracts, lines: list[str], run_date: dt.date = NIGHT, **context):
    folder.mkdir(exist_ok=True)
    (folder / "engagement.csv").write_text("\n".join([HEADER, *lines]) + "\n")
    ctx = ImportContext(
        run_date=run_date, sources_dir=folder, archive_dir=folder / "archive" / run_date.isoformat(), **context
    )
    return import_night(engine, ctx, CONFIG, contracts)


def good(i: int, event: str = "open") -> str:
    return f"e{i},{event},2026-11-24T10:{i % 60:02d}:00Z,C{i:03d},winback_push,d-{i // 50}"


def test_a_malformed_engagement_file_quarantines_its_bad_rows_with_their_row_numbers(warehouse, tmp_path, contracts):
    lines = [good(i) for i in range(1, 101)]
    lines[4] = "e5,opened,2026-11-24T10:00:00Z,C005,winback_push,d-0"  # not an event the contract knows
    lines[9] = "e10,click,yesterday,C010,winback_push,d-0"  # not a time
    lines[19] = "e20,click,2026-11-24T10:00:00Z,,winback_push,d-0"  # no customer
    lines[29] = "e30,click,2031-01-01T00:00:00Z,C030,winback_push,d-0"  # in the future
    night(warehouse, tmp_path / "n", contracts, lines)
    with warehouse.connect() as conn:
        bad = {
            r.row_number: json.loads(r.rules)
            for r in conn.execute(sa.select(quarantine).where(quarantine.c.source == "engagement"))
        }
        loaded = conn.scalar(sa.select(sa.func.count()).select_from(provider_engagement))
    assert sorted(bad) == [5, 10, 20, 30]
    assert bad[5] == ["expect_column_values_to_be_in_set(event)"]
    assert "type(at): expected datetime" in bad[10]
    assert bad[20] == ["expect_column_values_to_not_be_null(customer_id)"]
    assert bad[30] == ["not_in_future(at)"]
    assert loaded == 96


def test_an_overlapping_export_counts_each_event_once(warehouse, tmp_path, contracts):
    night(warehouse, tmp_path / "a", contracts, [good(i) for i in range(1, 41)])
    night(warehouse, tmp_path / "b", contracts, [good(i) for i in range(21, 61)], NIGHT + dt.timedelta(days=1))
    with warehouse.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(provider_engagement)) == 60


def test_a_file_with_too_many_bad_rows_stops_and_loads_nothing(warehouse, tmp_path, contracts):
    lines = [good(i) for i in range(1, 21)] + [f"x{i},open,not-a-time,C1,c,d" for i in range(5)]
    with pytest.raises(ImportFailed) as failed:
        night(warehouse, tmp_path / "n", contracts, lines)
    assert "max_quarantine_share" in str(failed.value)
    with warehouse.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(provider_engagement)) == 0


def test_a_row_count_outside_the_band_is_accepted_only_when_an_operator_says_so(warehouse, tmp_path, contracts):
    events = SourcesConfig.model_validate({"sources": {"events": {"path": "events.csv", "mode": "append"}}})
    header = "customer_id,name,ts,amount,items,category,coupon"

    def events_night(folder: Path, n: int, run_date: dt.date, accept: frozenset[str] = frozenset()) -> None:
        folder.mkdir()
        body = [f"C{i:03d},app_open,{run_date - dt.timedelta(days=1)}T10:00:00Z,,,," for i in range(n)]
        (folder / "events.csv").write_text("\n".join([header, *body]) + "\n")
        ctx = ImportContext(
            run_date=run_date, sources_dir=folder, archive_dir=folder / "archive", accept_row_count=accept
        )
        import_night(warehouse, ctx, events, contracts)

    events_night(tmp_path / "backfill", 500, NIGHT)
    with pytest.raises(ImportFailed) as failed:  # 20 rows after 500: 0.04x, below the band
        events_night(tmp_path / "small", 20, NIGHT + dt.timedelta(days=1))
    assert any(isinstance(e, ContractError) and e.rule == "row_count_band" for e in failed.value.failures)
    events_night(tmp_path / "accepted", 20, NIGHT + dt.timedelta(days=2), frozenset({"events"}))
    with warehouse.connect() as conn:
        warnings = conn.scalar(
            sa.select(import_log.c.warnings).where(
                import_log.c.source == "events", import_log.c.run_date == NIGHT + dt.timedelta(days=2)
            )
        )
    assert "row_count_band accepted by the operator" in warnings
