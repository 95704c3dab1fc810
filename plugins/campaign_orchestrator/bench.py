"""`campaigns bench`: the whole pipeline on N customers, timed per stage, with a floor where we have one.

A benchmark, not a test: it asserts nothing. Each stage reports wall time, rows, rows per
second and the peak resident memory seen while it ran (sampled). A floor is the same work done
the most direct way in the same run (e.g. the raw bulk load of the same files without any
contract), so a result reads as "x times the floor" whatever the machine's speed today.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from campaign_orchestrator import pipeline
from campaign_orchestrator.connections import ProviderEndpoint
from campaign_orchestrator.demo import provider_simulator
from campaign_orchestrator.demo_data import generate
from campaign_orchestrator.warehouse import create_warehouse_engine, drop_schema, normalise_url

STAGES = ("import", "segments", "targets", "render", "deliver")


class PeakRss:
    """Samples this process's resident memory in a thread; `peak_mb` is the maximum since `reset`."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.proc = psutil.Process()
        self.interval = interval_s
        self.peak = 0
        self._services: dict[int, bool] = {}  # pid -> is a separate service (the provider simulator)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree_rss(self) -> int:
        """This process and its children (validation workers), but not the provider simulator."""
        total = self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            try:
                if child.pid not in self._services:
                    self._services[child.pid] = "provider-sim" in " ".join(child.cmdline())
                if not self._services[child.pid]:
                    total += child.memory_info().rss
            except psutil.Error:
                continue
        return int(total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._tree_rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> None:
        self.peak = self._tree_rss()

    @property
    def peak_mb(self) -> float:
        return round(max(self.peak, self._tree_rss()) / 2**20, 1)


@contextmanager
def _timed(results: dict[str, Any], name: str, rss: PeakRss) -> Iterator[dict[str, Any]]:
    rss.reset()
    out: dict[str, Any] = {"rows": 0}
    t0 = time.perf_counter()
    yield out
    wall = time.perf_counter() - t0
    rows = int(out["rows"])
    results[name] = {
        "wall_s": round(wall, 3),
        "rows": rows,
        "rows_per_s": round(rows / wall) if wall > 0 else None,
        "peak_rss_mb": rss.peak_mb,
        "floor_s": out.get("floor_s"),
    }
    print(f"[bench] {name}: {rows} rows in {wall:.1f}s", flush=True)


def import_floor(
    warehouse_url: str, sources: Path, contracts_dir: Path, contracts: dict[str, Any], run_date: dt.date
) -> dict[str, float]:
    """The same files the most direct way, measured now: a bare COPY (executemany on SQLite) of
    each file into a table defined like the live one, plus the same Great Expectations suites run
    on the files read with pandas. `floor_s` is their sum."""
    import sqlalchemy as sa

    from campaign_orchestrator.sources import load_sources_config
    from campaign_orchestrator.tables import SOURCE_TABLES
    from campaign_orchestrator.warehouse import load_csv_file

    config = load_sources_config(contracts_dir / "sources.yaml")
    engine = create_warehouse_engine(warehouse_url)
    meta = sa.MetaData()
    copy_s = 0.0
    for name, spec in config.sources.items():
        live = SOURCE_TABLES[name]
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

    for name, spec in config.sources.items():
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


def run_bench(
    workdir: Path,
    customers: int,
    warehouse_url: str | None = None,
    repo: Path | None = None,
    workers: int | None = None,
    stages: tuple[str, ...] = STAGES,
) -> dict[str, Any]:
    repo = (repo or Path.cwd()).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    run_date = dt.datetime.now(dt.UTC).date()
    sources = workdir / "sources"
    marker = sources / ".generated.json"
    wanted = {"customers": customers, "as_of": run_date.isoformat(), "seed": 7}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        print(f"[bench] reusing the generated data in {sources}", flush=True)
    else:
        t0 = time.perf_counter()
        data = generate(sources, customers=customers, as_of=run_date)
        marker.write_text(json.dumps(wanted))
        print(
            f"[bench] generated {customers} customers, {data.events} events in {time.perf_counter() - t0:.1f}s",
            flush=True,
        )
    if warehouse_url is None:
        db = workdir / "warehouse.sqlite"
        for stale in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            stale.unlink(missing_ok=True)
        warehouse_url = f"sqlite:///{db}"
    else:
        _create_database_if_missing(warehouse_url)
        engine = create_warehouse_engine(warehouse_url)
        drop_schema(engine)
        engine.dispose()
    config = pipeline.RunConfig(
        run_date=run_date,
        warehouse_url=warehouse_url,
        config_dir=repo / "marketing",
        contracts_dir=repo / "data_contracts",
        sources_dir=sources,
        reports_dir=workdir / "reports",
        run_id=f"bench__{run_date}",
    )
    run = pipeline.Run(config)
    # The bench measures our own cost, so the provider's hourly budget (configuration) is lifted.
    delivery = run.definitions.settings.delivery.model_copy(update={"requests_per_hour": 10**9})
    run.definitions = dataclasses.replace(
        run.definitions, settings=run.definitions.settings.model_copy(update={"delivery": delivery})
    )
    results: dict[str, Any] = {}
    api_key = secrets.token_urlsafe(16)
    with PeakRss() as rss, provider_simulator(workdir, api_key) as base_url:
        resolve: Callable[[str], ProviderEndpoint] = lambda _conn_id: ProviderEndpoint(base_url, api_key)  # noqa: E731
        pipeline.validate_definitions(run)
        with _timed(results, "import", rss) as out:
            detail = pipeline.import_stage(run, workers=workers)
            out["rows"] = detail["rows"]
        floor = import_floor(warehouse_url, sources, config.contracts_dir, run.contracts, run_date)
        results["import"].update(floor_s=floor["floor_s"], floor_copy_s=floor["copy_s"], floor_gx_s=floor["gx_s"])
        if stages == ("import",):
            return _write(workdir, customers, warehouse_url, run_date, results)
        with _timed(results, "segments", rss) as out:
            out["rows"] = pipeline.segments_stage(run)["rows"]
        floor = segments_floor(warehouse_url, run_date, repo / "sql" / "bench" / "segments_by_hand.sql")
        results["segments"].update(
            floor_s=floor["floor_s"], segments=floor["segments"], disagreements=floor["mismatches"]
        )
        if stages == ("import", "segments"):
            return _write(workdir, customers, warehouse_url, run_date, results)
        with _timed(results, "targets", rss) as out:
            out["rows"] = pipeline.targets_stage(run)["rows"]
        floor = targets_floor(warehouse_url, run.definitions, run_date, repo / "sql" / "bench" / "targets_by_hand.sql")
        results["targets"].update(
            floor_s=floor["floor_s"], campaigns=floor["campaigns"], disagreements=floor["mismatches"]
        )
        if stages[-1] == "targets":
            return _write(workdir, customers, warehouse_url, run_date, results)
        with _timed(results, "render", rss) as out:
            out["rows"] = pipeline.render_stage(run)["rows"]
        with _timed(results, "deliver", rss) as out:
            out["rows"] = sum(
                pipeline.deliver_stage(run, s, resolve, concurrent_shards=1)["rows"]
                for s in pipeline.delivery_shards(run)
            )
    return _write(workdir, customers, warehouse_url, run_date, results)


def _write(
    workdir: Path, customers: int, warehouse_url: str, run_date: dt.date, results: dict[str, Any]
) -> dict[str, Any]:
    doc = {
        "customers": customers,
        "dialect": normalise_url(warehouse_url).get_backend_name(),
        "run_date": run_date.isoformat(),
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "stages": results,
    }
    (workdir / "results.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return doc


def segments_floor(warehouse_url: str, run_date: dt.date, sql_file: Path) -> dict[str, Any]:
    """The same segments written by hand as SQL (sql/bench/segments_by_hand.sql), materialised into
    scratch tables shaped like the real ones, timed now; and whether they agree with the engine."""
    import re

    import sqlalchemy as sa

    from campaign_orchestrator.tables import segment_membership

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

    from campaign_orchestrator.tables import target_list

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
                    "LEFT JOIN (SELECT customer_id FROM outbox WHERE campaign_id = :campaign_id"
                    " AND run_date < :run_date AND state IN ('pending', 'in_flight', 'sent', 'failed', 'unknown')"
                    " GROUP BY customer_id"
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


def _create_database_if_missing(url: str) -> None:
    """`make bench WAREHOUSE=postgresql://.../bench` should not need a manual CREATE DATABASE."""
    import sqlalchemy as sa

    parsed = normalise_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}
            ).first()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()


def table(doc: dict[str, Any]) -> str:
    lines = [
        f"{doc['customers']:,} customers on {doc['dialect']}",
        f"{'stage':<10}{'wall_s':>10}{'rows':>12}{'rows/s':>12}{'peak MB':>10}{'floor_s':>10}{'x floor':>9}",
    ]
    for name in STAGES:
        s = doc["stages"].get(name)
        if not s:
            continue
        floor = s.get("floor_s")
        ratio = f"{s['wall_s'] / floor:.1f}" if floor else "-"
        lines.append(
            f"{name:<10}{s['wall_s']:>10.2f}{s['rows']:>12,}{s['rows_per_s'] or 0:>12,}"
            f"{s['peak_rss_mb']:>10}{floor if floor is not None else '-':>10}{ratio:>9}"
        )
    return "\n".join(lines)
