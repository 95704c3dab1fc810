"""The console's live sizes on a big warehouse (a benchmark, not a test): per shipped segment, the
seconds `campaigns estimate` takes (count, then the ordered sample) and the seconds the builder
takes for the sizes of every block after an edit (nothing cached) and for the whole rule with its
sample. Run it against an imported warehouse, e.g. 1M demo customers in PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from campaign_orchestrator.console.checks import Checker
from campaign_orchestrator.segments.compile import Inline
from campaign_orchestrator.segments.memberships import estimate
from campaign_orchestrator.segments.sizes import SizeCache, rule_sizes
from campaign_orchestrator.segments.windows import windows_for
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, ensure_schema


def bench_sizes(url: str, run_date: dt.date, config: Path, contracts: Path, only: list[str]) -> list[dict[str, Any]]:
    definitions = Checker(contracts).check(config).definitions
    assert definitions is not None, "the marketing folder does not pass campaigns validate"
    engine = create_warehouse_engine(url)
    ensure_schema(engine)
    rules, specs = definitions.rules(), definitions.lifecycle_specs()
    inline = Inline(rules, {lc.id: lc.stages for lc in specs}, {lc.id: lc.otherwise for lc in specs})
    settings = definitions.settings
    out = []
    for segment_id in only or sorted(rules):
        row: dict[str, Any] = {"segment": segment_id}
        with engine.connect() as conn:
            windows = windows_for(conn, run_date, settings.windows, settings.default_timezone)
            started = time.perf_counter()
            est = estimate(conn, segment_id, rules, definitions.vocabulary, run_date, specs, windows=windows)
            row["estimate_s"] = round(time.perf_counter() - started, 2)
            conn.rollback()
            for part in ("blocks", "total"):
                with conn.begin():
                    sizes = rule_sizes(
                        conn,
                        rules[segment_id],
                        definitions.vocabulary,
                        run_date,
                        inline,
                        windows,
                        cache=SizeCache(),
                        part=part,
                    )
                row[f"{part}_s"] = round(sizes.seconds, 2)
                if part == "total":
                    assert sizes.total == est.size, (segment_id, sizes.total, est.size)
            row["size"] = est.size
        out.append(row)
    return out
