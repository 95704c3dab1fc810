"""The retention stage, shared by the DAG's `purge` task and `campaigns purge`.

It applies `settings.retention` as of the run date (a night purges what its own date makes old,
so re-running a past date never purges more than that date did) to the warehouse and the run's
archive folder, and records itself in `run_log` like every stage.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from campaign_orchestrator.retention import purge
from campaign_orchestrator.run.context import Run


def purge_stage(run: Run, today: dt.date | None = None, dry_run: bool = False) -> dict[str, Any]:
    with run.stage("purge") as detail:
        report = purge(
            run.engine,
            run.definitions.settings.retention,
            today or run.config.run_date,
            run.config.archive_dir,
            dry_run=dry_run,
        )
        detail.update(report.as_dict())
        detail["rows"] = sum(report.counts.values())
    return detail
