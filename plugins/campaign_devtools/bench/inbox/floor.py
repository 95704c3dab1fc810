"""The floor the inbox service is measured against: the same feed query with no logic around it.

A bare Starlette app: GET /v1/customers/{customer_id}/feed runs the SQL the service's
`store.inbox_query` compiles to (compiled once here, so the floor pays neither query building nor
auth, caps, feed rules or pagination) through the same driver and fixed pool (`create_warehouse_engine`:
SQLAlchemy, psycopg 3, pool_pre_ping) and returns the rows as orjson; POST .../events does one
plain INSERT into engagement_events. Sync handlers in Starlette's thread pool, as the service's
routes are, and `serve` starts uvicorn with the very settings `campaigns inbox serve` uses, so
the two differ only in what the service does per request.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
import orjson
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.inbox.settings import DEFAULT_POOL_SIZE
from campaign_orchestrator.inbox.store import FEED_QUERY, feed_params
from campaign_orchestrator.warehouse.engine import create_warehouse_engine

STORE_ENV = "BENCH_INBOX_FLOOR_STORE"
_NOW = dt.datetime(1900, 1, 1)  # any time: only the parameter names are read
INSERT_EVENT = (
    "INSERT INTO engagement_events (customer_id, event_id, message_id, campaign_id, variant, event, at, received_at) "
    "VALUES (%(customer_id)s, %(event_id)s, %(message_id)s, 'floor', 'floor', %(event)s, %(at)s, %(at)s)"
)


class FeedQuery:
    """The service's `FEED_QUERY` compiled once for the engine's dialect; `params` binds a customer and now."""

    def __init__(self, engine: Engine) -> None:
        compiled = FEED_QUERY.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        named = set(feed_params(None, _NOW, None))
        self.fixed = {k: v for k, v in compiled.params.items() if k not in named}

    def params(self, customer_id: str, now: dt.datetime) -> dict[str, Any]:
        return {**self.fixed, **feed_params(customer_id, now, None)}


def create_app(store_url: str, pool_size: int = DEFAULT_POOL_SIZE) -> Starlette:
    engine = create_warehouse_engine(store_url, pool_size=pool_size)
    query = FeedQuery(engine)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = pool_size  # as the service does
        yield
        engine.dispose()

    def feed(request: Request) -> Response:
        params = query.params(request.path_params["customer_id"], utcnow())
        with engine.connect() as conn:
            rows = [dict(r) for r in conn.exec_driver_sql(query.sql, params).mappings()]
        return Response(orjson.dumps(rows), media_type="application/json")

    def insert(customer_id: str, events: list[dict[str, Any]]) -> None:
        now = utcnow()
        rows = [
            {
                "customer_id": customer_id,
                "event_id": e["id"],
                "message_id": e["message_id"],
                "event": e["type"],
                "at": now,
            }
            for e in events
        ]
        with engine.begin() as conn:
            conn.exec_driver_sql(INSERT_EVENT, rows[0] if len(rows) == 1 else rows)

    async def events(request: Request) -> Response:
        batch = orjson.loads(await request.body())["events"]
        await run_in_threadpool(insert, request.path_params["customer_id"], batch)
        return Response(orjson.dumps({"results": [{"id": e["id"], "outcome": "accepted"} for e in batch]}))

    routes = [
        Route("/v1/customers/{customer_id}/feed", feed, methods=["GET"]),
        Route("/v1/customers/{customer_id}/events", events, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def app_from_environment() -> Starlette:
    """uvicorn's factory (every worker imports it), as the service's `app_from_environment` is."""
    return create_app(os.environ[STORE_ENV])


def serve(host: str, port: int, store_url: str, workers: int) -> None:
    """uvicorn.run with the arguments `campaigns inbox serve` passes (cli/inbox.py)."""
    import uvicorn

    os.environ[STORE_ENV] = store_url
    uvicorn.run(
        "campaign_devtools.bench.inbox.floor:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="info",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    serve(args.host, args.port, args.store, args.workers)


if __name__ == "__main__":
    main()
