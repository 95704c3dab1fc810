"""The engagement path's statements, built once (per engine kind) with bound parameters.

An event batch is a handful of small statements; building their SQLAlchemy constructs on every
request cost more CPU than running them. Insert-if-absent and first-time-wins upserts are the
engine's own (`ON CONFLICT`) where it has them.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

from campaign_orchestrator.warehouse.tables import customers, engagement_events, inapp_messages, inapp_states

_m, _e, _s = inapp_messages.c, engagement_events.c, inapp_states.c
_customer = sa.bindparam("customer_id", type_=_m.customer_id.type)

# The batch's messages that are this customer's (or public), with the customer's time zone.
MESSAGES = sa.select(
    _m.message_id,
    _m.campaign_id,
    _m.treatment_id,
    _m.session_cap,
    _m.daily_cap,
    _m.total_cap,
    sa.select(customers.c.timezone).where(customers.c.customer_id == _customer).scalar_subquery().label("tz"),
).where(
    _m.message_id.in_(sa.bindparam("ids", expanding=True)),
    sa.or_(_m.customer_id == _customer, _m.customer_id.is_(None)),
)

KNOWN_EVENTS = sa.select(_e.event_id).where(
    _e.customer_id == _customer, _e.event_id.in_(sa.bindparam("ids", expanding=True))
)


def _dialect_insert(dialect: str, table: sa.Table) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


@functools.cache
def insert_events(dialect: str) -> Any:
    """Insert engagement events; a twin already stored (a batch in flight elsewhere) is skipped."""
    if dialect in ("postgresql", "sqlite"):
        return _dialect_insert(dialect, engagement_events).on_conflict_do_nothing()
    if dialect in ("mysql", "mariadb"):
        return engagement_events.insert().prefix_with("IGNORE")
    return engagement_events.insert()


@functools.cache
def upsert_states(dialect: str, columns: tuple[str, ...]) -> Any | None:
    """First-time-wins upsert of these state columns, or None where the engine has no upsert."""
    if dialect not in ("postgresql", "sqlite"):
        return None
    stmt = _dialect_insert(dialect, inapp_states)
    keep_first = {c: sa.func.coalesce(_s[c], stmt.excluded[c]) for c in columns}
    return stmt.on_conflict_do_update(
        index_elements=[_s.customer_id, _s.message_id], set_={**keep_first, "updated_at": stmt.excluded.updated_at}
    )
