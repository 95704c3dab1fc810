"""Every change the console makes, kept append-only in `definition_changes`: who, when, a diff.

The console only inserts rows here (there is no update or delete in this module), so a
campaign's page can show how its running version came to be, change by change.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.warehouse.console_tables import definition_changes


def unified_diff(file: str, before: str | None, after: str | None) -> str:
    """The change as a unified diff ('a/<file>' to 'b/<file>'; /dev/null for an absent side)."""
    old = (before or "").splitlines(keepends=True)
    new = (after or "").splitlines(keepends=True)
    lines = difflib.unified_diff(
        old,
        new,
        fromfile=f"a/{file}" if before is not None else "/dev/null",
        tofile=f"b/{file}" if after is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@dataclass(frozen=True)
class ChangeRecord:
    changed_by: str
    action: str
    kind: str
    definition_id: str
    file: str
    version_before: str | None
    version_after: str | None
    diff: str


class History:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, change: ChangeRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(definition_changes.insert().values(changed_at=utcnow(), **change.__dict__))

    def of(self, kind: str, definition_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest changes to one definition first."""
        t = definition_changes
        query = (
            sa.select(t)
            .where(t.c.kind == kind, t.c.definition_id == definition_id)
            .order_by(t.c.changed_at.desc(), t.c.change_id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]
