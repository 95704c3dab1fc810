"""The marketer console: a FastAPI app of server-rendered pages (`campaigns console`).

`create_app(settings)` wires the parts: the signed session cookie, the app-wide CSRF check,
the access log without customer data, the static files served from the package (no CDN), the
routers, and the error pages (401 -> the login page, 403, 404, 409). A new page is a router
whose routes take `require(role)` and `Depends(console)` and answer with `pages.render`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from campaign_orchestrator.access_log import AccessLog
from campaign_orchestrator.console.approval import NotAllowed, WrongState
from campaign_orchestrator.console.pages import render
from campaign_orchestrator.console.routes_auth import router as auth_router
from campaign_orchestrator.console.routes_browse import NotFound
from campaign_orchestrator.console.routes_browse import router as browse_router
from campaign_orchestrator.console.routes_campaigns import router as campaigns_router
from campaign_orchestrator.console.routes_segments import router as segments_router
from campaign_orchestrator.console.routes_templates import router as templates_router
from campaign_orchestrator.console.security import Forbidden, NotLoggedIn, check_csrf
from campaign_orchestrator.console.service import Console
from campaign_orchestrator.console.settings import ConsoleSettings
from campaign_orchestrator.console.store import Conflict, StoreError
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, ensure_schema

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "campaigns_console"


def _error(request: Request, status: int, title: str, message: str) -> Response:
    return render(request, "error.html", status_code=status, title=title, message=message)


def add_error_pages(app: FastAPI) -> None:
    @app.exception_handler(NotLoggedIn)
    async def _login(request: Request, _exc: NotLoggedIn) -> Response:
        if request.method == "GET":
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return _error(request, 401, "Not logged in", "log in first")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return _error(request, 403, "Not allowed", str(exc))

    @app.exception_handler(NotAllowed)
    async def _not_allowed(request: Request, exc: NotAllowed) -> Response:
        return _error(request, 403, "Not allowed", str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return _error(request, 404, "Not found", str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> Response:
        return _error(request, 409, "Changed meanwhile", str(exc))

    @app.exception_handler(WrongState)
    async def _state(request: Request, exc: WrongState) -> Response:
        return _error(request, 409, "Not possible now", str(exc))

    @app.exception_handler(StoreError)
    async def _refused(request: Request, exc: StoreError) -> Response:
        return _error(request, 422, "Refused", str(exc))


def create_app(settings: ConsoleSettings) -> FastAPI:
    engine = create_warehouse_engine(settings.warehouse_url)
    ensure_schema(engine)
    app = FastAPI(
        title="Campaign console",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(check_csrf)],
    )
    app.state.console = Console.create(settings, engine)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # /campaigns/new, /templates/{id}/edit, ... before browsing's /{kind}/{id}
    for router in (auth_router, campaigns_router, segments_router, templates_router, browse_router):
        app.include_router(router)
    add_error_pages(app)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret,
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age,
        same_site="strict",
        https_only=settings.https_only,
    )
    app.add_middleware(AccessLog, logger="campaign_orchestrator.console.access")
    return app


def app_from_environment() -> FastAPI:
    """uvicorn's factory: settings from the environment `campaigns console` set."""
    from campaign_orchestrator.console.settings import settings_from_environment

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(settings_from_environment())
