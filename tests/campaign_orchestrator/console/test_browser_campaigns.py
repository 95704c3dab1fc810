"""The campaign editor in Debian's chromium on a small real warehouse: create a campaign in the form
(a bad field shows validate's message at the field), compute its funnel, submit it, approve it as a
second user, and see it in the calendar on the days it sends; an editor has no approve button."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from campaign_orchestrator.clock import today
from campaign_orchestrator.definitions.campaigns import WEEKDAYS
from tests.campaign_orchestrator.console.conftest import ConsoleServer
from tests.campaign_orchestrator.console.test_browser import Screens, browser, logged_in

__all__ = ["browser"]  # the fixture, shared with test_browser


def sends_on(page: Any, campaign: str) -> dict[str, str]:
    """Day -> the state the calendar shows `campaign` in, for every day it appears on."""
    found = page.eval_on_selector_all(
        f"#calendar [data-campaign={campaign}]", "els => els.map(e => [e.closest('.day').dataset.day, e.dataset.state])"
    )
    return dict(found)


def test_create_a_campaign_submit_approve_as_a_second_user_and_see_it_in_the_calendar(
    browser: Any, data_console: ConsoleServer, tmp_path: Path
):
    screens, outside = Screens(tmp_path), []
    first = today() + dt.timedelta(days=2)  # the console's clock (UTC)
    weekday = WEEKDAYS[first.weekday()]
    expected = [first.isoformat(), (first + dt.timedelta(days=7)).isoformat()]

    ana = logged_in(browser, data_console, "ana", outside)
    ana.goto(data_console.url + "/campaigns/new")
    ana.fill("input[name=campaign_id]", "spring_sale")
    ana.click("text=Start a draft")
    ana.wait_for_url(data_console.url + "/campaigns/spring_sale/form")
    ana.fill("input[name=name]", "Spring sale")
    ana.select_option("select[name=segment]", "high_value")
    ana.fill("input[name=provider_campaign_id]", "spring-sale-2027")
    ana.select_option("select[name=schedule_type]", "weekly")
    ana.check(f"input[name=schedule_days][value={weekday}]")
    ana.fill("input[name=send_time]", "12:00")
    ana.fill("input[name=holdout_percent]", "10")
    # A bad field: the validate message appears at it as you type, before any save.
    ana.fill("input[name=priority]", "soon")
    ana.wait_for_selector("[data-problems-for=priority]:not([hidden])")
    message = ana.inner_text("[data-problems-for=priority]")
    draft = data_console.config_dir / "drafts" / "campaigns" / "spring_sale.yaml"
    assert message.startswith(f"{draft}: priority: Input should be a valid integer")
    assert ana.get_attribute("input[name=priority]", "aria-invalid") == "true"
    screens.shoot(ana, "campaign-form-invalid")
    ana.fill("input[name=priority]", "40")
    ana.wait_for_selector("#campaign-form[data-state=valid]")
    assert "spring-sale-2027" in ana.inner_text("#yaml-preview")
    # The funnel of the night of the warehouse's date, for this unsaved version.
    ana.click("#plan-button")
    ana.wait_for_selector("#plan[data-state=done]", timeout=60_000)
    screens.shoot(ana, "campaign-form-funnel")
    assert not draft.exists()  # planning wrote nothing
    ana.click("#save")
    ana.wait_for_url(data_console.url + "/campaigns/spring_sale")
    assert "status: draft" in draft.read_text() and "days:\n  - " + weekday in draft.read_text()
    ana.click("button[data-action=submit]")
    ana.wait_for_selector(".status-pending_approval")
    assert ana.locator("button[data-action=approve]").count() == 0  # an editor cannot approve
    ana.goto(data_console.url + "/campaigns/calendar")
    assert list(sends_on(ana, "spring_sale").items()) == [(d, "pending_approval") for d in expected]

    bo = logged_in(browser, data_console, "bo", outside)
    bo.goto(data_console.url + "/approvals")
    bo.click("text=spring_sale")
    bo.click("button[data-action=approve]")
    bo.wait_for_selector("#history")
    assert "approved_by: bo" in (data_console.config_dir / "campaigns" / "spring_sale.yaml").read_text()
    bo.click("#calendar-link")
    assert list(sends_on(bo, "spring_sale").items()) == [(d, "approved") for d in expected]
    screens.shoot(bo, "calendar")
    assert outside == []  # nothing was loaded from the internet
