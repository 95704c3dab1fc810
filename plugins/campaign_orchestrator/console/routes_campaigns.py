"""Editing and approving campaigns: the form and YAML editors, the dry-run funnel, the calendar,
and the approval buttons, all over `approval.Workflow`.

- `GET/POST /campaigns/{id}/form` (editor): the campaign as a form (`campaign_form`); saving
  writes the fields into the draft's YAML and saves it like the YAML editor does.
- `POST /api/campaigns/{id}/check` (editor, JSON `{"fields": {...}}`): the YAML the form makes
  and `campaigns validate`'s problems, each with the field it is about.
- `POST /api/campaigns/{id}/plan` (editor, JSON `{"fields", "date"}`): the funnel `campaigns plan`
  computes for that date with this unsaved version in place (`run.dry_plan`: rolled back).
- `GET /campaigns/calendar?start=` (viewer): the next 14 days' sends (`calendar`).

Every form posts the CSRF token and the version of the file it showed; the workflow decides
what is allowed (roles, no self-approval, states) and the store refuses stale versions and
invalid folders, so these routes only translate outcomes into pages: a conflict shows the
current content beside what the editor typed (409), an invalid definition shows the
`campaigns validate` problems under the field (422), a refusal says which rule (403).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from campaign_orchestrator.clock import today
from campaign_orchestrator.console.approval import CampaignFiles, as_draft, draft_file
from campaign_orchestrator.console.builder import latest_import_date
from campaign_orchestrator.console.calendar import DAYS, build_calendar
from campaign_orchestrator.console.campaign_form import apply_form, field_of, form_values
from campaign_orchestrator.console.checks import FolderCheck
from campaign_orchestrator.console.pages import render
from campaign_orchestrator.console.routes_browse import NotFound
from campaign_orchestrator.console.security import require
from campaign_orchestrator.console.service import Console, console
from campaign_orchestrator.console.store import Change, Conflict, Invalid
from campaign_orchestrator.console.users import User
from campaign_orchestrator.definitions.base import ID_RE
from campaign_orchestrator.run.dry_plan import PlanBusy, dry_plan, funnel_rows, with_candidate
from campaign_orchestrator.targeting.funnel import REASONS

router = APIRouter()
Viewer = Annotated[User, Depends(require("viewer"))]
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


@router.get("/campaigns/new", response_class=HTMLResponse)
def new_campaign(request: Request, _user: Editor, campaign_id: str = "") -> Response:
    if campaign_id and ID_RE.match(campaign_id):
        return RedirectResponse(f"/campaigns/{campaign_id}/form", status_code=303)
    error = "an id is lower case letters, digits and _, starting with a letter" if campaign_id else None
    return render(request, "new.html", error=error, campaign_id=campaign_id)


@router.get("/campaigns/{campaign_id}/edit", response_class=HTMLResponse)
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


@router.post("/campaigns/{campaign_id}/edit", response_class=HTMLResponse)
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


@router.post("/campaigns/{campaign_id}/submit")
def submit(campaign_id: str, user: Editor, app: App, version: Version) -> Response:
    app.workflow.submit(_campaign_id(campaign_id), version, user)
    return _done(campaign_id)


@router.post("/campaigns/{campaign_id}/approve")
def approve(campaign_id: str, user: Approver, app: App, version: Version) -> Response:
    app.workflow.approve(_campaign_id(campaign_id), version, user)
    return _done(campaign_id)


@router.post("/campaigns/{campaign_id}/pause")
def pause(campaign_id: str, user: Approver, app: App, version: Version) -> Response:
    app.workflow.pause(_campaign_id(campaign_id), version, user)
    return _done(campaign_id)


@router.post("/campaigns/{campaign_id}/resume")
def resume(campaign_id: str, user: Approver, app: App, version: Version) -> Response:
    app.workflow.resume(_campaign_id(campaign_id), version, user)
    return _done(campaign_id)


# ---------------------------------------------------------------- the form editor


def _start_text(files: CampaignFiles, campaign_id: str) -> str:
    start = files.editable
    return start.text if start.text is not None else NEW_CAMPAIGN.format(id=campaign_id)


def _choices(app: Console) -> dict[str, Any]:
    """What the form's pickers offer: segments, templates by channel, destinations, from the folder."""
    catalog = app.catalog()
    definitions = app.check().definitions
    templates: dict[str, list[str]] = {}
    for item in catalog.of_kind("templates"):
        templates.setdefault(str(item.data.get("channel", "")), []).append(item.id)
    destinations = sorted(definitions.settings.destinations) if definitions is not None else []
    return {
        "segments": sorted(i.id for i in catalog.of_kind("segments")),
        "templates": {k: sorted(v) for k, v in templates.items()},
        "destinations": destinations,
        "channels": ["push", "email", "in_app"],
        "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    }


def _by_field(problems: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in problems:
        found.setdefault(field_of(problem) or "_", []).append(problem)
    return found


def _form_page(
    request: Request, app: Console, campaign_id: str, values: dict[str, Any], version: str, **extra: Any
) -> Response:
    problems: list[str] = extra.pop("problems", [])
    status = int(extra.pop("status_code", 200))
    return render(
        request,
        "campaign_form.html",
        status_code=status,
        campaign_id=campaign_id,
        values=values,
        version=version,
        files=app.workflow.files(campaign_id),
        choices=_choices(app),
        problems=problems,
        field_problems=_by_field(problems),
        run_date=latest_import_date(app).isoformat(),
        conflict=extra.pop("conflict", None),
        **extra,
    )


@router.get("/campaigns/{campaign_id}/form", response_class=HTMLResponse)
def form_page(request: Request, campaign_id: str, _user: Editor, app: App) -> Response:
    files = app.workflow.files(_campaign_id(campaign_id))
    return _form_page(request, app, campaign_id, form_values(_start_text(files, campaign_id)), files.draft.version)


def _posted(form: Any) -> dict[str, str | list[str]]:
    """A posted form as the field map `campaign_form` reads (lists for the multi-value fields)."""
    multi = {"include", "exclude", "schedule_days"}
    return {key: [str(v) for v in form.getlist(key)] if key in multi else str(form.get(key)) for key in form}


@router.post("/campaigns/{campaign_id}/form", response_class=HTMLResponse)
async def save_form(request: Request, campaign_id: str, user: Editor, app: App) -> Response:
    _campaign_id(campaign_id)
    fields = _posted(await request.form())
    version = str(fields.pop("version", ""))
    files = app.workflow.files(campaign_id)
    text = apply_form(_start_text(files, campaign_id), fields)
    try:
        app.workflow.save_draft(campaign_id, text, version, user)
    except Conflict as exc:
        values = form_values(_start_text(app.workflow.files(campaign_id), campaign_id))
        return _form_page(request, app, campaign_id, values, exc.current.version, conflict=exc, status_code=409)
    except Invalid as exc:
        mine = [p for p in exc.problems if draft_file(campaign_id) in p] or exc.problems
        return _form_page(request, app, campaign_id, form_values(text), version, problems=mine, status_code=422)
    return _done(campaign_id)


def _checked_form(app: Console, campaign_id: str, body: dict[str, Any]) -> tuple[str, FolderCheck, list[str]]:
    """The draft text the form makes, the folder check with it in place, and this file's problems."""
    fields = body.get("fields")
    if not isinstance(fields, dict):
        fields = {}
    files = app.workflow.files(campaign_id)
    text = as_draft(apply_form(_start_text(files, campaign_id), fields))
    check = app.store.check_changes([Change(files.draft.file, text, files.draft.version)])
    return text, check, check.problems_in(app.config_dir / files.draft.file)


def _problems_json(problems: list[str]) -> list[dict[str, Any]]:
    return [{"message": p, "field": field_of(p)} for p in problems]


@router.post("/api/campaigns/{campaign_id}/check")
def check_form(campaign_id: str, _user: Editor, app: App, body: Annotated[dict[str, Any], Body()]) -> Response:
    text, _check, problems = _checked_form(app, _campaign_id(campaign_id), body)
    return JSONResponse({"ok": not problems, "yaml": text, "problems": _problems_json(problems)})


@router.post("/api/campaigns/{campaign_id}/plan")
def plan_form(campaign_id: str, _user: Editor, app: App, body: Annotated[dict[str, Any], Body()]) -> Response:
    """The night's funnel with this version in place, computed and rolled back (`run.dry_plan`)."""
    text, check, problems = _checked_form(app, _campaign_id(campaign_id), body)
    if problems or check.definitions is None or campaign_id not in check.definitions.drafts:
        found = problems or check.problems
        return JSONResponse({"ok": False, "yaml": text, "problems": _problems_json(found)}, status_code=422)
    try:
        day = dt.date.fromisoformat(str(body["date"])) if body.get("date") else latest_import_date(app)
    except ValueError:
        return JSONResponse({"ok": False, "error": "date is YYYY-MM-DD"}, status_code=422)
    candidate = check.definitions.drafts[campaign_id]
    definitions = with_candidate(check.definitions, candidate)
    scheduled = candidate.scheduled_on(day)
    try:
        funnels = dry_plan(app.engine, definitions, day) if scheduled else {}
    except PlanBusy as exc:
        return JSONResponse({"ok": False, "error": str(exc)}, status_code=409)
    return JSONResponse(
        {
            "ok": True,
            "date": day.isoformat(),
            "scheduled": scheduled,
            "campaign": funnel_rows({k: v for k, v in funnels.items() if k == campaign_id}),
            "others": funnel_rows({k: v for k, v in funnels.items() if k != campaign_id}),
            "reasons": list(REASONS),
        }
    )


@router.get("/campaigns/calendar", response_class=HTMLResponse)
def calendar_page(request: Request, _user: Viewer, app: App, start: str = "") -> Response:
    try:
        first = dt.date.fromisoformat(start) if start else today()
    except ValueError:
        raise NotFound(f"{start!r} is not a date (YYYY-MM-DD)") from None
    definitions = app.check().definitions
    if definitions is None:
        problems = app.check().problems
        return render(
            request,
            "error.html",
            status_code=422,
            title="The folder does not validate",
            message="; ".join(problems[:5]),
        )
    calendar = build_calendar(definitions, first, DAYS)
    earlier, later = first - dt.timedelta(days=DAYS), first + dt.timedelta(days=DAYS)
    return render(request, "calendar.html", calendar=calendar, earlier=earlier, later=later)
