"""The nightly run as stages. The DAG's tasks and the `campaigns run` command call these same
functions, so what Airflow runs is exactly what the CLI and the tests run.

Every stage opens its own connection from the run config (tasks may run on different workers),
records its timing and counts in `run_log`, and is safe to repeat for the same run date.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from campaign_orchestrator import contracts as contracts_mod
from campaign_orchestrator.connections import EndpointResolver, env_endpoint_resolver
from campaign_orchestrator.definitions import Definitions, load_definitions
from campaign_orchestrator.tables import run_log
from campaign_orchestrator.warehouse import DEFAULT_WAREHOUSE_URL, create_warehouse_engine, ensure_schema

log = logging.getLogger(__name__)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class RunConfig:
    """Everything a stage needs to find its inputs; cheap to build, safe to pass to workers."""

    run_date: dt.date
    warehouse_url: str = DEFAULT_WAREHOUSE_URL
    config_dir: Path = Path("marketing")
    contracts_dir: Path = Path("data_contracts")
    sources_dir: Path = Path("data/incoming")
    reports_dir: Path = Path("reports")
    run_id: str = field(default_factory=lambda: f"cli__{utcnow():%Y%m%dT%H%M%S%f}")


class Run:
    """One pipeline run's handles: the engine, contracts and definitions, loaded once per process."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    @cached_property
    def engine(self) -> Engine:
        engine = create_warehouse_engine(self.config.warehouse_url)
        ensure_schema(engine)
        return engine

    @cached_property
    def contracts(self) -> dict[str, contracts_mod.Contract]:
        return contracts_mod.load_contracts(self.config.contracts_dir)

    @cached_property
    def definitions(self) -> Definitions:
        return load_definitions(self.config.config_dir, contracts_mod.segment_attributes(self.contracts))

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a stage and record it in run_log; the body fills in `detail` (and `rows`)."""
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


# ---------------------------------------------------------------- stages


def validate_definitions(run: Run) -> dict[str, Any]:
    """Fail early, before any data moves, if a segment, campaign or template is wrong."""
    from campaign_orchestrator.templates import CompiledTemplate

    with run.stage("validate") as detail:
        defs = run.definitions
        variables = contracts_mod.template_variables(run.contracts)
        for campaign in defs.campaigns.values():
            CompiledTemplate(defs.templates[campaign.template], variables)
        active = [c.id for c in defs.active_campaigns(run.config.run_date)]
        detail.update(
            segments=len(defs.segments), campaigns=len(defs.campaigns), active_campaigns=active, rows=len(active)
        )
    return detail


def import_stage(run: Run) -> dict[str, Any]:
    from campaign_orchestrator.ingest import import_sources, load_sources_config

    with run.stage("import") as detail:
        config = load_sources_config(run.config.contracts_dir / "sources.yaml")
        report = import_sources(run.engine, run.config.run_date, run.config.sources_dir, config, run.contracts)
        detail["sources"] = report.as_dict()
        detail["rows"] = sum(s.rows_loaded for s in report.sources)
    return detail


def segments_stage(run: Run) -> dict[str, Any]:
    from campaign_orchestrator.segments import compute_memberships

    with run.stage("segments") as detail, run.engine.begin() as conn:
        rules = {sid: seg.rule for sid, seg in run.definitions.segments.items()}
        sizes = compute_memberships(conn, rules, contracts_mod.segment_attributes(run.contracts), run.config.run_date)
        detail.update(sizes=sizes, rows=sum(sizes.values()))
    return detail


def targets_stage(run: Run, now: dt.datetime | None = None) -> dict[str, Any]:
    from campaign_orchestrator.targeting import build_target_lists

    with run.stage("targets") as detail, run.engine.begin() as conn:
        funnels = build_target_lists(conn, run.definitions, run.config.run_date, now or utcnow())
        detail["funnel"] = {cid: f.as_dict() for cid, f in funnels.items()}
        detail["rows"] = sum(f.targeted for f in funnels.values())
    return detail


def render_stage(run: Run, now: dt.datetime | None = None) -> dict[str, Any]:
    from campaign_orchestrator.outbox import render_outbox

    with run.stage("render") as detail:
        report = render_outbox(
            run.engine,
            run.definitions,
            contracts_mod.template_variables(run.contracts),
            run.config.run_date,
            now or utcnow(),
        )
        detail.update(report.as_dict())
        detail["error_samples"] = report.error_samples
        detail["rows"] = sum(report.rendered.values())
    return detail


def delivery_shards(run: Run) -> list[int]:
    return list(range(run.definitions.settings.delivery.shards))


def deliver_stage(
    run: Run, shard: int, resolver: EndpointResolver = env_endpoint_resolver, concurrent_shards: int | None = None
) -> dict[str, Any]:
    """Deliver one outbox shard. Mapped DAG tasks send side by side and split the provider's budget;
    the CLI sends shard after shard (concurrent_shards=1), each with the whole budget."""
    from campaign_orchestrator.delivery import deliver_shard

    with run.stage(f"deliver[{shard}]") as detail:
        report = deliver_shard(
            run.engine,
            run.definitions,
            run.config.run_date,
            shard,
            run.definitions.settings.delivery.shards,
            resolver,
            concurrent_shards=concurrent_shards,
        )
        detail.update(report.as_dict())
        detail["rows"] = report.total_sent
    return detail


def report_stage(run: Run) -> Path:
    from campaign_orchestrator.reporting import write_run_report

    with run.stage("report") as detail:
        path = write_run_report(run.engine, run.definitions, run.config)
        detail["path"] = str(path)
    return path


def run_all(config: RunConfig, resolver: EndpointResolver = env_endpoint_resolver) -> Path:
    """The whole night in one process, in the DAG's order; returns the run report's path."""
    run = Run(config)
    validate_definitions(run)
    import_stage(run)
    segments_stage(run)
    targets_stage(run)
    render_stage(run)
    for shard in delivery_shards(run):
        deliver_stage(run, shard, resolver, concurrent_shards=1)
    return report_stage(run)
