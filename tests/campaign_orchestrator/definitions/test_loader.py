from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from campaign_orchestrator.definitions.loader import DefinitionError, load_definitions
from campaign_orchestrator.ingest.contracts import load_contracts, vocabulary


@pytest.fixture
def marketing(tmp_path: Path, repo: Path) -> Path:
    target = tmp_path / "marketing"
    shutil.copytree(repo / "marketing", target)
    return target


def _attributes(repo: Path):
    return vocabulary(load_contracts(repo / "data_contracts"), frozenset({"beta_testers"}))


def test_the_repository_definitions_load(repo: Path):
    defs = load_definitions(repo / "marketing", _attributes(repo))
    assert {"winback_push", "gold_inapp_offer", "europe_newsletter", "app_feature_push"} <= set(defs.campaigns)
    assert defs.settings.caps.per_customer_per_day >= 1


def test_every_problem_is_reported_with_file_and_path(marketing: Path, repo: Path):
    (marketing / "campaigns" / "broken.yaml").write_text(
        "id: broken\nsegment: nope\nchannel: push\ndestination: braze\ntemplate: winback_push\n"
        "provider_campaign_id: x\nholdout_percent: 150\n"
    )
    (marketing / "segments" / "bad.yaml").write_text(
        "segments:\n  - id: bad_rule\n    rule:\n      all:\n        - attribute: shoe_size\n          gt: 3\n"
        "        - attribute: lifetime_value\n          gt: lots\n"
    )
    with pytest.raises(DefinitionError) as err:
        load_definitions(marketing, _attributes(repo))
    text = "\n".join(err.value.problems)
    assert "broken.yaml: holdout_percent: Input should be less than or equal to 100" in text
    assert "bad.yaml:segments[0]: rule.all[0].attribute: unknown attribute 'shoe_size'" in text
    assert "bad.yaml:segments[0]: rule.all[1].gt: expected a number, got 'lots'" in text


def test_references_between_definitions_are_checked(marketing: Path, repo: Path):
    (marketing / "campaigns" / "mismatch.yaml").write_text(
        "id: mismatch\nsegment: nope\nchannel: email\ndestination: nowhere\ntemplate: winback_push\n"
    )
    with pytest.raises(DefinitionError) as err:
        load_definitions(marketing, _attributes(repo))
    text = "\n".join(err.value.problems)
    assert "segment: unknown segment 'nope'" in text
    assert "template: 'winback_push' is for push, campaign is email" in text
    assert "destination: unknown destination 'nowhere'" in text


def test_broken_yaml_names_the_line(marketing: Path, repo: Path):
    (marketing / "campaigns" / "typo.yaml").write_text("id: typo\nsegment: [unclosed\n")
    with pytest.raises(DefinitionError, match=r"typo.yaml: line \d+: not valid YAML"):
        load_definitions(marketing, _attributes(repo))


def test_duplicate_ids_are_refused(marketing: Path, repo: Path):
    shutil.copy(marketing / "campaigns" / "winback_push.yaml", marketing / "campaigns" / "copy.yaml")
    with pytest.raises(DefinitionError, match="winback_push' is also defined in"):
        load_definitions(marketing, _attributes(repo))


def test_segment_cycles_are_refused(marketing: Path, repo: Path):
    (marketing / "segments" / "loop.yaml").write_text(
        "segments:\n  - id: a\n    rule: {segment: b}\n  - id: b\n    rule: {segment: a}\n"
    )
    with pytest.raises(DefinitionError, match=r"in a cycle: segment:(a|b) -> segment:(a|b) -> segment:(a|b)"):
        load_definitions(marketing, _attributes(repo))


def test_a_conversion_filter_on_a_property_the_events_contract_lacks_is_an_error(marketing: Path, repo: Path):
    (marketing / "campaigns" / "converts.yaml").write_text(
        "id: converts\nsegment: big_spenders_90d\nchannel: push\ndestination: braze\ntemplate: winback_push\n"
        "provider_campaign_id: x\nconversion:\n  event: purchase\n  within_hours: 48\n"
        "  where:\n    - property: shoe_size\n      gt: 3\n    - property: amount\n      gt: lots\n"
    )
    with pytest.raises(DefinitionError) as err:
        load_definitions(marketing, _attributes(repo))
    text = "\n".join(err.value.problems)
    assert "converts.yaml: conversion.where[0]: no event property 'shoe_size' in the events contract" in text
    assert "conversion.where[1].gt: expected a number, got 'lots'" in text
