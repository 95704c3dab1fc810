"""The outbox (ledger): one row per (campaign, customer, send slot), written by rendering.

The message id is a uuid5 of campaign, customer and slot date, so a re-run computes the same
id for the same message; the unique slot key makes a second insert impossible, and the ledger's
state says whether it was sent. Rendering streams the target list in keyset-paged chunks and
renders only rows with no ledger entry yet.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.definitions import Definitions
from campaign_orchestrator.tables import customers, outbox, target_list
from campaign_orchestrator.templates import CompiledTemplate, RenderError
from campaign_orchestrator.warehouse import insert_ignore

MESSAGE_NAMESPACE = uuid.UUID("6f0c8a52-5a43-4c0e-9a39-0b7c4b3f4e61")
SHARD_KEYS = 1024  # shard_key is in [0, 1024): any shard count up to Airflow's map limit divides it
RENDER_CHUNK = 20_000

STATES = ("pending", "in_flight", "sent", "failed", "dead", "cancelled", "unknown")


def message_id(campaign_id: str, customer_id: str, slot_date: dt.date) -> str:
    return str(uuid.uuid5(MESSAGE_NAMESPACE, f"{campaign_id}|{customer_id}|{slot_date.isoformat()}"))


def shard_key(msg_id: str) -> int:
    return int(msg_id[:8], 16) % SHARD_KEYS


@dataclass
class RenderReport:
    rendered: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0
    error_samples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"rendered": self.rendered, "errors": self.errors, "cancelled": self.cancelled}


def _pending_targets(conn: Connection, run_date: dt.date, columns: list[str]) -> Iterator[list[Any]]:
    """Target rows without a ledger entry, in chunks ordered by (campaign, customer)."""
    existing = sa.exists().where(
        outbox.c.campaign_id == target_list.c.campaign_id,
        outbox.c.customer_id == target_list.c.customer_id,
        outbox.c.slot_date == run_date,
    )
    base = (
        sa.select(
            target_list.c.campaign_id,
            target_list.c.customer_id,
            target_list.c.variant,
            target_list.c.send_at,
            *(customers.c[c] for c in columns),
        )
        .join(customers, customers.c.customer_id == target_list.c.customer_id)
        .where(target_list.c.run_date == run_date, ~existing)
        .order_by(target_list.c.campaign_id, target_list.c.customer_id)
        .limit(RENDER_CHUNK)
    )
    last: tuple[str, str] | None = None
    while True:
        stmt = base
        if last is not None:
            stmt = stmt.where(
                sa.or_(
                    target_list.c.campaign_id > last[0],
                    sa.and_(target_list.c.campaign_id == last[0], target_list.c.customer_id > last[1]),
                )
            )
        rows: list[Any] = list(conn.execute(stmt).all())
        if not rows:
            return
        yield rows
        last = (rows[-1][0], rows[-1][1])


def cancel_stale(conn: Connection, run_date: dt.date, now: dt.datetime) -> int:
    """Pending messages whose customer left the target list (e.g. opted out since) are not sent."""
    still_targeted = sa.exists().where(
        target_list.c.run_date == run_date,
        target_list.c.campaign_id == outbox.c.campaign_id,
        target_list.c.customer_id == outbox.c.customer_id,
    )
    result = conn.execute(
        outbox.update()
        .where(outbox.c.run_date == run_date, outbox.c.state.in_(("pending", "failed")), ~still_targeted)
        .values(state="cancelled", updated_at=now, last_error="no longer targeted at re-run")
    )
    return int(result.rowcount or 0)


def render_outbox(
    engine: Engine, definitions: Definitions, template_variables: set[str], run_date: dt.date, now: dt.datetime
) -> RenderReport:
    report = RenderReport()
    compiled = {
        (c.id, variant): CompiledTemplate(definitions.templates[template_id], template_variables)
        for c in definitions.active_campaigns(run_date)
        for variant, template_id in c.variant_templates.items()
    }
    columns = sorted({v for t in compiled.values() for v in t.variables} & template_variables)
    with engine.begin() as conn:
        report.cancelled = cancel_stale(conn, run_date, now)
    # Each chunk commits on its own: a crash loses at most one chunk of rendering, never a sent row.
    with engine.connect() as reader:
        for rows in _pending_targets(reader, run_date, columns):
            batch: list[dict[str, Any]] = []
            for row in rows:
                campaign_id, customer_id, variant, send_at = row[0], row[1], row[2], row[3]
                campaign = definitions.campaigns[campaign_id]
                values: dict[str, Any] = dict(zip(columns, row[4:], strict=True))
                values.update(campaign_id=campaign_id, customer_id=customer_id, variant=variant)
                try:
                    fields = compiled[(campaign_id, variant)].render(values)
                except RenderError as exc:
                    report.errors[campaign_id] = report.errors.get(campaign_id, 0) + 1
                    if len(report.error_samples) < 20:
                        report.error_samples.append(f"{campaign_id}: {exc}")
                    continue
                mid = message_id(campaign_id, customer_id, run_date)
                batch.append(
                    {
                        "message_id": mid,
                        "run_date": run_date,
                        "slot_date": run_date,
                        "campaign_id": campaign_id,
                        "customer_id": customer_id,
                        "variant": variant,
                        "channel": campaign.channel,
                        "destination": campaign.destination,
                        "send_at": send_at,
                        "payload": json.dumps(fields, ensure_ascii=False, separators=(",", ":")),
                        "state": "pending",
                        "attempts": 0,
                        "shard_key": shard_key(mid),
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                report.rendered[campaign_id] = report.rendered.get(campaign_id, 0) + 1
            with engine.begin() as writer:
                insert_ignore(writer, outbox, batch)
    return report


def ledger_counts(conn: Connection, run_date: dt.date) -> dict[str, dict[str, int]]:
    """Messages per campaign and state for the run date."""
    out: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        sa.select(outbox.c.campaign_id, outbox.c.state, sa.func.count())
        .where(outbox.c.run_date == run_date)
        .group_by(outbox.c.campaign_id, outbox.c.state)
    )
    for campaign_id, state, count in rows:
        out.setdefault(campaign_id, {})[state] = int(count)
    return out
