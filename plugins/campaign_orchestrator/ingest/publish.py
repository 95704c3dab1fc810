"""Publishing: every validated source of the night loads into the live tables in one transaction,
so a night with any broken source changes no table at all. Replace, append (the run date's batch
replaced) and merge (only new keys) as each source's mode says."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.ingest.consent import refresh_preference_state
from campaign_orchestrator.ingest.contracts import Contract
from campaign_orchestrator.ingest.validate import StagedSource, _target
from campaign_orchestrator.warehouse.bulk import (
    analyze_tables,
    empty_table,
    indexes_deferred,
    insert_ignore_from,
    is_empty,
    load_csv_file,
    tune_bulk_transaction,
)
from campaign_orchestrator.warehouse.tables import import_log, preference_state


def publish(engine: Engine, run_date: dt.date, staged: list[StagedSource], contracts: dict[str, Contract]) -> None:
    """Load every validated source into the live tables in one transaction."""
    staged = [item for item in staged if item.mode != "skip"]
    with engine.begin() as conn:
        tune_bulk_transaction(conn)
        for item in staged:
            _publish_one(conn, item, run_date)
        if any(item.source == "preferences" for item in staged):
            refresh_preference_state(conn)
        # Fresh planner statistics: a night's bulk load changes the tables more than autovacuum expects.
        analyze_tables(conn, {_target(item.source) for item in staged} | {preference_state})
        conn.execute(
            import_log.update()
            .where(import_log.c.run_date == run_date, import_log.c.source.in_([s.source for s in staged]))
            .values(status="published")
        )


def _publish_one(conn: Connection, item: StagedSource, run_date: dt.date) -> None:
    table = _target(item.source)
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
    with indexes_deferred(conn, table, empty):
        load_csv_file(conn, table, path, bools)


def _merge(conn: Connection, table: sa.Table, path: Path, bools: frozenset[str]) -> None:
    """Insert the rows whose key is new; what is already there (older history, suppressions) stays."""
    scratch = sa.Table(
        f"tmp_merge_{table.name}", sa.MetaData(), *(sa.Column(c.name, c.type) for c in table.c), prefixes=["TEMPORARY"]
    )
    scratch.drop(conn, checkfirst=True)
    scratch.create(conn)
    load_csv_file(conn, scratch, path, bools)
    insert_ignore_from(conn, table, scratch, [c.name for c in table.c])
    scratch.drop(conn)
