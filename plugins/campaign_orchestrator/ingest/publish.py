"""Publishing: every validated source of the night loads into the live tables in one transaction,
so a night with any broken source changes no table at all. Replace, append (the run date's batch
replaced) and merge (only new keys) as each source's mode says."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.ingest.consent import refresh_preference_state
from campaign_orchestrator.ingest.contracts import Contract, event_properties
from campaign_orchestrator.ingest.devices import apply_device_tokens
from campaign_orchestrator.ingest.staging import StagedSource, target_table
from campaign_orchestrator.ingest.tombstones import drop_erased_since
from campaign_orchestrator.warehouse.bulk import (
    analyze_tables,
    empty_table,
    indexes_deferred,
    insert_ignore_from,
    is_empty,
    load_csv_file,
    tune_bulk_transaction,
)
from campaign_orchestrator.warehouse.event_properties import ensure_event_properties
from campaign_orchestrator.warehouse.tables import import_log, preference_state


def publish(engine: Engine, run_date: dt.date, staged: list[StagedSource], contracts: dict[str, Contract]) -> None:
    """Load every validated source into the live tables in one transaction."""
    staged = [item for item in staged if item.mode != "skip"]
    ensure_event_properties(engine, event_properties(contracts))  # a new property is a new column
    with engine.begin() as conn:
        tune_bulk_transaction(conn)
        tables = {item.source: target_table(item.source, contracts.get(item.source)) for item in staged}
        for item in staged:
            _publish_one(conn, item, tables[item.source], run_date)
        checked = [dt.datetime.fromisoformat(item.checked_from) for item in staged if item.checked_from]
        if checked:  # an erasure accepted after tonight's sources were validated
            drop_erased_since(conn, tables.values(), min(checked))
        if any(item.source == "preferences" for item in staged):
            refresh_preference_state(conn)
        if any(item.source == "app_installs" for item in staged):
            apply_device_tokens(conn)  # devices registered through the inbox API since the export
        # Fresh planner statistics: a night's bulk load changes the tables more than autovacuum expects.
        analyze_tables(conn, {*tables.values(), preference_state})
        conn.execute(
            import_log.update()
            .where(import_log.c.run_date == run_date, import_log.c.source.in_([s.source for s in staged]))
            .values(status="published")
        )


def _publish_one(conn: Connection, item: StagedSource, table: sa.Table, run_date: dt.date) -> None:
    path = Path(item.validated_path)
    bools = frozenset(c.name for c in table.c if isinstance(c.type, sa.Boolean))
    list_id = item.source.split(":", 1)[1] if item.source.startswith("list:") else None
    if item.mode == "replace" and list_id is None:
        empty_table(conn, table)
    elif item.mode == "replace":
        conn.execute(table.delete().where(table.c.list_id == list_id))
    elif item.mode == "append":  # this run date's batch replaces itself
        condition = table.c.import_date == run_date
        if list_id is not None:
            condition = sa.and_(condition, table.c.list_id == list_id)
        conn.execute(table.delete().where(condition))
    empty = is_empty(conn, table)
    if item.mode == "merge" and not empty:
        _merge(conn, table, path, bools)
        return
    if "event_id" in table.c and not empty:
        _new_events_only(conn, table, path, bools, run_date)
        return
    with indexes_deferred(conn, table, empty):
        load_csv_file(conn, table, path, bools)


def _new_events_only(conn: Connection, table: sa.Table, path: Path, bools: frozenset[str], run_date: dt.date) -> None:
    """Events with an id an earlier night loaded are skipped (a re-sent batch, an overlapping export);
    events without an id load as they are."""
    scratch = _scratch(conn, table)
    load_csv_file(conn, scratch, path, bools)
    loaded = sa.alias(table, "loaded")
    seen = sa.exists().where(loaded.c.event_id == scratch.c.event_id, loaded.c.import_date != run_date)
    columns = [c.name for c in table.c]
    conn.execute(
        table.insert().from_select(
            columns, sa.select(*(scratch.c[c] for c in columns)).where(sa.or_(scratch.c.event_id.is_(None), ~seen))
        )
    )
    scratch.drop(conn)


def _scratch(conn: Connection, table: sa.Table) -> sa.Table:
    scratch = sa.Table(
        f"tmp_merge_{table.name}", sa.MetaData(), *(sa.Column(c.name, c.type) for c in table.c), prefixes=["TEMPORARY"]
    )
    scratch.drop(conn, checkfirst=True)
    scratch.create(conn)
    return scratch


def _merge(conn: Connection, table: sa.Table, path: Path, bools: frozenset[str]) -> None:
    """Insert the rows whose key is new; what is already there (older history, suppressions) stays."""
    scratch = _scratch(conn, table)
    load_csv_file(conn, scratch, path, bools)
    insert_ignore_from(conn, table, scratch, [c.name for c in table.c])
    scratch.drop(conn)
