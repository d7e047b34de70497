"""Per-request metrics of the service process (pure ASGI middleware, no per-request allocations to speak of).

``replyguard_http_requests_total{route,method,status}`` and
``replyguard_http_request_seconds{route}`` (histogram); ``route`` is the route's
path template (``/webhooks/meta``), never the raw URL, so labels stay bounded.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Histogram buckets (seconds) of request latency; the webhook goal is p99 < 50 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class RequestMetrics:
    def __init__(self, app: ASGIApp, registry: CollectorRegistry):
        self.app = app
        self.requests = Counter(
            "replyguard_http_requests", "HTTP requests served", ["route", "method", "status"], registry=registry
        )
        self.latency = Histogram(
            "replyguard_http_request_seconds",
            "Time to answer an HTTP request",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "(unmatched)"
            self.requests.labels(name, scope["method"], str(status[0])).inc()
            self.latency.labels(name).observe(time.perf_counter() - started)
