"""The run report: what a night did, per campaign, from segment to delivered, as JSON and Markdown.

Counts come from the warehouse (candidates, exclusions, ledger), not from memory, so the report
task can run on any worker and a re-run's report tells the truth about the whole date: what
was delivered in total and what this run delivered anew.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.delivery.report import cause_lines
from campaign_orchestrator.outbox.ledger import ledger_counts, message_ledger, unsent_causes
from campaign_orchestrator.targeting.funnel import funnels
from campaign_orchestrator.warehouse.engine import redacted
from campaign_orchestrator.warehouse.tables import import_log, outbox, render_errors, run_log, target_list

if TYPE_CHECKING:
    from campaign_orchestrator.run.context import RunConfig

SUMMARY_COLUMNS = (
    ("campaign", "campaign"),
    ("channel", "channel"),
    ("segment_size", "segment"),
    ("eligible", "eligible"),
    ("held_out", "held out"),
    ("capped", "capped"),
    ("lost_arbitration", "lost arb."),
    ("targeted", "targeted"),
    ("kept", "kept"),
    ("delivered", "delivered"),
    ("delivered_this_run", "new"),
)


def build_run_report(engine: Engine, definitions: Definitions, config: RunConfig) -> dict[str, Any]:
    run_date = config.run_date
    campaign_ids = [c.id for c in definitions.active_campaigns(run_date)]
    with engine.connect() as conn:
        funnel = funnels(conn, run_date, campaign_ids)
        ledger = ledger_counts(conn, run_date)
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
        }
        row.update(funnel[cid].as_dict() if cid in funnel else {})
        row.update(
            delivered=states.get("sent", 0),
            delivered_this_run=new_sends.get(cid, 0),
            pending=states.get("pending", 0) + states.get("in_flight", 0),
            failed=states.get("failed", 0),
            dead=states.get("dead", 0),
            unknown=states.get("unknown", 0),
            cancelled=states.get("cancelled", 0),
            held=states.get("held", 0),
            retried=int(delivery.get(cid, {}).get("retried", 0)),
            throttled_s=delivery.get(cid, {}).get("throttled_s", 0.0),
            render_errors=sum(f["count"] for f in render_failures.get(cid, [])),
            render_failures=render_failures.get(cid, []),
            delivered_not_targeted=untargeted.get(cid, 0),
        )
        campaigns[cid] = row
    totals = {
        k: sum(int(c.get(k) or 0) for c in campaigns.values())
        for k in (
            "segment_size",
            "eligible",
            "held_out",
            "capped",
            "lost_arbitration",
            "targeted",
            "kept",
            "delivered",
            "delivered_this_run",
            "delivered_not_targeted",
            "pending",
            "failed",
            "dead",
            "unknown",
            "held",
            "render_errors",
        )
    }
    return {
        "run_date": run_date.isoformat(),
        "run_id": config.run_id,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "warehouse": redacted(config.warehouse_url),
        "imports": [_import_row(dict(i)) for i in imports],
        "stages": stages,
        "campaigns": campaigns,
        "totals": totals,
        "not_delivered": not_delivered,  # state -> cause -> messages, for pending, failed, unknown, dead
        "destinations_down": down,
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


def render_markdown(report: dict[str, Any]) -> str:
    """The report for people: the campaigns first, then what needs attention, then the detail."""
    lines = [
        f"# Run report {report['run_date']}",
        "",
        f"run id `{report['run_id']}`, warehouse `{report['warehouse']}`",
        "",
    ]
    for section in (
        _campaign_lines,
        _totals_lines,
        _rerender_lines,
        _not_delivered_lines,
        _held_lines,
        _render_error_lines,
        _delivery_lines,
        _exclusion_lines,
        _import_lines,
        _stage_lines,
    ):
        lines += section(report)
    return "\n".join(lines) + "\n"


def _campaign_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        "## Campaigns",
        "",
        "| " + " | ".join(h for _, h in SUMMARY_COLUMNS) + " |",
        "|" + "---|" * len(SUMMARY_COLUMNS),
    ]
    for row in report["campaigns"].values():
        lines.append("| " + " | ".join(str(row.get(k, "")) for k, _ in SUMMARY_COLUMNS) + " |")
    return lines


def _totals_lines(report: dict[str, Any]) -> list[str]:
    t = report["totals"]
    lines = [
        "",
        f"Totals: {t['targeted']} targeted ({t.get('kept', 0)} kept from earlier runs of the date), "
        f"{t['delivered']} delivered ({t['delivered_this_run']} new in "
        f"this run), {t['pending']} pending, {t['failed']} failed, {t['dead']} dead, {t['unknown']} unknown, "
        f"{t['render_errors']} not rendered, {t['held']} held.",
        "",
    ]
    if t.get("delivered_not_targeted"):
        lines += [
            f"**{t['delivered_not_targeted']} messages were delivered by an earlier run of this date to customers "
            "tonight's lists no longer hold** (the definitions changed since); they counted against the caps.",
            "",
        ]
    return lines


def _held_lines(report: dict[str, Any]) -> list[str]:
    held = [row["campaign"] for row in report["campaigns"].values() if row.get("held")]
    if not held:
        return []
    return [
        f"**Held, not delivered:** {', '.join(held)}: too many of their messages failed to render "
        "(settings.render.max_error_share). Fix the template and re-run the date.",
        "",
    ]


def _render_error_lines(report: dict[str, Any]) -> list[str]:
    failing = [row for row in report["campaigns"].values() if row.get("render_failures")]
    if not failing:
        return []
    lines = ["## Render errors", ""]
    for row in failing:
        for f in row["render_failures"]:
            lines.append(f"- {row['campaign']}: {f['field']}: {f['count']} (e.g. {f['example']})")
    return [*lines, ""]


def _delivery_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        "## Delivery",
        "",
        "| campaign | sent | new | pending | failed | dead | unknown | held | retried | throttled s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["campaigns"].values():
        lines.append(
            f"| {row['campaign']} | {row.get('delivered', 0)} | {row.get('delivered_this_run', 0)} | "
            f"{row.get('pending', 0)} | {row.get('failed', 0)} | {row.get('dead', 0)} | {row.get('unknown', 0)} | "
            f"{row.get('held', 0)} | {row.get('retried', 0)} | {row.get('throttled_s', 0)} |"
        )
    return lines


def _exclusion_lines(report: dict[str, Any]) -> list[str]:
    lines = ["", "## Exclusions", ""]
    for row in report["campaigns"].values():
        reasons = ", ".join(f"{k}: {v}" for k, v in (row.get("excluded") or {}).items()) or "none"
        lines.append(f"- {row['campaign']}: {reasons}")
    return lines


def _import_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Imports",
        "",
        "| source | file | status | read | loaded | quarantined | seconds | by rule |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for imp in report["imports"]:
        rules = ", ".join(f"{k}: {v}" for k, v in (imp.get("quarantined_by_rule") or {}).items())
        lines.append(
            f"| {imp['source']} | {imp['file']} | {imp['status']} | {imp['rows_read']} | {imp['rows_loaded']} | "
            f"{imp['rows_quarantined']} | {imp.get('duration_s')} | {rules} |"
        )
    lines += [f"\n**{imp['source']} failed:** {imp['error']}" for imp in report["imports"] if imp.get("error")]
    lines += [
        f"\n**{imp['source']} ({imp['file']}):** {warning}"
        for imp in report["imports"]
        for warning in imp.get("warnings") or []
    ]
    return lines


def _stage_lines(report: dict[str, Any]) -> list[str]:
    lines = ["", "## Stages", "", "| stage | status | seconds | rows |", "|---|---|---|---|"]
    return lines + [
        f"| {st['stage']} | {st.get('status')} | {st.get('wall_s')} | {st.get('rows', '')} |" for st in report["stages"]
    ]


def rerendered_counts(report: dict[str, Any]) -> tuple[int, int]:
    """Messages this run rendered again after a template change, and those that kept their text."""
    renders = [s for s in report.get("stages", []) if s.get("stage") == "render"]
    if not renders:
        return 0, 0
    last = renders[-1]
    return sum((last.get("rerendered") or {}).values()), sum((last.get("kept_earlier_text") or {}).values())


def _rerender_lines(report: dict[str, Any]) -> list[str]:
    again, kept = rerendered_counts(report)
    if not again and not kept:
        return []
    return [
        f"**Templates changed since the last render:** {again} messages were rendered again with the new text "
        f"(no request for them had left); {kept} keep their earlier text, because a request for them may have "
        "left and a resend must be the same request.",
        "",
    ]


def _not_delivered_lines(report: dict[str, Any]) -> list[str]:
    """The causes of what is not delivered, commonest first: the first thing to read on a red night."""

    causes = report.get("not_delivered") or {}
    if not causes:
        return []
    lines = ["## Not delivered", ""]
    for destination, cause in (report.get("destinations_down") or {}).items():
        lines.append(f"- **{destination} was found down:** {cause}")
    lines += [f"- {line}" for line in cause_lines(causes, most=5)]
    return [*lines, ""]


def write_run_report(engine: Engine, definitions: Definitions, config: RunConfig) -> Path:
    report = build_run_report(engine, definitions, config)
    folder = config.reports_dir / config.run_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run_report.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (folder / "run_report.md").write_text(render_markdown(report), encoding="utf-8")
    return path


def summary_table(report: dict[str, Any]) -> str:
    """A plain-text per-campaign table for terminals and logs (counts only, no personal data)."""
    header = [h for _, h in SUMMARY_COLUMNS]
    rows = [[str(r.get(k, "")) for k, _ in SUMMARY_COLUMNS] for r in report["campaigns"].values()]
    t = report["totals"]
    rows.append(["TOTAL", "", *(str(t.get(k, "")) for k, _ in SUMMARY_COLUMNS[2:])])
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r) for r in rows]
    return "\n".join(out)
