"""Meta webhooks: ``GET /webhooks/meta`` (the subscription handshake) and ``POST /webhooks/meta``.

One callback URL serves WhatsApp Cloud API, Messenger, Instagram messaging and
Instagram / Facebook Page comments (the body's ``object`` says which).

POST, in this order, before anything of the body is read as JSON:

1. a body larger than ``defaults.MAX_REQUEST_BYTES`` is refused (413) without being read whole;
2. ``X-Hub-Signature-256: sha256=<hex>`` must be the HMAC-SHA256 of the raw bytes with the
   app secret of one of the brands' Meta channels (constant-time compare); missing or wrong:
   401, nothing stored, nothing enqueued;
3. the raw body is appended to the durable inbox (with the name of the secret's variable) and
   200 is answered at once. The inbox consumer parses, adapts, routes and decides
   asynchronously (:mod:`worker.inbound.inbox`), and only keeps what the signing app's brand
   uses that app for.
"""

from __future__ import annotations


from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from worker.web.body import read_limited
from worker.web.deps import Deps

#: Longest hub.challenge echoed back (Meta sends a short number).
MAX_CHALLENGE_CHARS = 256


def routes(deps: Deps) -> list[BaseRoute]:
    if deps.inbound is None:
        raise ValueError("worker.web.meta needs deps.inbound (built by create_app)")
    secrets = deps.inbound.meta
    webhooks = Counter(
        "replyguard_webhooks", "Webhook requests by outcome", ["source", "outcome"], registry=deps.registry
    )

    async def handshake(request: Request) -> Response:
        params = request.query_params
        challenge = params.get("hub.challenge", "")
        if (
            params.get("hub.mode") == "subscribe"
            and secrets.verify_token_ok(params.get("hub.verify_token"))
            and 0 < len(challenge) <= MAX_CHALLENGE_CHARS
            and challenge.isprintable()
        ):
            webhooks.labels("meta", "handshake").inc()
            return PlainTextResponse(challenge)
        webhooks.labels("meta", "handshake_refused").inc()
        return JSONResponse(
            {"error": "verification failed: wrong hub.mode, hub.verify_token or hub.challenge"}, status_code=403
        )

    async def receive(request: Request) -> Response:
        body = await read_limited(request)
        if isinstance(body, Response):
            webhooks.labels("meta", "too_large").inc()
            return body
        header = request.headers.get("x-hub-signature-256")
        if not header:
            webhooks.labels("meta", "unsigned").inc()
            return JSONResponse({"error": "missing X-Hub-Signature-256"}, status_code=401)
        signer = secrets.signer(body, header)
        if signer is None:
            webhooks.labels("meta", "bad_signature").inc()
            return JSONResponse({"error": "X-Hub-Signature-256 does not match the body"}, status_code=401)
        await deps.to_inbox("meta", body, secret_env=signer)
        webhooks.labels("meta", "accepted").inc()
        return PlainTextResponse("EVENT_RECEIVED")

    return [Route("/webhooks/meta", handshake, methods=["GET"]), Route("/webhooks/meta", receive, methods=["POST"])]
