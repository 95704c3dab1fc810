"""Campaign metrics per run date: the funnel after targeting, conversions, and uplift against the holdouts.

Invariant: the rows of a date are a function of the warehouse alone (candidates, holdouts,
ledger, engagement, events, definitions): measuring a date again replaces its rows with the same
figures, so the nightly stage re-measures the last `lookback_days` dates as late engagement and
conversions arrive, and a re-run changes nothing but `computed_at`.

Per campaign there is a row per variant and a `*` row for the campaign as a whole; campaign `*`
compares everyone any campaign of the date treated with the global control group. A difference
is judged (`significant`) only when both groups reach `min_sample` and the split matches its
configuration: a sample-ratio mismatch means the groups are not what the hash should have drawn,
so their difference is not evidence.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.definitions.conversions import Conversion, conversion_for
from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.definitions.rule_values import Vocabulary
from campaign_orchestrator.measurement.conversions import Counts, GroupCounts, combined, count_conversions
from campaign_orchestrator.measurement.engagement import engagement_counts
from campaign_orchestrator.measurement.groups import everyone, members
from campaign_orchestrator.measurement.split import split_mismatch
from campaign_orchestrator.measurement.statistics import revenue_p_value, uplift, variants_p_value
from campaign_orchestrator.warehouse.measurement_tables import ALL, METRIC_COUNTS, METRIC_FLAGS, campaign_metrics
from campaign_orchestrator.warehouse.tables import campaign_candidates

Row = dict[str, Any]


def _rate(converted: int, n: int) -> float | None:
    return converted / n if n else None


def _comparison(prefix: str, treated: GroupCounts, control: GroupCounts, judged: bool) -> Row:
    """The uplift columns (`uplift*` or `global_uplift*`) of treated against one control group."""
    found = uplift(treated.converted, treated.n, control.converted, control.n)
    if found is None:
        return {f"{prefix}significant": False}
    name = "global_uplift" if prefix else "uplift"
    row: Row = {
        name: found.absolute,
        f"{name}_low": found.low,
        f"{name}_high": found.high,
        f"{name}_relative": found.relative,
        f"{name}_relative_low": found.relative_low,
        f"{name}_relative_high": found.relative_high,
        f"{prefix}p_value": found.p_value,
        f"{prefix}significant": judged and found.significant,
    }
    return row


def _row(
    campaign_id: str,
    variant: str,
    treated: GroupCounts,
    held: GroupCounts,
    global_control: GroupCounts,
    min_sample: int,
    srm: tuple[float | None, bool],
) -> Row:
    too_small = treated.n < min_sample or max(held.n, global_control.n) < min_sample
    srm_p, mismatch = srm
    held_judged = not mismatch and min(treated.n, held.n) >= min_sample
    global_judged = not mismatch and min(treated.n, global_control.n) >= min_sample
    return {
        "campaign_id": campaign_id,
        "variant": variant,
        "treatment": treated.n,
        "held_out": held.n,
        "global_control": global_control.n,
        "converted": treated.converted,
        "held_out_converted": held.converted,
        "global_converted": global_control.converted,
        "revenue": treated.revenue.total,
        "held_out_revenue": held.revenue.total,
        "global_revenue": global_control.revenue.total,
        "conversion_rate": _rate(treated.converted, treated.n),
        "held_out_rate": _rate(held.converted, held.n),
        "global_rate": _rate(global_control.converted, global_control.n),
        "revenue_per_customer": treated.revenue.mean if treated.n else None,
        "held_out_revenue_per_customer": held.revenue.mean if held.n else None,
        "revenue_p_value": revenue_p_value(treated.revenue, held.revenue),
        **_comparison("", treated, held, held_judged),
        **_comparison("global_", treated, global_control, global_judged),
        "srm_p_value": srm_p,
        "srm_mismatch": mismatch,
        "too_small": too_small,
    }


def campaign_rows(
    conn: Connection, definitions: Definitions, vocab: Vocabulary | None, run_date: dt.date, campaign_id: str
) -> list[Row]:
    campaign = definitions.campaigns.get(campaign_id)
    settings = definitions.settings.measurement
    conversion = conversion_for(campaign.conversion if campaign else None, settings)
    properties = dict(vocab.event_properties) if vocab is not None else {}
    counts: Counts = count_conversions(conn, members(run_date, campaign_id), conversion, properties, vocab, run_date)
    stores = frozenset(n for n, d in definitions.settings.destinations.items() if d.kind == "message_store")
    engagement = engagement_counts(conn, run_date, campaign_id, stores)
    srm = split_mismatch(conn, definitions, run_date, campaign_id)
    held, global_control = combined(counts, "holdout"), combined(counts, "global")
    variants = sorted({v for v, g in counts if g == "treatment"} | set(engagement))
    rows = []
    for variant in [*variants, ALL]:
        treated = combined(counts, "treatment", None if variant == ALL else [variant])
        row = _row(campaign_id, variant, treated, held, global_control, settings.min_sample, srm)
        funnel = engagement.get(variant) if variant != ALL else _summed(engagement)
        row.update(funnel or {})
        rows.append(_described(row, conversion))
    if len(variants) > 1:
        groups = [(c.converted, c.n) for c in (combined(counts, "treatment", [v]) for v in variants)]
        rows[-1]["variants_p_value"] = variants_p_value(groups)
    return rows


def _summed(engagement: dict[str, dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for metrics in engagement.values():
        for k, v in metrics.items():
            out[k] = out.get(k, 0) + v
    return out


def _described(row: Row, conversion: Conversion | None) -> Row:
    row["conversion_event"] = conversion.event if conversion else None
    row["window_hours"] = conversion.within_hours if conversion else None
    return row


def global_row(
    conn: Connection, definitions: Definitions, vocab: Vocabulary | None, run_date: dt.date, campaign_ids: list[str]
) -> Row | None:
    """Every campaign of the date against the global control group (Braze's Global Control report)."""
    if not campaign_ids or definitions.settings.global_control_percent <= 0:
        return None
    settings = definitions.settings.measurement
    properties = dict(vocab.event_properties) if vocab is not None else {}
    counts = count_conversions(conn, everyone(run_date, campaign_ids), settings.conversion, properties, vocab, run_date)
    treated, control = combined(counts, "treatment"), combined(counts, "global")
    row = _row(ALL, ALL, treated, GroupCounts(), control, settings.min_sample, (None, False))
    row["too_small"] = min(treated.n, control.n) < settings.min_sample
    return _described(row, settings.conversion)


def measure_date(engine: Engine, definitions: Definitions, vocab: Vocabulary | None, run_date: dt.date) -> list[Row]:
    """Replace the date's metrics with what the warehouse says now; returns the rows written."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        cand = campaign_candidates.c
        campaign_ids = sorted(
            conn.execute(sa.select(cand.campaign_id).where(cand.run_date == run_date).distinct()).scalars()
        )
        rows = [r for cid in campaign_ids for r in campaign_rows(conn, definitions, vocab, run_date, cid)]
        overall = global_row(conn, definitions, vocab, run_date, campaign_ids)
        if overall is not None:
            rows.append(overall)
        conn.execute(campaign_metrics.delete().where(campaign_metrics.c.run_date == run_date))
        if rows:
            # every record with every column: an executemany takes its columns from the first record
            blank = {**{c.name: None for c in campaign_metrics.c}, **dict.fromkeys(METRIC_COUNTS, 0)}
            blank.update(dict.fromkeys(METRIC_FLAGS, False))
            records = [{**blank, **r, "run_date": run_date, "computed_at": now} for r in rows]
            conn.execute(campaign_metrics.insert(), records)
    return rows


def measured_dates(engine: Engine, run_date: dt.date, lookback_days: int) -> list[dt.date]:
    """The run date and the earlier ones within the lookback that have candidates to measure."""
    first = run_date - dt.timedelta(days=lookback_days)
    cand = campaign_candidates.c
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(cand.run_date).where(cand.run_date >= first, cand.run_date <= run_date).distinct()
        ).scalars()
        return sorted(found)
