"""Chatwoot Agent Bot webhook: ``POST /webhooks/chatwoot/{brand}``.

Point the brand's Chatwoot Agent Bot (``outgoing_url``) here. Every request is verified before
its body is read as JSON: ``X-Chatwoot-Signature`` must be ``sha256=`` + hex HMAC-SHA256 of
``"{X-Chatwoot-Timestamp}." + raw body`` with the secret in ``connectors.chatwoot.webhook_secret_env``
(constant-time compare; timestamps older than 5 minutes refused): 401 otherwise, nothing stored.
Incoming public ``message_created`` messages become events and go through the batching ingestor
(Chatwoot's retries are idempotent by message id); everything else is answered 200 and ignored.
Replies and hand-offs go back through the delivery workers (:mod:`worker.delivery.chatwoot`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from worker import bounded_json, defaults
from worker.delivery import chatwoot
from worker.exceptions import InvalidEvent
from worker.ingest import Ingestor
from worker.web.deps import Deps

log = logging.getLogger("replyguard.web.chatwoot")


class IngestService:
    """One batching :class:`Ingestor` shared by the requests of this process (a background
    service of the app: started and stopped with it, reported by /readyz)."""

    #: a fresh ingestor after this many events keeps its memory of seen ids bounded
    ROTATE_AFTER = 100_000

    def __init__(self, deps: Deps):
        self.deps = deps
        self._lock = threading.Lock()
        self._ingestor: Ingestor | None = None
        self._count = 0

    def start(self) -> None:
        with self._lock:
            self._ingestor = Ingestor(self.deps.connection, self.deps.settings)

    def stop(self) -> None:
        with self._lock:
            if self._ingestor is not None:
                self._ingestor.close()
                self._ingestor = None

    def alive(self) -> bool:
        return True

    def submit(self, event: dict[str, Any], source: str) -> None:
        with self._lock:
            if self._ingestor is None or self._count >= self.ROTATE_AFTER:
                if self._ingestor is not None:
                    self._ingestor.close()
                self._ingestor, self._count = Ingestor(self.deps.connection, self.deps.settings), 0
            self._count += 1
            ingestor = self._ingestor
        try:
            ingestor.submit(event, source=source)
        except Exception:
            with self._lock:  # a failed ingestor is closed: the next request starts a new one
                if self._ingestor is ingestor:
                    self._ingestor = None
            raise


def routes(deps: Deps) -> list[BaseRoute]:
    service = IngestService(deps)
    deps.services["chatwoot-ingestor"] = service

    async def webhook(request: Request) -> Response:
        brand = request.path_params["brand"]
        policy = deps.policy(brand)
        connector = policy.connectors.chatwoot if policy is not None else None
        if connector is None:
            return JSONResponse({"error": f"no Chatwoot connector for brand {brand!r}"}, status_code=404)
        secret = os.environ.get(connector.webhook_secret_env, "")
        if not secret:
            log.error("brand %s: Chatwoot webhook secret variable %s is not set", brand, connector.webhook_secret_env)
            return JSONResponse({"error": "Chatwoot connector is not configured"}, status_code=503)
        if int(request.headers.get("content-length") or 0) > defaults.MAX_EVENT_BYTES:
            return JSONResponse({"error": "body too large"}, status_code=413)
        body = await request.body()
        if len(body) > defaults.MAX_EVENT_BYTES:
            return JSONResponse({"error": "body too large"}, status_code=413)
        if not chatwoot.verify_signature(secret, request.headers.get("x-chatwoot-timestamp"), body,
                                         request.headers.get("x-chatwoot-signature"),
                                         tolerance=defaults.CHATWOOT_SIGNATURE_TOLERANCE_SECONDS):
            return JSONResponse({"error": "missing or invalid X-Chatwoot-Signature"}, status_code=401)
        try:
            text = body.decode("utf-8")
            problem = bounded_json.depth_problem(text)
            data = None if problem else bounded_json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return JSONResponse({"error": f"body is not JSON: {exc}"}, status_code=400)
        if problem or not isinstance(data, dict):
            return JSONResponse({"error": str(problem) if problem else "body must be a JSON object"}, status_code=400)
        inbox = (data.get("inbox") or {}).get("id") if isinstance(data.get("inbox"), dict) else None
        if connector.inbox_ids is not None and inbox not in connector.inbox_ids:
            return JSONResponse({"ignored": f"inbox {inbox} is not handled by replyguard"})
        event = chatwoot.event_from_payload(brand, data, connector.account_id)
        if event is None:
            return JSONResponse({"ignored": "not an incoming public message"})
        try:
            await run_in_threadpool(service.submit, event, f"chatwoot {brand}")
        except InvalidEvent as exc:
            return JSONResponse({"error": "invalid message", "fields": [str(p) for p in exc.problems]},
                                status_code=422)
        return JSONResponse({"accepted": event["id"]})

    return [Route("/webhooks/chatwoot/{brand}", webhook, methods=["POST"])]
