"""The ASGI app factory of ``replyguard serve``.

Why Starlette on uvicorn: a small ASGI toolkit (routing, requests, responses,
lifespan, a TestClient) with no magic of its own, so every route is a plain
function and every dependency is passed in; uvicorn is the standard ASGI server.

Adding routes: write a module ``worker/web/<name>.py`` with ::

    def routes(deps: Deps) -> list[BaseRoute]:
        async def thing(request: Request) -> Response: ...   # small route functions
        return [Route("/thing", thing, methods=["GET"])]

and add its dotted name to :data:`ROUTERS` below (one line). ``deps`` carries the
settings, the Redis connection, the loaded brands and the store; a router that
runs something in the background registers it in ``deps.services`` (started and
stopped with the app, reported by ``/readyz``).

Errors: a :class:`~worker.exceptions.StoreError` becomes 503, any other
unexpected exception 500, both as JSON without a traceback (the traceback goes
to the log only).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import AsyncIterator

import redis
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from worker.exceptions import StoreError
from worker.settings import Settings
from worker.web.deps import Deps
from worker.web.observe import RequestMetrics

log = logging.getLogger("replyguard.web")

#: Route modules, in order; each exposes ``routes(deps) -> list[BaseRoute]``.
#: The webhook routes come first: routes are matched in order, and they carry the traffic.
ROUTERS: tuple[str, ...] = (
    "worker.web.meta",  # GET/POST /webhooks/meta
    "worker.web.chatwoot",  # /webhooks/chatwoot/{brand} (Agent Bot)
    "worker.web.events",  # POST /v1/events
    "worker.web.health",
    "worker.web.pages",  # /, /static, the shared page layout and nav
    "worker.web.auth",  # /login, /logout; the page()/api() guards
    "worker.web.review_api",  # /api/review/...
    "worker.web.review_pages",  # /review, /review/items/..., /review/auto, /review/rejected
    "worker.web.dashboard",  # /dashboard/{brand}: KPIs per day, CSV export
)


def build_deps(settings: Settings, *, connection: redis.Redis | None = None, brands=None) -> Deps:
    """Connect and load everything the routes need (a broken policy stops here, as for the worker)."""
    from worker.brands import load_brands
    from worker.connection import connect
    from worker.inbound.channels import inbound_auth
    from worker.inbound.inbox import InboxProcess
    from worker.store import Store

    if brands is None:
        brands = load_brands(settings)
    if connection is None:
        connection = connect(settings)
    deps = Deps(
        settings=settings,
        connection=connection,
        brands=brands,
        store=Store(connection, settings.key_prefix),
        registry=CollectorRegistry(),
        inbound=inbound_auth(brands),
    )
    deps.services["inbox"] = InboxProcess(settings)
    return deps


def create_app(
    settings: Settings, *, connection: redis.Redis | None = None, brands=None, routers: tuple[str, ...] = ROUTERS
) -> Starlette:
    """Build the service. ``connection``/``brands`` default to ``connect(settings)``/``load_brands(settings)``."""
    deps = build_deps(settings, connection=connection, brands=brands)
    routes: list[BaseRoute] = []
    for name in routers:
        routes.extend(importlib.import_module(name).routes(deps))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started = []
        try:
            for name, service in deps.services.items():
                service.start()
                started.append(service)
                log.info("started %s", name)
            yield
        finally:
            for service in reversed(started):
                service.stop()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, StoreError: _store_error, Exception: _crash},
    )
    app.state.deps = deps
    app.add_middleware(RequestMetrics, registry=deps.registry)
    return app


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    status = getattr(exc, "status_code", 500)
    return JSONResponse(
        {"error": getattr(exc, "detail", "error")}, status_code=status, headers=getattr(exc, "headers", None)
    )


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"error": "storage unavailable, try again later"}, status_code=503, headers={"Retry-After": "5"}
    )


async def _crash(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path)
    return JSONResponse({"error": "internal error"}, status_code=500)
