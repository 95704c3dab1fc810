"""Who is calling, and may they: the session's user, role checks and CSRF, for every route.

Invariants:
- Every page and API names the least role it needs (`require("viewer" | "editor" | "approver")`);
  the role is read from the users file on each request, never trusted from the cookie, so a
  removed user or a lowered role takes effect at once.
- Every state-changing request (anything but GET, HEAD, OPTIONS) carries the session's CSRF
  token, as the form field `csrf_token` or the `X-CSRF-Token` header (for fetch()); otherwise 403
  and nothing happens. The check is an app-wide dependency, so a new route cannot forget it.
- The session cookie is signed (Starlette's SessionMiddleware, itsdangerous) with
  `CAMPAIGNS_CONSOLE_SECRET`; it holds the user's name and the CSRF token, nothing else.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from fastapi import Request

from campaign_orchestrator.console.users import Role, User, Users

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class NotLoggedIn(Exception):
    """No (or no longer a valid) user in the session: pages redirect to the login page."""


class Forbidden(Exception):
    """The user's role does not allow this, or the CSRF token is missing or wrong: 403."""


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (the login form gets one before anyone logs in)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> None:
    """App-wide dependency: refuse a state-changing request without the session's token."""
    if request.method in SAFE_METHODS:
        return
    expected = request.session.get("csrf")
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not isinstance(expected, str) or not given or not hmac.compare_digest(expected, given):
        raise Forbidden("this request did not carry the page's security token (CSRF): reload the page and try again")


def log_in(request: Request, user: User) -> None:
    request.session.clear()  # a fresh session (and CSRF token) for every login
    request.session["user"] = user.name
    csrf_token(request)


def log_out(request: Request) -> None:
    request.session.clear()


def session_user(request: Request) -> User | None:
    users: Users = request.app.state.console.settings.users
    name = request.session.get("user")
    return users.get(name if isinstance(name, str) else None)


def require(role: Role) -> Callable[[Request], Awaitable[User]]:
    """A dependency: the calling user, if they have `role` (or a greater one)."""

    async def dependency(request: Request) -> User:
        user = session_user(request)
        if user is None:
            raise NotLoggedIn()
        if not user.can(role):
            raise Forbidden(f"{user.name} is {user.role}: this needs the {role} role")
        return user

    return dependency
