"""The warehouse's schema revisions (Alembic, `migrations/`): which one a warehouse is at, which one
the code needs (head), and the way from one to the other.

Invariant: the code works only on a warehouse at head. An empty warehouse (none of our tables) is
created at head in one step: the tables of `tables.py`, the views, the version stamped. A warehouse
with tables changes schema only through `upgrade` (`campaigns db upgrade`): one behind head, or made
by a release before revisions, stops every other caller with one line naming that command; one at
a revision this code does not know stops it too. The version lives in `campaigns_schema_version`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from campaign_orchestrator.errors import CampaignError, InvalidInput
from campaign_orchestrator.warehouse.tables import metadata
from campaign_orchestrator.warehouse.views import view_ddl

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

VERSION_TABLE = "campaigns_schema_version"
BASELINE = "0001_baseline"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaBehind(CampaignError, InvalidInput, RuntimeError):
    """The warehouse is at an older schema revision than the code needs, or at none (made before
    revisions): `campaigns db upgrade` brings it to head; retrying the night cannot."""


class SchemaUnknown(CampaignError, InvalidInput, RuntimeError):
    """The warehouse is at a schema revision this code does not know: a newer release migrated it."""


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """Alembic's configuration in code (no alembic.ini): our scripts, on this connection or URL."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def revisions() -> list[str]:
    """Every revision id, from the baseline to head (the chain is linear)."""
    return [r.revision for r in reversed(list(script_directory().walk_revisions()))]


def head() -> str:
    found = script_directory().get_current_head()
    assert found is not None, "no revision in migrations/versions"
    return found


def command_url(url: URL) -> str:
    """The URL as an operator types it after --warehouse: without the password."""
    return url._replace(password=None).render_as_string(hide_password=False)  # URL.set cannot unset


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # the revision stamped; None: none
    head: str
    tables: bool  # any of the warehouse's tables exists

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    @property
    def empty(self) -> bool:
        return self.current is None and not self.tables

    @property
    def known(self) -> bool:
        return self.current is None or self.current in revisions()

    @property
    def behind_by(self) -> int:
        """Revisions to apply to reach head (adopting an unversioned warehouse counts the baseline)."""
        chain = revisions()
        return len(chain) - (chain.index(self.current) + 1 if self.current in chain else 0)

    def describe(self) -> str:
        if self.current is not None:
            return self.current
        return "none (an empty warehouse)" if self.empty else "none (made by a release before schema revisions)"

    def refusal(self, url: URL) -> CampaignError:
        """The one line for a caller that needs head and finds this state."""
        run = f"run `campaigns db upgrade --warehouse {command_url(url)}`"
        if not self.known:
            return SchemaUnknown(
                f"the warehouse is at schema revision {self.current}, which this code does not know (it needs "
                f"{self.head}; a newer release migrated the warehouse): run a release that has {self.current}"
            )
        if self.current is None:
            return SchemaBehind(
                f"the warehouse has no schema revision (made by a release before schema migrations), the code "
                f"needs {self.head}: {run}"
            )
        return SchemaBehind(f"the warehouse is at schema revision {self.current}, the code needs {self.head}: {run}")


def schema_state(conn: Connection) -> SchemaState:
    names = set(sa.inspect(conn).get_table_names())
    current = None
    if VERSION_TABLE in names:
        stamped = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        if len(stamped) > 1:
            raise SchemaUnknown(f"the warehouse has {len(stamped)} schema revisions at once ({', '.join(stamped)})")
        current = stamped[0] if stamped else None
    return SchemaState(current=current, head=head(), tables=bool(names & set(metadata.tables)))


def ensure(engine: Engine) -> None:
    """Return when the warehouse is at head, creating an empty one there; else refuse (see above)."""
    with engine.connect() as conn:
        state = schema_state(conn)
    if state.at_head:
        return
    if not state.empty:
        raise state.refusal(engine.url)
    try:
        create_at_head(engine)
    except sa.exc.DBAPIError:
        with engine.connect() as conn:  # another process created it meanwhile (PostgreSQL: it waited for it)
            if not schema_state(conn).at_head:
                raise


def create_at_head(engine: Engine) -> None:
    """An empty warehouse at head in one transaction: the schema the code uses, its views, the stamp."""
    from alembic.runtime.migration import MigrationContext

    with engine.begin() as conn:
        metadata.create_all(conn, checkfirst=True)
        conn.exec_driver_sql(view_ddl(conn.dialect))
        MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).stamp(script_directory(), "head")


def upgrade(engine: Engine, target: str = "head") -> tuple[SchemaState, str | None]:
    """Bring the warehouse to `target` (head): an empty one is created at head, one made before
    revisions is adopted (the baseline completes it, nothing is dropped), then every revision after
    its own runs, on PostgreSQL in one transaction. Returns the state before and the revision after."""
    from alembic import command

    with engine.connect() as conn:
        before = schema_state(conn)
    if not before.known:
        raise before.refusal(engine.url)
    wanted = before.head if target == "head" else target
    if before.empty and wanted == before.head:
        create_at_head(engine)
    elif before.current != wanted:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), wanted)
    with engine.connect() as conn:
        return before, schema_state(conn).current
