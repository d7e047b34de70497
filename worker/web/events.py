"""``POST /v1/events``: replyguard's own event contract over HTTP, one event or a list.

Authentication, per brand (the variables are named in the brand's policy, ``api:``):

* ``Authorization: Bearer <token>`` (``api.token_env``), or
* ``X-Replyguard-Brand: <brand>``, ``X-Replyguard-Timestamp: <unix seconds>`` and
  ``X-Replyguard-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body>``
  (``api.signing_secret_env``); a timestamp more than
  ``defaults.SIGNATURE_TOLERANCE_SECONDS`` away is refused.

Answers: 202 ``{"accepted": n, "ids": [...]}`` once the events are in the durable inbox;
401 unauthenticated; 403 an event names another brand; 413 body over
``defaults.MAX_REQUEST_BYTES``; 422 ``{"error", "invalid": [{"index", "problems": [{"field",
"reason"}]}]}`` naming every bad field of every bad event (nothing of the request is
enqueued: fix and resend it whole; resending is safe, events are idempotent by id).
"""

from __future__ import annotations

from collections.abc import Sequence
import json
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from worker import bounded_json, defaults
from worker.exceptions import InvalidEvent, Problem
from worker.models import parse_event
from worker.web.body import read_limited
from worker.web.deps import Deps


def _invalid(problems: Sequence[tuple[int | None, list[Problem]]]) -> JSONResponse:
    return JSONResponse(
        {
            "error": "invalid events; nothing was enqueued",
            "invalid": [
                {"index": index, "problems": [{"field": p.where, "reason": p.reason} for p in ps]}
                for index, ps in problems
            ],
        },
        status_code=422,
    )


def routes(deps: Deps) -> list[BaseRoute]:
    if deps.inbound is None:
        raise ValueError("worker.web.events needs deps.inbound (built by create_app)")
    keys = deps.inbound.api

    def authenticate(request: Request, body: bytes) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return keys.brand_for_token(auth[7:].strip())
        brand = request.headers.get("x-replyguard-brand")
        stamp = request.headers.get("x-replyguard-timestamp", "")
        signature = request.headers.get("x-replyguard-signature", "")
        if not brand or not stamp.isdigit() or not signature.startswith("sha256="):
            return None
        if abs(time.time() - int(stamp)) > defaults.SIGNATURE_TOLERANCE_SECONDS:
            return None
        return brand if keys.signature_ok(brand, stamp.encode() + b"." + body, signature[7:]) else None

    async def post_events(request: Request) -> Response:
        body = await read_limited(request)
        if isinstance(body, Response):
            return body
        brand = authenticate(request, body)
        if brand is None:
            return JSONResponse(
                {"error": "authentication required: a brand's bearer token or a valid X-Replyguard-Signature"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="replyguard"'},
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _invalid([(None, [Problem("(body)", f"not valid UTF-8: {exc.reason} at byte {exc.start}")])])
        problem = bounded_json.depth_problem(text, defaults.MAX_JSON_DEPTH + 1)
        if problem is not None:
            return _invalid([(None, [problem])])
        try:
            data = bounded_json.loads(text)
        except json.JSONDecodeError as exc:
            return _invalid(
                [(None, [Problem("(json)", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")])]
            )
        items = data if isinstance(data, list) else [data]
        if not items:
            return _invalid([(None, [Problem("(body)", "an empty list: send one event or a list of events")])])
        if len(items) > defaults.MAX_EVENTS_PER_REQUEST:
            return _invalid(
                [
                    (
                        None,
                        [
                            Problem(
                                "(body)", f"{len(items)} events; at most {defaults.MAX_EVENTS_PER_REQUEST} per request"
                            )
                        ],
                    )
                ]
            )
        events, bad = [], []
        for index, item in enumerate(items):
            try:
                events.append(parse_event(item, f"event {index}"))
            except InvalidEvent as exc:
                bad.append((index, exc.problems))
        if bad:
            return _invalid(bad)
        foreign = [i for i, e in enumerate(events) if e.brand != brand]
        if foreign:
            return JSONResponse(
                {"error": f"authenticated as brand {brand!r}; events {foreign} name another brand"}, status_code=403
            )
        payload = json.dumps([e.model_dump(mode="json") for e in events], ensure_ascii=False).encode()
        await deps.to_inbox("events", payload)
        return JSONResponse({"accepted": len(events), "ids": [e.id for e in events]}, status_code=202)

    return [Route("/v1/events", post_events, methods=["POST"])]
