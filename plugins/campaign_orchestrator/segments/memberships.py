"""Segment memberships and lifecycle stages, computed per run date in set-based SQL and kept per day.

Segments and lifecycles are computed in dependency order (a segment may use another segment or a
lifecycle stage; a lifecycle uses its stage segments). Each segment's run also records its size
and how many customers entered and exited since the previous run (`segment_stats`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.definitions.rules import LifecycleSpec, Vocabulary, dependencies, evaluation_order
from campaign_orchestrator.segments.compile import Inline, compile_rule
from campaign_orchestrator.segments.windows import LocalWindows
from campaign_orchestrator.warehouse.bulk import analyze_tables
from campaign_orchestrator.warehouse.tables import customers, lifecycle_membership, segment_membership, segment_stats


def compute_memberships(
    conn: Connection,
    rules: Mapping[str, Any],
    vocab: Vocabulary,
    run_date: dt.date,
    lifecycles: Sequence[LifecycleSpec] = (),
    windows: LocalWindows | None = None,
) -> dict[str, int]:
    """Replace the run date's memberships and stages with fresh ones, set-based, in dependency order.
    `windows` counts relative dates in each customer's zone (settings `windows: customer_local`)."""
    by_id = {lc.id: lc for lc in lifecycles}
    sizes: dict[str, int] = {}
    order = evaluation_order(rules, lifecycles)
    used = set().union(*(dependencies(r) for r in rules.values())) | {
        f"segment:{s}" for lc in lifecycles for s in lc.stages
    }
    for node in order:
        kind, name = node.split(":", 1)
        if kind == "lifecycle":
            _lifecycle(conn, by_id[name], run_date)
            if node in used:  # later rules read these stages: give the planner their real size
                analyze_tables(conn, [lifecycle_membership])
            continue
        conn.execute(
            segment_membership.delete().where(
                segment_membership.c.run_date == run_date, segment_membership.c.segment_id == name
            )
        )
        select = sa.select(sa.literal(run_date, sa.Date()), sa.literal(name), customers.c.customer_id).where(
            compile_rule(rules[name], vocab, run_date, windows=windows)
        )
        conn.execute(segment_membership.insert().from_select(["run_date", "segment_id", "customer_id"], select))
        sizes[name] = _record_stats(conn, name, run_date)
        if node in used:
            analyze_tables(conn, [segment_membership])
    return sizes


def _lifecycle(conn: Connection, lifecycle: LifecycleSpec, run_date: dt.date) -> None:
    conn.execute(
        lifecycle_membership.delete().where(
            lifecycle_membership.c.run_date == run_date, lifecycle_membership.c.lifecycle_id == lifecycle.id
        )
    )
    # One outer join per stage (joins plan well everywhere; IN-lists in a CASE do not at scale).
    source: Any = customers
    stage_cases = []
    for i, segment_id in enumerate(lifecycle.stages):
        m = segment_membership.alias(f"stage_{i}")
        source = source.outerjoin(
            m,
            sa.and_(m.c.run_date == run_date, m.c.segment_id == segment_id, m.c.customer_id == customers.c.customer_id),
        )
        stage_cases.append((m.c.customer_id.is_not(None), sa.literal(segment_id)))
    stage = sa.case(*stage_cases, else_=sa.literal(lifecycle.otherwise))
    select = sa.select(
        sa.literal(run_date, sa.Date()), sa.literal(lifecycle.id), customers.c.customer_id, stage
    ).select_from(source)
    conn.execute(
        lifecycle_membership.insert().from_select(["run_date", "lifecycle_id", "customer_id", "stage"], select)
    )


def _record_stats(conn: Connection, segment_id: str, run_date: dt.date) -> int:
    m = segment_membership
    size = int(
        conn.scalar(sa.select(sa.func.count()).where(m.c.run_date == run_date, m.c.segment_id == segment_id)) or 0
    )
    previous = conn.scalar(
        sa.select(sa.func.max(segment_stats.c.run_date)).where(
            segment_stats.c.segment_id == segment_id, segment_stats.c.run_date < run_date
        )
    )
    entered, exited = size, 0
    if previous is not None:
        today, before = m.alias("today"), m.alias("before")

        def only_in(a: Any, a_date: dt.date, b: Any, b_date: dt.date) -> int:
            missing = ~sa.exists().where(
                b.c.run_date == b_date, b.c.segment_id == segment_id, b.c.customer_id == a.c.customer_id
            )
            query = sa.select(sa.func.count()).where(a.c.run_date == a_date, a.c.segment_id == segment_id, missing)
            return int(conn.scalar(query) or 0)

        entered = only_in(today, run_date, before, previous)
        exited = only_in(before, previous, today, run_date)
    conn.execute(
        segment_stats.delete().where(segment_stats.c.run_date == run_date, segment_stats.c.segment_id == segment_id)
    )
    conn.execute(
        segment_stats.insert().values(
            run_date=run_date,
            segment_id=segment_id,
            members=size,
            entered=entered,
            exited=exited,
            previous_run_date=previous,
        )
    )
    return size


@dataclass(frozen=True)
class Estimate:
    segment_id: str
    run_date: dt.date
    size: int
    previous_run_date: dt.date | None
    previous_size: int | None
    sample: list[str]

    @property
    def change(self) -> int | None:
        return None if self.previous_size is None else self.size - self.previous_size


def estimate(
    conn: Connection,
    segment_id: str,
    rules: Mapping[str, Any],
    vocab: Vocabulary,
    run_date: dt.date,
    lifecycles: Sequence[LifecycleSpec] = (),
    sample_size: int = 5,
    windows: LocalWindows | None = None,
) -> Estimate:
    """Size a segment on the current warehouse without a run: referenced segments and lifecycle
    stages are compiled in place, so nothing needs to be materialised first."""
    inline = Inline(
        segments=rules,
        lifecycles={lc.id: lc.stages for lc in lifecycles},
        otherwise={lc.id: lc.otherwise for lc in lifecycles},
    )
    predicate = compile_rule(rules[segment_id], vocab, run_date, inline, windows)
    size = int(conn.scalar(sa.select(sa.func.count()).select_from(customers).where(predicate)) or 0)
    sample = list(
        conn.execute(
            sa.select(customers.c.customer_id).where(predicate).order_by(customers.c.customer_id).limit(sample_size)
        ).scalars()
    )
    previous = conn.execute(
        sa.select(segment_stats.c.run_date, segment_stats.c.members)
        .where(segment_stats.c.segment_id == segment_id, segment_stats.c.run_date < run_date)
        .order_by(segment_stats.c.run_date.desc())
        .limit(1)
    ).first()
    return Estimate(
        segment_id, run_date, size, previous[0] if previous else None, int(previous[1]) if previous else None, sample
    )


def segment_size(conn: Connection, segment_id: str, run_date: dt.date) -> int:
    return int(
        conn.scalar(
            sa.select(sa.func.count()).where(
                segment_membership.c.run_date == run_date, segment_membership.c.segment_id == segment_id
            )
        )
        or 0
    )
