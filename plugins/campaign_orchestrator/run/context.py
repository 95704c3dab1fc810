"""The run: its configuration (RunConfig, plain values safe to hand to another worker) and its
handles (Run: the warehouse engine, contracts and definitions, loaded once per process). Every
stage records itself in `run_log` through `Run.stage`."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.connections import env_url_resolver
from campaign_orchestrator.definitions.loader import Definitions, load_definitions
from campaign_orchestrator.ingest import contracts as contracts_mod
from campaign_orchestrator.ingest.sources import load_sources_config
from campaign_orchestrator.warehouse.engine import (
    DEFAULT_WAREHOUSE_URL,
    create_warehouse_engine,
    ensure_schema,
)
from campaign_orchestrator.warehouse.event_properties import ensure_event_properties
from campaign_orchestrator.warehouse.tables import run_log

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    """Everything a stage needs to find its inputs; cheap to build, safe to pass to workers."""

    run_date: dt.date
    warehouse_url: str = DEFAULT_WAREHOUSE_URL
    config_dir: Path = Path("marketing")
    contracts_dir: Path = Path("data_contracts")
    sources_dir: Path = Path("data/incoming")
    reports_dir: Path = Path("reports")
    archive_dir: Path = Path("archive")
    run_id: str = field(default_factory=lambda: f"cli__{utcnow():%Y%m%dT%H%M%S%f}")

    @classmethod
    def from_env(cls, run_date: dt.date, project: Path, environ: Mapping[str, str], **given: Any) -> RunConfig:
        """The one mapping from the environment: `CAMPAIGNS_<FOLDER>_DIR` for each folder, else the
        project's own; values in `given` (command-line options, the DAG's run id) win."""
        folders = {
            "config_dir": ("CAMPAIGNS_CONFIG_DIR", "marketing"),
            "contracts_dir": ("CAMPAIGNS_CONTRACTS_DIR", "data_contracts"),
            "sources_dir": ("CAMPAIGNS_SOURCES_DIR", "data/incoming"),
            "reports_dir": ("CAMPAIGNS_REPORTS_DIR", "reports"),
            "archive_dir": ("CAMPAIGNS_ARCHIVE_DIR", "archive"),
        }
        values: dict[str, Any] = {
            name: Path(environ.get(var) or project / default) for name, (var, default) in folders.items()
        }
        values["warehouse_url"] = environ.get("CAMPAIGNS_WAREHOUSE_URL") or DEFAULT_WAREHOUSE_URL
        values.update({k: v for k, v in given.items() if v is not None})
        return cls(run_date=run_date, **values)


class Run:
    """One pipeline run's handles: the engine, contracts and definitions, loaded once per process."""

    def __init__(self, config: RunConfig, url_resolver: Callable[[str], str] = env_url_resolver) -> None:
        self.config = config
        self.url_resolver = url_resolver  # source databases named by connection id

    @cached_property
    def engine(self) -> Engine:
        engine = create_warehouse_engine(self.config.warehouse_url)
        ensure_schema(engine)
        ensure_event_properties(engine, contracts_mod.event_properties(self.contracts))
        return engine

    @cached_property
    def contracts(self) -> dict[str, contracts_mod.Contract]:
        return contracts_mod.load_contracts(self.config.contracts_dir)

    @cached_property
    def definitions(self) -> Definitions:
        lists = frozenset(sources_config(self).lists) if (self.config.contracts_dir / "sources.yaml").exists() else None
        return load_definitions(self.config.config_dir, contracts_mod.vocabulary(self.contracts, lists))

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a stage and record it in run_log; the body fills in `detail` (and `rows`). A warehouse
        behind the code's schema revision stops it before it starts (`ensure_schema`)."""
        _ = self.engine
        detail: dict[str, Any] = {}
        started = utcnow()
        t0 = time.perf_counter()
        status = "failed"
        try:
            yield detail
            status = "ok"
        finally:
            detail.setdefault("status", status)
            detail["wall_s"] = round(time.perf_counter() - t0, 3)
            with self.engine.begin() as conn:
                conn.execute(
                    run_log.insert().values(
                        run_id=self.config.run_id,
                        run_date=self.config.run_date,
                        stage=name,
                        started_at=started,
                        finished_at=utcnow(),
                        rows=detail.get("rows"),
                        detail=json.dumps(detail, default=str),
                    )
                )
            log.info("stage %s %s in %.2fs", name, status, detail["wall_s"])


def sources_config(run: Run) -> Any:

    return load_sources_config(run.config.contracts_dir / "sources.yaml")


def delivery_shards(run: Run) -> list[int]:
    return list(range(run.definitions.settings.delivery.shards))
