"""Logging in and out. A failed login says only that the name or password is wrong (never which)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from campaign_orchestrator.console.pages import render
from campaign_orchestrator.console.security import log_in, log_out
from campaign_orchestrator.console.service import Console, console

router = APIRouter()


def _local(target: str) -> str:
    """Only a path on this site (no open redirect to another host)."""
    parts = urlsplit(target)
    return target if target.startswith("/") and not target.startswith("//") and not parts.netloc else "/"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", next=_local(next), error=None, name="")


@router.post("/login")
async def login(
    request: Request,
    app: Annotated[Console, Depends(console)],
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    user = app.settings.users.authenticate(name.strip(), password)
    if user is None:
        error = "wrong name or password"
        return render(request, "login.html", status_code=401, next=_local(next), error=error, name=name)
    log_in(request, user)
    return RedirectResponse(_local(next), status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    log_out(request)
    return RedirectResponse("/login", status_code=303)
