"""The end-of-night rule, in one place for the DAG's report task and `campaigns run`: a night is
complete when every required stage and delivery shard of its run finished ok and no campaign was
held for render failures; otherwise `finish_night` raises, naming what is missing. A stale night
(its delivery ran past settings.delivery.max_lateness and sent nothing) is complete: sending nothing
was the rule's decision, said in the report and logged as a warning, not a failure."""

from __future__ import annotations

import json
import logging

from campaign_orchestrator.errors import CampaignError, NightIncomplete
from campaign_orchestrator.outbox.ledger import message_ledger
from campaign_orchestrator.run.context import Run, delivery_shards
from campaign_orchestrator.warehouse.tables import outbox, run_log

log = logging.getLogger(__name__)


class NotRendered(CampaignError):
    """Delivery was asked for a date whose latest render did not finish: held campaigns are unknown."""


def require_rendered(run: Run) -> None:
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

    ledger = message_ledger(outbox.c.run_date == run.config.run_date)
    with run.engine.connect() as conn:
        rows = conn.execute(
            sa.select(ledger.c.campaign_id, sa.func.count())
            .where(ledger.c.state == "held")
            .group_by(ledger.c.campaign_id)
        ).all()
    return {campaign_id: int(n) for campaign_id, n in rows}


class CampaignsHeld(NightIncomplete):
    """The night ran, but some campaigns were not delivered: too many of their messages failed to render."""


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


def finish_night(run: Run, report_path: object | None = None) -> None:
    """The end-of-night rule: raise NightIncomplete naming the stages that did not finish ok, or
    CampaignsHeld naming the campaigns held for render failures (the others were delivered)."""
    where = f"; see {report_path}" if report_path is not None else ""
    missing = unfinished_stages(run)
    if missing:
        raise NightIncomplete(f"the night did not complete: {missing}{where}")
    held = held_campaigns(run)
    if held:
        raise CampaignsHeld(
            f"held, not delivered (render failures over settings.render.max_error_share): {held}; "
            f"see render_errors{where}"
        )
    reason = stale_reason(run)
    if reason:
        log.warning("stale night, nothing was sent: %s%s", reason, where)


def stale_reason(run: Run) -> str | None:
    """Why this run's delivery sent nothing, when a deliver stage of it found the night stale."""
    import sqlalchemy as sa

    with run.engine.connect() as conn:
        details = conn.execute(
            sa.select(run_log.c.detail).where(run_log.c.run_id == run.config.run_id, run_log.c.stage.like("deliver[%"))
        ).scalars()
        for detail in details:
            stale = json.loads(detail or "{}").get("stale")
            if stale:
                return str(stale["reason"])
    return None
