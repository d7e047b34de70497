"""``/healthz`` (the process answers), ``/readyz`` (it can do its work) and ``/metrics`` (Prometheus).

``/readyz`` answers 200 only when Redis answers a PING, at least one brand's
policy is loaded, and every background service of the app is alive; otherwise
503 with the failing checks named. None of these read customer data.
"""

from __future__ import annotations

import asyncio

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from worker.exceptions import StoreError
from worker.inbound.inbox import InboxCollector
from worker.metrics import RedisStatsCollector
from worker.web.deps import Deps


def routes(deps: Deps) -> list[BaseRoute]:
    redis_metrics = CollectorRegistry()
    redis_metrics.register(
        RedisStatsCollector(deps.store, sorted(deps.brands), {b: brand.policy for b, brand in deps.brands.items()})
    )
    redis_metrics.register(InboxCollector(deps.connection, deps.store.keys))

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            await asyncio.to_thread(deps.connection.ping)
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = f"unreachable: {type(exc).__name__}"
        checks["policies"] = f"ok ({len(deps.brands)} brands)" if deps.brands else "none loaded"
        for name, service in deps.services.items():
            checks[name] = "ok" if service.alive() else "not running"
        ready = all(v.startswith("ok") for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        def render() -> bytes:
            own = generate_latest(deps.registry)
            try:
                return own + generate_latest(redis_metrics)
            except (redis.RedisError, StoreError):
                return own  # the service's own metrics still help when Redis is gone

        return Response(await asyncio.to_thread(render), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
