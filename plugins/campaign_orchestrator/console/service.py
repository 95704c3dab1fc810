"""One console's parts, made once per process: its settings, warehouse, checker, store and workflow.

Routes get it with `Depends(console)`. The folder's check (loader and lint, what `campaigns
validate` says) is cached until a file in the folder changes (name, size, mtime), so browsing
costs one directory walk, and a save is judged against the folder as it is on disk.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from sqlalchemy.engine import Engine

from campaign_orchestrator.console.approval import Workflow
from campaign_orchestrator.console.catalog import Catalog, read_catalog
from campaign_orchestrator.console.checks import Checker, FolderCheck
from campaign_orchestrator.console.history import History
from campaign_orchestrator.console.settings import ConsoleSettings
from campaign_orchestrator.console.store import DefinitionStore
from campaign_orchestrator.segments.sizes import SizeCache


def fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    found = []
    for path in folder.rglob("*.y*ml"):
        stat = path.stat()
        found.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


@dataclass
class Console:
    settings: ConsoleSettings
    engine: Engine
    checker: Checker
    history: History
    store: DefinitionStore
    workflow: Workflow
    sizes_cache: SizeCache = field(default_factory=SizeCache)
    _cached: tuple[tuple[tuple[str, int, int], ...], FolderCheck] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def create(cls, settings: ConsoleSettings, engine: Engine) -> Console:
        checker = Checker(settings.contracts_dir)
        history = History(engine)
        store = DefinitionStore(settings.config_dir, checker, history)
        return cls(settings, engine, checker, history, store, Workflow(store))

    @property
    def config_dir(self) -> Path:
        return self.settings.config_dir

    def catalog(self) -> Catalog:
        return read_catalog(self.config_dir)

    def check(self) -> FolderCheck:
        """`campaigns validate` on the folder as it is now (cached until a file changes)."""
        with self._lock:
            now = fingerprint(self.config_dir)
            if self._cached is None or self._cached[0] != now:
                self._cached = (now, self.checker.check(self.config_dir))
            return self._cached[1]

    def problems_in(self, file: str) -> list[str]:
        return self.check().problems_in(self.config_dir / file)


def console(request: Request) -> Console:
    """The dependency every route uses to reach the console's parts."""
    found: Console = request.app.state.console
    return found
