"""The segment builder in Debian's chromium on a small real warehouse: edit a block in the form and
watch the sizes change and the YAML follow; an invalid rule shows `campaigns validate`'s message
at its block and under the YAML; nothing is loaded from the internet. Screenshots as artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.campaign_orchestrator.console.conftest import ConsoleServer
from tests.campaign_orchestrator.console.test_browser import Screens, browser, logged_in

__all__ = ["browser"]  # the fixture, shared with test_browser


def size(page: Any, selector: str, not_equal: str | None = None) -> str:
    page.wait_for_function(
        "([s, old]) => { const e = document.querySelector(s); return e && e.dataset.value !== undefined"
        " && e.dataset.value !== old; }",
        arg=[selector, not_equal],
        timeout=20_000,
    )
    return str(page.get_attribute(selector, "data-value"))


def test_build_a_segment_and_watch_its_size_change(browser: Any, data_console: ConsoleServer, tmp_path: Path):
    screens, outside = Screens(tmp_path), []
    ana = logged_in(browser, data_console, "ana", outside)
    ana.goto(data_console.url + "/segments/engaged_ios_app_users")
    ana.click("#build-link")
    total = size(ana, "#size-total")
    first_block = size(ana, "#blocks li:nth-child(1) [data-size]")
    second_block = size(ana, "#blocks li:nth-child(2) [data-size]")
    screens.shoot(ana, "builder")
    # Loosen the event block: 5 app opens in 30 days -> 1 in 30 days.
    ana.fill("#blocks li:nth-child(2) [data-field=count]", "1")
    assert int(size(ana, "#blocks li:nth-child(2) [data-size]", second_block)) > int(second_block)
    assert int(size(ana, "#size-total", total)) > int(total)
    assert ana.get_attribute("#blocks li:nth-child(1) [data-size]", "data-value") == first_block
    ana.wait_for_function("() => !document.querySelector('#rule-text').value.includes('gte: 5')")
    assert "within_last: 30d" in ana.input_value("#rule-text")
    # The YAML side drives the form too.
    ana.fill("#rule-text", "attribute: tier\neq: gold\n")
    ana.wait_for_function("() => document.querySelectorAll('#blocks li').length === 1")
    assert ana.input_value("#blocks li [data-field=attribute]") == "tier"
    assert ana.eval_on_selector("#rule-kind", "e => e.value") == "one"
    screens.shoot(ana, "builder-from-yaml")
    # An invalid rule: the validate message at the block and under the YAML.
    ana.fill("#rule-text", "all:\n  - attribute: tier\n    eq: gold\n  - event: purchase\n    count: {gte: two}\n")
    ana.wait_for_selector("#blocks li:nth-child(2)[aria-invalid=true] .problems")
    message = ana.inner_text("#blocks li:nth-child(2) .problems")
    assert "segments[2]: rule.all[1].count.gte: expected a number of at least 0, got 'two'" in message
    assert message.startswith(str(data_console.config_dir / "segments" / "behaviour.yaml"))
    assert message in ana.inner_text("#problems") and ana.get_attribute("#rule-text", "aria-invalid") == "true"
    screens.shoot(ana, "builder-invalid")
    assert outside == []
