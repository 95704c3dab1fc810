"""The approval workflow: draft -> pending_approval -> approved (<-> paused), and who may move it.

Invariants (each refused move is an error that names the rule):
- Only approved campaigns are sent (the engine's `Campaign.is_active`); a file without `status`
  is approved. Unapproved versions live in `drafts/campaigns/<id>.yaml`, which the loader checks
  but never schedules, so editing an approved campaign never touches what runs tonight.
- An editor saves and submits a draft; only an approver approves, and never their own
  submission. Approving writes the draft over `campaigns/<id>.yaml` with `status: approved`,
  `approved_by` and `approved_at`, and removes the draft, in one validated save.
- Approvers pause and resume an approved campaign (`status: paused` is not sent).
- Every move is a `DefinitionStore.save`: version-checked, validated, atomic, in the history.

The console sets the workflow fields itself (round-trip YAML keeps the editor's comments and
order); whatever an editor types in them is overwritten.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.console.store import ABSENT, Change, DefinitionStore, Stored, StoreError
from campaign_orchestrator.console.users import Role, User
from campaign_orchestrator.definitions.loader import DRAFTS_FOLDER

KIND = "campaigns"
WORKFLOW_FIELDS = ("status", "submitted_by", "submitted_at", "approved_by", "approved_at")


class NotAllowed(StoreError):
    """This user may not do this (their role, or their own submission): answered 403."""


class WrongState(StoreError):
    """The campaign is not in a state this move starts from: answered 409."""


def approved_file(campaign_id: str) -> str:
    return f"campaigns/{campaign_id}.yaml"


def draft_file(campaign_id: str) -> str:
    return f"{DRAFTS_FOLDER}/{campaign_id}.yaml"


def _fields(stored: Stored) -> dict[str, Any]:
    try:
        data = yaml.safe_load(stored.text or "")
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def with_fields(text: str, values: dict[str, Any]) -> str:
    """`text` with top-level keys set (None removes one), comments and order kept. Text that is not
    a YAML mapping comes back unchanged, so validation reports it with the loader's own message."""
    rt = YAML()
    rt.preserve_quotes = True
    try:
        doc = rt.load(text)
    except YAMLError:
        return text
    if not hasattr(doc, "keys"):
        return text
    for key, value in values.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    out = io.StringIO()
    rt.dump(doc, out)
    return out.getvalue()


@dataclass(frozen=True)
class CampaignFiles:
    campaign_id: str
    approved: Stored  # campaigns/<id>.yaml: what the night sends (if approved)
    draft: Stored  # drafts/campaigns/<id>.yaml: the next version, if any

    @property
    def approved_status(self) -> str | None:
        """approved, paused (or draft/pending if someone wrote that by hand); None if no such file."""
        return (_fields(self.approved).get("status") or "approved") if self.approved.exists else None

    @property
    def draft_status(self) -> str | None:
        return _fields(self.draft).get("status") if self.draft.exists else None

    @property
    def submitted_by(self) -> str | None:
        value = _fields(self.draft).get("submitted_by")
        return str(value) if value is not None else None

    @property
    def editable(self) -> Stored:
        """What an edit starts from: the draft if there is one, else the approved version."""
        return self.draft if self.draft.exists else self.approved


SCHEMA_HINT = "$schema=../schema/"  # the editors' hint in campaigns/; drafts sit one folder deeper
DRAFT_SCHEMA_HINT = "$schema=../../schema/"


def as_draft(text: str) -> str:
    """A campaign's text as the draft file holds it: status draft, no earlier workflow fields."""
    cleared: dict[str, Any] = dict.fromkeys(WORKFLOW_FIELDS)
    return with_fields(text, {**cleared, "status": "draft"}).replace(SCHEMA_HINT, DRAFT_SCHEMA_HINT, 1)


def _require(user: User, role: Role, doing: str) -> None:
    if not user.can(role):
        raise NotAllowed(f"{user.name} is {user.role}: {doing} needs the {role} role")


def _now() -> dt.datetime:
    return utcnow().replace(microsecond=0)


class Workflow:
    def __init__(self, store: DefinitionStore) -> None:
        self.store = store

    def files(self, campaign_id: str) -> CampaignFiles:
        return CampaignFiles(
            campaign_id, self.store.read(approved_file(campaign_id)), self.store.read(draft_file(campaign_id))
        )

    def save_draft(self, campaign_id: str, text: str, draft_version: str, user: User) -> Stored:
        """Create or update the draft (status draft: a pending draft edited goes back to draft)."""
        _require(user, "editor", "editing a campaign")
        change = Change(draft_file(campaign_id), as_draft(text), draft_version)
        return self.store.save([change], user.name, "edit", KIND, campaign_id)[0]

    def submit(self, campaign_id: str, draft_version: str, user: User) -> Stored:
        _require(user, "editor", "submitting a campaign")
        files = self.files(campaign_id)
        if files.draft_status != "draft":
            raise WrongState(f"{campaign_id} has no draft to submit (its draft is {files.draft_status or 'absent'})")
        text = with_fields(
            files.draft.text or "", {"status": "pending_approval", "submitted_by": user.name, "submitted_at": _now()}
        )
        change = Change(draft_file(campaign_id), text, draft_version)
        return self.store.save([change], user.name, "submit", KIND, campaign_id)[0]

    def approve(self, campaign_id: str, draft_version: str, user: User) -> Stored:
        """The pending draft becomes the approved campaign; the draft file is removed."""
        _require(user, "approver", "approving a campaign")
        files = self.files(campaign_id)
        if files.draft_status != "pending_approval":
            raise WrongState(f"{campaign_id} has no version waiting for approval")
        if files.submitted_by == user.name:
            raise NotAllowed(f"{user.name} submitted this version: a different approver must approve it")
        text = with_fields(
            files.draft.text or "", {"status": "approved", "approved_by": user.name, "approved_at": _now()}
        )
        changes = [
            Change(approved_file(campaign_id), text, files.approved.version),
            Change(draft_file(campaign_id), None, draft_version),
        ]
        return self.store.save(changes, user.name, "approve", KIND, campaign_id)[0]

    def pause(self, campaign_id: str, version: str, user: User) -> Stored:
        return self._set_running(campaign_id, version, user, "paused")

    def resume(self, campaign_id: str, version: str, user: User) -> Stored:
        return self._set_running(campaign_id, version, user, "approved")

    def _set_running(self, campaign_id: str, version: str, user: User, status: str) -> Stored:
        doing = "pausing" if status == "paused" else "resuming"
        _require(user, "approver", f"{doing} a campaign")
        files = self.files(campaign_id)
        wanted_from = "approved" if status == "paused" else "paused"
        if files.approved.version == ABSENT or files.approved_status != wanted_from:
            raise WrongState(
                f"{campaign_id} is {files.approved_status or 'not approved yet'}: {doing} needs {wanted_from}"
            )
        text = with_fields(files.approved.text or "", {"status": status})
        change = Change(approved_file(campaign_id), text, version)
        action = "pause" if status == "paused" else "resume"
        return self.store.save([change], user.name, action, KIND, campaign_id)[0]
