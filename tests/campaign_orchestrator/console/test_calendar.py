"""The calendar shows an approved campaign on exactly the days the night sends it, and a draft where
it would land once approved; a paused campaign is on no day."""

from __future__ import annotations

import datetime as dt

from campaign_orchestrator.console.calendar import build_calendar
from campaign_orchestrator.console.checks import Checker
from campaign_orchestrator.definitions.campaigns import Schedule
from tests.conftest import ROOT

START = dt.date(2026, 12, 7)  # a Monday


def shipped():
    definitions = Checker(ROOT / "data_contracts").check(ROOT / "marketing").definitions
    assert definitions is not None
    return definitions


def test_each_day_holds_the_campaigns_the_night_of_that_date_sends():
    definitions = shipped()
    calendar = build_calendar(definitions, START, 14)
    assert [d.day for d in calendar.days] == [START + dt.timedelta(days=i) for i in range(14)]
    for day in calendar.days:
        assert sorted(calendar.campaigns_on(day.day)) == [c.id for c in definitions.active_campaigns(day.day)]
    fridays = [d.day for d in calendar.days if "anz_gold_weekly" in calendar.campaigns_on(d.day)]
    assert fridays == [dt.date(2026, 12, 11), dt.date(2026, 12, 18)]  # its weekly schedule: Fridays


def test_drafts_land_where_they_would_once_approved_and_paused_campaigns_nowhere():
    definitions = shipped()
    base = definitions.campaigns["winback_push"]
    draft = base.model_copy(
        update={"id": "tuesday_draft", "status": "pending_approval", "schedule": Schedule(type="weekly", days=["tue"])}
    )
    paused = definitions.campaigns["europe_newsletter"].model_copy(update={"status": "paused"})
    definitions.drafts["tuesday_draft"] = draft
    definitions.campaigns["europe_newsletter"] = paused
    calendar = build_calendar(definitions, START, 14)
    tuesdays = [
        (d.day, s.state) for d in calendar.days for s in d.sends if s.campaign_id == "tuesday_draft"
    ]
    assert tuesdays == [(dt.date(2026, 12, 8), "pending_approval"), (dt.date(2026, 12, 15), "pending_approval")]
    assert all("europe_newsletter" not in calendar.campaigns_on(d.day) for d in calendar.days)
    assert calendar.paused == ["europe_newsletter"]
