"""A later export that still holds an erased customer: none of their rows load, none is quarantined
(a quarantine row keeps raw values), the archived raw copy loses them, they are found again under a
new id by their e-mail, an erasure accepted between validation and publish still holds, and a
warehouse with tombstones will not import without the salt."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.erasure import ErasureSaltMissing, Places, continue_erasure, request_erasure
from campaign_orchestrator.ingest import publish, validate_source
from campaign_orchestrator.ingest.sources import SourcesConfig
from campaign_orchestrator.ingest.validate import ImportContext
from campaign_orchestrator.warehouse.event_properties import events_table
from campaign_orchestrator.warehouse.tables import customers, preferences, quarantine
from tests.campaign_orchestrator.erasure.night import SALT
from tests.campaign_orchestrator.ingest.test_integrity import (
    EVENTS_HEADER,
    IDS,
    NIGHT1,
    NIGHT2,
    SOURCES,
    customers_csv,
    night,
    shipped,
)

__all__ = ["shipped"]  # the fixture, used by name
PREFS_HEADER = "customer_id,channel,enabled,ts,source"


@pytest.fixture(autouse=True)
def salt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGNS_ERASURE_SALT", SALT)


def first_night(engine: Engine, folder: Path, contracts: dict[str, object]) -> None:
    night(engine, folder / "n1", NIGHT1, contracts, files={"customers": customers_csv(IDS)})
    receipt = continue_erasure(engine, request_erasure(engine, ["C004"], "cli"), Places())
    assert receipt.stores["customers"] == 1


def ids_in(engine: Engine, table: sa.Table) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.customer_id)).scalars())


def test_an_erased_customer_in_the_next_export_loads_nowhere_and_is_not_quarantined(
    warehouse: Engine, tmp_path: Path, shipped: dict[str, object]
) -> None:
    first_night(warehouse, tmp_path, shipped)
    files = {
        "customers": customers_csv(IDS),
        "events": EVENTS_HEADER
        + "\nC004,purchase,2026-11-21T10:00:00,12.5,1,books,false"
        + "\nC004,purchase,2026-11-21T10:00:00,oops,1,books,false"  # would be quarantined with its values
        + "\nC004,purchase,too,many,fields,here,a,b,c"  # a line the parser cannot split
        + "\nC005,purchase,2026-11-21T10:00:00,3.5,1,books,false\n",
        "preferences": PREFS_HEADER
        + "\nC004,push,true,2026-11-21T09:00:00,app\nC005,push,true,2026-11-21T09:00:00,app\n",
    }
    staged = night(warehouse, tmp_path / "n2", NIGHT2, shipped, files=files)
    assert "C004" not in ids_in(warehouse, customers) and "C005" in ids_in(warehouse, customers)
    assert ids_in(warehouse, events_table({})) == {"C005"} and ids_in(warehouse, preferences) == {"C005"}
    with warehouse.connect() as conn:
        assert not any("C004" in raw for raw in conn.execute(sa.select(quarantine.c.raw)).scalars())
    assert (staged["customers"].rows_erased, staged["events"].rows_erased, staged["preferences"].rows_erased) == (
        1,
        3,
        1,
    )
    assert staged["events"].rows_quarantined == 0
    assert "3 row(s) of erased customers not loaded (tombstones)" in staged["events"].warnings
    for path in (tmp_path / "archive" / NIGHT2.isoformat()).rglob("*.csv"):
        assert "C004" not in path.read_text(), path


def test_the_same_person_under_a_new_id_is_known_by_their_e_mail(
    warehouse: Engine, tmp_path: Path, shipped: dict[str, object]
) -> None:
    first_night(warehouse, tmp_path, shipped)
    renamed = customers_csv(IDS).replace("C004,c004@example.com", "C904, C004@Example.COM ")
    files = {
        "customers": renamed,
        "events": EVENTS_HEADER + "\nC904,purchase,2026-11-21T10:00:00,12.5,1,books,false\n",
    }
    staged = night(warehouse, tmp_path / "n2", NIGHT2, shipped, files=files)
    assert not {"C004", "C904"} & ids_in(warehouse, customers)
    assert ids_in(warehouse, events_table({})) == set()
    assert staged["events"].rows_erased == 1


def test_an_erasure_accepted_after_validation_still_holds_at_publish(
    warehouse: Engine, tmp_path: Path, shipped: dict[str, object]
) -> None:
    night(warehouse, tmp_path / "n1", NIGHT1, shipped, files={"customers": customers_csv(IDS[:10])})
    folder = tmp_path / "n2"
    folder.mkdir()
    (folder / "customers.csv").write_text(customers_csv(IDS))
    config = SourcesConfig.model_validate({"sources": {"customers": SOURCES["customers"]}})
    ctx = ImportContext(run_date=NIGHT2, sources_dir=folder, archive_dir=tmp_path / "archive" / "n2")
    staged = validate_source(warehouse, ctx, "customers", config.sources["customers"], shipped["customers"])
    continue_erasure(warehouse, request_erasure(warehouse, ["C015"], "cli"), Places())  # C015: tonight's new one
    publish(warehouse, NIGHT2, [staged], shipped)
    loaded = ids_in(warehouse, customers)
    assert "C015" not in loaded and len(loaded) == len(IDS) - 1


def test_a_warehouse_with_tombstones_refuses_to_import_without_the_salt(
    warehouse: Engine, tmp_path: Path, shipped: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    first_night(warehouse, tmp_path, shipped)
    monkeypatch.delenv("CAMPAIGNS_ERASURE_SALT")
    with pytest.raises(ErasureSaltMissing, match="CAMPAIGNS_ERASURE_SALT"):
        night(warehouse, tmp_path / "n2", NIGHT2, shipped, files={"customers": customers_csv(IDS)})
    assert "C004" not in ids_in(warehouse, customers)


def test_a_gzipped_raw_copy_loses_the_erased_rows_too(
    warehouse: Engine, tmp_path: Path, shipped: dict[str, object]
) -> None:
    first_night(warehouse, tmp_path, shipped)
    folder = tmp_path / "n2"
    folder.mkdir()
    (folder / "customers.csv.gz").write_bytes(gzip.compress(customers_csv(IDS).encode()))
    sources = {**SOURCES, "customers": {"path": "customers.csv.gz"}}
    night(warehouse, folder, NIGHT2, shipped, sources=sources)
    [raw] = (tmp_path / "archive" / NIGHT2.isoformat() / "raw").glob("customers.csv.gz")
    text = gzip.decompress(raw.read_bytes()).decode()
    assert "C004" not in text and "C005" in text and text.startswith("customer_id,")
