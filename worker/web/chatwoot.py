"""Chatwoot Agent Bot webhook: ``POST /webhooks/chatwoot/{brand}``.

Point the brand's Chatwoot Agent Bot (``outgoing_url``) here. Every request, in this order:

1. a body larger than ``defaults.MAX_EVENT_BYTES`` is refused (413) without being read whole;
2. ``X-Chatwoot-Signature`` must be ``sha256=`` + hex HMAC-SHA256 of ``"{X-Chatwoot-Timestamp}." +
   raw body`` with the secret in ``connectors.chatwoot.webhook_secret_env`` (constant-time compare;
   timestamps older than ``defaults.CHATWOOT_SIGNATURE_TOLERANCE_SECONDS`` refused): 401 otherwise,
   nothing stored;
3. an incoming public ``message_created`` message becomes one event (bad fields: 422, named), which
   is appended to the durable inbox (:mod:`worker.inbound.inbox`, the same stream as Meta's
   webhooks) and answered 200 at once; the inbox consumer batches it for deciding. Chatwoot's
   retries are idempotent by its message id (event id ``cw-{account}-{message id}``): one
   decision, one reply. Everything else is answered 200 and ignored. Redis unreachable: 503.

Replies and hand-offs go back through the delivery workers (:mod:`worker.delivery.chatwoot`).
"""

from __future__ import annotations

import json
import logging
import os

from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from worker import bounded_json, defaults
from worker.delivery import chatwoot
from worker.exceptions import InvalidEvent
from worker.models import parse_event
from worker.web.body import read_limited
from worker.web.deps import Deps

log = logging.getLogger("replyguard.web.chatwoot")


def routes(deps: Deps) -> list[BaseRoute]:
    webhooks = Counter(
        "replyguard_chatwoot_webhooks", "Chatwoot webhook requests by outcome", ["outcome"], registry=deps.registry
    )

    def answer(outcome: str, body: dict, status: int = 200) -> JSONResponse:
        webhooks.labels(outcome).inc()
        return JSONResponse(body, status_code=status)

    async def webhook(request: Request) -> Response:
        brand = request.path_params["brand"]
        policy = deps.policy(brand)
        connector = policy.connectors.chatwoot if policy is not None else None
        if connector is None:
            return answer("unknown_brand", {"error": f"no Chatwoot connector for brand {brand!r}"}, 404)
        secret = os.environ.get(connector.webhook_secret_env, "")
        if not secret:
            log.error("brand %s: Chatwoot webhook secret variable %s is not set", brand, connector.webhook_secret_env)
            return answer("not_configured", {"error": "Chatwoot connector is not configured"}, 503)
        body = await read_limited(request, defaults.MAX_EVENT_BYTES)
        if isinstance(body, Response):
            webhooks.labels("too_large").inc()
            return body
        if not chatwoot.verify_signature(
            secret,
            request.headers.get("x-chatwoot-timestamp"),
            body,
            request.headers.get("x-chatwoot-signature"),
            tolerance=defaults.CHATWOOT_SIGNATURE_TOLERANCE_SECONDS,
        ):
            return answer("bad_signature", {"error": "missing or invalid X-Chatwoot-Signature"}, 401)
        try:
            text = body.decode("utf-8")
            problem = bounded_json.depth_problem(text)
            data = None if problem else bounded_json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return answer("malformed", {"error": f"body is not JSON: {exc}"}, 400)
        if problem or not isinstance(data, dict):
            return answer("malformed", {"error": str(problem) if problem else "body must be a JSON object"}, 400)
        inbox_id = data["inbox"].get("id") if isinstance(data.get("inbox"), dict) else None
        if connector.inbox_ids is not None and inbox_id not in connector.inbox_ids:
            return answer("ignored", {"ignored": f"inbox {inbox_id} is not handled by replyguard"})
        raw = chatwoot.event_from_payload(brand, data, connector.account_id)
        if raw is None:
            return answer("ignored", {"ignored": "not an incoming public message"})
        try:
            event = parse_event(raw, f"chatwoot {brand}")
        except InvalidEvent as exc:
            return answer("invalid", {"error": "invalid message", "fields": [str(p) for p in exc.problems]}, 422)
        payload = json.dumps([event.model_dump(mode="json")], ensure_ascii=False).encode()
        await deps.to_inbox("events", payload)
        return answer("accepted", {"accepted": event.id})

    return [Route("/webhooks/chatwoot/{brand}", webhook, methods=["POST"])]
