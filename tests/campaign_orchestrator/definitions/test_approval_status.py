"""Approval on the engine side: only approved campaigns are active; drafts are checked, never scheduled."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from campaign_orchestrator.definitions.loader import DefinitionError, load_definitions
from campaign_orchestrator.ingest.contracts import load_contracts, vocabulary

DAY = dt.date(2026, 11, 20)


@pytest.fixture
def marketing(tmp_path: Path, repo: Path) -> Path:
    target = tmp_path / "marketing"
    shutil.copytree(repo / "marketing", target)
    return target


def _vocabulary(repo: Path):
    return vocabulary(load_contracts(repo / "data_contracts"), frozenset({"beta_testers"}))


def _with_status(marketing: Path, campaign: str, status: str) -> None:
    path = marketing / "campaigns" / f"{campaign}.yaml"
    path.write_text(path.read_text() + f"status: {status}\n")


def test_a_campaign_without_status_is_approved_and_active(repo: Path):
    defs = load_definitions(repo / "marketing", _vocabulary(repo))
    camp = defs.campaigns["winback_push"]
    assert camp.status is None and camp.approved
    assert "winback_push" in {c.id for c in defs.active_campaigns(DAY)}


@pytest.mark.parametrize("status", ["draft", "pending_approval", "paused"])
def test_only_approved_campaigns_are_active(marketing: Path, repo: Path, status: str):
    _with_status(marketing, "winback_push", status)
    defs = load_definitions(marketing, _vocabulary(repo))
    assert not defs.campaigns["winback_push"].is_active(DAY)
    assert "winback_push" not in {c.id for c in defs.active_campaigns(DAY)}


def test_a_draft_is_checked_but_never_scheduled(marketing: Path, repo: Path):
    drafts = marketing / "drafts" / "campaigns"
    drafts.mkdir(parents=True)
    text = (marketing / "campaigns" / "winback_push.yaml").read_text()
    (drafts / "winback_push.yaml").write_text(text.replace("priority:", "status: pending_approval\npriority:", 1))
    new_text = text.replace("id: winback_push", "id: brand_new_push")
    (drafts / "brand_new_push.yaml").write_text(new_text + "status: draft\n")
    defs = load_definitions(marketing, _vocabulary(repo))
    assert set(defs.drafts) == {"winback_push", "brand_new_push"}
    assert "brand_new_push" not in defs.campaigns  # a draft is not a campaign the night sees
    active = {c.id: c for c in defs.active_campaigns(DAY)}
    assert "brand_new_push" not in active
    assert active["winback_push"].status is None  # the approved version runs, not the draft


def test_a_broken_draft_is_reported_with_its_file(marketing: Path, repo: Path):
    drafts = marketing / "drafts" / "campaigns"
    drafts.mkdir(parents=True)
    text = (marketing / "campaigns" / "winback_push.yaml").read_text()
    (drafts / "winback_push.yaml").write_text(text.replace("segment:", "status: approved\nsegment: nope #", 1))
    with pytest.raises(DefinitionError) as err:
        load_definitions(marketing, _vocabulary(repo))
    text = "\n".join(err.value.problems)
    assert "drafts/campaigns/winback_push.yaml: status: a draft is draft or pending_approval" in text
    assert "drafts/campaigns/winback_push.yaml: segment: unknown segment 'nope'" in text
