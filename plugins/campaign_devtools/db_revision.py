"""`campaigns-dev db-revision MESSAGE`: a new warehouse schema revision after the newest, the
`alembic revision` of this project (which has no alembic.ini).

Invariant: the new revision's down_revision is the current head, so the chain stays linear; its id
is the next number and the message (`0003_events_by_day`), short enough for the version table
(32 characters), and its file is named after it. With --autogenerate its operations are what
`warehouse/tables.py` declares beyond a scratch SQLite warehouse upgraded to head: review them,
and write what autogenerate cannot see (views, data changes, a CHECK) by hand.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from campaign_orchestrator.warehouse.engine import create_warehouse_engine
from campaign_orchestrator.warehouse.migrate import MIGRATIONS, alembic_config

MAX_ID = 32  # alembic's version_num is VARCHAR(32)


def revision_id(message: str, existing: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_") or "change"
    return f"{existing + 1:04d}_{slug}"[:MAX_ID].rstrip("_")


def new_revision(message: str, autogenerate: bool = False, location: Path = MIGRATIONS) -> Path:
    """Write the revision file into `location`/versions; its path."""
    from alembic import command
    from alembic.script import ScriptDirectory

    config = alembic_config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("file_template", "%%(rev)s")
    rev_id = revision_id(message, len(list(ScriptDirectory.from_config(config).walk_revisions())))
    if autogenerate:
        with tempfile.TemporaryDirectory() as tmp:
            engine = create_warehouse_engine(f"sqlite:///{Path(tmp) / 'head.sqlite'}")
            try:
                with engine.begin() as conn:
                    config.attributes["connection"] = conn
                    command.upgrade(config, "head")
                    script = command.revision(config, message, autogenerate=True, rev_id=rev_id)
            finally:
                engine.dispose()
    else:
        script = command.revision(config, message, rev_id=rev_id)
    assert script is not None and not isinstance(script, list)
    path = Path(script.path)
    ruff = Path(sys.executable).parent / "ruff"
    if ruff.exists():  # the project's style, as for any module
        subprocess.run([str(ruff), "check", "--fix", "--quiet", str(path)], check=False)
        subprocess.run([str(ruff), "format", "--quiet", str(path)], check=False)
    return path


@click.command("db-revision")
@click.argument("message")
@click.option("--autogenerate", is_flag=True, help="Write the operations tables.py needs beyond head.")
def db_revision(message: str, autogenerate: bool) -> None:
    """Add a warehouse schema revision after the newest (edit it, then `campaigns db upgrade`)."""
    path = new_revision(message, autogenerate)
    click.echo(f"wrote {path}")
