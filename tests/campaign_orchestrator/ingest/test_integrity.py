"""Keys you can trust, and the data-in defects a new user hit: each ends in its stated outcome with a
message naming source, file and column (or the quarantine reason), never a silent load."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from campaign_orchestrator.cli.night import import_table
from campaign_orchestrator.ingest.contracts import ContractError, KeyChurnBand, load_contracts
from campaign_orchestrator.ingest.sources import SourcesConfig
from campaign_orchestrator.ingest.validate import ImportContext, ImportFailed
from campaign_orchestrator.warehouse.event_properties import ensure_event_properties, events_table
from campaign_orchestrator.warehouse.tables import app_installs, customers, import_log, preferences, quarantine
from tests.builders import import_night

NIGHT1 = dt.date(2026, 11, 21)
NIGHT2 = dt.date(2026, 11, 22)
CUSTOMERS_HEADER = "customer_id,email,tier,lifetime_value,signup_date,last_purchase_at"
SOURCES = {
    "customers": {"path": "customers.csv"},
    "events": {"path": "events.csv", "mode": "append"},
    "preferences": {"path": "preferences.csv", "mode": "merge"},
    "suppressions": {"path": "suppressions.csv", "mode": "merge"},
    "app_installs": {"path": "app_installs.csv", "required": False},
}


@pytest.fixture(scope="module")
def shipped(repo: Path):
    """The shipped contracts, with no quarantine limit: these nights are a few rows each."""
    return {
        name: dataclasses.replace(contract, max_quarantine_share=1.0)
        for name, contract in load_contracts(repo / "data_contracts").items()
    }


def night(engine, folder: Path, when: dt.date, contracts, sources=SOURCES, files: dict[str, str] | None = None):
    """Write the night's files (CSV text per source) and import them as the DAG does."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        (folder / f"{name}.csv").write_text(text)
    config = SourcesConfig.model_validate(
        {"sources": {k: v for k, v in sources.items() if (folder / v["path"]).exists() or v.get("required") is False}}
    )
    ctx = ImportContext(
        run_date=when,
        sources_dir=folder,
        archive_dir=folder.parent / "archive" / when.isoformat(),
        customers=config.sources.get("customers"),
    )
    return {s.source: s for s in import_night(engine, ctx, config, contracts)}


def customers_csv(ids: list[str]) -> str:
    return CUSTOMERS_HEADER + "\n" + "".join(f"{c},{c.lower()}@example.com,gold,10.5,2024-01-02,\n" for c in ids)


def reasons(engine, source: str) -> dict[int, list[str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(quarantine).where(quarantine.c.source == source)).all()
    return {r.row_number: json.loads(r.rules) for r in rows}


IDS = [f"C{i:03d}" for i in range(1, 21)]
EVENTS_HEADER = "customer_id,name,ts,amount,items,category,coupon"


def test_an_absent_optional_column_of_any_type_loads_as_null(warehouse, tmp_path, shipped):
    # customers without tier (text), lifetime_value (float), signup_date (date), last_purchase_at
    # (datetime); events without amount, items (int), category, coupon (bool)
    files = {
        "customers": "customer_id,email\nC001,a@example.com\nC002,b@example.com\n",
        "events": "customer_id,name,ts\nC001,purchase,2026-11-20T10:00:00\n",
    }
    staged = night(warehouse, tmp_path / "n1", NIGHT1, shipped, files=files)
    assert staged["customers"].rows_loaded == 2 and staged["events"].rows_loaded == 1
    with warehouse.connect() as conn:
        row = conn.execute(sa.select(customers).where(customers.c.customer_id == "C001")).one()
        event = conn.execute(sa.select(events_table({"items": "int", "coupon": "bool", "category": "string"}))).one()
    assert (row.tier, row.lifetime_value, row.signup_date, row.last_purchase_at) == (None, None, None, None)
    assert (event.amount, event.items, event.category, event.coupon) == (None, None, None, None)


def test_an_empty_increment_is_a_normal_night_and_an_empty_replace_is_refused(warehouse, tmp_path, shipped):
    night(
        warehouse,
        tmp_path / "n1",
        NIGHT1,
        shipped,
        files={
            "customers": customers_csv(IDS),
            "events": EVENTS_HEADER + "\nC001,purchase,2026-11-20T10:00:00,12.5,1,books,false\n",
            "suppressions": "customer_id,reason,since\nC003,erased,2026-11-01T00:00:00\n",
        },
    )
    staged = night(
        warehouse,
        tmp_path / "n2",
        NIGHT2,
        shipped,
        files={
            "customers": customers_csv(IDS),
            "events": EVENTS_HEADER + "\n",
            "suppressions": "customer_id,reason,since\n",
            "preferences": "customer_id,channel,enabled,ts,source\n",
        },
    )
    assert (staged["events"].rows_read, staged["suppressions"].rows_read, staged["preferences"].rows_read) == (0, 0, 0)
    with warehouse.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(events_table({}))) == 1  # night 1's stays
    with pytest.raises(ImportFailed) as err:
        night(warehouse, tmp_path / "n3", NIGHT2, shipped, files={"customers": CUSTOMERS_HEADER + "\n"})
    failure = err.value.failures[0]
    assert (failure.source, failure.rule) == ("customers", "file_not_empty") and "customers.csv" in str(failure)


def test_undeclared_columns_are_named_once_per_source_and_file(warehouse, tmp_path, shipped, caplog):
    text = "customer_id,email,tier,teir,favourite_colour\nC001,a@example.com,gold,gold,red\n"
    with caplog.at_level("WARNING"):
        staged = night(warehouse, tmp_path / "n1", NIGHT1, shipped, files={"customers": text})
    [warning] = staged["customers"].warnings
    assert "2 column(s) the contract does not declare, not loaded: ['teir', 'favourite_colour']" in warning
    assert "red" not in warning and "red" not in caplog.text  # names, never values
    assert "source 'customers', file customers.csv" in caplog.text
    with warehouse.connect() as conn:
        logged = conn.scalar(sa.select(import_log.c.warnings).where(import_log.c.source == "customers"))
    assert json.loads(logged) == [warning]
    printed = import_table([dataclasses.asdict(staged["customers"])])
    assert f"warning: source 'customers', file customers.csv: {warning}" in printed


def test_a_duplicate_key_names_up_to_ten_of_the_keys(warehouse, tmp_path, shipped):
    ids = [*IDS, "C005", "C007", "C007"]
    with pytest.raises(ImportFailed) as err:
        night(warehouse, tmp_path / "n1", NIGHT1, shipped, files={"customers": customers_csv(ids)})
    message = str(err.value.failures[0])
    assert "customers.csv" in message and "customer_id" in message
    assert "C005" in message and "C007" in message


def test_duplicate_keys_across_chunks_are_named_too(warehouse, tmp_path, shipped, monkeypatch):
    from campaign_orchestrator.ingest import sources

    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 256)
    ids = [*IDS, "C002"]  # the repeat lands in a later chunk than the first C002
    with pytest.raises(ImportFailed) as err:
        night(warehouse, tmp_path / "n1", NIGHT1, shipped, files={"customers": customers_csv(ids)})
    assert "C002" in str(err.value.failures[0])


def test_child_rows_of_unknown_customers_are_quarantined(warehouse, tmp_path, shipped):
    files = {
        "customers": customers_csv(IDS),
        "events": EVENTS_HEADER + "\nC001,purchase,2026-11-20T10:00:00,12.5,1,books,false\n"
        "C999,purchase,2026-11-20T11:00:00,9.5,1,books,false\n",
        "preferences": "customer_id,channel,enabled,ts,source\nC001,push,true,2026-01-01T00:00:00,app\n"
        "X-1,push,true,2026-01-01T00:00:00,app\n",
        "app_installs": "customer_id,app_id,platform,push_token_present,last_seen_at\n"
        "C998,com.example,ios,true,2026-11-20T10:00:00\nC002,com.example,ios,true,2026-11-20T10:00:00\n",
        "suppressions": "customer_id,reason,since\nC997,erased,2026-11-01T00:00:00\n",  # kept: never drop one
    }
    staged = night(warehouse, tmp_path / "n1", NIGHT1, shipped, files=files)
    assert reasons(warehouse, "events") == {2: ["unknown_customer"]}
    assert reasons(warehouse, "preferences") == {2: ["unknown_customer"]}
    assert reasons(warehouse, "app_installs") == {1: ["unknown_customer"]}
    assert staged["suppressions"].rows_loaded == 1
    with warehouse.connect() as conn:
        assert set(conn.execute(sa.select(preferences.c.customer_id)).scalars()) == {"C001"}
        assert set(conn.execute(sa.select(app_installs.c.customer_id)).scalars()) == {"C002"}


def test_unknown_customers_can_be_counted_instead(warehouse, tmp_path, shipped):
    contracts = {**shipped, "events": dataclasses.replace(shipped["events"], unknown_customers="count")}
    files = {
        "customers": customers_csv(IDS),
        "events": EVENTS_HEADER + "\nC999,purchase,2026-11-20T11:00:00,9.5,1,books,false\n",
    }
    staged = night(warehouse, tmp_path / "n1", NIGHT1, contracts, files=files)
    assert staged["events"].rows_loaded == 1
    assert "1 row(s) for customers that do not exist in tonight's customers file customers.csv" in " ".join(
        staged["events"].warnings
    )


def test_a_re_keyed_export_is_named_by_key_churn_and_its_children_are_quarantined(warehouse, tmp_path, shipped):
    ids = [f"C{i:04d}" for i in range(1, 201)]
    night(warehouse, tmp_path / "n1", NIGHT1, shipped, files={"customers": customers_csv(ids)})
    rekeyed = [f"id-{c}" for c in ids[:50]] + ids[50:]
    events = EVENTS_HEADER + "\n" + "".join(f"{c},app_open,2026-11-21T10:00:00,,,,\n" for c in ids[:60])
    files = {"customers": customers_csv(rekeyed), "events": events}
    with pytest.raises(ImportFailed) as err:  # the shipped band: at most 5% of last night's keys gone
        night(warehouse, tmp_path / "n2", NIGHT2, shipped, files=files)
    churn = next(f for f in err.value.failures if f.rule == "key_churn")
    assert (churn.source, churn.column) == ("customers", "customer_id")
    assert "50 of 200 keys are new (25.0%), 50 of 200 earlier keys are gone (25.0%)" in str(churn)
    assert "customers.csv" in str(churn)
    # With a band that allows it, the churn is still said, and the orphaned events are quarantined.
    loose = dataclasses.replace(shipped["customers"], key_churn=KeyChurnBand(1.0, 1.0))
    contracts = {**shipped, "customers": loose}
    staged = night(warehouse, tmp_path / "n3", NIGHT2, contracts, files=files)
    assert staged["customers"].warnings == [
        "key churn: 50 of 200 keys are new (25.0%), 50 of 200 earlier keys are gone (25.0%)"
    ]
    orphaned = reasons(warehouse, "events")
    assert len(orphaned) == 50 and all(r == ["unknown_customer"] for r in orphaned.values())


def test_event_ids_drop_repeats_in_a_file_and_across_nights(warehouse, tmp_path, shipped):
    import copy

    from campaign_orchestrator.ingest.contracts import ColumnSpec

    events = copy.deepcopy(shipped["events"])
    events.columns["event_id"] = ColumnSpec("event_id", "string")
    contracts = {**shipped, "events": events}
    header = EVENTS_HEADER + ",event_id\n"
    first = (
        "C001,purchase,2026-11-20T10:00:00,1,1,books,false,e1\nC001,purchase,2026-11-20T10:00:00,1,1,books,false,e2\n"
    )
    files = {
        "customers": customers_csv(IDS),
        "events": header + first + "C001,purchase,2026-11-20T10:00:00,1,1,books,false,e1\n",
    }
    night(warehouse, tmp_path / "n1", NIGHT1, contracts, files=files)
    assert reasons(warehouse, "events") == {3: ["duplicate(event_id)"]}
    # Night 2 re-sends e2 with e3: e2 is skipped at publish, e3 loads; re-importing night 2 changes nothing.
    files = {
        "customers": customers_csv(IDS),
        "events": header
        + "C001,purchase,2026-11-20T10:00:00,1,1,books,false,e2\n"
        + "C002,purchase,2026-11-21T10:00:00,1,1,books,false,e3\n",
    }
    for _ in range(2):
        night(warehouse, tmp_path / "n2", NIGHT2, contracts, files=files)
        with warehouse.connect() as conn:
            table = events_table({"event_id": "string"})
            got = sorted(conn.execute(sa.select(table.c.event_id, table.c.import_date)).all())
        assert got == [("e1", NIGHT1), ("e2", NIGHT1), ("e3", NIGHT2)]


def test_exact_repeats_of_events_without_an_id_are_counted(warehouse, tmp_path, shipped):
    row = "C001,purchase,2026-11-20T10:00:00,12.5,1,books,false\n"
    files = {"customers": customers_csv(IDS), "events": EVENTS_HEADER + "\n" + row * 6}
    staged = night(warehouse, tmp_path / "n1", NIGHT1, shipped, files=files)
    assert staged["events"].rows_loaded == 6
    assert any("5 row(s) repeat an earlier row exactly" in w for w in staged["events"].warnings)


def test_a_property_column_of_another_type_stops_the_night_naming_both(warehouse):
    ensure_event_properties(warehouse, {"size": "int"})
    from campaign_orchestrator.warehouse.event_properties import PropertyTypeMismatch

    with pytest.raises(PropertyTypeMismatch, match=r"events property 'size'.*declares string"):
        ensure_event_properties(warehouse, {"size": "string"})


def test_a_declared_property_is_never_dropped_on_import(warehouse, tmp_path, shipped):
    files = {
        "customers": customers_csv(IDS),
        "events": EVENTS_HEADER + "\nC001,purchase,2026-11-20T10:00:00,12.5,3,books,true\n",
    }
    night(warehouse, tmp_path / "n1", NIGHT1, shipped, files=files)
    with warehouse.connect() as conn:
        table = events_table({"items": "int", "category": "string", "coupon": "bool"})
        assert conn.execute(sa.select(table.c["items"], table.c["category"], table.c["coupon"])).one() == (
            3,
            "books",
            True,
        )


def test_a_broken_contract_property_name_is_refused(tmp_path):
    from campaign_orchestrator.ingest.contracts import Contract

    doc = {
        "meta": {"source": "events", "columns": {"customer_id": {"type": "string"}, "import_date": {"type": "date"}}}
    }
    (tmp_path / "events.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"meta\.columns\.import_date: an event property"):
        Contract.load(tmp_path / "events.json")
    assert ContractError  # the import's error type, for the cases above


def test_an_event_id_must_be_text(tmp_path):
    from campaign_orchestrator.ingest.contracts import Contract

    doc = {"meta": {"source": "events", "columns": {"customer_id": {"type": "string"}, "event_id": {"type": "int"}}}}
    (tmp_path / "events.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"meta\.columns\.event_id: an event id is text"):
        Contract.load(tmp_path / "events.json")


def test_new_customers_rows_are_kept_when_tonights_customers_come_from_a_query(warehouse, tmp_path, shipped):
    from campaign_orchestrator.ingest.integrity import known_customers
    from campaign_orchestrator.ingest.sources import SourceSpec

    night(warehouse, tmp_path / "n1", NIGHT1, shipped, files={"customers": customers_csv(IDS)})
    spec = SourceSpec.model_validate({"format": "sql", "query": "SELECT 1", "url": "sqlite://"})
    assert known_customers(warehouse, spec, tmp_path, NIGHT2) is None  # skipped, not the stale table
