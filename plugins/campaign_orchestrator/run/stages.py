"""The nightly run as stages. The DAG's tasks and the `campaigns run` command call these same
functions, so what Airflow runs is exactly what the CLI and the tests run.

Every stage opens its own connection from the run config (tasks may run on different workers),
records its timing and counts in `run_log`, and is safe to repeat for the same run date.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.connections import EndpointResolver, env_endpoint_resolver
from campaign_orchestrator.definitions.loader import DefinitionError
from campaign_orchestrator.delivery import deliver_shard
from campaign_orchestrator.delivery.notices import publish_public_messages
from campaign_orchestrator.delivery.report import DeliveryIncomplete
from campaign_orchestrator.delivery.stale import lateness, withhold_stale_shard
from campaign_orchestrator.ingest import contracts as contracts_mod
from campaign_orchestrator.ingest.contracts import ContractError
from campaign_orchestrator.ingest.publish import publish
from campaign_orchestrator.ingest.validate import ImportContext, ImportFailed, StagedSource, validate_source
from campaign_orchestrator.measurement import measure_date, measured_dates
from campaign_orchestrator.render.lint import lint_templates
from campaign_orchestrator.render.render import render_outbox
from campaign_orchestrator.reporting.report import write_run_report
from campaign_orchestrator.run.context import Run, RunConfig, delivery_shards, sources_config
from campaign_orchestrator.run.status import finish_night, require_rendered
from campaign_orchestrator.segments.memberships import compute_memberships
from campaign_orchestrator.segments.windows import windows_for
from campaign_orchestrator.targeting.arbitration import build_target_lists
from campaign_orchestrator.warehouse.bulk import tune_bulk_transaction
from campaign_orchestrator.warehouse.tables import target_list

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- stages


def validate_definitions(run: Run) -> dict[str, Any]:
    """Fail early, before any data moves, if a segment, campaign or template is wrong."""

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


def _import_context(run: Run, from_archive: bool = False, accept_row_count: frozenset[str] = frozenset()) -> Any:

    return ImportContext(
        run_date=run.config.run_date,
        sources_dir=run.config.sources_dir,
        archive_dir=run.config.archive_dir / run.config.run_date.isoformat(),
        from_archive=from_archive,
        resolve_url=run.url_resolver,
        customers=sources_config(run).sources.get("customers"),
        accept_row_count=accept_row_count,
    )


def source_names(run: Run) -> list[str]:
    """Every input of the night (sources and static lists), for one mapped task each."""
    return list(sources_config(run).all())


def validate_source_stage(
    run: Run, source: str, from_archive: bool = False, accept_row_count: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Check one source against its contract and stage it; nothing live changes."""

    with run.stage(f"validate[{source}]") as detail:
        spec = sources_config(run).all()[source]
        contract = run.contracts["lists" if source.startswith("list:") else source]
        context = _import_context(run, from_archive, accept_row_count)
        staged = validate_source(run.engine, context, source, spec, contract)
        detail.update(staged.as_dict())
        detail["rows"] = staged.rows_loaded
    return detail


def publish_stage(run: Run, staged: list[dict[str, Any]]) -> dict[str, Any]:
    """Load every staged source into the live tables in one transaction."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(StagedSource)}
    with run.stage("publish") as detail:
        items = [StagedSource(**{k: v for k, v in item.items() if k in names}) for item in staged]
        publish(run.engine, run.config.run_date, items, run.contracts)
        detail["sources"] = {item.source: item.as_dict() for item in items}
        detail["rows"] = sum(item.rows_loaded for item in items)
    return detail


def _validate_in_worker(
    config: RunConfig, source: str, from_archive: bool, accept_row_count: frozenset[str]
) -> dict[str, Any]:
    return validate_source_stage(Run(config), source, from_archive, accept_row_count)


def import_stage(
    run: Run, from_archive: bool = False, workers: int | None = None, accept_row_count: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Validate every source (in `workers` processes side by side, default one), then publish.
    `accept_row_count` names sources whose row count may leave its band this once (recorded as a warning).

    If any source breaks its contract, every failure is reported together and nothing is published.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    names = source_names(run)
    # One process by default: a validating process peaks around 650 MB on million-row files, so
    # parallel workers trade memory for time (the DAG gets its parallelism from mapped tasks).
    workers = max(1, workers or 1)
    results: list[dict[str, Any]] = []
    failures: list[ContractError] = []
    if workers <= 1:
        for name in names:
            try:
                results.append(validate_source_stage(run, name, from_archive, accept_row_count))
            except ContractError as exc:
                failures.append(exc)
    else:
        run.engine.dispose()
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(_validate_in_worker, run.config, name, from_archive, accept_row_count) for name in names
            ]
            for future in futures:
                try:
                    results.append(future.result())
                except ContractError as exc:
                    failures.append(exc)
    if failures:
        raise ImportFailed(failures)
    return publish_stage(run, results)


def segments_stage(run: Run) -> dict[str, Any]:

    with run.stage("segments") as detail, run.engine.begin() as conn:
        tune_bulk_transaction(conn)
        defs = run.definitions
        when = run.config.run_date
        windows = windows_for(conn, when, defs.settings.windows, defs.settings.default_timezone)
        sizes = compute_memberships(conn, defs.rules(), defs.vocabulary, when, defs.lifecycle_specs(), windows)
        detail.update(sizes=sizes, rows=sum(sizes.values()))
    return detail


def targets_stage(run: Run, now: dt.datetime | None = None) -> dict[str, Any]:

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

    with run.stage("notices") as detail:
        with run.engine.begin() as conn:
            detail.update(publish_public_messages(conn, run.definitions.public_messages, now or utcnow()))
        detail["rows"] = len(run.definitions.public_messages)
    return detail


def deliver_stage(
    run: Run,
    shard: int,
    resolver: EndpointResolver = env_endpoint_resolver,
    concurrent_shards: int | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Deliver one outbox shard. Mapped DAG tasks send side by side and split the provider's budget;
    the CLI sends shard after shard (concurrent_shards=1), each with the whole budget.

    A stale night (`now`, default the clock, past the run date's end by more than
    settings.delivery.max_lateness) sends nothing: its shard is resolved without a request
    (delivery/stale.py) and the stage finishes ok, saying why in its detail (`stale`).

    Raises DeliveryIncomplete, after recording the stage, when messages of the shard are still
    pending or failed at the end: the task fails, so Airflow retries it, and the night is red
    until they are sent."""

    require_rendered(run)
    settings = run.definitions.settings
    late = lateness(run.config.run_date, now or utcnow(), settings.delivery)
    if late.stale:
        with run.stage(f"deliver[{shard}]") as detail:
            args = (run.config.run_date, shard, settings.delivery.shards, late, settings.destinations)
            detail.update(withhold_stale_shard(run.engine, *args, settings.delivery.lease_s))
            detail["rows"] = 0
            log.warning("%s", detail["summary"])
        return detail
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


def metrics_stage(run: Run) -> dict[str, Any]:
    """Measure the run date and the `lookback_days` before it again: engagement and conversions of
    earlier sends arrive later (a purchase three days after the send), so their metrics grow."""

    with run.stage("metrics") as detail:
        settings = run.definitions.settings.measurement
        dates = measured_dates(run.engine, run.config.run_date, settings.lookback_days)
        rows = 0
        for day in dates:
            rows += len(measure_date(run.engine, run.definitions, run.definitions.vocabulary, day))
        detail.update(dates=[d.isoformat() for d in dates], rows=rows)
    return detail


def report_stage(run: Run) -> Path:

    with run.stage("report") as detail:
        path = write_run_report(run.engine, run.definitions, run.config)
        detail["path"] = str(path)
        # The charts next to it (run_report.html). A chart that fails is logged and recorded here,
        # and its section says so; it never costs the night its JSON report (not even when the
        # charting itself cannot be imported).
        try:
            from campaign_orchestrator.reporting.html import write_html_report

            html = write_html_report(
                run.engine, path.parent / "run_report.html", run.config.run_date, segment_lookback_days=29
            )
            detail["html"] = str(html)
        except Exception as exc:
            log.exception("the HTML run report could not be drawn in full")
            detail["html_error"] = f"{type(exc).__name__}: {exc}"
            failed = getattr(exc, "failures", None)  # ChartsFailed: the page is written, these charts are not
            if failed:
                detail["html"], detail["html_failed_charts"] = str(path.parent / "run_report.html"), sorted(failed)
    return path


def run_all(
    config: RunConfig, resolver: EndpointResolver = env_endpoint_resolver, now: dt.datetime | None = None
) -> Path:
    """The whole night in the DAG's order (sources validated in parallel); returns the report's path.
    `now` (default: the clock, at each stage) is the moment targeting, rendering and delivery take."""
    run = Run(config)
    _ = run.engine  # a warehouse behind the code's schema revision stops the night here, before any stage
    try:
        validate_definitions(run)
        notices_stage(run)
        import_stage(run)
        segments_stage(run)
        targets_stage(run, now)
        render_stage(run, now)
        incomplete: list[dict[str, Any]] = []
        for shard in delivery_shards(run):  # every shard gets its attempt, whatever another's fate
            try:
                deliver_stage(run, shard, resolver, concurrent_shards=1, now=now)
            except DeliveryIncomplete as exc:
                incomplete += exc.details
        metrics_stage(run)  # earlier nights' engagement counts whatever tonight's delivery did
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
    finish_night(run, path)
    return path
