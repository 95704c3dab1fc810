"""The outbox (ledger): one row per (campaign, customer, send slot), written by rendering.

The message id is a uuid5 of campaign, customer and slot date, so a re-run computes the same
id for the same message; the unique slot key makes a second insert impossible, and the ledger
(`ledger.message_ledger`) says whether it was sent. Rendering streams the target list with one
server-side cursor, renders only rows with no ledger entry yet, and groups the messages into
delivery batches (`batching`) written in the same transaction.

A message keeps the text it was rendered with once a request for it may have left: a resend must
be the same request under the same key. Until then its text follows its template: a batch never
attempted whose template changed since it was rendered (its `content_hash`) is rendered again at
the next render, under the same message ids (its batch and key may change, since no request for
it ever left).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.outbox.batches import BATCH_COLUMNS, BatchFormer
from campaign_orchestrator.outbox.ids import message_id
from campaign_orchestrator.outbox.states import NEVER_SENT, UNSENT
from campaign_orchestrator.render.compiled import PROFILE_CONTEXT, CompiledTemplate, RenderError, render_policy
from campaign_orchestrator.render.hold import hold_failing_campaigns
from campaign_orchestrator.warehouse.bulk import analyze_tables, bulk_insert_ignore
from campaign_orchestrator.warehouse.tables import customers, delivery_batches, outbox, render_errors, target_list

RENDER_CHUNK = 20_000
WRITES_IN_FLIGHT = 2


@dataclass
class RenderReport:
    rendered: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0
    # campaign -> messages rendered again because their template changed before any request left,
    # and messages that keep their earlier text although it changed (a request for them may have left)
    rerendered: dict[str, int] = field(default_factory=dict)
    kept_earlier_text: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    # campaign -> share of its messages for the run that failed to render, when over the limit
    held: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rendered": self.rendered,
            "errors": self.errors,
            "cancelled": self.cancelled,
            "held": self.held,
            "rerendered": self.rerendered,
            "kept_earlier_text": self.kept_earlier_text,
        }


def _pending_targets(conn: Connection, run_date: dt.date, columns: list[str]) -> Iterator[list[Any]]:
    """Target rows without a ledger entry, streamed in chunks by one server-side cursor."""
    existing = sa.exists().where(
        outbox.c.campaign_id == target_list.c.campaign_id,
        outbox.c.customer_id == target_list.c.customer_id,
        outbox.c.slot_date == run_date,
    )
    stmt = (
        sa.select(
            target_list.c.campaign_id,
            target_list.c.customer_id,
            target_list.c.variant,
            target_list.c.send_at,
            *(customers.c[c] for c in columns),
        )
        .join(customers, customers.c.customer_id == target_list.c.customer_id)
        .where(target_list.c.run_date == run_date, ~existing)
    )
    result = conn.execution_options(stream_results=True, yield_per=RENDER_CHUNK).execute(stmt)
    for partition in result.partitions():
        yield list(partition)


def cancel_stale(conn: Connection, run_date: dt.date, now: dt.datetime) -> int:
    """Messages not yet sent whose customer left the target list (e.g. opted out since) are not
    sent: they leave their batch's fate, and the batch's request goes out without them."""
    still_targeted = sa.exists().where(
        target_list.c.run_date == run_date,
        target_list.c.campaign_id == outbox.c.campaign_id,
        target_list.c.customer_id == outbox.c.customer_id,
    )
    unsent = sa.select(delivery_batches.c.batch_id).where(
        delivery_batches.c.run_date == run_date, delivery_batches.c.state.in_(("pending", "failed", "held"))
    )
    # Lock those batches first: a delivery worker claiming one now waits for this transaction and
    # then loads its messages without the cancelled ones; one it claimed already is left alone.
    conn.execute(unsent.with_for_update()).all()
    result = conn.execute(
        outbox.update()
        .where(
            outbox.c.run_date == run_date,
            outbox.c.state.is_(None),
            outbox.c.batch_id.in_(unsent),
            ~still_targeted,
        )
        .values(state="cancelled", updated_at=now, last_error="no longer targeted at re-run")
    )
    return int(result.rowcount or 0)


def content_hash(template: Any, default_locale: str) -> str:
    """A fingerprint of everything a message's text is made from, besides the customer's data."""
    text = template.model_dump_json() + "\n" + default_locale
    return hashlib.sha256(text.encode()).hexdigest()


def rerender_stale(
    conn: Connection, run_date: dt.date, hashes: dict[tuple[str, str], str], report: RenderReport
) -> None:
    """Take out of the outbox the messages of never-attempted batches whose template changed since
    they were rendered, so this render renders them again; count those that must keep their text."""
    if not hashes:
        return
    b = delivery_batches.c
    changed = sa.or_(
        *(
            sa.and_(b.campaign_id == campaign_id, b.variant == variant, b.content_hash != digest)
            for (campaign_id, variant), digest in hashes.items()
        )
    )
    base = sa.and_(b.run_date == run_date, b.content_hash.is_not(None), changed)
    never_attempted = sa.and_(base, b.state.in_(NEVER_SENT), b.attempts == 0)
    # Locked, as cancel_stale does: a worker claiming one now waits, then finds it gone.
    stale = conn.execute(sa.select(b.batch_id, b.campaign_id).where(never_attempted).with_for_update()).all()
    kept = conn.execute(
        sa.select(b.campaign_id, sa.func.sum(b.messages))
        .where(base, b.state.in_(UNSENT), sa.not_(sa.and_(b.state.in_(NEVER_SENT), b.attempts == 0)))
        .group_by(b.campaign_id)
    ).all()
    report.kept_earlier_text = {campaign_id: int(n) for campaign_id, n in kept if n}
    ids = [r.batch_id for r in stale]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        removed = conn.execute(
            sa.select(outbox.c.campaign_id, sa.func.count())
            .where(outbox.c.batch_id.in_(chunk), outbox.c.state.is_(None))
            .group_by(outbox.c.campaign_id)
        ).all()
        for campaign_id, n in removed:
            report.rerendered[campaign_id] = report.rerendered.get(campaign_id, 0) + int(n)
        conn.execute(outbox.delete().where(outbox.c.batch_id.in_(chunk), outbox.c.state.is_(None)))
        conn.execute(delivery_batches.delete().where(b.batch_id.in_(chunk), b.state.in_(NEVER_SENT), b.attempts == 0))


OUTBOX_COLUMNS = (
    "message_id",
    "run_date",
    "slot_date",
    "campaign_id",
    "customer_id",
    "variant",
    "channel",
    "destination",
    "send_at",
    "payload",
    "state",
    "created_at",
    "updated_at",
    "batch_id",  # these two are added when the message's batch closes
    "shard_key",
)
ERROR_COLUMNS = (
    "run_date",
    "campaign_id",
    "customer_id",
    "variant",
    "template_id",
    "locale",
    "field",
    "reason",
    "created_at",
)


def render_outbox(
    engine: Engine, definitions: Definitions, template_variables: set[str], run_date: dt.date, now: dt.datetime
) -> RenderReport:
    """Render every target row without a ledger entry; failures go to render_errors, not to the outbox.

    A campaign whose failures pass settings.render.max_error_share is held: its messages stay in
    the outbox as `held` and are not delivered until a re-run (after a fix) brings it under.
    """
    report = RenderReport()
    policy = render_policy(definitions)
    compiled: dict[tuple[str, str], tuple[str, CompiledTemplate]] = {
        (c.id, variant): (template_id, CompiledTemplate(definitions.templates[template_id], template_variables, policy))
        for c in definitions.active_campaigns(run_date)
        for variant, template_id in c.variant_templates.items()
    }
    wanted = {v for _, t in compiled.values() for v in t.variables} | set(PROFILE_CONTEXT)
    columns = sorted(wanted & set(customers.c.keys()))
    payload_limit = policy.limit("push", "payload_bytes")
    hashes = {
        key: content_hash(definitions.templates[template_id], definitions.settings.default_locale)
        for key, (template_id, _t) in compiled.items()
    }
    former = BatchFormer(definitions.settings.delivery.batch_size, run_date, now, hashes)
    with engine.begin() as conn:
        report.cancelled = cancel_stale(conn, run_date, now)
        rerender_stale(conn, run_date, hashes, report)
        # Failures are recorded afresh for the rows still unrendered.
        conn.execute(render_errors.delete().where(render_errors.c.run_date == run_date))
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def write(messages: list[tuple[Any, ...]], batches: list[tuple[Any, ...]], failed: list[tuple[Any, ...]]) -> None:
        with engine.begin() as writer:
            bulk_insert_ignore(writer, outbox, OUTBOX_COLUMNS, messages)
            bulk_insert_ignore(writer, delivery_batches, BATCH_COLUMNS, batches)
            bulk_insert_ignore(writer, render_errors, ERROR_COLUMNS, failed)

    # Each chunk commits its closed batches with their messages: a crash loses at most what was
    # rendered since, never a sent row, and never leaves a message without its batch.
    # A writer thread loads chunk n while chunk n+1 renders (the database works, the GIL is free);
    # at most WRITES_IN_FLIGHT chunks wait, so memory stays bounded.
    with engine.connect() as reader, ThreadPoolExecutor(1, thread_name_prefix="outbox-writer") as pool:
        in_flight: deque[Future[None]] = deque()
        for rows in _pending_targets(reader, run_date, columns):
            failed: list[tuple[Any, ...]] = []
            rendered = report.rendered
            for row in rows:
                campaign_id, customer_id, variant, send_at = row[0], row[1], row[2], row[3]
                template_id, template = compiled[(campaign_id, variant)]
                values: dict[str, Any] = dict(zip(columns, row[4:], strict=True))
                values["campaign_id"], values["customer_id"], values["variant"] = campaign_id, customer_id, variant
                values["send_at"] = send_at
                campaign = definitions.campaigns[campaign_id]
                try:
                    text = dumps(template.render(values))
                    if campaign.channel == "push" and payload_limit and len(text) * 4 > payload_limit:
                        size = len(text.encode())
                        if size > payload_limit:
                            raise RenderError(f"{size} bytes, over the push limit of {payload_limit}", "payload")
                except RenderError as exc:
                    report.errors[campaign_id] = report.errors.get(campaign_id, 0) + 1
                    if len(report.error_samples) < 20:
                        report.error_samples.append(f"{campaign_id}: {exc}")
                    locale = template.choose(values.get("locale")).locale
                    reason = str(exc)[:500]
                    failed.append(
                        (run_date, campaign_id, customer_id, variant, template_id, locale, exc.field[:64], reason, now)
                    )
                    continue
                mid = message_id(campaign_id, customer_id, run_date)
                destination = campaign.destination
                row = (mid, run_date, run_date, campaign_id, customer_id, variant, campaign.channel, destination)
                former.add((destination, campaign_id, variant, send_at), mid, (*row, send_at, text, None, now, now))
                rendered[campaign_id] = rendered.get(campaign_id, 0) + 1
            in_flight.append(pool.submit(write, *former.take(), failed))
            while len(in_flight) >= WRITES_IN_FLIGHT:
                in_flight.popleft().result()
        in_flight.append(pool.submit(write, *former.take(final=True), []))
        while in_flight:
            in_flight.popleft().result()
    with engine.begin() as conn:
        report.held = hold_failing_campaigns(conn, run_date, definitions.settings.render.max_error_share, now)
        # Fresh statistics, or the planner may scan the whole outbox for every delivery claim.
        analyze_tables(conn, [outbox, delivery_batches])
    return report
