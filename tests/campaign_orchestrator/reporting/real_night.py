"""A small real night for the HTML report's tests: generated exports through the whole pipeline
(`run_all`, as `campaigns run` does) against the provider simulator, on a SQLite warehouse.

Campaign metrics need engagement and conversions days after the sends, which a one-night export
does not have: `set_metrics` writes the date's `campaign_metrics` rows as the measurement stage
would (a holdout comparison per campaign, the variants of an A/B campaign, one too small to judge,
and the campaign `*` against the global control group), so a test says which state it needs.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_devtools.demo_data import generate
from campaign_devtools.provider_sim import make_server
from campaign_orchestrator.connections import env_endpoint_resolver
from campaign_orchestrator.run.context import RunConfig
from campaign_orchestrator.run.stages import run_all
from campaign_orchestrator.warehouse.engine import create_warehouse_engine
from campaign_orchestrator.warehouse.tables import campaign_metrics, customers, target_list
from tests.builders import marketing_copy

RUN_DATE = dt.date(2026, 11, 22)


@dataclass
class Night:
    config: RunConfig
    engine: Engine
    report: Path  # run_report.json

    def customer_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [c for (c,) in conn.execute(sa.select(customers.c.customer_id))]


def run_night(folder: Path, repo: Path, customers_count: int = 800) -> Night:
    generate(folder / "export", customers=customers_count, seed=11, as_of=RUN_DATE)
    server = make_server("127.0.0.1", 0, api_key="report-key")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    config = RunConfig(
        run_date=RUN_DATE,
        warehouse_url=f"sqlite:///{folder / 'warehouse.sqlite'}",
        config_dir=marketing_copy(repo, folder / "marketing"),  # no lateness limit: RUN_DATE is past
        contracts_dir=repo / "data_contracts",
        sources_dir=folder / "export",
        reports_dir=folder / "reports",
        archive_dir=folder / "archive",
        run_id="report-night",
    )
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AIRFLOW_CONN_CAMPAIGNS_PROVIDER", f"http://:report-key@127.0.0.1:{server.server_address[1]}")
            report = run_all(config, env_endpoint_resolver)
    finally:
        server.shutdown()
        server.server_close()
    return Night(config, create_warehouse_engine(config.warehouse_url), report)


def set_metrics(engine: Engine, run_date: dt.date = RUN_DATE, measured: bool = True) -> list[dict[str, Any]]:
    """Replace the date's campaign metrics: none (not measured yet), or a row per campaign and variant
    of its target list; the smallest campaign is flagged too small to judge."""
    with engine.begin() as conn:
        conn.execute(campaign_metrics.delete().where(campaign_metrics.c.run_date == run_date))
        if not measured:
            return []
        t = target_list.c
        sizes = conn.execute(
            sa.select(t.campaign_id, t.variant, sa.func.count())
            .where(t.run_date == run_date)
            .group_by(t.campaign_id, t.variant)
            .order_by(t.campaign_id, t.variant)
        ).all()
        per_campaign: dict[str, int] = {}
        for cid, _variant, n in sizes:
            per_campaign[cid] = per_campaign.get(cid, 0) + int(n)
        smallest = min(per_campaign, key=lambda c: (per_campaign[c], c))
        rows = []
        for i, (cid, n) in enumerate(sorted(per_campaign.items())):
            rows.append(_row(run_date, cid, "*", n, 0.004 * (i - 2), too_small=cid == smallest))
            variants = [(v, int(m)) for c, v, m in sizes if c == cid]
            if len(variants) > 1:
                rows += [_row(run_date, cid, v, m, 0.01 * (j + 1)) for j, (v, m) in enumerate(variants)]
        global_row = _row(run_date, "*", "*", sum(per_campaign.values()), None)
        global_row.update(global_control=40, global_uplift=0.006, global_uplift_low=0.001, global_uplift_high=0.011)
        global_row.update(global_significant=True)
        rows.append(global_row)
        conn.execute(campaign_metrics.insert(), rows)
    return rows


def _row(run_date: dt.date, cid: str, variant: str, n: int, uplift: float | None, too_small: bool = False) -> dict:
    row: dict[str, Any] = {c.name: None for c in campaign_metrics.c}
    row.update({c.name: 0 for c in campaign_metrics.c if isinstance(c.type, sa.Integer)})
    row.update({c.name: False for c in campaign_metrics.c if isinstance(c.type, sa.Boolean)})
    row.update(
        run_date=run_date,
        campaign_id=cid,
        variant=variant,
        treatment=n,
        targeted=n,
        held_out=max(n // 10, 1),
        sent=n,
        delivered=n,
        converted=n // 25,
        conversion_rate=0.04,
        held_out_rate=0.04 - (uplift or 0),
        too_small=too_small,
        computed_at=dt.datetime(2026, 11, 25, 3, 0),
        conversion_event="purchase",
        window_hours=72.0,
    )
    if uplift is not None:
        row.update(uplift=uplift, uplift_low=uplift - 0.015, uplift_high=uplift + 0.015, p_value=0.2)
        row.update(significant=uplift - 0.015 > 0)
    return row
