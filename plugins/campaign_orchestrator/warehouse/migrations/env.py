"""The Alembic environment of the warehouse's revisions.

Invariant: revisions run on the connection the caller hands in (`warehouse.migrate`, in the
caller's transaction), else on `sqlalchemy.url` through the warehouse's own engine; the version
is kept in `campaigns_schema_version`, never in `alembic_version` (Airflow's, should one database
hold both). Autogenerate compares with the schema the code uses (`warehouse/tables.py`).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from campaign_orchestrator.warehouse.engine import create_warehouse_engine
from campaign_orchestrator.warehouse.migrate import VERSION_TABLE
from campaign_orchestrator.warehouse.tables import metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters most things by copying the table
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("the warehouse's revisions run on a live connection: `campaigns db upgrade --warehouse URL`")
given = context.config.attributes.get("connection")
if given is not None:
    run_migrations(given)
else:
    engine = create_warehouse_engine(context.config.get_main_option("sqlalchemy.url"))
    try:
        with engine.begin() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()
