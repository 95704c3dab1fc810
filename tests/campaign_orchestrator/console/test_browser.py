"""The console in Debian's chromium (Playwright): edit, submit, approve as a second user; an editor
sees no approve button and a forged request is refused; no page loads anything from the internet.

Screenshots of the main pages go to the test's tmp_path, and to $CONSOLE_SCREENSHOTS if set.
A missing browser fails with REQUIRE_BROWSER=1 (CI), else skips.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.campaign_orchestrator.console.conftest import PASSWORDS, ConsoleServer

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if REQUIRE_BROWSER:
            pytest.fail(f"REQUIRE_BROWSER=1 but {CHROMIUM} is missing: apt-get install -y chromium")
        pytest.skip(f"no {CHROMIUM} here (apt-get install -y chromium); REQUIRE_BROWSER=1 makes this a failure")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


class Screens:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.copy_to = Path(os.environ["CONSOLE_SCREENSHOTS"]) if os.environ.get("CONSOLE_SCREENSHOTS") else None

    def shoot(self, page: Any, name: str) -> None:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if self.copy_to is not None:
            self.copy_to.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, self.copy_to / path.name)


def logged_in(browser: Any, server: ConsoleServer, name: str, outside: list[str]) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()

    def only_the_console(route: Any) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_console)
    page.goto(server.url + "/campaigns")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/campaigns")
    return page


def test_edit_submit_and_approve_as_a_second_user(browser: Any, console_server: ConsoleServer, tmp_path: Path):
    screens, outside = Screens(tmp_path), []
    approved = console_server.config_dir / "campaigns" / "europe_newsletter.yaml"
    ana = logged_in(browser, console_server, "ana", outside)
    screens.shoot(ana, "campaigns")
    ana.goto(console_server.url + "/segments/high_value")
    screens.shoot(ana, "segment")
    ana.goto(console_server.url + "/campaigns/europe_newsletter")
    ana.click("#edit-link")
    text = ana.input_value("#text")
    # An invalid edit: the validate message shows at the field, nothing is written.
    ana.fill("#text", text.replace("channel: email", "channel: fax"))
    ana.click("text=Save draft")
    assert "channel: Input should be 'push', 'email' or 'in_app'" in ana.inner_text("#problems")
    assert ana.get_attribute("#text", "aria-invalid") == "true"
    screens.shoot(ana, "edit-invalid")
    ana.fill("#text", text.replace("priority:", "priority: 7 #", 1) if "priority:" in text else text + "priority: 7\n")
    ana.click("text=Save draft")
    ana.wait_for_url(console_server.url + "/campaigns/europe_newsletter")
    ana.click("button[data-action=submit]")
    ana.wait_for_selector(".status-pending_approval")
    assert ana.locator("button[data-action=approve]").count() == 0  # an editor sees no approve button
    status = ana.evaluate(
        "async () => (await fetch('/campaigns/europe_newsletter/approve', {method: 'POST',"
        " headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'version=x'})).status"
    )
    assert status == 403  # a forged POST (no CSRF token) is refused
    with_token = ana.evaluate(
        "async () => (await consoleFetch('/campaigns/europe_newsletter/approve', {method: 'POST',"
        " headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'version=x'})).status"
    )
    assert with_token == 403  # with the token, still refused: an editor may not approve
    screens.shoot(ana, "submitted")
    assert "status:" not in approved.read_text()  # the approved version still runs unchanged

    bo = logged_in(browser, console_server, "bo", outside)
    bo.goto(console_server.url + "/approvals")
    screens.shoot(bo, "approvals")
    bo.click("text=europe_newsletter")
    bo.click("button[data-action=approve]")
    bo.wait_for_selector("#history")
    screens.shoot(bo, "approved")
    running = approved.read_text()
    assert "status: approved" in running and "approved_by: bo" in running and "submitted_by: ana" in running
    assert "priority: 7" in running
    history = bo.inner_text("#history")
    assert "approve" in history and "submit" in history and "ana" in history
    assert not (console_server.config_dir / "drafts" / "campaigns" / "europe_newsletter.yaml").exists()
    assert outside == []  # nothing was loaded from the internet
