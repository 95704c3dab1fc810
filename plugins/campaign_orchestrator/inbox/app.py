"""The inbox service: a FastAPI app over the message store (`campaigns inbox serve`).

Stateless between requests (the store holds everything; rate-limit windows live in memory or in
Redis), so it scales by running more processes behind a load balancer. Its store is its own
connection: the warehouse by default, but a production warehouse (Snowflake, BigQuery) is not an
OLTP store, so point it at PostgreSQL fed by the night's delivery.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from campaign_orchestrator.access_log import AccessLog
from campaign_orchestrator.inbox.access import Gate
from campaign_orchestrator.inbox.erasure_routes import router as erasure_router
from campaign_orchestrator.inbox.feed import BadFeedRequest
from campaign_orchestrator.inbox.marketing import MarketingFiles
from campaign_orchestrator.inbox.pinpoint_routes import router as pinpoint_router
from campaign_orchestrator.inbox.routes import router
from campaign_orchestrator.inbox.service import InboxService
from campaign_orchestrator.inbox.settings import InboxSettings
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, ensure_schema

log = logging.getLogger(__name__)


def create_app(settings: InboxSettings) -> FastAPI:
    engine = create_warehouse_engine(settings.store_url, pool_size=settings.pool_size)
    ensure_schema(engine)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Request threads = store connections: more threads would only queue for a connection.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.pool_size
        yield
        engine.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="Campaign inbox",
        version="1",
        description="In-app messages for the apps: feed, engagement events, caps at display, preferences, "
        "and Pinpoint-compatible GetInAppMessages / PutEvents.",
    )
    app.state.inbox = InboxService(
        settings, engine, Gate(settings), MarketingFiles(settings.config_dir, settings.reload_seconds)
    )
    app.include_router(router)
    app.include_router(pinpoint_router)
    app.include_router(erasure_router)

    @app.exception_handler(BadFeedRequest)
    async def _bad_request(_request: Request, exc: BadFeedRequest) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    app.add_middleware(AccessLog, logger="campaign_orchestrator.inbox.access")
    return app


STORE_ENV = "CAMPAIGNS_INBOX_STORE_URL"


def app_from_environment() -> FastAPI:
    """uvicorn's factory (`--workers N` imports the app in every worker): settings from the env."""
    import os
    from pathlib import Path

    from campaign_orchestrator.inbox.settings import secrets_from_environment
    from campaign_orchestrator.warehouse.engine import DEFAULT_WAREHOUSE_URL

    if not logging.getLogger().handlers:  # a spawned worker (--workers N): the access log needs a handler
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secret, server_key = secrets_from_environment()
    settings = InboxSettings(
        store_url=os.environ.get(STORE_ENV) or os.environ.get("CAMPAIGNS_WAREHOUSE_URL") or DEFAULT_WAREHOUSE_URL,
        signing_secret=secret,
        server_key=server_key,
        config_dir=Path(os.environ.get("CAMPAIGNS_CONFIG_DIR", "marketing")),
        rate_limit=os.environ.get("CAMPAIGNS_INBOX_RATE_LIMIT", "120/minute"),
        rate_limit_storage=os.environ.get("CAMPAIGNS_INBOX_RATE_LIMIT_STORAGE", "memory://"),
        reload_seconds=float(os.environ.get("CAMPAIGNS_INBOX_RELOAD_SECONDS", "5")),
        pool_size=int(os.environ.get("CAMPAIGNS_INBOX_POOL_SIZE", "16")),
    )
    return create_app(settings)
