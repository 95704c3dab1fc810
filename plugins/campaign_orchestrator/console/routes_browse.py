"""Browsing (viewer and up): a searchable list per kind and a page per item.

An item's page shows its YAML, where it is used, its lint status (the folder's `campaigns
validate` problems that name its file, with their lines), and from the warehouse a segment's
last nights' sizes or a campaign's recent funnels. Campaign pages add the approval state,
the actions the user's role allows, and the history of changes with their diffs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from campaign_orchestrator.console.catalog import KINDS, TITLES, Item
from campaign_orchestrator.console.pages import render
from campaign_orchestrator.console.security import require
from campaign_orchestrator.console.service import Console, console
from campaign_orchestrator.console.stats import campaign_funnels, segment_sizes
from campaign_orchestrator.console.users import User
from campaign_orchestrator.definitions.base import ID_RE

router = APIRouter()
Viewer = Annotated[User, Depends(require("viewer"))]
App = Annotated[Console, Depends(console)]


class NotFound(Exception):
    """No such kind or item: 404."""


@router.get("/healthz", response_class=PlainTextResponse)
async def healthz() -> str:
    return "ok"


@router.get("/")
async def home(_user: Viewer) -> Response:
    return RedirectResponse("/campaigns", status_code=303)


@router.get("/approvals", response_class=HTMLResponse)
def approvals(request: Request, _user: Viewer, app: App) -> Response:
    pending = []
    for item in app.catalog().items:
        if item.draft and item.data.get("status") == "pending_approval":
            pending.append(item)
    return render(request, "approvals.html", pending=pending)


@router.get("/{kind}", response_class=HTMLResponse)
def listing(request: Request, kind: str, _user: Viewer, app: App, q: str = "") -> Response:
    if kind not in KINDS:
        raise NotFound(f"there is no {kind!r} here")
    check = app.check()
    items = app.catalog().of_kind(kind, q)
    rows = [(item, len(check.problems_in(app.config_dir / item.file))) for item in items]
    return render(request, "list.html", kind=kind, title=TITLES[kind], rows=rows, q=q)


def _item_context(app: Console, kind: str, item: Item) -> dict[str, Any]:
    catalog = app.catalog()
    context: dict[str, Any] = {
        "kind": kind,
        "title": TITLES[kind],
        "item": item,
        "used_by": [i for i in catalog.used_by(kind, item.id) if i.id != item.id or i.kind != kind],
        "problems": app.problems_in(item.file),
        "sizes": [],
        "funnels": [],
    }
    if kind == "segments":
        context["sizes"] = segment_sizes(app.engine, item.id, app.settings.recent_runs)
    if kind == "campaigns":
        files = app.workflow.files(item.id)
        context.update(
            files=files,
            draft_item=catalog.get(kind, item.id, draft=True),
            draft_problems=app.problems_in(files.draft.file) if files.draft.exists else [],
            history=app.history.of("campaigns", item.id),
            funnels=campaign_funnels(app.engine, item.id, app.settings.recent_runs),
        )
    return context


@router.get("/{kind}/{item_id}", response_class=HTMLResponse)
def item_page(request: Request, kind: str, item_id: str, _user: Viewer, app: App) -> Response:
    if kind not in KINDS or not ID_RE.match(item_id):
        raise NotFound(f"there is no {kind} {item_id!r}")
    catalog = app.catalog()
    item = catalog.get(kind, item_id) or (catalog.get(kind, item_id, draft=True) if kind == "campaigns" else None)
    if item is None:
        raise NotFound(f"there is no {kind[:-1]} {item_id!r} in the marketing folder")
    return render(request, "item.html", **_item_context(app, kind, item))
