"""Importing sources through their data contracts: malformed inputs of every ordinary kind.

Every case starts from an accepted night (the baseline) and imports a second night. It ends in a
clean load with exactly the bad rows quarantined, or in a failure with a clear message and the
baseline tables untouched: never a traceback, a half-replaced table or a lost good row.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from campaign_orchestrator.ingest.contracts import ContractError, load_contracts
from campaign_orchestrator.ingest.sources import SourcesConfig
from campaign_orchestrator.ingest.validate import ImportContext, ImportFailed
from campaign_orchestrator.warehouse.tables import (
    customers,
    events,
    import_log,
    preference_state,
    preferences,
    quarantine,
)
from tests.builders import import_night

NIGHT1 = dt.date(2026, 11, 21)
NIGHT2 = dt.date(2026, 11, 22)
HEADER = (
    "customer_id,first_name,email,locale,timezone,country,currency,tier,lifetime_value,signup_date,last_purchase_at"
)
N = 40


def good_row(i: int, **over: str) -> dict[str, str]:
    row = {
        "customer_id": f"C{i:03d}",
        "first_name": f"Name{i}",
        "email": f"c{i}@example.com",
        "locale": "en-GB",
        "timezone": "Europe/London",
        "country": "GB",
        "currency": "GBP",
        "tier": "gold",
        "lifetime_value": f"{i}.5",
        "signup_date": "2024-01-02",
        "last_purchase_at": "2026-11-01T10:00:00",
    }
    row.update(over)
    return row


def csv_text(rows: list[dict[str, str]], header: str = HEADER, sep: str = ",", eol: str = "\n") -> str:
    cols = header.split(",")
    lines = [sep.join(cols)]
    for r in rows:
        lines.append(sep.join(_quote(r.get(c, ""), sep) for c in cols))
    return eol.join(lines) + eol


def _quote(value: str, sep: str) -> str:
    if any(ch in value for ch in (sep, '"', "\n", "\r")):
        return '"' + value.replace('"', '""') + '"'
    return value


def rows(n: int = N, **mutations: dict[str, str]) -> list[dict[str, str]]:
    """n good rows; mutations maps a 1-based row number (as 'r7') to fields to change."""
    out = [good_row(i) for i in range(1, n + 1)]
    for key, fields in mutations.items():
        out[int(key[1:]) - 1].update(fields)
    return out


@pytest.fixture(scope="module")
def contracts(repo: Path):
    return load_contracts(repo / "data_contracts")


CONFIG = SourcesConfig.model_validate({"sources": {"customers": {"path": "customers.csv"}}})


def run_import(engine, folder: Path, night: dt.date, contracts, config: SourcesConfig = CONFIG):
    ctx = ImportContext(run_date=night, sources_dir=folder, archive_dir=folder.parent / "archive" / night.isoformat())
    return import_night(engine, ctx, config, contracts)


def table_rows(engine, table) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.select(table)))


def quarantined(engine, night: dt.date) -> dict[int, list[str]]:
    with engine.connect() as conn:
        return {
            r.row_number: json.loads(r.rules)
            for r in conn.execute(sa.select(quarantine).where(quarantine.c.run_date == night))
        }


@pytest.fixture
def baseline(warehouse, tmp_path, contracts):
    """Night 1 accepted: 40 good customers."""
    night1 = tmp_path / "night1"
    night1.mkdir()
    (night1 / "customers.csv").write_text(csv_text(rows()))
    run_import(warehouse, night1, NIGHT1, contracts)
    return table_rows(warehouse, customers)


@dataclass
class Case:
    write: Callable[[Path], None]
    loaded: int | None = None  # rows expected in customers after a clean load
    bad_rows: dict[int, str] | None = None  # row_number -> a rule that must be among its reasons
    fails: tuple[str, str] | None = None  # (rule, text in the message)
    config: SourcesConfig = CONFIG


def text_file(content: str | bytes, name: str = "customers.csv") -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        data = content.encode("utf-8") if isinstance(content, str) else content
        (folder / name).write_bytes(data)

    return write


def parquet_file(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda folder: frame.to_parquet(folder / "customers.parquet", index=False)


PARQUET = SourcesConfig.model_validate({"sources": {"customers": {"path": "customers.parquet", "format": "parquet"}}})
GOOD_FRAME = pd.DataFrame(rows())
WRONG_TYPES = GOOD_FRAME.assign(
    lifetime_value=[f"{i}.5" for i in range(1, N + 1)],  # strings where a float belongs: still parse
    tier=["gold"] * (N - 1) + ["7"],  # a number where a tier belongs: quarantined
)
WRONG_TYPES.loc[5, "lifetime_value"] = "abc"  # row 6 cannot be a number
BAD_UTF8 = csv_text(rows()).encode("utf-8").replace(b"Name7,", b"N\xff\xfeme7,")
TRUNCATED = csv_text(rows())[:-40]  # cut inside the last row's unquoted fields
UNCLOSED_QUOTE = csv_text(rows()).rstrip("\n") + ',"never closed\n'

CASES: dict[str, Case] = {
    "clean": Case(text_file(csv_text(rows())), loaded=N),
    "wrong_delimiter": Case(text_file(csv_text(rows(), sep=";")), fails=("required_columns", "';'-delimited")),
    "byte_order_mark": Case(text_file("\ufeff" + csv_text(rows())), loaded=N),
    "invalid_utf8": Case(text_file(BAD_UTF8), loaded=N - 1, bad_rows={7: "encoding(first_name)"}),
    "truncated_last_line": Case(text_file(TRUNCATED), loaded=N - 1, bad_rows={N: "field_count"}),
    "truncated_inside_quotes": Case(text_file(UNCLOSED_QUOTE), loaded=N - 1, bad_rows={N: "field_count"}),
    "extra_columns": Case(
        text_file(csv_text([{**r, "shoe_size": "42"} for r in rows()], HEADER + ",shoe_size")), loaded=N
    ),
    "missing_optional_column": Case(text_file(csv_text(rows(), HEADER.replace(",currency", ""))), loaded=N),
    "missing_required_column": Case(
        text_file(csv_text(rows(), HEADER.replace("customer_id,", ""))),
        fails=("required_columns", "1 required column(s) missing: ['customer_id']"),
    ),
    "renamed_column": Case(
        text_file(
            csv_text([{**r, "cust_id": r["customer_id"]} for r in rows()], HEADER.replace("customer_id", "cust_id"))
        ),
        fails=("required_columns", "['cust_id'] (renamed?)"),
    ),
    "duplicate_keys": Case(
        text_file(csv_text(rows(r5={"customer_id": "C001"}, r9={"customer_id": "C002"}))),
        fails=("expect_column_values_to_be_unique", "failed"),
    ),
    "null_key": Case(
        text_file(csv_text(rows(r3={"customer_id": ""}))),
        loaded=N - 1,
        bad_rows={3: "expect_column_values_to_not_be_null(customer_id)"},
    ),
    "thousands_separator": Case(
        text_file(csv_text(rows(r4={"lifetime_value": "1,234.50"}))), loaded=N - 1, bad_rows={4: "type(lifetime_value)"}
    ),
    "date_formats_iso_offset_and_space": Case(
        text_file(
            csv_text(
                rows(
                    r2={"last_purchase_at": "2026-11-01T10:00:00+02:00"},
                    r3={"last_purchase_at": "2026-11-01 10:00:00"},
                    r4={"signup_date": "2024-01-02"},
                )
            )
        ),
        loaded=N,
    ),
    "date_format_us": Case(
        text_file(csv_text(rows(r6={"signup_date": "11/01/2024"}))), loaded=N - 1, bad_rows={6: "type(signup_date)"}
    ),
    "date_format_dotted": Case(
        text_file(csv_text(rows(r8={"last_purchase_at": "01.11.2026 10:00"}))),
        loaded=N - 1,
        bad_rows={8: "type(last_purchase_at)"},
    ),
    "date_in_the_future": Case(
        text_file(csv_text(rows(r9={"last_purchase_at": "2027-01-01T00:00:00"}))),
        loaded=N - 1,
        bad_rows={9: "not_in_future(last_purchase_at)"},
    ),
    "empty_file": Case(text_file(""), fails=("file_not_empty", "the file is empty")),
    "header_only": Case(text_file(HEADER + "\n"), fails=("file_not_empty", "no data rows")),
    "ten_times_the_rows": Case(text_file(csv_text(rows(N * 10))), fails=("row_count_band", "10.00x the last")),
    "one_megabyte_field": Case(
        text_file(csv_text(rows(r10={"first_name": "x" * 1_000_000}))),
        loaded=N - 1,
        bad_rows={10: "max_length(first_name)"},
    ),
    "quotes_and_newlines_in_fields": Case(text_file(csv_text(rows(r11={"first_name": 'Ana "A",\nSmith'}))), loaded=N),
    "mixed_line_endings": Case(text_file(csv_text(rows()).replace("\n", "\r\n", 20)), loaded=N),
    "too_many_fields": Case(
        text_file(csv_text(rows()).replace("C012,", "C012,surplus,", 1)), loaded=N - 1, bad_rows={12: "field_count"}
    ),
    "column_of_nulls": Case(
        text_file(csv_text([{**r, "customer_id": ""} for r in rows()])), fails=("max_quarantine_share", "40 of 40 rows")
    ),
    "unknown_tier_and_zone": Case(
        text_file(csv_text(rows(r13={"tier": "diamond"}, r14={"timezone": "Mars/Base"}))),
        loaded=N - 2,
        bad_rows={13: "in_set(tier)", 14: "in_set(timezone)"},
    ),
    "whitespace_around_values": Case(
        text_file(csv_text(rows(r15={"tier": "  gold ", "lifetime_value": " 3 "}))), loaded=N
    ),
    "blank_lines": Case(text_file(csv_text(rows()).replace("\nC020", "\n\n\nC020")), loaded=N),
    "gzipped": Case(
        lambda f: (f / "customers.csv.gz").write_bytes(gzip.compress(csv_text(rows()).encode())),
        loaded=N,
        config=SourcesConfig.model_validate({"sources": {"customers": {"path": "customers.csv.gz"}}}),
    ),
    "corrupt_gzip": Case(
        lambda f: (f / "customers.csv.gz").write_bytes(gzip.compress(csv_text(rows()).encode())[:300]),
        fails=("readable", "cannot be"),
        config=SourcesConfig.model_validate({"sources": {"customers": {"path": "customers.csv.gz"}}}),
    ),
    "parquet_clean": Case(parquet_file(GOOD_FRAME), loaded=N, config=PARQUET),
    "parquet_wrong_types": Case(
        parquet_file(WRONG_TYPES), loaded=N - 2, config=PARQUET, bad_rows={6: "type(lifetime_value)", N: "in_set(tier)"}
    ),
    "not_parquet_at_all": Case(
        text_file(csv_text(rows()), "customers.parquet"), fails=("readable", "not a readable Parquet"), config=PARQUET
    ),
    "missing_file": Case(lambda f: None, fails=("file_exists", "does not exist")),
    "semicolon_delimiter_declared": Case(
        text_file(csv_text(rows(), sep=";")),
        loaded=N,
        config=SourcesConfig.model_validate({"sources": {"customers": {"path": "customers.csv", "delimiter": ";"}}}),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input(name, warehouse, baseline, tmp_path, contracts):
    case = CASES[name]
    night2 = tmp_path / "night2"
    night2.mkdir()
    case.write(night2)
    if case.fails:
        with pytest.raises(ContractError) as err:
            run_import(warehouse, night2, NIGHT2, contracts, case.config)
        rule, text = case.fails
        failure = err.value.failures[0] if isinstance(err.value, ImportFailed) else err.value
        assert failure.rule == rule and failure.source == "customers", str(err.value)
        assert text in str(err.value)
        assert table_rows(warehouse, customers) == baseline, "a failed import changed the live table"
        with warehouse.connect() as conn:
            status = conn.scalar(sa.select(import_log.c.status).where(import_log.c.run_date == NIGHT2))
        assert status == "failed"
        return
    run_import(warehouse, night2, NIGHT2, contracts, case.config)
    loaded = table_rows(warehouse, customers)
    assert len(loaded) == case.loaded
    got = quarantined(warehouse, NIGHT2)
    expected = case.bad_rows or {}
    assert set(got) == set(expected), got
    for row_number, rule in expected.items():
        assert any(rule in r for r in got[row_number]), (row_number, got[row_number])


def test_at_least_thirty_malformed_cases():
    assert sum(1 for n in CASES if n != "clean") >= 30


def test_values_arrive_normalised(warehouse, baseline, tmp_path, contracts):
    night2 = tmp_path / "night2"
    night2.mkdir()
    CASES["date_formats_iso_offset_and_space"].write(night2)
    run_import(warehouse, night2, NIGHT2, contracts)
    with warehouse.connect() as conn:
        got = dict(conn.execute(sa.select(customers.c.customer_id, customers.c.last_purchase_at)).all())
    assert got["C002"] == dt.datetime(2026, 11, 1, 8, 0)  # +02:00 stored as UTC
    assert got["C003"] == dt.datetime(2026, 11, 1, 10, 0)


def test_a_quarantined_row_keeps_its_raw_values(warehouse, baseline, tmp_path, contracts):
    night2 = tmp_path / "night2"
    night2.mkdir()
    CASES["thousands_separator"].write(night2)
    run_import(warehouse, night2, NIGHT2, contracts)
    with warehouse.connect() as conn:
        raw = json.loads(conn.scalar(sa.select(quarantine.c.raw).where(quarantine.c.run_date == NIGHT2)))
    assert raw["lifetime_value"] == "1,234.50" and raw["customer_id"] == "C004"


def test_an_unreachable_source_database_fails_cleanly(warehouse, tmp_path, contracts):
    config = SourcesConfig.model_validate(
        {
            "sources": {
                "customers": {
                    "format": "sql",
                    "query": "SELECT * FROM crm_customers",
                    "url": "postgresql+psycopg://crm:s3cret@127.0.0.1:1/crm",
                }
            }
        }
    )
    with pytest.raises(ContractError) as err:
        run_import(warehouse, tmp_path, NIGHT2, contracts, config)
    assert "unreachable" in str(err.value) and "s3cret" not in str(err.value)


def test_an_sql_source_imports_and_is_archived(warehouse, tmp_path, contracts):
    crm = sa.create_engine(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    pd.DataFrame(rows()).to_sql("crm_customers", crm, index=False)
    crm.dispose()
    config = SourcesConfig.model_validate(
        {
            "sources": {
                "customers": {
                    "format": "sql",
                    "query": "SELECT * FROM crm_customers WHERE signup_date <= :run_date",
                    "url": f"sqlite:///{tmp_path / 'crm.sqlite'}",
                }
            }
        }
    )
    staged = run_import(warehouse, tmp_path, NIGHT2, contracts, config)
    assert len(table_rows(warehouse, customers)) == N
    assert Path(staged[0].archived_as).exists()


def test_events_append_per_date_and_a_reimport_is_identical(warehouse, tmp_path, contracts):
    (tmp_path / "events.csv").write_text(
        "customer_id,name,ts,amount\nC1,purchase,2026-11-01T10:00:00,10.5\nC2,app_open,2026-11-02T11:00:00,\n"
    )
    config = SourcesConfig.model_validate({"sources": {"events": {"path": "events.csv", "mode": "append"}}})
    run_import(warehouse, tmp_path, NIGHT1, contracts, config)
    first = table_rows(warehouse, events)
    run_import(warehouse, tmp_path, NIGHT1, contracts, config)
    assert table_rows(warehouse, events) == first and len(first) == 2
    run_import(warehouse, tmp_path, NIGHT2, contracts, config)
    assert len(table_rows(warehouse, events)) == 4


PREFS = SourcesConfig.model_validate(
    {
        "sources": {
            "preferences": {"path": "preferences.csv", "mode": "merge"},
            "suppressions": {"path": "suppressions.csv", "mode": "merge"},
            "customers": {"path": "customers.csv"},
        }
    }
)


def test_preference_history_is_kept_and_older_changes_do_not_win(warehouse, tmp_path, contracts):
    (tmp_path / "customers.csv").write_text(csv_text(rows(3)))
    (tmp_path / "suppressions.csv").write_text("customer_id,reason,since\nC003,erased,2026-11-01T00:00:00\n")
    (tmp_path / "preferences.csv").write_text(
        "customer_id,channel,enabled,ts,source\nC001,push,true,2026-01-01T00:00:00,app\n"
        "C001,push,false,2026-02-01T00:00:00,support\n"
    )
    run_import(warehouse, tmp_path, NIGHT1, contracts, PREFS)
    # Night 2's export is older for C001 (it lost the opt-out) and C003 is back without a suppression.
    (tmp_path / "preferences.csv").write_text(
        "customer_id,channel,enabled,ts,source\nC001,push,true,2026-01-15T00:00:00,app\n"
        "C002,email,yes,2026-01-01T00:00:00,form\n"
    )
    (tmp_path / "suppressions.csv").write_text("customer_id,reason,since\nC002,legal_hold,2026-11-20T00:00:00\n")
    run_import(warehouse, tmp_path, NIGHT2, contracts, PREFS)
    with warehouse.connect() as conn:
        state = {(r.customer_id, r.channel): r.enabled for r in conn.execute(sa.select(preference_state))}
        history = conn.execute(
            sa.select(preferences.c.customer_id, preferences.c.ts, preferences.c.source).order_by(preferences.c.ts)
        ).all()
        suppressed = set(conn.execute(sa.select(sa.text("customer_id")).select_from(sa.text("suppressions"))).scalars())
    assert state == {("C001", "push"): False, ("C002", "email"): True}  # the newest change still wins
    assert len(history) == 4 and [h.source for h in history if h.customer_id == "C001"] == ["app", "app", "support"]
    assert suppressed == {"C002", "C003"}  # the erased customer stays suppressed


def test_a_replay_from_the_archive_gives_the_same_tables(warehouse, tmp_path, contracts):
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "customers.csv").write_text(csv_text(rows(r4={"tier": "diamond"})))
    run_import(warehouse, folder, NIGHT1, contracts)
    first = table_rows(warehouse, customers)
    (folder / "customers.csv").write_text(csv_text(rows(5)))  # the export was overwritten since
    ctx = ImportContext(
        run_date=NIGHT1, sources_dir=folder, archive_dir=tmp_path / "archive" / NIGHT1.isoformat(), from_archive=True
    )
    import_night(warehouse, ctx, CONFIG, contracts)
    assert table_rows(warehouse, customers) == first and len(first) == N - 1


def test_several_broken_sources_are_reported_together(warehouse, tmp_path, contracts):
    (tmp_path / "customers.csv").write_text(HEADER + "\n")
    (tmp_path / "preferences.csv").write_text("customer_id;channel\n")
    (tmp_path / "suppressions.csv").write_text("customer_id,reason,since\nC1,erased,\n")
    with pytest.raises(ImportFailed) as err:
        run_import(warehouse, tmp_path, NIGHT1, contracts, PREFS)
    assert {f.source for f in err.value.failures} == {"customers", "preferences"}
    assert "2 source(s) broke their data contracts; nothing was published" in str(err.value)
    assert table_rows(warehouse, customers) == [] and table_rows(warehouse, preferences) == []


def test_import_and_merge_on_every_engine(any_warehouse, tmp_path, contracts):
    (tmp_path / "customers.csv").write_text(csv_text(rows(r2={"tier": "diamond"})))
    (tmp_path / "suppressions.csv").write_text("customer_id,reason,since\nC003,erased,2026-11-01T00:00:00\n")
    (tmp_path / "preferences.csv").write_text(
        "customer_id,channel,enabled,ts,source\nC001,push,true,2026-01-01T00:00:00,app\n"
        "C001,push,false,2026-01-01T00:00:00,support\n"
    )  # a tie: the opt-out wins
    run_import(any_warehouse, tmp_path, NIGHT1, contracts, PREFS)
    (tmp_path / "preferences.csv").write_text(
        "customer_id,channel,enabled,ts,source\nC001,push,true,2026-01-01T00:00:00,app\n"
        "C004,email,true,2026-02-01T00:00:00,form\n"
    )
    run_import(any_warehouse, tmp_path, NIGHT2, contracts, PREFS)
    with any_warehouse.connect() as conn:
        state = {(r.customer_id, r.channel): bool(r.enabled) for r in conn.execute(sa.select(preference_state))}
        history = conn.scalar(sa.select(sa.func.count()).select_from(preferences))
    assert state == {("C001", "push"): False, ("C004", "email"): True}
    assert history == 3
    assert len(table_rows(any_warehouse, customers)) == N - 1
    assert set(quarantined(any_warehouse, NIGHT2)) == {2}
