"""Event properties as typed columns of `events`, one per property the events contract declares.

Why columns: a declared property is loaded by the same bulk path as the event itself (COPY on
PostgreSQL, no per-row JSON to build), and a rule filters, sums or compares it as a native
column on every engine and in any SQL warehouse; a JSON column would need per-dialect
extraction and parse every row at every query. Adding a nullable column is a metadata change on
PostgreSQL, MariaDB and SQLite, so a new property costs nothing on a large table.

Invariant: before a stage reads or writes events, every declared property is a column of the live
table with its declared type; a property is never dropped, and a warehouse column whose type
disagrees with the contract stops the night with both types named (never a silent cast).
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.errors import CampaignError, InvalidInput
from campaign_orchestrator.warehouse.tables import events

CORE_COLUMNS = frozenset(c.name for c in events.c if c.name != "amount")
EVENT_ID = "event_id"  # an optional property that identifies an event: repeats are dropped
EVENT_ID_INDEX = "ix_events_event_id"
SQL_TYPES: dict[str, type[sa.types.TypeEngine[Any]]] = {
    "string": sa.Text,
    "int": sa.BigInteger,
    "float": sa.Float,
    "bool": sa.Boolean,
    "date": sa.Date,
    "datetime": sa.DateTime,
}
# What a reflected column's Python type may be for each contract type (MariaDB has no boolean: TINYINT).
_ACCEPTED: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int": (int,),
    "float": (float, decimal.Decimal),
    "bool": (bool, int),
    "date": (dt.date,),
    "datetime": (dt.datetime,),
}


class PropertyTypeMismatch(CampaignError, InvalidInput, RuntimeError):
    """The warehouse holds a property column of another type than the contract declares."""


def events_table(properties: Mapping[str, str]) -> sa.Table:
    """`events` with a column for every declared property (name -> contract type)."""
    return _events_table(tuple(sorted(properties.items())))


@lru_cache(maxsize=64)
def _events_table(properties: tuple[tuple[str, str], ...]) -> sa.Table:
    extra = [
        sa.Column(name, sa.String(128) if name == EVENT_ID else SQL_TYPES[kind]())
        for name, kind in properties
        if name not in events.c
    ]
    if not extra:
        return events
    table = events.to_metadata(sa.MetaData())
    for column in extra:
        table.append_column(column)
    if EVENT_ID in table.c:
        sa.Index(EVENT_ID_INDEX, table.c[EVENT_ID])
    return table


def ensure_event_properties(engine: Engine, properties: Mapping[str, str]) -> list[str]:
    """Add the declared properties the live `events` table lacks; the names added."""
    if not properties:
        return []
    present = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("events")}
    table = events_table(properties)
    added: list[str] = []
    for name, kind in sorted(properties.items()):
        if name in CORE_COLUMNS:
            continue
        if name in present:
            _check_type(name, kind, present[name])
            continue
        ddl = sa.schema.CreateColumn(table.c[name]).compile(dialect=engine.dialect)
        prep = engine.dialect.identifier_preparer
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {prep.format_table(table)} ADD COLUMN {ddl}")
            if name == EVENT_ID:  # publish looks ids up: an index, as for any key
                conn.execute(sa.schema.CreateIndex(next(ix for ix in table.indexes if ix.name == EVENT_ID_INDEX)))
        added.append(name)
    return added


def _check_type(name: str, kind: str, found: sa.types.TypeEngine[Any]) -> None:
    try:
        python_type = found.python_type
    except NotImplementedError:
        return  # a type the dialect cannot map back: nothing to compare
    if python_type not in _ACCEPTED[kind]:
        raise PropertyTypeMismatch(
            f"events property {name!r}: the warehouse column is {found} ({python_type.__name__}), "
            f"the events contract declares {kind}; rename the property or convert the column"
        )
