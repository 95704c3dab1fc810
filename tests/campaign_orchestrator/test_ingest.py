"""Importing sources through their data contracts: quarantine, table-level stops, atomicity."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from campaign_orchestrator.contracts import ContractError, load_contracts
from campaign_orchestrator.ingest import SourcesConfig, import_sources
from campaign_orchestrator.tables import customers, events, import_log, preference_state, quarantine

RUN = dt.date(2026, 11, 22)
HEADER = (
    "customer_id,first_name,email,locale,timezone,country,currency,tier,lifetime_value,signup_date,last_purchase_at"
)
GOOD = [
    "C1,Ana,c1@example.com,en-GB,Europe/London,GB,GBP,gold,120.5,2024-01-02,2026-11-01T10:00:00",
    "C2,,c2@example.com,de-DE,Europe/Berlin,DE,EUR,silver,,2024-03-04,",
    "C3,Jo,c3@example.com,en-US,,US,USD,bronze,0,2025-05-06,2026-10-01T09:30:00Z",
]


@pytest.fixture(scope="module")
def contracts(repo: Path):
    return load_contracts(repo / "data_contracts")


def write_sources(folder: Path, customer_lines: list[str], gz: bool = False) -> SourcesConfig:
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join([HEADER, *customer_lines]) + "\n"
    name = "customers.csv.gz" if gz else "customers.csv"
    if gz:
        with gzip.open(folder / name, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "preferences.csv").write_text(
        "customer_id,channel,enabled,ts,source\nC1,push,true,2026-01-01T00:00:00,app\n"
        "C1,push,false,2026-02-01T00:00:00,app\nC2,email,yes,2026-01-01T00:00:00,form\n"
    )
    (folder / "events.csv").write_text(
        "customer_id,name,ts,amount\nC1,purchase,2026-11-01T10:00:00,10.5\nC2,app_open,2026-11-02T11:00:00,\n"
    )
    return SourcesConfig.model_validate(
        {
            "sources": {
                "customers": {"path": name},
                "preferences": {"path": "preferences.csv"},
                "events": {"path": "events.csv", "mode": "append"},
            }
        }
    )


def count(engine, table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)))


def test_good_rows_load_and_bad_rows_are_quarantined_with_reasons(warehouse, tmp_path, contracts):
    bad = [
        "C4,Bo,c4@example.com,en-GB,Europe/London,GB,GBP,diamond,10,2024-01-01,",  # line 5: tier
        "C5,Cy,c5@example.com,en-GB,Mars/Olympus,GB,GBP,gold,n/a,2024-01-01,",  # line 6: zone + type
    ]
    config = write_sources(
        tmp_path, GOOD * 1 + bad + [f"C{i},X,x@example.com,en-GB,,GB,GBP,gold,1,2024-01-01," for i in range(10, 60)]
    )
    report = import_sources(warehouse, RUN, tmp_path, config, contracts)
    assert report.as_dict()["customers"] == {
        "file": "customers.csv",
        "rows_read": 55,
        "rows_loaded": 53,
        "rows_quarantined": 2,
    }
    with warehouse.connect() as conn:
        rows = {r.line: r for r in conn.execute(sa.select(quarantine).order_by(quarantine.c.line))}
        c2 = conn.execute(sa.select(customers).where(customers.c.customer_id == "C2")).mappings().one()
        c3 = conn.execute(sa.select(customers).where(customers.c.customer_id == "C3")).mappings().one()
        state = dict(
            conn.execute(
                sa.select(preference_state.c.customer_id, preference_state.c.enabled).where(
                    preference_state.c.channel == "push"
                )
            ).all()
        )
    assert set(rows) == {5, 6}
    assert json.loads(rows[5].rules) == ["expect_column_values_to_be_in_set(tier)"]
    assert sorted(json.loads(rows[6].rules)) == [
        "expect_column_values_to_be_in_set(timezone)",
        "type(lifetime_value): expected float",
    ]
    assert json.loads(rows[6].raw)["lifetime_value"] == "n/a"
    assert c2["first_name"] is None and c2["lifetime_value"] is None and c2["last_purchase_at"] is None
    assert c3["last_purchase_at"] == dt.datetime(2026, 10, 1, 9, 30)  # Z parsed, stored as naive UTC
    assert state == {"C1": False}  # the later opt-out wins over the earlier opt-in


def test_reimporting_a_date_gives_identical_tables(warehouse, tmp_path, contracts):
    config = write_sources(tmp_path, GOOD)
    import_sources(warehouse, RUN, tmp_path, config, contracts)
    first = (count(warehouse, customers), count(warehouse, events))
    import_sources(warehouse, RUN, tmp_path, config, contracts)
    assert (count(warehouse, customers), count(warehouse, events)) == first == (3, 2)
    import_sources(warehouse, RUN + dt.timedelta(days=1), tmp_path, config, contracts)
    assert count(warehouse, events) == 4  # events append per import date


def test_gzipped_files_import(warehouse, tmp_path, contracts):
    config = write_sources(tmp_path, GOOD, gz=True)
    import_sources(warehouse, RUN, tmp_path, config, contracts)
    assert count(warehouse, customers) == 3


def _assert_untouched(warehouse) -> None:
    assert count(warehouse, customers) == 3
    with warehouse.connect() as conn:
        assert (
            conn.scalar(
                sa.select(sa.func.count())
                .select_from(import_log)
                .where(import_log.c.run_date == RUN + dt.timedelta(days=1))
            )
            == 0
        )


@pytest.mark.parametrize(
    "lines, header, rule, column, detail",
    [
        (
            GOOD,
            HEADER.replace("customer_id", "cust_id"),
            "required_columns",
            "customer_id",
            "1 required column(s) missing",
        ),
        ([], HEADER, "file_not_empty", None, "no data rows"),
        ([*GOOD, GOOD[0]], HEADER, "expect_column_values_to_be_unique", "customer_id", "failed"),
        (
            [*GOOD, *[f"D{i},X,x@example.com,en-GB,,GB,GBP,tin,1,2024-01-01," for i in range(9)]],
            HEADER,
            "max_quarantine_share",
            None,
            "9 of 12 rows (75.0%) broke row rules",
        ),
    ],
)
def test_table_level_failures_stop_the_import_and_keep_yesterdays_data(
    warehouse, tmp_path, contracts, lines, header, rule, column, detail
):
    import_sources(warehouse, RUN, tmp_path / "day1", write_sources(tmp_path / "day1", GOOD), contracts)
    config = write_sources(tmp_path / "day2", lines)
    text = (tmp_path / "day2" / "customers.csv").read_text().replace(HEADER, header)
    (tmp_path / "day2" / "customers.csv").write_text(text)
    with pytest.raises(ContractError) as err:
        import_sources(warehouse, RUN + dt.timedelta(days=1), tmp_path / "day2", config, contracts)
    assert err.value.source == "customers" and err.value.file == "customers.csv"
    assert err.value.rule == rule and err.value.column == column
    assert detail in str(err.value)
    _assert_untouched(warehouse)


def test_a_missing_required_file_is_a_contract_failure(warehouse, tmp_path, contracts):
    config = SourcesConfig.model_validate({"sources": {"customers": {"path": "nope-{date}.csv"}}})
    with pytest.raises(ContractError, match="file_exists"):
        import_sources(warehouse, RUN, tmp_path, config, contracts)
