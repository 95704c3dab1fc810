"""The template editor in Debian's chromium on a small real warehouse: write a template and see its
preview (the phone notification for real customers) follow the text, in the default content and in
a translation; an invalid edit shows `campaigns validate`'s message under the YAML; the preview runs
in a sandboxed frame and nothing is loaded from the internet (not even the template's image).
Screenshots as artifacts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.campaign_orchestrator.console.conftest import ConsoleServer
from tests.campaign_orchestrator.console.test_browser import Screens, browser, logged_in

__all__ = ["browser"]  # the fixture, shared with test_browser


def answer(page: Any) -> int:
    """Which preview request the page shows (0: none yet)."""
    return int(page.get_attribute("#template-editor", "data-answer") or 0)


def after(page: Any, action: Callable[[], None]) -> None:
    """Do `action`, then wait until the page shows the answer to the request it caused."""
    before = answer(page)
    action()
    page.wait_for_function(
        "n => Number(document.querySelector('#template-editor').dataset.answer || 0) > n", arg=before, timeout=20_000
    )


def titles(page: Any) -> list[str]:
    """The push titles in the preview frame."""
    return [str(t) for t in page.frame_locator("#preview-frame").locator(".push b").all_inner_texts()]


def test_write_a_template_and_see_its_preview(browser: Any, data_console: ConsoleServer, tmp_path: Path):
    screens, outside = Screens(tmp_path), []
    ana = logged_in(browser, data_console, "ana", outside)
    ana.goto(data_console.url + "/templates/winback_push")
    ana.click("#template-edit-link")
    ana.wait_for_url(data_console.url + "/templates/winback_push/edit")
    assert ana.get_attribute("#preview-frame", "sandbox") == ""  # no scripts, no same-origin in the preview
    ana.wait_for_selector("#template-editor[data-answer]")  # the first preview: each customer's own locale
    after(ana, lambda: ana.select_option("#locale", "en"))  # the default content, on every customer
    assert len(titles(ana)) == 5 and all(t.startswith("We miss you, ") for t in titles(ana))
    frame = ana.frame_locator("#preview-frame")
    assert "image: https://cdn.example.com/campaigns/winback.png" in frame.locator(".push").first.inner_text()
    screens.shoot(ana, "template-editor")

    # Write a new title: the preview follows the text.
    text = ana.input_value("#template-text")
    new_title = text.replace("We miss you, {{ first_name }}", "Come back soon, {{ first_name }}")
    after(ana, lambda: ana.fill("#template-text", new_title))
    assert len(titles(ana)) == 5 and all(t.startswith("Come back soon, ") for t in titles(ana))
    assert ana.get_attribute("#preview-state", "data-state") == "shown"
    screens.shoot(ana, "template-editor-new-title")

    # A translation, on the same customers.
    after(ana, lambda: ana.select_option("#locale", "de"))
    assert len(titles(ana)) == 5 and all(t.startswith("Wir vermissen dich, ") for t in titles(ana))
    assert "locale de" in frame.locator(".meta").first.inner_text()
    screens.shoot(ana, "template-editor-german")

    # Chosen customers, by id; an unknown one is named.
    after(ana, lambda: ana.fill("#customers", "C0000002, C0000001"))
    assert [m.split(" ")[0] for m in frame.locator(".meta").all_inner_texts()] == ["C0000002", "C0000001"]
    assert ana.inner_text("#preview-state").startswith("2 customers, ")
    after(ana, lambda: ana.fill("#customers", "C0000001, NOPE"))
    assert ana.inner_text("#preview-error") == "not in the customers table: NOPE"
    assert ana.get_attribute("#customers", "aria-invalid") == ""
    after(ana, lambda: ana.fill("#customers", ""))
    assert ana.is_hidden("#preview-error")

    # An invalid edit: the validate message under the YAML, the textarea marked invalid.
    unknown = new_title.replace("Come back soon, {{ first_name }}", "Come back, {{ favourite_colour }}")
    after(ana, lambda: ana.fill("#template-text", unknown))
    message = ana.inner_text("#problems")
    file = data_console.config_dir / "templates" / "winback_push.yaml"
    assert message.startswith(f"{file}: content.title: unknown variables ['favourite_colour']")
    assert ana.get_attribute("#template-text", "aria-invalid") == "true"
    assert ana.get_attribute("#preview-state", "data-state") == "invalid"
    screens.shoot(ana, "template-editor-invalid")

    # Fixed and saved: the template's page shows the new title.
    after(ana, lambda: ana.fill("#template-text", new_title))
    assert ana.locator("#problems").count() == 0 and ana.get_attribute("#template-text", "aria-invalid") is None
    ana.click("#save")
    ana.wait_for_url(data_console.url + "/templates/winback_push")
    assert "Come back soon, {{ first_name }}" in ana.inner_text("#definition")
    assert "Come back soon, {{ first_name }}" in file.read_text()
    screens.shoot(ana, "template-saved")

    # The in-app layout and the email views, as `campaigns preview --html` draws them.
    ana.goto(data_console.url + "/templates/gold_offer/edit")
    ana.wait_for_selector("#template-editor[data-answer]")
    inapp = ana.frame_locator("#preview-frame").locator(".inapp.BOTTOM_BANNER").first
    assert "double points on everything until Sunday" in inapp.inner_text()
    screens.shoot(ana, "template-editor-inapp")
    ana.goto(data_console.url + "/templates/welcome_email/edit")
    ana.wait_for_selector("#template-editor[data-answer]")
    email = ana.frame_locator("#preview-frame")
    assert email.locator(".email .inbox b").first.inner_text().startswith("Welcome, ")
    body = email.frame_locator(".email iframe").first.locator("p").nth(1)  # the HTML body, sandboxed too
    assert body.inner_text() == "Welcome aboard."
    ana.wait_for_timeout(500)  # only for the screenshot: the nested frame paints a moment after its text is there
    screens.shoot(ana, "template-editor-email")
    assert outside == []  # nothing was loaded from the internet
