"""The campaign form is a view of the YAML: it round-trips every shipped campaign, writes what a
marketer changed and nothing else (comments kept), and puts each validate message at its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from campaign_orchestrator.console.approval import as_draft, draft_file
from campaign_orchestrator.console.campaign_form import VARIANT_ROWS, apply_form, field_of, form_values
from campaign_orchestrator.console.store import ABSENT, Change, DefinitionStore
from campaign_orchestrator.definitions.campaigns import Campaign
from tests.conftest import ROOT

SHIPPED = sorted((ROOT / "marketing" / "campaigns").glob("*.yaml"))


def posted(values: dict[str, Any]) -> dict[str, str | list[str]]:
    """What the browser posts for a form filled with `values` (variant rows as their inputs)."""
    form: dict[str, str | list[str]] = {k: v for k, v in values.items() if k != "variants"}
    for i, row in enumerate(values["variants"]):
        for key in ("id", "weight", "template"):
            form[f"variant_{key}_{i}"] = row[key]
    return form


def campaign(text: str) -> Campaign:
    data = yaml.safe_load(text)
    data.pop("status", None)
    return Campaign.model_validate(data)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_the_form_round_trips_every_shipped_campaign(path: Path):
    text = path.read_text()
    if len((yaml.safe_load(text) or {}).get("variants") or []) > VARIANT_ROWS:
        pytest.skip("more variants than the form shows")
    assert campaign(apply_form(text, posted(form_values(text)))) == campaign(text)


def test_a_change_writes_its_keys_and_keeps_the_comments():
    text = (ROOT / "marketing" / "campaigns" / "europe_newsletter.yaml").read_text()
    values = form_values(text)
    values.update(schedule_type="weekly", schedule_days=["fri", "mon"], quiet="custom", quiet_start="22:00")
    values.update(quiet_end="07:30", caps_per_day="2", holdout_percent="", name="yes")
    out = apply_form(text, posted(values))
    assert "# lint fails if a template of this campaign lacks one" in out  # the file's comment stays
    data = yaml.safe_load(out)  # the loader's YAML 1.1: clocks must not turn into sexagesimal numbers
    assert data["schedule"] == {"type": "weekly", "days": ["mon", "fri"]}
    assert data["quiet_hours"] == {"start": "22:00", "end": "07:30", "fallback": "move"}
    assert data["caps"] == {"per_day": 2} and data["name"] == "yes"
    assert "holdout_percent" not in data  # empty: the default applies
    assert data["locales"] == ["en", "de", "fr", "es"]  # a key the form does not show is untouched


def test_include_exclude_and_variants_replace_segment_and_template():
    text = (ROOT / "marketing" / "campaigns" / "winback_push.yaml").read_text()
    values = form_values(text)
    values.update(audience="include", include=["lapsed_high_value", "high_value"], exclude=["churned"])
    values["content"] = "variants"
    values["variants"][0] = {"id": "a", "weight": "1", "template": "winback_push"}
    values["variants"][1] = {"id": "b", "weight": "2.5", "template": "winback_push"}
    data = yaml.safe_load(apply_form(text, posted(values)))
    assert "segment" not in data and "template" not in data
    assert data["include"] == ["lapsed_high_value", "high_value"] and data["exclude"] == ["churned"]
    assert data["variants"] == [
        {"id": "a", "weight": 1, "template": "winback_push"},
        {"id": "b", "weight": 2.5, "template": "winback_push"},
    ]


def test_each_validate_message_shows_at_the_field_it_is_about(store: DefinitionStore):
    text = (ROOT / "marketing" / "campaigns" / "europe_newsletter.yaml").read_text()
    values = form_values(text)
    values.update(priority="seven", send_time="25:00", caps_per_day="0", quiet="custom")
    values.update(quiet_start="22:00", quiet_end="late", schedule_type="weekly")
    draft = as_draft(apply_form(text, posted(values)))
    check = store.check_changes([Change(draft_file("europe_newsletter"), draft, ABSENT)])
    problems = check.problems_in(store.config_dir / draft_file("europe_newsletter"))
    at = {field_of(p): p for p in problems}
    assert "Input should be a valid integer" in at["priority"]
    assert "send_time must be 'now' or HH:MM" in at["send_time"]
    assert "greater than or equal to 1" in at["caps_per_day"]
    assert "expected a clock time HH:MM" in at["quiet_end"]
    assert "a weekly schedule needs days" in at["schedule_type"]
    where = str(store.config_dir / "drafts" / "campaigns" / "europe_newsletter.yaml")
    assert all(p.startswith(where) for p in problems)
