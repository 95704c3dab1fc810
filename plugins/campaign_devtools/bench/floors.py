"""The floors `campaigns bench` measures each stage against: the same work done the most direct way.

Each floor runs in the bench's process right after the stage it is for, on the same data, so a
stage reads as "x times its floor" whatever the machine's speed that hour. Where a floor
computes the same result (segments, target lists) it also reports whether the two agree.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from campaign_orchestrator.warehouse.engine import create_warehouse_engine


def import_floor(
    warehouse_url: str, sources: Path, contracts_dir: Path, contracts: dict[str, Any], run_date: dt.date
) -> dict[str, float]:
    """The same files the most direct way, measured now: a bare COPY (executemany on SQLite) of
    each file into a table defined like the live one, plus the same Great Expectations suites run
    on the files read with pandas. `floor_s` is their sum."""
    import sqlalchemy as sa

    from campaign_orchestrator.ingest.contracts import event_properties
    from campaign_orchestrator.ingest.sources import load_sources_config
    from campaign_orchestrator.warehouse.bulk import load_csv_file
    from campaign_orchestrator.warehouse.event_properties import events_table
    from campaign_orchestrator.warehouse.tables import SOURCE_TABLES

    config = load_sources_config(contracts_dir / "sources.yaml")
    engine = create_warehouse_engine(warehouse_url)
    meta = sa.MetaData()
    copy_s = 0.0
    # What came tonight: an optional source without its file is skipped by the import, and here.
    present = {n: s for n, s in config.sources.items() if s.file_path(sources, run_date).exists()}
    for name, spec in present.items():
        # events with a column per declared property, as the import loads them
        live = events_table(event_properties(contracts)) if name == "events" else SOURCE_TABLES[name]
        path = spec.file_path(sources, run_date)
        items: list[Any] = [sa.Column(c.name, c.type, nullable=True) for c in live.c]
        if live.primary_key.columns:
            items.append(sa.PrimaryKeyConstraint(*[c.name for c in live.primary_key.columns]))
        items += [sa.Index(f"floor_{ix.name}", *[c.name for c in ix.columns]) for ix in live.indexes]
        floor = sa.Table(f"floor_{name}", meta, *items)
        with engine.begin() as conn:
            floor.drop(conn, checkfirst=True)
            floor.create(conn)
        t0 = time.perf_counter()
        with engine.begin() as conn:
            bools = frozenset(c.name for c in live.c if isinstance(c.type, sa.Boolean))
            load_csv_file(conn, floor, path, bools)
        copy_s += time.perf_counter() - t0
        with engine.begin() as conn:
            floor.drop(conn)
    engine.dispose()
    gx_s = 0.0
    import pandas as pd

    for name, spec in present.items():
        contract = contracts[name]
        contract._validation  # noqa: B018 - build the suite outside the timing, as the import does
        dtypes = {
            c: ("float64" if s.type in ("int", "float") else "string")
            for c, s in contract.columns.items()
            if s.type not in ("date", "datetime", "bool")
        }
        dates = [c for c, s in contract.columns.items() if s.type in ("date", "datetime")]
        t0 = time.perf_counter()
        for chunk in pd.read_csv(spec.file_path(sources, run_date), dtype=dtypes, chunksize=200_000):
            for column in dates:
                chunk[column] = pd.to_datetime(chunk[column], format="ISO8601", utc=True, errors="coerce")
            contract._validation.run(batch_parameters={"dataframe": chunk}, result_format={"result_format": "COMPLETE"})
        gx_s += time.perf_counter() - t0
    return {"copy_s": round(copy_s, 3), "gx_s": round(gx_s, 3), "floor_s": round(copy_s + gx_s, 3)}


def segments_floor(warehouse_url: str, run_date: dt.date, sql_file: Path) -> dict[str, Any]:
    """The same segments written by hand as SQL (sql/bench/segments_by_hand.sql), materialised into
    scratch tables shaped like the real ones, timed now; and whether they agree with the engine."""
    import re

    import sqlalchemy as sa

    from campaign_orchestrator.warehouse.tables import segment_membership

    blocks = re.findall(r"^-- (segment|lifecycle): (\w+)\n(.*?);", sql_file.read_text(), flags=re.S | re.M)
    start = dt.datetime.combine(run_date, dt.time())
    params = {
        "t30": start - dt.timedelta(days=30),
        "t60": start - dt.timedelta(days=60),
        "t90": start - dt.timedelta(days=90),
        "d30": (start - dt.timedelta(days=30)).date(),
    }
    meta = sa.MetaData()
    membership = sa.Table(
        "floor_membership",
        meta,
        sa.Column("segment_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(64), primary_key=True),
    )
    sa.Table(
        "floor_lifecycle",
        meta,
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("stage", sa.String(128), nullable=False),
    )
    engine = create_warehouse_engine(warehouse_url)
    meta.drop_all(engine)
    meta.create_all(engine)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for kind, name, select in blocks:
            used = {k: v for k, v in params.items() if f":{k}" in select}
            if kind == "lifecycle":
                conn.execute(sa.text(f"INSERT INTO floor_lifecycle (customer_id, stage) {select}"), used)
            else:
                insert = "INSERT INTO floor_membership (segment_id, customer_id)"
                conn.execute(sa.text(f"{insert} SELECT '{name}', customer_id FROM ({select}) s"), used)
    elapsed = time.perf_counter() - t0
    with engine.connect() as conn:
        floor_sizes: dict[str, int] = dict(
            conn.execute(sa.select(membership.c.segment_id, sa.func.count()).group_by(membership.c.segment_id)).all()
        )
        ours: dict[str, int] = dict(
            conn.execute(
                sa.select(segment_membership.c.segment_id, sa.func.count())
                .where(segment_membership.c.run_date == run_date)
                .group_by(segment_membership.c.segment_id)
            ).all()
        )
    meta.drop_all(engine)
    engine.dispose()
    mismatches = {
        k: (ours.get(k, 0), floor_sizes.get(k, 0))
        for k in set(ours) | set(floor_sizes)
        if ours.get(k, 0) != floor_sizes.get(k, 0)
    }
    return {"floor_s": round(elapsed, 3), "segments": len(floor_sizes), "mismatches": mismatches}


_HASH = {
    "postgresql": "(('x' || lpad(substr(md5({x}), 1, 8), 16, '0'))::bit(64)::bigint)",
    "sqlite": "co_hash32({x})",
}


def targets_floor(warehouse_url: str, definitions: Any, run_date: dt.date, sql_file: Path) -> dict[str, Any]:
    """The target-list logic written by hand (sql/bench/targets_by_hand.sql), filled per campaign,
    into scratch tables shaped like the real ones, timed now; and whether it agrees with the engine."""
    import re

    import sqlalchemy as sa

    from campaign_orchestrator.warehouse.tables import target_list

    blocks = dict(re.findall(r"^-- block: (\w+)\n(.*?);", sql_file.read_text(), flags=re.S | re.M))
    engine = create_warehouse_engine(warehouse_url)
    dialect = engine.dialect.name
    hash_of = _HASH[dialect].format
    true = "TRUE" if dialect == "postgresql" else "1"
    meta = sa.MetaData()
    key = [
        sa.Column("campaign_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(64), primary_key=True),
    ]
    sa.Table(
        "floor_candidates",
        meta,
        *(c.copy() for c in key),
        sa.Column("channel", sa.String(16)),
        sa.Column("priority", sa.Integer),
        sa.Column("variant", sa.String(128)),
        sa.Column("send_at", sa.DateTime),
        sa.Column("reason", sa.String(32)),
    )
    sa.Table(
        "floor_arbitration",
        meta,
        *(c.copy() for c in key),
        sa.Column("channel", sa.String(16)),
        sa.Column("priority", sa.Integer),
        sa.Column("variant", sa.String(128)),
        sa.Column("send_at", sa.DateTime),
        sa.Column("channel_rank", sa.Integer),
        sa.Column("channel_budget", sa.Integer),
        sa.Column("total_budget", sa.Integer),
    )
    targets = sa.Table(
        "floor_targets",
        meta,
        *(c.copy() for c in key),
        sa.Column("variant", sa.String(128)),
        sa.Column("send_at", sa.DateTime),
    )
    sa.Table("floor_exclusions", meta, *(c.copy() for c in key), sa.Column("reason", sa.String(32)))
    meta.drop_all(engine)
    meta.create_all(engine)
    settings = definitions.settings
    campaigns = definitions.active_campaigns(run_date)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
        for camp in campaigns:
            include, exclude = camp.audience
            member = (
                "EXISTS (SELECT 1 FROM segment_membership m WHERE m.run_date = :run_date "
                "AND m.segment_id = '{}' AND m.customer_id = c.customer_id)"
            )
            audience = "(" + " OR ".join(member.format(x) for x in include) + ")"
            audience += "".join(" AND NOT " + member.format(x) for x in exclude)
            if camp.channel == "email":
                device_join, no_device = "", "c.email IS NULL"
            else:
                conds = [f"push_token_present = {true}"] if camp.channel == "push" else ["1 = 1"]
                if camp.platforms:
                    conds.append("platform IN (" + ", ".join(f"'{p}'" for p in camp.platforms) + ")")
                if camp.app_ids:
                    conds.append("app_id IN (" + ", ".join(f"'{a}'" for a in camp.app_ids) + ")")
                device_join = (
                    "LEFT JOIN (SELECT DISTINCT customer_id FROM app_installs WHERE "
                    + " AND ".join(conds)
                    + ") d ON d.customer_id = c.customer_id"
                )
                no_device = "d.customer_id IS NULL"
            held = ["1 = 0"]
            if camp.holdout_percent:
                held.append(
                    f"{hash_of(x=chr(39) + 'holdout:' + camp.id + ':' + chr(39) + ' || c.customer_id')} % 10000 "
                    f"< {round(camp.holdout_percent * 100)}"
                )
            if settings.global_control_percent:
                held.append(
                    f"{hash_of(x=chr(39) + 'global_control:' + chr(39) + ' || c.customer_id')} % 10000 "
                    f"< {round(settings.global_control_percent * 100)}"
                )
            variant = "'default'"
            if camp.variants:
                total, running, arms = sum(v.weight for v in camp.variants), 0.0, []
                bucket = hash_of(x=f"'variant:{camp.id}:' || c.customer_id") + " % 10000"
                for v in camp.variants[:-1]:
                    running += v.weight
                    arms.append(f"WHEN {bucket} < {round(running / total * 10000)} THEN '{v.id}'")
                variant = f"CASE {' '.join(arms)} ELSE '{camp.variants[-1].id}' END"
            capped_join, capped = "", "1 = 0"
            if camp.caps.total is not None:
                capped_join = (
                    "LEFT JOIN (SELECT o.customer_id FROM outbox o"
                    " LEFT JOIN delivery_batches b ON b.batch_id = o.batch_id WHERE o.campaign_id = :campaign_id"
                    " AND o.run_date < :run_date"
                    " AND COALESCE(o.state, b.state) IN ('pending', 'in_flight', 'sent', 'failed', 'unknown')"
                    " GROUP BY o.customer_id"
                    f" HAVING COUNT(*) >= {camp.caps.total}) k ON k.customer_id = c.customer_id"
                )
                capped = "k.customer_id IS NOT NULL"
            sql = blocks["candidates"]
            for name, value in {
                "audience": audience,
                "device_join": device_join,
                "no_device": no_device,
                "held_out": " OR ".join(held),
                "variant": variant,
                "capped_join": capped_join,
                "capped": capped,
                "true": true,
            }.items():
                sql = sql.replace("{" + name + "}", value)
            conn.execute(
                sa.text(sql),
                {"campaign_id": camp.id, "channel": camp.channel, "priority": camp.priority, "run_date": run_date},
            )
        caps = settings.caps.per_channel_per_day
        channel_cap = (
            ("CASE " + " ".join(f"WHEN c.channel = '{ch}' THEN {n}" for ch, n in caps.items()) + " ELSE 1000000 END")
            if caps
            else "1000000"
        )
        conn.execute(
            sa.text(blocks["arbitration"].replace("{channel_cap}", channel_cap)),
            {"run_date": run_date, "daily_cap": settings.caps.per_customer_per_day},
        )
        conn.execute(sa.text(blocks["targets"]))
        conn.execute(sa.text(blocks["exclusions"]))
    elapsed = time.perf_counter() - t0
    with engine.connect() as conn:
        floor_counts: dict[str, int] = dict(
            conn.execute(sa.select(targets.c.campaign_id, sa.func.count()).group_by(targets.c.campaign_id)).all()
        )
        ours: dict[str, int] = dict(
            conn.execute(
                sa.select(target_list.c.campaign_id, sa.func.count())
                .where(target_list.c.run_date == run_date)
                .group_by(target_list.c.campaign_id)
            ).all()
        )
    meta.drop_all(engine)
    engine.dispose()
    mismatches = {
        k: (ours.get(k, 0), floor_counts.get(k, 0))
        for k in set(ours) | set(floor_counts)
        if ours.get(k, 0) != floor_counts.get(k, 0)
    }
    return {"floor_s": round(elapsed, 3), "campaigns": len(campaigns), "mismatches": mismatches}


def render_floor(warehouse_url: str, definitions: Any, run_date: dt.date) -> dict[str, Any]:
    """Bare sandboxed Jinja2 on the same templates and rows, measured now: Jinja's own
    SandboxedEnvironment with the vetted filters registered, each campaign variant's fields
    compiled once, and every target row rendered from memory. Fetching the rows is not timed, and
    nothing is written: the floor is the rendering alone."""
    import sqlalchemy as sa
    from jinja2.sandbox import SandboxedEnvironment

    from campaign_orchestrator.definitions.templates import template_fields
    from campaign_orchestrator.render.sandbox import CURRENCY_KEY, LOCALE_KEY, TIMEZONE_KEY, VETTED_FILTERS
    from campaign_orchestrator.warehouse.tables import customers, target_list

    env = SandboxedEnvironment()
    env.filters.update(VETTED_FILTERS)
    compiled = {
        (campaign.id, variant): [
            env.from_string(source) for _, source in template_fields(definitions.templates[template_id].typed_content())
        ]
        for campaign in definitions.active_campaigns(run_date)
        for variant, template_id in campaign.variant_templates.items()
    }
    engine = create_warehouse_engine(warehouse_url)
    stmt = (
        sa.select(target_list.c.campaign_id, target_list.c.variant, target_list.c.send_at, customers)
        .join(customers, customers.c.customer_id == target_list.c.customer_id)
        .where(target_list.c.run_date == run_date)
    )
    work = []
    with engine.connect() as conn:
        for row in conn.execute(stmt).mappings():
            values = dict(row)
            values.update({LOCALE_KEY: row["locale"], TIMEZONE_KEY: row["timezone"], CURRENCY_KEY: row["currency"]})
            work.append((compiled[(row["campaign_id"], row["variant"])], values))
    engine.dispose()
    t0 = time.perf_counter()
    for templates, values in work:
        for template in templates:
            template.render(values)
    elapsed = time.perf_counter() - t0
    return {"floor_s": round(elapsed, 3), "messages": len(work)}


def deliver_floor(
    warehouse_url: str, definitions: Any, run_date: dt.date, base_url: str, api_key: str
) -> dict[str, Any]:
    """A bare `requests.Session` loop posting the same provider batches (the outbox's delivery
    batches, same JSON bodies, same endpoints) one after another to the same simulator, measured
    now: no ledger, no claims, no retries, no rate limiting. Building the bodies is not timed."""
    from collections import defaultdict

    import requests
    import sqlalchemy as sa

    from campaign_orchestrator.connections import ProviderEndpoint
    from campaign_orchestrator.delivery.provider import Batch, Message, ProviderClient, TokenBucket
    from campaign_orchestrator.warehouse.tables import outbox

    providers = [k for k, d in definitions.settings.destinations.items() if d.kind == "provider"]
    engine = create_warehouse_engine(warehouse_url)
    groups: dict[str, list[Any]] = defaultdict(list)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.batch_id, outbox.c.campaign_id, outbox.c.send_at, outbox.c.message_id)
            .add_columns(outbox.c.customer_id, outbox.c.payload)
            .where(outbox.c.run_date == run_date, outbox.c.destination.in_(providers), outbox.c.state.is_(None))
            .order_by(outbox.c.batch_id, outbox.c.message_id)
        )
        for r in rows:
            groups[r.batch_id].append(r)
    engine.dispose()
    shaper = ProviderClient(ProviderEndpoint(base_url, api_key), TokenBucket(10**9))
    requests_out: list[tuple[str, bytes]] = []
    messages = 0
    for members in groups.values():
        first = members[0]
        batch = Batch(
            definitions.campaigns[first.campaign_id].provider_campaign_id,
            first.send_at,
            tuple(Message(r.message_id, r.customer_id, r.payload) for r in members),
        )
        path, text = shaper.body_text(batch)
        requests_out.append((path, text.encode()))
        messages += len(members)
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"})
    t0 = time.perf_counter()
    for path, data in requests_out:
        session.post(base_url + path, data=data, timeout=30).raise_for_status()
    elapsed = time.perf_counter() - t0
    return {"floor_s": round(elapsed, 3), "requests": len(requests_out), "messages": messages}
