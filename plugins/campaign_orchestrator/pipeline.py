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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from campaign_orchestrator import contracts as contracts_mod
from campaign_orchestrator.connections import EndpointResolver, env_endpoint_resolver, env_url_resolver
from campaign_orchestrator.definitions import Definitions, load_definitions
from campaign_orchestrator.tables import run_log
from campaign_orchestrator.warehouse import (
    DEFAULT_WAREHOUSE_URL,
    create_warehouse_engine,
    ensure_schema,
    tune_bulk_transaction,
)

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
    archive_dir: Path = Path("archive")
    run_id: str = field(default_factory=lambda: f"cli__{utcnow():%Y%m%dT%H%M%S%f}")


class Run:
    """One pipeline run's handles: the engine, contracts and definitions, loaded once per process."""

    def __init__(self, config: RunConfig, url_resolver: Callable[[str], str] = env_url_resolver) -> None:
        self.config = config
        self.url_resolver = url_resolver  # source databases named by connection id

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
        lists = frozenset(_sources(self).lists) if (self.config.contracts_dir / "sources.yaml").exists() else None
        return load_definitions(self.config.config_dir, contracts_mod.vocabulary(self.contracts, lists))

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
    from campaign_orchestrator.definitions import DefinitionError
    from campaign_orchestrator.template_lint import lint_templates

    with run.stage("validate") as detail:
        defs = run.definitions
        # The night depends on the templates of tonight's campaigns; `campaigns validate` lints all.
        tonight = {t for c in defs.active_campaigns(run.config.run_date) for t in c.variant_templates.values()}
        problems = lint_templates(
            defs,
            contracts_mod.template_variables(run.contracts),
            contracts_mod.template_samples(run.contracts),
            only=tonight,
        )
        if problems:
            raise DefinitionError(problems)
        active = [c.id for c in defs.active_campaigns(run.config.run_date)]
        detail.update(
            segments=len(defs.segments), campaigns=len(defs.campaigns), active_campaigns=active, rows=len(active)
        )
    return detail


def _import_context(run: Run, from_archive: bool = False) -> Any:
    from campaign_orchestrator.ingest import ImportContext

    return ImportContext(
        run_date=run.config.run_date,
        sources_dir=run.config.sources_dir,
        archive_dir=run.config.archive_dir / run.config.run_date.isoformat(),
        from_archive=from_archive,
        resolve_url=run.url_resolver,
    )


def _sources(run: Run) -> Any:
    from campaign_orchestrator.sources import load_sources_config

    return load_sources_config(run.config.contracts_dir / "sources.yaml")


def source_names(run: Run) -> list[str]:
    """Every input of the night (sources and static lists), for one mapped task each."""
    return list(_sources(run).all())


def validate_source_stage(run: Run, source: str, from_archive: bool = False) -> dict[str, Any]:
    """Check one source against its contract and stage it; nothing live changes."""
    from campaign_orchestrator.ingest import validate_source

    with run.stage(f"validate[{source}]") as detail:
        spec = _sources(run).all()[source]
        contract = run.contracts["lists" if source.startswith("list:") else source]
        staged = validate_source(run.engine, _import_context(run, from_archive), source, spec, contract)
        detail.update(staged.as_dict())
        detail["rows"] = staged.rows_loaded
    return detail


def publish_stage(run: Run, staged: list[dict[str, Any]]) -> dict[str, Any]:
    """Load every staged source into the live tables in one transaction."""
    import dataclasses

    from campaign_orchestrator.ingest import StagedSource, publish

    names = {f.name for f in dataclasses.fields(StagedSource)}
    with run.stage("publish") as detail:
        items = [StagedSource(**{k: v for k, v in item.items() if k in names}) for item in staged]
        publish(run.engine, run.config.run_date, items, run.contracts)
        detail["sources"] = {item.source: item.as_dict() for item in items}
        detail["rows"] = sum(item.rows_loaded for item in items)
    return detail


def _validate_in_worker(config: RunConfig, source: str, from_archive: bool) -> dict[str, Any]:
    return validate_source_stage(Run(config), source, from_archive)


def import_stage(run: Run, from_archive: bool = False, workers: int | None = None) -> dict[str, Any]:
    """Validate every source (in `workers` processes side by side, default one), then publish.

    If any source breaks its contract, every failure is reported together and nothing is published.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from campaign_orchestrator.contracts import ContractError
    from campaign_orchestrator.ingest import ImportFailed

    names = source_names(run)
    # One process by default: a validating process peaks around 650 MB on million-row files, so
    # parallel workers trade memory for time (the DAG gets its parallelism from mapped tasks).
    workers = max(1, workers or 1)
    results: list[dict[str, Any]] = []
    failures: list[ContractError] = []
    if workers <= 1:
        for name in names:
            try:
                results.append(validate_source_stage(run, name, from_archive))
            except ContractError as exc:
                failures.append(exc)
    else:
        run.engine.dispose()
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_validate_in_worker, run.config, name, from_archive) for name in names]
            for future in futures:
                try:
                    results.append(future.result())
                except ContractError as exc:
                    failures.append(exc)
    if failures:
        raise ImportFailed(failures)
    return publish_stage(run, results)


def segments_stage(run: Run) -> dict[str, Any]:
    from campaign_orchestrator.segments import compute_memberships

    with run.stage("segments") as detail, run.engine.begin() as conn:
        tune_bulk_transaction(conn)
        defs = run.definitions
        sizes = compute_memberships(conn, defs.rules(), defs.vocabulary, run.config.run_date, defs.lifecycle_specs())
        detail.update(sizes=sizes, rows=sum(sizes.values()))
    return detail


def targets_stage(run: Run, now: dt.datetime | None = None) -> dict[str, Any]:
    from campaign_orchestrator.targeting import build_target_lists

    with run.stage("targets") as detail, run.engine.begin() as conn:
        tune_bulk_transaction(conn)
        funnels = build_target_lists(conn, run.definitions, run.config.run_date, now or utcnow())
        detail["funnel"] = {cid: f.as_dict() for cid, f in funnels.items()}
        detail["rows"] = sum(f.targeted for f in funnels.values())
    return detail


def plan_stage(run: Run, now: dt.datetime | None = None, sample_size: int = 5) -> dict[str, Any]:
    """Segments and target lists for the run date on the current warehouse, and a sample of each
    list: what a night would send, computed without rendering or sending anything."""
    import sqlalchemy as sa

    from campaign_orchestrator.tables import target_list

    segments_stage(run)
    detail = targets_stage(run, now)
    samples: dict[str, list[dict[str, Any]]] = {}
    with run.engine.connect() as conn:
        for campaign_id in detail["funnel"]:
            rows = conn.execute(
                sa.select(target_list.c.customer_id, target_list.c.variant, target_list.c.send_at)
                .where(target_list.c.run_date == run.config.run_date, target_list.c.campaign_id == campaign_id)
                .order_by(target_list.c.customer_id)
                .limit(sample_size)
            ).all()
            samples[campaign_id] = [
                {"customer_id": r.customer_id, "variant": r.variant, "send_at": f"{r.send_at:%Y-%m-%d %H:%M}Z"}
                for r in rows
            ]
    detail["samples"] = samples
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


def notices_stage(run: Run, now: dt.datetime | None = None) -> dict[str, Any]:
    """Publish the public in-app notices (outages, forced updates) to the message store."""
    from campaign_orchestrator.public_messages import publish_public_messages

    with run.stage("notices") as detail:
        with run.engine.begin() as conn:
            detail.update(publish_public_messages(conn, run.definitions.public_messages, now or utcnow()))
        detail["rows"] = len(run.definitions.public_messages)
    return detail


def delivery_shards(run: Run) -> list[int]:
    return list(range(run.definitions.settings.delivery.shards))


def deliver_stage(
    run: Run, shard: int, resolver: EndpointResolver = env_endpoint_resolver, concurrent_shards: int | None = None
) -> dict[str, Any]:
    """Deliver one outbox shard. Mapped DAG tasks send side by side and split the provider's budget;
    the CLI sends shard after shard (concurrent_shards=1), each with the whole budget.

    Raises DeliveryIncomplete, after recording the stage, when messages of the shard are still
    pending or failed at the end: the task fails, so Airflow retries it, and the night is red
    until they are sent."""
    from campaign_orchestrator.delivery import deliver_shard

    _require_rendered(run)
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
        detail["summary"] = report.summary()
        log.info("%s", report.summary())
        if report.incomplete:
            raise DeliveryIncomplete([detail])
    return detail


class DeliveryIncomplete(RuntimeError):
    """Messages are still pending or failed after a delivery attempt; another attempt may send them.
    `details` are the deliver stages' details (remaining per state, causes)."""

    def __init__(self, details: list[dict[str, Any]]) -> None:
        from campaign_orchestrator.delivery.dispatcher import cause_lines

        self.details = details
        self.remaining: dict[str, int] = {}
        self.causes: dict[str, dict[str, int]] = {}
        for d in details:
            for state, n in (d.get("remaining") or {}).items():
                self.remaining[state] = self.remaining.get(state, 0) + int(n)
            for state, by_cause in (d.get("causes") or {}).items():
                mine = self.causes.setdefault(state, {})
                for cause, n in by_cause.items():
                    mine[cause] = mine.get(cause, 0) + int(n)
        left = self.remaining.get("pending", 0) + self.remaining.get("failed", 0)
        super().__init__(
            f"{left} messages not delivered yet ({self.remaining.get('pending', 0)} pending, "
            f"{self.remaining.get('failed', 0)} failed): "
            + "; ".join(cause_lines({k: v for k, v in self.causes.items() if k in ("pending", "failed")}))
            + ". Another attempt (the task's retry, or campaigns deliver) sends them once the cause is fixed."
        )


class NotRendered(RuntimeError):
    """Delivery was asked for a date whose latest render did not finish: held campaigns are unknown."""


def _require_rendered(run: Run) -> None:
    import sqlalchemy as sa

    with run.engine.connect() as conn:
        last = conn.execute(
            sa.select(run_log.c.detail)
            .where(run_log.c.run_date == run.config.run_date, run_log.c.stage == "render")
            .order_by(run_log.c.started_at.desc())
            .limit(1)
        ).scalar()
    if last is not None and json.loads(last).get("status") != "ok":
        raise NotRendered(
            f"the latest render for {run.config.run_date} did not finish, so which campaigns must be held "
            "is not known: render again (campaigns run, or clear render_messages) before delivering"
        )


def held_campaigns(run: Run) -> dict[str, int]:
    """Campaigns of this run held back because too many of their messages failed to render."""
    import sqlalchemy as sa

    from campaign_orchestrator.ledger import message_ledger
    from campaign_orchestrator.tables import outbox

    ledger = message_ledger(outbox.c.run_date == run.config.run_date)
    with run.engine.connect() as conn:
        rows = conn.execute(
            sa.select(ledger.c.campaign_id, sa.func.count())
            .where(ledger.c.state == "held")
            .group_by(ledger.c.campaign_id)
        ).all()
    return {campaign_id: int(n) for campaign_id, n in rows}


class CampaignsHeld(RuntimeError):
    """The night ran, but some campaigns were not delivered: too many of their messages failed to render."""


def report_stage(run: Run) -> Path:
    from campaign_orchestrator.reporting import write_run_report

    with run.stage("report") as detail:
        path = write_run_report(run.engine, run.definitions, run.config)
        detail["path"] = str(path)
    return path


REQUIRED_STAGES = ("validate", "publish", "segments", "targets", "render")


def unfinished_stages(run: Run) -> list[str]:
    """Stages of this run that did not finish ok (or never ran); empty when the night is complete."""
    import sqlalchemy as sa

    with run.engine.connect() as conn:
        rows = conn.execute(
            sa.select(run_log.c.stage, run_log.c.detail)
            .where(run_log.c.run_id == run.config.run_id)
            .order_by(run_log.c.started_at)
        ).all()
    status: dict[str, str] = {}  # a retried stage: its latest attempt counts
    for stage, detail in rows:
        status[stage] = json.loads(detail or "{}").get("status", "failed")
    shards = [f"deliver[{i}]" for i in delivery_shards(run)]
    return [s for s in (*REQUIRED_STAGES, *shards) if status.get(s) != "ok"] + [
        s for s, st in status.items() if st != "ok" and s.startswith("validate[")
    ]


def run_all(config: RunConfig, resolver: EndpointResolver = env_endpoint_resolver) -> Path:
    """The whole night in the DAG's order (sources validated in parallel); returns the report's path."""
    run = Run(config)
    try:
        validate_definitions(run)
        notices_stage(run)
        import_stage(run)
        segments_stage(run)
        targets_stage(run)
        render_stage(run)
        incomplete: list[dict[str, Any]] = []
        for shard in delivery_shards(run):  # every shard gets its attempt, whatever another's fate
            try:
                deliver_stage(run, shard, resolver, concurrent_shards=1)
            except DeliveryIncomplete as exc:
                incomplete += exc.details
        if incomplete:
            raise DeliveryIncomplete(incomplete)
    except Exception:
        # A failed night gets its report too: which source or stage stopped it, and what went out.
        try:
            report_stage(run)
        except Exception:  # the report must not hide the failure that stopped the night
            log.exception("could not write the report of the failed run")
        raise
    path = report_stage(run)
    held = held_campaigns(run)
    if held:
        raise CampaignsHeld(
            f"held, not delivered (render failures over settings.render.max_error_share): {held}; "
            f"see render_errors and {path}"
        )
    return path
