"""The run report for people: the Markdown file and the terminal summary, from the report's JSON.

Only what can be summed is summed: messages (sent now, scheduled, in the in-app store, failed),
never segment members or eligible customers, who are counted once per campaign.
"""

from __future__ import annotations

from typing import Any

from campaign_orchestrator.delivery.report import cause_lines

# (row key, header) of the campaigns table; `failed` shows failed + dead. `unknown`, `pending` and
# `stale` join the table only on a night that has some (OPTIONAL_COLUMNS).
SUMMARY_COLUMNS = (
    ("campaign", "campaign"),
    ("channel", "channel"),
    ("segment_size", "segment"),
    ("eligible", "eligible"),
    ("held_out", "held out"),
    ("capped", "capped"),
    ("lost_arbitration", "lost arb."),
    ("targeted", "targeted"),
    ("sent_now", "sent now"),
    ("scheduled", "scheduled"),
    ("in_app", "in-app store"),
    ("failed", "failed"),
    ("delivered_this_run", "new"),
)
OPTIONAL_COLUMNS = (("unknown", "unknown"), ("pending", "pending"), ("stale", "stale"))
ELIGIBLE_LINE = (
    "eligible = segment members minus the suppressed, those not opted in and those without a device for "
    "the channel (customers per campaign, so not summed)."
)


def render_markdown(report: dict[str, Any]) -> str:
    """The report for people: the campaigns first, then what needs attention, then the detail."""
    lines = [
        f"# Run report {report['run_date']}",
        "",
        f"run id `{report['run_id']}`, warehouse `{report['warehouse']}`",
        "",
    ]
    for section in (
        _stale_lines,
        _campaign_lines,
        _totals_lines,
        _rerender_lines,
        _not_delivered_lines,
        _possibly_delivered_lines,
        _held_lines,
        _render_error_lines,
        _delivery_lines,
        _exclusion_lines,
        _import_lines,
        _stage_lines,
    ):
        lines += section(report)
    return "\n".join(lines) + "\n"


def summary_columns(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The campaigns table's (key, header) columns: SUMMARY_COLUMNS, and `unknown`, `pending` and
    `stale` when some campaign has such messages."""
    rows = report["campaigns"].values()
    return [*SUMMARY_COLUMNS, *((k, h) for k, h in OPTIONAL_COLUMNS if any(r.get(k) for r in rows))]


def _cell(row: dict[str, Any], key: str) -> str:
    if key == "failed":
        return f"{int(row.get('failed') or 0) + int(row.get('dead') or 0):,}"
    value = row.get(key, "")
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value or "")


def campaign_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]], list[tuple[str, str, str]]]:
    """The campaigns table as text cells: headers, a row per campaign with messages or scheduled
    tonight, and (campaign, channel, status) for the defined ones with nothing tonight."""
    columns = summary_columns(report)
    rows = [[_cell(r, k) for k, _ in columns] for r in report["campaigns"].values()]
    for row, r in zip(rows, report["campaigns"].values(), strict=True):
        if r.get("status", "scheduled tonight") != "scheduled tonight":  # messages from an earlier run
            row[0] = f"{row[0]} ({r['status']})"
    idle = [
        (c["campaign"], str(c.get("channel") or ""), f"{c['status']} ({c['why']})" if c.get("why") else c["status"])
        for c in (report.get("not_scheduled") or {}).values()
    ]
    return [h for _, h in columns], rows, idle


def totals_line(report: dict[str, Any]) -> str:
    """What the night's campaigns add up to, in messages (the only figures that add up)."""
    t = report["totals"]
    line = (
        f"Messages of {report['run_date']}: {t.get('sent_now', 0):,} sent now + {t.get('scheduled', 0):,} "
        f"scheduled at the provider + {t.get('in_app', 0):,} in the in-app store = {t.get('delivered', 0):,} "
        f"sent; {t.get('failed', 0) + t.get('dead', 0):,} failed"
    )
    extra = [f"{t[k]:,} {k}" for k in ("unknown", "pending", "stale") if t.get(k)]
    return line + "".join(f", {x}" for x in extra) + "."


def stale_line(report: dict[str, Any]) -> str | None:
    """Why a stale night sent nothing (None on a night that was not stale)."""
    stale = report.get("stale")
    if not stale:
        return None
    return (
        f"Stale: nothing was sent: {stale['reason']}. Its {report['totals'].get('stale', 0):,} messages are "
        "`stale`: kept in the outbox, never sent by this or any later run of the date."
    )


def _stale_lines(report: dict[str, Any]) -> list[str]:
    line = stale_line(report)
    if not line:
        return []
    return [f"**{line}** Segments, target lists and this report were computed as on any night.", ""]


def _possibly_delivered_lines(report: dict[str, Any]) -> list[str]:
    """The `unknown` requests: the provider may have them; the engine never resends them."""
    unknown = report.get("possibly_delivered") or {}
    if not unknown.get("requests"):
        return []
    lines = [
        "## Possibly delivered (unknown)",
        "",
        f"{unknown['messages']:,} messages in {unknown['requests']:,} requests may have reached their customers: "
        "each request left and no answer says what became of it (a timeout, a lost connection, a 5xx, a worker "
        "stopped while it was out), where a resend could be a second message (the destination does not honour "
        "Idempotency-Key) or a late one (a stale night). They are never resent: check each request at the "
        "provider (its Idempotency-Key is the batch id; its recipients are the `message_ledger` rows with that "
        "batch_id) and decide.",
        "",
        "| batch (request key) | campaign | destination | send at | messages | why |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['batch_id']} | {r['campaign']} | {r['destination']} | {r['send_at']} | {r['messages']} | {r['why']} |"
        for r in unknown["listed"]
    ]
    if unknown["requests"] > len(unknown["listed"]):
        lines.append(f"\n... and {unknown['requests'] - len(unknown['listed'])} more (`state = 'unknown'`).")
    return [*lines, ""]


def _campaign_lines(report: dict[str, Any]) -> list[str]:
    headers, rows, idle = campaign_rows(report)
    lines = ["## Campaigns", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [
        "| " + " | ".join([name, channel, status, *[""] * (len(headers) - 3)]) + " |" for name, channel, status in idle
    ]
    return [*lines, "", ELIGIBLE_LINE]


def _totals_lines(report: dict[str, Any]) -> list[str]:
    t = report["totals"]
    lines = [
        "",
        f"{totals_line(report)} {t['targeted']:,} targeted ({t.get('kept', 0):,} kept from earlier runs of the "
        f"date), {t['render_errors']:,} not rendered, {t['held']:,} held.",
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


def summary_table(report: dict[str, Any]) -> str:
    """A plain-text per-campaign table for terminals and logs (counts only, no personal data): the
    campaigns of the night, those with nothing tonight and why, the totals of what adds up (messages)
    and what `eligible` means."""
    headers, rows, idle = campaign_rows(report)
    widths = [max(len(x) for x in col) for col in zip(headers, *rows, strict=True)]
    for name, channel, _ in idle:
        widths[:2] = max(widths[0], len(name)), max(widths[1], len(channel))
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r) for r in rows]
    out += [f"{name:<{widths[0]}}  {channel:<{widths[1]}}  {status}" for name, channel, status in idle]
    stale = stale_line(report)
    return "\n".join([*out, "", totals_line(report), ELIGIBLE_LINE, *([stale] if stale else [])])
