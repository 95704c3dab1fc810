"""The warehouse: any SQLAlchemy URL (SQLite embedded, PostgreSQL in production, MariaDB tested),
its tables and views, bulk loads and the portable SQL functions.

Guarantee: the SQL the engine writes runs the same on every supported engine; bulk loads stream in
bounded chunks; the schema (`ensure_schema`) includes the `message_ledger` view and is at the
schema revision the code needs (`migrate`: an empty warehouse is created there, any other reaches
it only through `campaigns db upgrade`).
"""

from campaign_orchestrator.warehouse.engine import (
    DEFAULT_WAREHOUSE_URL,
    create_warehouse_engine,
    drop_schema,
    ensure_schema,
    redacted,
)

__all__ = ["DEFAULT_WAREHOUSE_URL", "create_warehouse_engine", "drop_schema", "ensure_schema", "redacted"]
