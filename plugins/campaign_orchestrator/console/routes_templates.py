"""The template editor: one template's YAML beside a live preview for real customers, and the save.

- `GET /templates/{id}/edit` (editor): the template's own entry from its file as YAML, the file's
  version, a locale picker (the default content's, each translation, or each customer's own), a
  customer-ids field (empty: a sample) and the preview area.
- `POST /api/templates/{id}/preview` (editor): `{"yaml", "locale", "customers"}` -> the edit put
  into its file and checked like `campaigns validate` (the problems naming the file), and when it
  passes the preview (`as_html`'s page, drawn by `preview_template`) with a line per customer.
  An unknown customer or a malformed request is 422 with its message; a customer's render error
  is a card of the preview, not an error of the request.
- `POST /templates/{id}/edit` (editor, form): saves through the store: version-checked (409 with
  the current entry), validated (422, the problems under the text), atomic, in the history.
Every POST carries the session's CSRF token (the app-wide check).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from campaign_orchestrator.console.catalog import Item
from campaign_orchestrator.console.pages import render
from campaign_orchestrator.console.routes_browse import NotFound
from campaign_orchestrator.console.security import require
from campaign_orchestrator.console.service import Console, console
from campaign_orchestrator.console.store import Change, Conflict, Invalid
from campaign_orchestrator.console.template_editor import (
    BadRequest,
    NotInFile,
    check_template_edit,
    edited_file,
    entry_text,
    page_context,
    preview_of,
    preview_request,
)
from campaign_orchestrator.console.users import User
from campaign_orchestrator.definitions.base import ID_RE
from campaign_orchestrator.render.preview import PreviewError

router = APIRouter()
Editor = Annotated[User, Depends(require("editor"))]
App = Annotated[Console, Depends(console)]


def _template(app: Console, template_id: str) -> Item:
    item = app.catalog().get("templates", template_id) if ID_RE.match(template_id) else None
    if item is None:
        raise NotFound(f"there is no template {template_id!r} in the marketing folder")
    return item


def _page(request: Request, app: Console, item: Item, text: str, version: str, **extra: Any) -> Response:
    context: dict[str, Any] = {**page_context(app, item), "text": text, "version": version}
    context.update(problems=[], conflict=None, current=None)
    status = int(extra.pop("status_code", 200))
    context.update(extra)
    return render(request, "template_editor.html", status_code=status, **context)


@router.get("/templates/{template_id}/edit", response_class=HTMLResponse)
def editor_page(request: Request, template_id: str, _user: Editor, app: App) -> Response:
    item = _template(app, template_id)
    stored = app.store.read(item.file)
    try:
        text = entry_text(stored.text or "", item.id)
    except NotInFile as exc:  # the round-trip reader refuses what the browser's reader took
        problem = f"{app.config_dir / item.file}: {exc}".replace("\n", " ")
        return _page(request, app, item, item.yaml_text, stored.version, problems=[problem])
    return _page(request, app, item, text, stored.version)


@router.post("/api/templates/{template_id}/preview")
def preview_api(template_id: str, _user: Editor, app: App, body: Annotated[dict[str, Any], Body()]) -> Response:
    item = _template(app, template_id)
    checked = check_template_edit(app, app.store.read(item.file), item.id, str(body.get("yaml", "")))
    answer: dict[str, Any] = {"ok": checked.definitions is not None, "problems": checked.problems, "html": None}
    if checked.definitions is None:
        return JSONResponse(answer)
    try:
        customer_ids, locale = preview_request(body)
        answer.update(preview_of(app, checked.definitions, item.id, customer_ids, locale))
    except (BadRequest, PreviewError) as exc:
        return JSONResponse({**answer, "error": str(exc)}, status_code=422)
    return JSONResponse(answer)


@router.post("/templates/{template_id}/edit", response_class=HTMLResponse)
def save_template(
    request: Request,
    template_id: str,
    user: Editor,
    app: App,
    version: Annotated[str, Form()],
    text: Annotated[str, Form()],
) -> Response:
    item = _template(app, template_id)
    text = text.replace("\r\n", "\n")
    stored = app.store.read(item.file)
    new_text, problems = edited_file(app, stored, item.id, text)
    if new_text is None:  # not YAML, not this template, or gone from the file
        return _page(request, app, item, text, version, problems=problems, status_code=422)
    try:  # the store checks the version, then validates the folder with the edit, then writes
        app.store.save([Change(item.file, new_text, version)], user.name, "edit", "templates", item.id)
    except Conflict as exc:
        try:
            current = entry_text(exc.current.text or "", item.id)
        except NotInFile:
            current = exc.current.text or ""
        return _page(request, app, item, text, exc.current.version, conflict=exc, current=current, status_code=409)
    except Invalid as exc:
        mine = [p for p in exc.problems if p.startswith(f"{app.config_dir / item.file}:")] or exc.problems
        return _page(request, app, item, text, version, problems=mine, status_code=422)
    return RedirectResponse(f"/templates/{item.id}", status_code=303)
