"""
### nightly_campaigns

Turns the night's customer exports and the marketers' planned campaigns into delivered,
auditable recipient lists:

validate definitions → ingest (one mapped task per source checks it against its data contract,
then one task publishes them all in a single transaction) → segments → target lists → render
→ deliver (one mapped task per outbox shard) → run report.

Every task calls the `campaign_orchestrator` engine, the same functions as `campaigns run`.
Re-running a date, or clearing any task, never sends a message twice: the outbox is the ledger.
A broken data contract fails its `ingest.validate_source` task without retries; nothing is
published and nothing downstream runs.

Connections: `campaigns_warehouse` (optional; else `CAMPAIGNS_WAREHOUSE_URL`, else SQLite) and
the provider connection named in `marketing/settings.yaml` (default `campaigns_provider`).
Param `run_date` (YYYY-MM-DD) overrides the logical date, to replay a night.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, task, task_group

PROJECT = Path(os.environ.get("CAMPAIGNS_HOME") or Path(__file__).resolve().parents[1])
RETRY_DELAY = dt.timedelta(seconds=int(os.environ.get("CAMPAIGNS_RETRY_DELAY_SECONDS", "300")))

default_args: dict[str, Any] = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": RETRY_DELAY,
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=30),
}


def _run(context: dict[str, Any]) -> Any:
    """The engine's run handle for this DAG run; built inside tasks, never at parse time."""
    from campaign_orchestrator.run.context import Run, RunConfig
    from campaign_orchestrator_airflow.hooks import source_url, warehouse_url

    override = (context.get("params") or {}).get("run_date")
    if override:
        run_date = dt.date.fromisoformat(str(override))
    else:
        moment = context.get("logical_date") or context["dag_run"].run_after
        run_date = moment.date()
    env = os.environ
    config = RunConfig(
        run_date=run_date,
        run_id=str(context["run_id"]),
        warehouse_url=warehouse_url(),
        config_dir=Path(env.get("CAMPAIGNS_CONFIG_DIR", PROJECT / "marketing")),
        contracts_dir=Path(env.get("CAMPAIGNS_CONTRACTS_DIR", PROJECT / "data_contracts")),
        sources_dir=Path(env.get("CAMPAIGNS_SOURCES_DIR", PROJECT / "data" / "incoming")),
        reports_dir=Path(env.get("CAMPAIGNS_REPORTS_DIR", PROJECT / "reports")),
        archive_dir=Path(env.get("CAMPAIGNS_ARCHIVE_DIR", PROJECT / "archive")),
    )
    return Run(config, url_resolver=source_url)


def _fail_fast(exc: Exception) -> None:
    """Broken inputs or definitions will not heal by retrying: fail the task now, with the message."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(str(exc)) from exc


@dag(
    dag_id="nightly_campaigns",
    schedule="0 2 * * *",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    params={"run_date": Param(None, type=["null", "string"], format="date", description="replay this date")},
    tags=["campaigns"],
    doc_md=__doc__,
)
def nightly_campaigns() -> None:
    @task
    def validate_definitions(**context: Any) -> dict[str, Any]:
        from campaign_orchestrator.definitions.loader import DefinitionError
        from campaign_orchestrator.render.compiled import RenderError
        from campaign_orchestrator.run.stages import validate_definitions as validate

        try:
            return validate(_run(context))
        except (DefinitionError, RenderError) as exc:
            _fail_fast(exc)
            raise

    @task_group
    def ingest() -> None:
        @task
        def list_sources(**context: Any) -> list[str]:
            from campaign_orchestrator.run.stages import source_names

            return source_names(_run(context))

        @task(map_index_template="{{ source }}")
        def validate_source(source: str, **context: Any) -> dict[str, Any]:
            from campaign_orchestrator.ingest.contracts import ContractError
            from campaign_orchestrator.run.stages import validate_source_stage

            try:
                return validate_source_stage(_run(context), source)
            except ContractError as exc:
                _fail_fast(exc)
                raise

        @task
        def publish(staged: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
            from campaign_orchestrator.run.stages import publish_stage

            return publish_stage(_run(context), list(staged))

        publish(validate_source.expand(source=list_sources()))

    @task
    def compute_segments(**context: Any) -> dict[str, Any]:
        from campaign_orchestrator.run.stages import segments_stage

        return segments_stage(_run(context))

    @task
    def build_target_lists(**context: Any) -> dict[str, Any]:
        from campaign_orchestrator.run.stages import targets_stage

        return targets_stage(_run(context))

    @task
    def render_messages(**context: Any) -> dict[str, Any]:
        from campaign_orchestrator.run.stages import render_stage

        return render_stage(_run(context))

    @task
    def publish_notices(**context: Any) -> dict[str, Any]:
        from campaign_orchestrator.run.stages import notices_stage

        return notices_stage(_run(context))

    @task
    def plan_delivery_shards(**context: Any) -> list[int]:
        from campaign_orchestrator.run.context import delivery_shards

        return delivery_shards(_run(context))

    @task(max_active_tis_per_dagrun=16)
    def deliver(shard: int, **context: Any) -> dict[str, Any]:
        """Fails while messages stay pending or failed (DeliveryIncomplete), so Airflow retries it;
        a connection that cannot make a request fails at once, having claimed nothing."""
        from campaign_orchestrator.delivery.dispatcher import DestinationConfigError
        from campaign_orchestrator.run.stages import deliver_stage
        from campaign_orchestrator_airflow.hooks import provider_endpoint

        try:
            return deliver_stage(_run(context), shard, provider_endpoint)
        except DestinationConfigError as exc:
            _fail_fast(exc)
            raise

    @task(trigger_rule="all_done")  # a failed night gets its report too
    def write_report(**context: Any) -> str:
        import json

        from campaign_orchestrator.reporting.report import summary_table
        from campaign_orchestrator.run.stages import report_stage
        from campaign_orchestrator.run.status import held_campaigns, unfinished_stages

        run = _run(context)
        path = report_stage(run)
        print(summary_table(json.loads(path.read_text(encoding="utf-8"))))
        print(f"run report: {path}")
        missing = unfinished_stages(run)
        if missing:  # the report is written; the night still shows as failed
            _fail_fast(RuntimeError(f"the night did not complete: {missing}; see {path}"))
        held = held_campaigns(run)
        if held:  # delivered what was good; the held campaigns need a fixed template and a re-run
            _fail_fast(RuntimeError(f"campaigns held, too many render failures: {held}; see render_errors, {path}"))
        return str(path)

    shards = plan_delivery_shards()
    validated = validate_definitions()
    rendered = validated >> ingest() >> compute_segments() >> build_target_lists() >> render_messages()
    notices = publish_notices()  # an outage notice must not wait for tonight's data
    validated >> notices
    rendered >> shards
    [deliver.expand(shard=shards), notices] >> write_report()


nightly_campaigns()
