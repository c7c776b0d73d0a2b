"""create_app(settings): the ASGI application, its routes and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute

from api.accounts.service import Passwords
from api.calendar import calendar_routes
from api.core.broker import DramatiqJobSender, build_broker
from api.core.crypto import PersonalDataCipher
from api.core.database import Database
from api.core.jobs import JobSender
from api.core.pubsub import build_pubsub
from api.core.ratelimit import Limit, build_rate_limiter
from api.graphql.context import Services
from api.graphql.hall.media import hall_attachment_endpoint
from api.graphql.listings.media import listing_photo_endpoint
from api.graphql.view import LinliGraphQL
from api.idempotency import IdempotencyKeys
from api.media import BodyLimit, photo_endpoint, upload_body_limit, venue_photo_endpoint
from api.observability import Metrics, RequestContext, metrics_endpoint
from api.open311.routes import open311_routes
from api.operations import refresh_gauges
from api.settings import Settings
from api.tickets.photos import LocalPhotoStore

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 3.0

# A hook run for the app's lifetime, e.g. the embedded worker, relay and scheduler.
Background = Callable[[Services], AbstractAsyncContextManager[None]]


def build_services(settings: Settings, *, jobs: JobSender | None = None) -> Services:
    """The process-wide collaborators for these settings."""
    secret = settings.secret_key.get_secret_value()
    return Services(
        settings=settings,
        db=Database(settings.database_url, pool_size=settings.db_pool_size, echo=settings.db_echo),
        jobs=jobs if jobs is not None else DramatiqJobSender(build_broker(settings)),
        cipher=PersonalDataCipher(secret),
        passwords=Passwords.create(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        ),
        pubsub=build_pubsub(settings),
        photos=LocalPhotoStore(settings.media_dir),
        limiter=build_rate_limiter(settings),
    )


async def check_ready(services: Services) -> dict[str, str]:
    """Probe each dependency; returns name → "ok" or the failure."""
    status: dict[str, str] = {}

    async def ping_database() -> None:
        async with services.db.read_session() as session:
            await session.execute(text("SELECT 1"))

    try:
        # A probe must answer fast: an unreachable database is "unavailable", not a hung request.
        await asyncio.wait_for(ping_database(), timeout=READY_TIMEOUT_SECONDS)
        status["database"] = "ok"
    except Exception as exc:
        status["database"] = f"unavailable: {type(exc).__name__}"
    jobs = services.jobs
    broker = getattr(jobs, "broker", None)
    client = getattr(broker, "client", None)
    if client is None:
        status["broker"] = "ok"  # in-process queue
    else:
        try:
            await asyncio.wait_for(asyncio.to_thread(client.ping), timeout=READY_TIMEOUT_SECONDS)
            status["broker"] = "ok"
        except Exception as exc:
            status["broker"] = f"unavailable: {type(exc).__name__}"
    return status


def create_app(
    settings: Settings, *, services: Services | None = None, background: Background | None = None
) -> Starlette:
    """The Linli ASGI app: /graphql, /healthz, /readyz."""
    services = services or build_services(settings)
    graphql = LinliGraphQL(services)

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> JSONResponse:
        status = await check_ready(services)
        ready = all(v == "ok" for v in status.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", **status}, status_code=200 if ready else 503
        )

    async def root(_request: Request) -> RedirectResponse:
        return RedirectResponse("/graphql")

    metrics = Metrics()
    serve_metrics = metrics_endpoint(metrics, lambda: refresh_gauges(metrics, services))

    async def metrics_route(request: Request) -> Response:
        token = settings.metrics_token.get_secret_value()
        if token and request.headers.get("authorization", "") != f"Bearer {token}":
            return Response("Send the metrics token.", status_code=401)
        return await serve_metrics(request)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            if background is not None:
                await stack.enter_async_context(background(services))
            # Everything built at start-up lives as long as the process: move it out of the
            # collector's sight, so that each collection walks only what requests allocate.
            gc.collect()
            gc.freeze()
            try:
                yield {}
            finally:
                await services.limiter.close()
                await services.db.dispose()

    app = Starlette(
        routes=[
            Route("/", root),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_route),
            Route(
                "/graphql",
                BodyLimit(IdempotencyKeys(graphql, services), upload_body_limit(settings)),
                methods=["GET", "POST"],
            ),
            WebSocketRoute("/graphql", graphql),
            Route("/media/photos/{photo_id}", photo_endpoint(services), methods=["GET"]),
            Route("/media/venue-photos/{photo_id}", venue_photo_endpoint(services), methods=["GET"]),
            Route("/media/listing-photos/{photo_id}", listing_photo_endpoint(services), methods=["GET"]),
            Route("/media/hall-attachments/{attachment_id}", hall_attachment_endpoint(services), methods=["GET"]),
            Mount("/open311/v2", routes=open311_routes(services)),
            Mount("/calendar", routes=calendar_routes(services)),
        ],
        lifespan=lifespan,
        middleware=[
            Middleware(
                RequestContext,
                metrics=metrics,
                limiter=services.limiter,
                per_address=Limit(settings.rate_limit_per_address, 60),
                limited_routes={"/graphql", "/open311", "/calendar", "/media"},
            )
        ],
    )
    app.state.services = services
    app.state.metrics = metrics
    return app


def app_from_environment() -> Starlette:
    """Factory for `uvicorn --factory` with several API processes (production stack)."""
    from api.observability import configure_logging_for
    from api.settings import get_settings

    settings = get_settings()
    configure_logging_for(settings)
    return create_app(settings)
