"""`campaigns db`: the warehouse's schema revision, and bringing it to the one the code needs.

`upgrade` is the only command that changes the schema of a warehouse that has tables (the night
refuses one behind head); `current` only reads.
"""

from __future__ import annotations

import click

from campaign_orchestrator.cli.options import warehouse_option
from campaign_orchestrator.warehouse import migrate
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, reachable, redacted


@click.group()
def db() -> None:
    """The warehouse's schema revisions (upgrade before a release's first night)."""


@db.command()
@warehouse_option
def upgrade(warehouse: str) -> None:
    """Bring the warehouse to the code's schema revision: create an empty one, adopt one made before
    revisions at the baseline, then apply every later revision. Rows are kept; safe to repeat."""
    engine = create_warehouse_engine(warehouse)
    click.echo(f"warehouse: {redacted(warehouse)}", err=True)
    try:
        with reachable(engine), engine.connect() as conn:
            migrate.schema_state(conn)
        before, after = migrate.upgrade(engine)
    finally:
        engine.dispose()
    click.echo(f"before: {before.describe()}")
    click.echo(f"after:  {after} (head)" if after == before.head else f"after:  {after}")
    if before.at_head:
        click.echo("already at head: nothing to do")


@db.command()
@warehouse_option
def current(warehouse: str) -> None:
    """Print the warehouse's schema revision, the code's (head), and whether it is behind."""
    engine = create_warehouse_engine(warehouse)
    click.echo(f"warehouse: {redacted(warehouse)}", err=True)
    try:
        with reachable(engine), engine.connect() as conn:
            state = migrate.schema_state(conn)
    finally:
        engine.dispose()
    click.echo(f"current: {state.describe()}")
    click.echo(f"head:    {state.head}")
    if state.at_head:
        click.echo("at head")
    elif state.empty:
        click.echo("empty: `campaigns db upgrade` (or the first night) creates it at head")
    elif not state.known:
        click.echo(str(state.refusal(engine.url)))
    else:
        n = state.behind_by
        click.echo(
            f"behind by {n} revision{'s' if n != 1 else ''}: "
            f"run `campaigns db upgrade --warehouse {migrate.command_url(engine.url)}`"
        )
