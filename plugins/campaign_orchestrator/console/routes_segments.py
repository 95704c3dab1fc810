"""The segment builder: a page (form and YAML side by side), its JSON checks and sizes, and the save.

- `GET /segments/{id}/build` (editor): the page, with the file's version.
- `POST /api/segments/{id}/check` (editor): `{"rule": ...}` or `{"yaml": "..."}` -> the rule both
  ways and the `campaigns validate` problems that name the file, each with the block it is about.
- `POST /api/segments/{id}/sizes` (editor): `{"rule", "part": "blocks" | "total", "date"}` ->
  the sizes (`segments.sizes`), only for a rule that passed the check (else 422 with the problems).
- `POST /segments/{id}/build` (editor, form): saves through the store: version-checked (409 with
  the current file), validated (422, the problems at the field), atomic, in the history.
Every POST carries the session's CSRF token (the app-wide check).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from campaign_orchestrator.console.builder import (
    Checked,
    NotInFile,
    check_rule_edit,
    form_vocabulary,
    latest_import_date,
    parse_rule_yaml,
    rule_yaml,
    sizes_of,
    with_rule,
)
from campaign_orchestrator.console.catalog import Item
from campaign_orchestrator.console.pages import render
from campaign_orchestrator.console.routes_browse import NotFound
from campaign_orchestrator.console.security import require
from campaign_orchestrator.console.service import Console, console
from campaign_orchestrator.console.store import Change, Conflict, Invalid
from campaign_orchestrator.console.users import User
from campaign_orchestrator.definitions.base import ID_RE

router = APIRouter()
Editor = Annotated[User, Depends(require("editor"))]
App = Annotated[Console, Depends(console)]


def _segment(app: Console, segment_id: str) -> Item:
    item = app.catalog().get("segments", segment_id) if ID_RE.match(segment_id) else None
    if item is None:
        raise NotFound(f"there is no segment {segment_id!r} in the marketing folder")
    return item


def _page(request: Request, app: Console, item: Item, rule: Any, text: str, version: str, **extra: Any) -> Response:
    definitions = app.check().definitions
    context: dict[str, Any] = {
        "item": item,
        "rule": rule,
        "rule_text": text,
        "version": version,
        "vocabulary": form_vocabulary(app, definitions, item.id),
        "run_date": latest_import_date(app).isoformat(),
        "problems": [],
        "conflict": None,
    }
    status = int(extra.pop("status_code", 200))
    context.update(extra)
    return render(request, "builder.html", status_code=status, **context)


@router.get("/segments/{segment_id}/build", response_class=HTMLResponse)
def builder_page(request: Request, segment_id: str, _user: Editor, app: App) -> Response:
    item = _segment(app, segment_id)
    stored = app.store.read(item.file)
    rule = item.data.get("rule")
    return _page(request, app, item, rule, rule_yaml(rule), stored.version)


def _checked(app: Console, item: Item, body: dict[str, Any]) -> Checked:
    if "yaml" in body:
        rule, problem = parse_rule_yaml(str(body["yaml"]))
        if problem is not None:
            return Checked(None, None, [f"{app.config_dir / item.file}: {problem}"])
    else:
        rule = body.get("rule")
    try:
        return check_rule_edit(app, app.store.read(item.file), item.id, rule)
    except NotInFile as exc:
        return Checked(rule, None, [f"{app.config_dir / item.file}: {exc}"])


@router.post("/api/segments/{segment_id}/check")
def check_api(segment_id: str, _user: Editor, app: App, body: Annotated[dict[str, Any], Body()]) -> Response:
    return JSONResponse(_checked(app, _segment(app, segment_id), body).as_dict())


@router.post("/api/segments/{segment_id}/sizes")
def sizes_api(segment_id: str, _user: Editor, app: App, body: Annotated[dict[str, Any], Body()]) -> Response:
    item = _segment(app, segment_id)
    checked = _checked(app, item, body)
    if not checked.ok or checked.check is None or checked.check.definitions is None:
        return JSONResponse(checked.as_dict(), status_code=422)
    part = body.get("part", "all")
    if part not in ("blocks", "total", "all"):
        return JSONResponse({"error": "part is blocks, total or all"}, status_code=422)
    try:
        day = dt.date.fromisoformat(str(body["date"])) if body.get("date") else latest_import_date(app)
    except ValueError:
        return JSONResponse({"error": "date is YYYY-MM-DD"}, status_code=422)
    sizes = sizes_of(app, checked.check.definitions, item.id, checked.rule, day, part)
    return JSONResponse({**checked.as_dict(), "sizes": sizes.as_dict(), "date": day.isoformat(), "part": part})


@router.post("/segments/{segment_id}/build", response_class=HTMLResponse)
def save_rule(
    request: Request,
    segment_id: str,
    user: Editor,
    app: App,
    version: Annotated[str, Form()],
    rule_text: Annotated[str, Form()],
) -> Response:
    item = _segment(app, segment_id)
    text = rule_text.replace("\r\n", "\n")
    rule, problem = parse_rule_yaml(text)
    stored = app.store.read(item.file)
    if problem is not None:
        return _page(request, app, item, None, text, version, problems=[problem], status_code=422)
    try:
        new_text = with_rule(stored.text or "", item.id, rule)
        app.store.save([Change(item.file, new_text, version)], user.name, "edit", "segments", item.id)
    except Conflict as exc:
        return _page(request, app, item, rule, text, exc.current.version, conflict=exc, status_code=409)
    except Invalid as exc:
        mine = [p for p in exc.problems if p.startswith(f"{app.config_dir / item.file}:")] or exc.problems
        return _page(request, app, item, rule, text, version, problems=mine, status_code=422)
    except NotInFile as exc:
        return _page(request, app, item, rule, text, version, problems=[str(exc)], status_code=409)
    return RedirectResponse(f"/segments/{item.id}", status_code=303)
