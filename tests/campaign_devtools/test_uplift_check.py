"""The measurement recovers an uplift built into the simulated world (a smaller run of `campaigns-dev uplift-check`)."""

from __future__ import annotations

import datetime as dt

from campaign_devtools.engagement_sim import DEMO_EFFECTS
from campaign_devtools.uplift_check import check, demo_night
from campaign_orchestrator.warehouse.engine import create_warehouse_engine

RUN_DATE = dt.date(2026, 11, 24)
SEEDS = range(20)


def test_the_95_percent_intervals_cover_the_built_in_uplift_and_a_campaign_without_one_is_rarely_significant(
    repo, tmp_path
):
    with demo_night(tmp_path, 8000, RUN_DATE, repo) as run:
        engine = create_warehouse_engine(run.config.warehouse_url)
        try:
            tallies = check(engine, run.definitions, RUN_DATE, SEEDS)
        finally:
            engine.dispose()
    measured = {cid: t for cid, t in tallies.items() if t.runs == len(SEEDS)}
    assert {"app_feature_push", "churn_winback_email", "gold_inapp_offer"} <= set(measured)
    covered = sum(t.covered for t in measured.values())
    runs = sum(t.runs for t in measured.values())
    assert covered >= 0.9 * runs, {cid: (t.truth, t.covered) for cid, t in measured.items()}
    assert all(t.covered >= 15 for t in measured.values()), {cid: t.covered for cid, t in measured.items()}
    nothing = measured["gold_inapp_offer"]  # no uplift built in
    assert DEMO_EFFECTS.uplift["gold_inapp_offer"] == 0.0 and abs(nothing.truth) < 0.01
    assert nothing.significant <= 3
    # and the estimates are centred on the truth (a wrong control group shifts them), not merely wide
    for cid in ("app_feature_push", "churn_winback_email"):
        t = measured[cid]
        assert abs(sum(t.estimates) / t.runs - t.truth) < 0.008, (cid, t.truth, sum(t.estimates) / t.runs)
