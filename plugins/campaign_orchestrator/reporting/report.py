"""The run report: what a night did, per campaign, from segment to delivered, as JSON (Markdown: `markdown`).

Counts come from the warehouse (candidates, exclusions, ledger), not from memory, so the report
task can run on any worker and a re-run's report tells the truth about the whole date: what
was delivered in total and what this run delivered anew.

A sent message went one of three ways, and the report names which: sent now by the provider,
scheduled at the provider (handed over with a later send time, to be sent then), or written to
the in-app message store. Sent now + scheduled + in-app store = the ledger's sent messages, and
sent now + scheduled = what the provider received. Only messages are summed across campaigns:
segment sizes and eligible customers are not (a customer in several segments would count again).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from campaign_orchestrator.definitions.campaigns import Campaign
from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.delivery.scheduling import scheduled_at_provider
from campaign_orchestrator.outbox.ledger import ledger_counts, message_ledger, unsent_causes
from campaign_orchestrator.reporting.markdown import render_markdown
from campaign_orchestrator.targeting.funnel import funnels
from campaign_orchestrator.warehouse.engine import redacted
from campaign_orchestrator.warehouse.tables import (
    delivery_batches,
    import_log,
    outbox,
    render_errors,
    run_log,
    target_list,
)

if TYPE_CHECKING:
    from campaign_orchestrator.run.context import RunConfig

# What the totals line sums: messages, each counted once (never segment members or eligible customers).
MESSAGE_TOTALS = (
    "targeted",
    "kept",
    "held_out",
    "capped",
    "lost_arbitration",
    "delivered",
    "sent_now",
    "scheduled",
    "in_app",
    "delivered_this_run",
    "delivered_not_targeted",
    "pending",
    "failed",
    "dead",
    "unknown",
    "stale",
    "held",
    "render_errors",
)


def build_run_report(engine: Engine, definitions: Definitions, config: RunConfig) -> dict[str, Any]:
    run_date = config.run_date
    campaign_ids = [c.id for c in definitions.active_campaigns(run_date)]
    with engine.connect() as conn:
        funnel = funnels(conn, run_date, campaign_ids)
        ledger = ledger_counts(conn, run_date)
        split = delivery_split(conn, run_date, message_stores(definitions))
        stage_rows = conn.execute(
            sa.select(run_log.c.stage, run_log.c.detail)
            .where(run_log.c.run_id == config.run_id)
            .order_by(run_log.c.started_at)
        ).all()
        down: dict[str, str] = {}  # destinations this run's delivery found down, with the cause
        for stage_name, detail in stage_rows:
            if stage_name.startswith("deliver"):
                down.update(json.loads(detail or "{}").get("down") or {})
        _, not_delivered = unsent_causes(conn, run_date, down=down)
        unknown_requests = possibly_delivered(conn, run_date)
        untargeted = _sent_but_not_targeted(conn, run_date)
        imports = conn.execute(sa.select(import_log).where(import_log.c.run_date == run_date)).mappings().all()
        failures = conn.execute(
            sa.select(
                render_errors.c.campaign_id, render_errors.c.field, sa.func.count(), sa.func.min(render_errors.c.reason)
            )
            .where(render_errors.c.run_date == run_date)
            .group_by(render_errors.c.campaign_id, render_errors.c.field)
        ).all()
    render_failures: dict[str, list[dict[str, Any]]] = {}
    for cid, field_name, count, example in failures:
        render_failures.setdefault(cid, []).append({"field": field_name, "count": int(count), "example": example})
    stages = [{"stage": r.stage, **json.loads(r.detail or "{}")} for r in stage_rows]
    new_sends: dict[str, int] = {}
    delivery: dict[str, dict[str, float]] = {}  # campaign -> retried, throttled_s, dead/failed this run
    for stage in stages:
        if stage["stage"].startswith("deliver"):
            for cid, n in (stage.get("sent") or {}).items():
                new_sends[cid] = new_sends.get(cid, 0) + int(n)
            for key in ("retried", "throttled_s"):
                for cid, n in (stage.get(key) or {}).items():
                    entry = delivery.setdefault(cid, {})
                    entry[key] = round(entry.get(key, 0) + n, 3)
    campaigns: dict[str, Any] = {}
    for cid in sorted(set(campaign_ids) | set(ledger)):
        camp = definitions.campaigns.get(cid)
        states = ledger.get(cid, {})
        row: dict[str, Any] = {
            "campaign": cid,
            "channel": camp.channel if camp else None,
            "destination": camp.destination if camp else None,
            "segment": camp.segment if camp else None,
            "priority": camp.priority if camp else None,
            "status": campaign_status(camp, run_date),
        }
        row.update(funnel[cid].as_dict() if cid in funnel else {})
        row.update(
            delivered=states.get("sent", 0),
            **split.get(cid, {"sent_now": 0, "scheduled": 0, "in_app": 0}),
            delivered_this_run=new_sends.get(cid, 0),
            pending=states.get("pending", 0) + states.get("in_flight", 0),
            failed=states.get("failed", 0),
            dead=states.get("dead", 0),
            unknown=states.get("unknown", 0),
            stale=states.get("stale", 0),
            cancelled=states.get("cancelled", 0),
            held=states.get("held", 0),
            retried=int(delivery.get(cid, {}).get("retried", 0)),
            throttled_s=delivery.get(cid, {}).get("throttled_s", 0.0),
            render_errors=sum(f["count"] for f in render_failures.get(cid, [])),
            render_failures=render_failures.get(cid, []),
            delivered_not_targeted=untargeted.get(cid, 0),
        )
        campaigns[cid] = row
    totals = {k: sum(int(c.get(k) or 0) for c in campaigns.values()) for k in MESSAGE_TOTALS}
    return {
        "run_date": run_date.isoformat(),
        "run_id": config.run_id,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "warehouse": redacted(config.warehouse_url),
        "imports": [_import_row(dict(i)) for i in imports],
        "stages": stages,
        "campaigns": campaigns,
        # defined campaigns with nothing tonight: not scheduled on the run date, or disabled
        "not_scheduled": _not_scheduled(definitions, run_date, set(campaigns)),
        "totals": totals,
        "not_delivered": not_delivered,  # state -> cause -> messages, for pending, failed, unknown, dead, stale
        "destinations_down": down,
        # the requests whose messages may have arrived (`unknown`): never resent, for a person to decide
        "possibly_delivered": unknown_requests,
        # this run's delivery found the night stale (settings.delivery.max_lateness): nothing was sent
        "stale": stale_night(stages),
    }


def stale_night(stages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Why this run's delivery sent nothing, when its deliver stages found the night stale: the
    lateness (run date, hours late, the setting, the reason) and the stale shards; else None."""
    stale = [s for s in stages if s["stage"].startswith("deliver") and s.get("stale")]
    if not stale:
        return None
    return {**stale[0]["stale"], "shards": sorted({int(s.get("shard", 0)) for s in stale})}


POSSIBLY_DELIVERED_LISTED = 200


def possibly_delivered(conn: sa.Connection, run_date: dt.date) -> dict[str, Any]:
    """The date's `unknown` requests, one per batch (its id is the request's Idempotency-Key; the
    recipients are `message_ledger` rows with that batch_id): campaign, destination, send time,
    messages and why. Counts and keys only, no customer; the first POSSIBLY_DELIVERED_LISTED."""
    b = delivery_batches.c
    live = sa.select(sa.func.count()).where(outbox.c.batch_id == b.batch_id, outbox.c.state.is_(None))
    rows = conn.execute(
        sa.select(b.batch_id, b.campaign_id, b.destination, b.send_at, b.updated_at, b.last_error)
        .add_columns(live.scalar_subquery().label("live"))
        .where(b.run_date == run_date, b.state == "unknown")
        .order_by(b.campaign_id, b.send_at, b.batch_id)
    ).all()
    listed = [
        {
            "batch_id": r.batch_id,
            "campaign": r.campaign_id,
            "destination": r.destination,
            "send_at": r.send_at.isoformat(),
            "since": r.updated_at.isoformat(timespec="seconds"),
            "messages": int(r.live),
            "why": r.last_error,
        }
        for r in rows[:POSSIBLY_DELIVERED_LISTED]
    ]
    return {"requests": len(rows), "messages": sum(int(r.live) for r in rows), "listed": listed}


def message_stores(definitions: Definitions) -> list[str]:
    """The destinations that are the in-app message store (settings.destinations, kind message_store)."""
    return sorted(name for name, d in definitions.settings.destinations.items() if d.kind == "message_store")


def delivery_split(conn: sa.Connection, run_date: dt.date, stores: list[str]) -> dict[str, dict[str, int]]:
    """Per campaign, the date's sent messages by the way they went: `in_app` (written to a message
    store), `scheduled` (handed to the provider more than SCHEDULE_MARGIN before their send time,
    which the provider takes as a schedule: see delivery/provider.py) and `sent_now` (the rest of
    the provider's). The three add up to the ledger's sent messages."""
    ledger = message_ledger(outbox.c.run_date == run_date, name="split")
    in_store = ledger.c.destination.in_(stores) if stores else sa.false()
    later = scheduled_at_provider(ledger.c.send_at, ledger.c.sent_at)

    def count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    rows = conn.execute(
        sa.select(ledger.c.campaign_id, sa.func.count(), count(in_store), count(sa.and_(~in_store, later)))
        .where(ledger.c.state == "sent")
        .group_by(ledger.c.campaign_id)
    )
    return {
        cid: {"sent_now": int(n) - int(stored) - int(scheduled), "scheduled": int(scheduled), "in_app": int(stored)}
        for cid, n, stored, scheduled in rows
    }


def campaign_status(camp: Campaign | None, run_date: dt.date) -> str:
    """`scheduled tonight` (active on the run date), `not scheduled tonight`, `disabled`, its approval
    status when not approved (`paused`, ...), or `not defined` (messages of the date from a campaign
    since removed from the definitions)."""
    if camp is None:
        return "not defined"
    if not camp.enabled:
        return "disabled"
    if not camp.approved:
        return str(camp.status)
    return "scheduled tonight" if camp.is_active(run_date) else "not scheduled tonight"


def _why_not_tonight(camp: Campaign, run_date: dt.date) -> str:
    if not camp.enabled or not camp.approved:
        return ""
    if camp.start_date and run_date < camp.start_date:
        return f"starts {camp.start_date.isoformat()}"
    if camp.end_date and run_date > camp.end_date:
        return f"ended {camp.end_date.isoformat()}"
    schedule = camp.schedule
    if schedule.type == "weekly":
        return "weekly on " + ", ".join(schedule.days or [])
    if schedule.type == "once":
        return f"once, on {schedule.date.isoformat() if schedule.date else '?'}"
    return f"cron {schedule.cron}"


def _not_scheduled(definitions: Definitions, run_date: dt.date, listed: set[str]) -> dict[str, dict[str, Any]]:
    return {
        cid: {
            "campaign": cid,
            "channel": camp.channel,
            "destination": camp.destination,
            "status": campaign_status(camp, run_date),
            "why": _why_not_tonight(camp, run_date),
        }
        for cid, camp in sorted(definitions.campaigns.items())
        if cid not in listed
    }


def _sent_but_not_targeted(conn: sa.Connection, run_date: dt.date) -> dict[str, int]:
    """Per campaign, messages of the date delivered by an earlier run to customers tonight's lists
    no longer hold (they left the audience after a change): they still counted against the caps."""
    ledger = message_ledger(outbox.c.run_date == run_date, name="delivered")
    listed = sa.exists().where(
        target_list.c.run_date == run_date,
        target_list.c.campaign_id == ledger.c.campaign_id,
        target_list.c.customer_id == ledger.c.customer_id,
    )
    rows = conn.execute(
        sa.select(ledger.c.campaign_id, sa.func.count())
        .where(ledger.c.state.in_(("sent", "unknown", "in_flight")), ~listed)
        .group_by(ledger.c.campaign_id)
    )
    return {cid: int(n) for cid, n in rows}


def _import_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: (v.isoformat() if isinstance(v, dt.date | dt.datetime) else v) for k, v in row.items()}
    out["quarantined_by_rule"] = json.loads(row.get("quarantined_by_rule") or "{}")
    out["warnings"] = json.loads(row.get("warnings") or "[]")
    return out


def write_run_report(engine: Engine, definitions: Definitions, config: RunConfig) -> Path:
    report = build_run_report(engine, definitions, config)
    folder = config.reports_dir / config.run_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run_report.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (folder / "run_report.md").write_text(render_markdown(report), encoding="utf-8")
    return path
