"""The night as stages, shared by the DAG's tasks and the `campaigns` CLI.

Guarantees: every stage opens its own connection from the run's config (tasks may run on
different workers), records itself in `run_log`, and is safe to repeat for the same run date; the
end-of-night rule (`finish_night`) is one function for the DAG's report task and `campaigns run`.
"""

from campaign_orchestrator.run.context import Run, RunConfig, delivery_shards, sources_config
from campaign_orchestrator.run.dry_plan import PlanBusy, dry_plan, with_candidate
from campaign_orchestrator.run.purge import purge_stage
from campaign_orchestrator.run.stages import (
    deliver_stage,
    import_stage,
    metrics_stage,
    notices_stage,
    plan_stage,
    publish_stage,
    render_stage,
    report_stage,
    run_all,
    segments_stage,
    source_names,
    targets_stage,
    validate_definitions,
    validate_source_stage,
)
from campaign_orchestrator.run.status import CampaignsHeld, finish_night, held_campaigns, unfinished_stages

__all__ = [
    "CampaignsHeld",
    "PlanBusy",
    "Run",
    "RunConfig",
    "deliver_stage",
    "delivery_shards",
    "dry_plan",
    "finish_night",
    "held_campaigns",
    "import_stage",
    "metrics_stage",
    "notices_stage",
    "plan_stage",
    "publish_stage",
    "purge_stage",
    "render_stage",
    "report_stage",
    "run_all",
    "segments_stage",
    "source_names",
    "sources_config",
    "targets_stage",
    "unfinished_stages",
    "validate_definitions",
    "validate_source_stage",
    "with_candidate",
]
