"""A measured night in a few lines: customers, a campaign with holdouts, its target list delivered,
and purchases placed exactly where a test wants them (relative to each customer's send instant)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.definitions.conversions import Conversion
from campaign_orchestrator.definitions.rules import Vocabulary
from campaign_orchestrator.segments.memberships import compute_memberships
from campaign_orchestrator.targeting.arbitration import build_target_lists
from campaign_orchestrator.warehouse.tables import events, holdout_list, target_list
from tests.builders import customer, definitions, deliver_target_list, load

RUN = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 2, 0)
ATTRS = {"customer_id": "string", "tier": "string"}
PROPERTIES = {"amount": "float"}


def measured_definitions(
    campaigns: list[dict[str, Any]], global_control: float = 0.0, min_sample: int = 20, **kwargs: Any
) -> Any:
    defs = definitions(campaigns, per_customer_per_day=10, **kwargs)
    settings = defs.settings.model_copy(
        update={
            "global_control_percent": global_control,
            "measurement": defs.settings.measurement.model_copy(
                update={
                    "min_sample": min_sample,
                    "conversion": Conversion(event="purchase", within_hours=72),
                }
            ),
        }
    )
    vocab = Vocabulary(attributes=ATTRS, event_properties=PROPERTIES, segments=frozenset(defs.segments))
    return dataclasses.replace(defs, settings=settings, vocabulary=vocab)


def night(engine: Engine, defs: Any, customers: int, run_date: dt.date = RUN) -> None:
    """`customers` opted-in iOS customers in London, targeted and delivered for `run_date`."""
    ids = [f"C{i:05d}" for i in range(customers)]
    load(engine, [customer(c) for c in ids], opted_in={"push": ids}, installs=[(c, "ios", True) for c in ids])
    with engine.begin() as conn:
        compute_memberships(conn, defs.rules(), defs.vocabulary, run_date)
        build_target_lists(conn, defs, run_date, NOW)
        deliver_target_list(conn, run_date, NOW)


def groups(engine: Engine, campaign_id: str, run_date: dt.date = RUN) -> dict[str, list[tuple[str, dt.datetime]]]:
    """(customer, send instant) of the targeted and of each control group, as the targeting wrote them."""
    with engine.connect() as conn:
        targeted = conn.execute(
            sa.select(target_list.c.customer_id, target_list.c.send_at).where(
                target_list.c.run_date == run_date, target_list.c.campaign_id == campaign_id
            )
        ).all()
        held = conn.execute(
            sa.select(holdout_list.c.customer_id, holdout_list.c.send_at, holdout_list.c.control_group).where(
                holdout_list.c.run_date == run_date, holdout_list.c.campaign_id == campaign_id
            )
        ).all()
    out: dict[str, list[tuple[str, dt.datetime]]] = {"targeted": [(c, s) for c, s in targeted]}
    for c, s, g in held:
        out.setdefault(g, []).append((c, s))
    return out


def purchases(engine: Engine, rows: list[tuple[str, dt.datetime, float]], import_date: dt.date) -> None:
    with engine.begin() as conn:
        conn.execute(
            events.insert(),
            [
                {"customer_id": c, "name": "purchase", "ts": ts, "amount": amount, "import_date": import_date}
                for c, ts, amount in rows
            ],
        )
