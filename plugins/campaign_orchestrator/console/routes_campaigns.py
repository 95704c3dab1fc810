"""Editing and approving campaigns: the HTML forms over `approval.Workflow`.

Every form posts the CSRF token and the version of the file it showed; the workflow decides
what is allowed (roles, no self-approval, states) and the store refuses stale versions and
invalid folders, so these routes only translate outcomes into pages: a conflict shows the
current content beside what the editor typed (409), an invalid definition shows the
`campaigns validate` problems under the field (422), a refusal says which rule (403).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from campaign_orchestrator.console.approval import draft_file
from campaign_orchestrator.console.pages import render
from campaign_orchestrator.console.routes_browse import NotFound
from campaign_orchestrator.console.security import require
from campaign_orchestrator.console.service import Console, console
from campaign_orchestrator.console.store import Conflict, Invalid
from campaign_orchestrator.console.users import User
from campaign_orchestrator.definitions.base import ID_RE

router = APIRouter(prefix="/campaigns")
Editor = Annotated[User, Depends(require("editor"))]
Approver = Annotated[User, Depends(require("approver"))]
App = Annotated[Console, Depends(console)]
Version = Annotated[str, Form()]

NEW_CAMPAIGN = """# yaml-language-server: $schema=../../schema/campaigns.schema.json
id: {id}
name: A new campaign
segment: high_value
channel: push
destination: braze
provider_campaign_id: CHANGE-ME
template: winback_push
priority: 100
send_time: "18:00"
"""


def _campaign_id(campaign_id: str) -> str:
    if not ID_RE.match(campaign_id):
        raise NotFound(f"{campaign_id!r} is not a campaign id (lower case letters, digits and _)")
    return campaign_id


def _done(campaign_id: str) -> Response:
    return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)


@router.get("/new", response_class=HTMLResponse)
def new_campaign(request: Request, _user: Editor, campaign_id: str = "") -> Response:
    if campaign_id and ID_RE.match(campaign_id):
        return RedirectResponse(f"/campaigns/{campaign_id}/edit", status_code=303)
    error = "an id is lower case letters, digits and _, starting with a letter" if campaign_id else None
    return render(request, "new.html", error=error, campaign_id=campaign_id)


@router.get("/{campaign_id}/edit", response_class=HTMLResponse)
def edit_page(request: Request, campaign_id: str, _user: Editor, app: App) -> Response:
    files = app.workflow.files(_campaign_id(campaign_id))
    start = files.editable
    text = start.text if start.text is not None else NEW_CAMPAIGN.format(id=campaign_id)
    return render(
        request,
        "edit.html",
        campaign_id=campaign_id,
        text=text,
        version=files.draft.version,
        files=files,
        problems=[],
        conflict=None,
    )


@router.post("/{campaign_id}/edit", response_class=HTMLResponse)
def save_edit(
    request: Request, campaign_id: str, user: Editor, app: App, version: Version, text: Annotated[str, Form()]
) -> Response:
    _campaign_id(campaign_id)
    try:
        app.workflow.save_draft(campaign_id, text.replace("\r\n", "\n"), version, user)
    except Conflict as exc:
        files = app.workflow.files(campaign_id)
        return render(
            request,
            "edit.html",
            status_code=409,
            campaign_id=campaign_id,
            text=text,
            version=files.draft.version,
            files=files,
            problems=[],
            conflict=exc,
        )
    except Invalid as exc:
        files = app.workflow.files(campaign_id)
        return render(
            request,
            "edit.html",
            status_code=422,
            campaign_id=campaign_id,
            text=text,
            version=version,
            files=files,
            problems=exc.problems,
            conflict=None,
            draft_path=str(app.config_dir / draft_file(campaign_id)),
        )
    return _done(campaign_id)


@router.post("/{campaign_id}/submit")
def submit(campaign_id: str, user: Editor, app: App, version: Version) -> Response:
    app.workflow.submit(_campaign_id(campaign_id), version, user)
    return _done(campaign_id)


@router.post("/{campaign_id}/approve")
def approve(campaign_id: str, user: Approver, app: App, version: Version) -> Response:
    app.workflow.approve(_campaign_id(campaign_id), version, user)
    return _done(campaign_id)


@router.post("/{campaign_id}/pause")
def pause(campaign_id: str, user: Approver, app: App, version: Version) -> Response:
    app.workflow.pause(_campaign_id(campaign_id), version, user)
    return _done(campaign_id)


@router.post("/{campaign_id}/resume")
def resume(campaign_id: str, user: Approver, app: App, version: Version) -> Response:
    app.workflow.resume(_campaign_id(campaign_id), version, user)
    return _done(campaign_id)
