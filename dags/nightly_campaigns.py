"""
### nightly_campaigns

Turns the night's customer exports and the marketers' planned campaigns into delivered,
auditable recipient lists:

validate definitions → ingest (one mapped task per source checks it against its data contract,
then one task publishes them all in a single transaction) → segments → target lists → render
→ deliver (one mapped task per outbox shard) → run report.

Every task calls the `campaign_orchestrator` engine, the same functions as `campaigns run`.
Re-running a date, or clearing any task, never sends a message twice: the outbox is the ledger.
A run whose delivery comes more than `settings.delivery.max_lateness` after its date ended
(midnight UTC), such as a backfill, the catch-up run an unpause starts after midnight or a replay
of a past date, is stale: it computes and reports, sends nothing, and stays green; the report says why.
A broken data contract fails its `ingest.validate_source` task without retries; nothing is
published and nothing downstream runs.

Connections: `campaigns_warehouse` (if Airflow has none, `CAMPAIGNS_WAREHOUSE_URL`; a connection
Airflow cannot read fails the task, never falls back) and the provider connection named in
`marketing/settings.yaml` (default `campaigns_provider`). An input that retrying cannot fix (a
definition, a data contract, a connection's settings) fails its task at once; anything else is
retried.
Param `run_date` (YYYY-MM-DD) overrides the logical date, to replay a _night().

Assets (the Assets view shows their lineage): segment memberships, target lists, the outbox, the
delivery ledger, and the run report as JSON and as HTML charts, each updated by the task that writes it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from airflow.sdk import Asset, Param, dag, task, task_group

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
    from campaign_orchestrator.run import Run, RunConfig
    from campaign_orchestrator_airflow.hooks import source_url, warehouse_url

    override = (context.get("params") or {}).get("run_date")
    if override:
        run_date = dt.date.fromisoformat(str(override))
    else:
        moment = context.get("logical_date") or context["dag_run"].run_after
        run_date = moment.date()
    config = RunConfig.from_env(
        run_date, PROJECT, os.environ, run_id=str(context["run_id"]), warehouse_url=warehouse_url()
    )
    return Run(config, url_resolver=source_url)


def _fail_fast(exc: BaseException) -> NoReturn:
    """Broken inputs or definitions will not heal by retrying: fail the task now, with the message."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(str(exc)) from exc


VALIDATE_SOURCE_DOC = "Check one source against its data contract and stage it; nothing live changes."
DELIVER_DOC = (
    "Deliver one outbox shard exactly once; fails (and is retried) while messages stay pending or failed; "
    "a connection that cannot make a request fails at once, having claimed nothing."
)
T = TypeVar("T")


def _asset(kind: str, name: str) -> Asset:
    """A logical asset of the night. `x-` is the URI scheme Airflow leaves to its users (no provider
    normalises it), and a name rather than a path: the warehouse and the reports folder are chosen per
    deployment, at run time, and a DAG file must not look them up when it is parsed."""
    return Asset(name=f"campaigns.{name}", uri=f"x-campaigns://{kind}/{name}")


SEGMENT_MEMBERSHIP = _asset("warehouse", "segment_membership")
TARGET_LIST = _asset("warehouse", "target_list")
OUTBOX = _asset("warehouse", "outbox")
LEDGER = _asset("warehouse", "message_ledger")  # delivery states: delivery_batches, read through the ledger view
RUN_REPORT_JSON = _asset("reports", "run_report.json")
RUN_REPORT_HTML = _asset("reports", "run_report.html")
# campaign_metrics: written by the measure task (run/stages.py `metrics_stage`).
CAMPAIGN_METRICS = _asset("warehouse", "campaign_metrics")


def _night() -> Any:
    """The engine's stages, imported when a task runs: the DAG file is parsed often, and cheaply."""
    import campaign_orchestrator.run as night

    return night


def _engine(call: Callable[[], T]) -> T:
    """Run an engine call; an error carrying the InvalidInput marker fails the task without retries."""
    from campaign_orchestrator.errors import InvalidInput

    try:
        return call()
    except InvalidInput as exc:
        _fail_fast(exc)


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
        """Check every definition and lint tonight's templates before any data moves."""
        return _engine(lambda: _night().validate_definitions(_run(context)))

    @task_group
    def ingest() -> None:
        @task
        def list_sources(**context: Any) -> list[str]:
            """The night's inputs (sources and static lists), one mapped task each."""
            return _engine(lambda: _night().source_names(_run(context)))

        @task(map_index_template="{{ source }}", doc_md=VALIDATE_SOURCE_DOC)  # mapped: the docstring is not used
        def validate_source(source: str, **context: Any) -> dict[str, Any]:
            """Check one source against its data contract and stage it; nothing live changes."""
            return _engine(lambda: _night().validate_source_stage(_run(context), source))

        @task
        def publish(staged: Any, **context: Any) -> dict[str, Any]:  # the mapped results (an XComArg at parse)
            """Load every staged source into the live tables in one transaction."""
            return _engine(lambda: _night().publish_stage(_run(context), list(staged)))

        publish(validate_source.expand(source=list_sources()))

    @task(outlets=[SEGMENT_MEMBERSHIP])
    def compute_segments(**context: Any) -> dict[str, Any]:
        """Segment memberships and lifecycle stages for the run date, in the warehouse."""
        return _engine(lambda: _night().segments_stage(_run(context)))

    @task(outlets=[TARGET_LIST])
    def build_target_lists(**context: Any) -> dict[str, Any]:
        """Each active campaign's target list under its controls, with a reason for everyone left out."""
        return _engine(lambda: _night().targets_stage(_run(context)))

    @task(outlets=[OUTBOX])
    def render_messages(**context: Any) -> dict[str, Any]:
        """Render the target lists into the outbox in delivery batches; hold failing campaigns."""
        return _engine(lambda: _night().render_stage(_run(context)))

    @task
    def publish_notices(**context: Any) -> dict[str, Any]:
        """Publish the public in-app notices (outages, forced updates) to the message store."""
        return _engine(lambda: _night().notices_stage(_run(context)))

    @task
    def plan_delivery_shards(**context: Any) -> list[int]:
        """The outbox shards, one mapped deliver task each."""
        return _engine(lambda: _night().delivery_shards(_run(context)))

    @task(max_active_tis_per_dagrun=16, map_index_template="shard {{ shard }}", doc_md=DELIVER_DOC, outlets=[LEDGER])
    def deliver(shard: int, **context: Any) -> dict[str, Any]:
        """Deliver one outbox shard exactly once; fails (and is retried) while messages stay pending or
        failed; a connection that cannot make a request fails at once, having claimed nothing."""
        from campaign_orchestrator_airflow.hooks import provider_endpoint

        return _engine(lambda: _night().deliver_stage(_run(context), shard, provider_endpoint))

    @task(trigger_rule="all_done", outlets=[CAMPAIGN_METRICS])  # earlier nights are re-measured whatever tonight did
    def measure(**context: Any) -> dict[str, Any]:
        """Campaign metrics for the run date and the lookback before it: engagement, conversions, uplift."""
        return _engine(lambda: _night().metrics_stage(_run(context)))

    @task(trigger_rule="all_done", outlets=[RUN_REPORT_JSON, RUN_REPORT_HTML])  # a failed night gets its report too
    def write_report(**context: Any) -> str:
        """Write the run report, even after a failure; then fail while the night is incomplete."""
        import json

        from campaign_orchestrator.errors import NightIncomplete
        from campaign_orchestrator.reporting import summary_table

        night = _night()
        run = _run(context)
        path = night.report_stage(run)
        print(summary_table(json.loads(path.read_text(encoding="utf-8"))))
        print(f"run report: {path}")
        events = context.get("outlet_events")
        if events is not None:  # where tonight's reports are, on each asset event
            for asset, name in ((RUN_REPORT_JSON, "run_report.json"), (RUN_REPORT_HTML, "run_report.html")):
                events[asset].extra = {"run_date": run.config.run_date.isoformat(), "path": str(path.parent / name)}
        try:
            night.finish_night(run, path)  # the one end-of-night rule, as `campaigns run` applies it
        except NightIncomplete as exc:  # the report is written; the night still shows as failed
            _fail_fast(exc)
        return str(path)

    @task(trigger_rule="all_done")  # retention does not wait for a good night
    def purge(**context: Any) -> dict[str, Any]:
        """Apply settings.retention: remove or empty what each store holds longer than it should."""
        return _engine(lambda: _night().purge_stage(_run(context)))

    shards = plan_delivery_shards()
    validated = validate_definitions()
    rendered = validated >> ingest() >> compute_segments() >> build_target_lists() >> render_messages()
    notices = publish_notices()  # an outage notice must not wait for tonight's data
    validated >> notices
    rendered >> shards
    [deliver.expand(shard=shards), notices] >> measure() >> write_report() >> purge()


nightly_campaigns()
