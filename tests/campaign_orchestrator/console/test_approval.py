"""The approval rules: who may move a campaign where, and what the night then sends."""

from __future__ import annotations

import datetime as dt

import pytest

from campaign_orchestrator.console.approval import NotAllowed, Workflow, WrongState, approved_file
from campaign_orchestrator.console.store import DefinitionStore
from campaign_orchestrator.definitions.loader import load_definitions
from tests.campaign_orchestrator.console.conftest import user

DAY = dt.date(2026, 11, 20)
CAMPAIGN = "winback_push"


def night(store: DefinitionStore):
    """What the night's loader sees in the folder."""
    return load_definitions(store.config_dir, store.checker._contracts()[0])


def drafted(store: DefinitionStore, by: str = "ana") -> Workflow:
    flow = Workflow(store)
    files = flow.files(CAMPAIGN)
    flow.save_draft(
        CAMPAIGN, files.approved.text.replace("priority: 10", "priority: 11"), files.draft.version, user(by)
    )  # type: ignore[union-attr]
    return flow


def test_the_approved_version_keeps_running_while_a_new_draft_exists(store: DefinitionStore):
    flow = drafted(store)
    flow.submit(CAMPAIGN, flow.files(CAMPAIGN).draft.version, user("ana"))
    defs = night(store)
    running = {c.id: c for c in defs.active_campaigns(DAY)}[CAMPAIGN]
    assert running.priority == 10 and running.status is None
    assert defs.drafts[CAMPAIGN].priority == 11 and defs.drafts[CAMPAIGN].status == "pending_approval"


def test_an_editor_cannot_approve_and_nobody_approves_their_own_submission(store: DefinitionStore):
    flow = drafted(store)
    flow.submit(CAMPAIGN, flow.files(CAMPAIGN).draft.version, user("bo"))  # an approver edits and submits
    version = flow.files(CAMPAIGN).draft.version
    with pytest.raises(NotAllowed, match="needs the approver role"):
        flow.approve(CAMPAIGN, version, user("ana"))
    with pytest.raises(NotAllowed, match="a different approver must approve it"):
        flow.approve(CAMPAIGN, version, user("bo"))
    assert flow.files(CAMPAIGN).draft_status == "pending_approval"  # nothing moved
    flow.approve(CAMPAIGN, version, user("cy"))
    files = flow.files(CAMPAIGN)
    assert not files.draft.exists and files.approved_status == "approved"
    camp = night(store).campaigns[CAMPAIGN]
    assert (camp.priority, camp.status, camp.approved_by, camp.submitted_by) == (11, "approved", "cy", "bo")
    assert camp.approved_at is not None and camp.is_active(DAY)
    actions = [h["action"] for h in store.history.of("campaigns", CAMPAIGN)]  # type: ignore[union-attr]
    assert actions == ["approve", "approve", "submit", "edit"]  # the approval wrote two files


def test_a_viewer_cannot_edit_and_only_submitted_drafts_are_approved(store: DefinitionStore):
    flow = Workflow(store)
    files = flow.files(CAMPAIGN)
    with pytest.raises(NotAllowed, match="viewer"):
        flow.save_draft(CAMPAIGN, files.approved.text or "", files.draft.version, user("vi"))
    flow = drafted(store)
    with pytest.raises(WrongState, match="no version waiting"):
        flow.approve(CAMPAIGN, flow.files(CAMPAIGN).draft.version, user("bo"))


def test_a_paused_campaign_is_not_sent_until_resumed(store: DefinitionStore):
    flow = Workflow(store)
    with pytest.raises(NotAllowed):
        flow.pause(CAMPAIGN, flow.files(CAMPAIGN).approved.version, user("ana"))
    flow.pause(CAMPAIGN, flow.files(CAMPAIGN).approved.version, user("bo"))
    assert CAMPAIGN not in {c.id for c in night(store).active_campaigns(DAY)}
    assert "# " in (store.config_dir / approved_file(CAMPAIGN)).read_text()  # its comments are kept
    with pytest.raises(WrongState):
        flow.pause(CAMPAIGN, flow.files(CAMPAIGN).approved.version, user("bo"))
    flow.resume(CAMPAIGN, flow.files(CAMPAIGN).approved.version, user("cy"))
    assert CAMPAIGN in {c.id for c in night(store).active_campaigns(DAY)}


def test_editing_a_submitted_draft_sends_it_back_to_draft(store: DefinitionStore):
    flow = drafted(store)
    flow.submit(CAMPAIGN, flow.files(CAMPAIGN).draft.version, user("ana"))
    files = flow.files(CAMPAIGN)
    flow.save_draft(
        CAMPAIGN,
        files.draft.text.replace("status: pending_approval", "status: approved"),
        files.draft.version,
        user("eli"),
    )  # type: ignore[union-attr]
    files = flow.files(CAMPAIGN)
    assert files.draft_status == "draft" and files.submitted_by is None  # typing a status changes nothing
