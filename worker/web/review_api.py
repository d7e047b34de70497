"""The review app's JSON API (what the pages' buttons call; scripts can call it too).

All routes need a session (401 without); POSTs need the ``X-CSRF-Token`` header
(403 without). Items of a brand the user may not see answer 404, exactly like
items that do not exist.

=======================================================  =========================================
route                                                    what
=======================================================  =========================================
``GET  /api/review/queue?brand=&platform=&…``            open escalations + counts (filters: queue page)
``GET  /api/review/items/{brand}/{id}``                  everything the item page shows (+ audit)
``GET  /api/review/templates/{brand}``                   approved templates and their variables
``POST /api/review/items/{brand}/{id}/claim``            lock the item to me (409 if someone holds it)
``POST …/release``                                       unlock (the holder; a manager/admin any claim)
``POST …/preview``     ``{template, variables}``         the filled template, or the missing variables
``POST …/reply``       ``{template, variables, resolve}`` send an approved template
``POST …/send``        ``{text, resolve}``               send text a person wrote (no ``{placeholders}``)
``POST …/hide`` ``…/unhide``                             moderation (moderator, manager, admin)
``POST …/not-spam`` ``…/not-abusive``                    correct, unhide, resolve
``POST …/labels``      ``{intent, spam, abuse, note}``   record the right labels (eval --replay reads them)
``POST …/route``       ``{role, priority}``              re-route
``POST …/resolve``     ``{note}``                        close without a reply
``POST …/reopen``      ``{note}``                        undo an automated outcome: back to the queue
``POST …/tag`` ``…/untag`` ``{tag}``; ``…/block`` ``…/unblock``   the author
``POST /api/review/bulk``  ``{action, items, params}``   one action on many ``brand/id`` items
=======================================================  =========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from worker.accounts import Session, User
from worker.audit import AuditLog, platform_answer
from worker.review import FilterError, QueueFilters, ReviewReader
from worker.review_actions import ActionError, ReviewActions
from worker.web.auth import api, json_body
from worker.web.deps import Deps

SLA_PROVIDER_KEY = "review.sla"


@dataclass
class Review:
    reader: ReviewReader
    actions: ReviewActions
    audit: AuditLog

    def brands_of(self, deps: Deps, user: User) -> list[str]:
        return user.visible(sorted(deps.brands))

    def item(self, deps: Deps, user: User, brand: str, message_id: str) -> dict[str, Any] | None:
        if not user.may_see(brand):
            return None
        data = self.reader.item(brand, message_id, deps.brands.get(brand))
        if data is None:
            return None
        data["audit"] = [
            {**entry.as_dict(), "platform_answer": platform_answer(entry, data["deliveries"])}
            for entry in self.audit.for_item(brand, message_id)
        ]
        return data


def sla_tracker(deps: Deps) -> Any:
    """The SLA timers of the app's brands (:class:`worker.sla.tracker.SlaTracker`)."""
    from worker.sla.tracker import SlaTracker

    return SlaTracker(deps.store, {name: brand.policy for name, brand in deps.brands.items()})


def sla_views(tracker: Any):
    """(brand, message id) pairs -> each item's SLA view (state, clocks with due times) or None."""

    def lookup(pairs: list[tuple[str, str]]) -> list[dict[str, Any] | None]:
        by_brand: dict[str, list[str]] = {}
        for brand, mid in pairs:
            by_brand.setdefault(brand, []).append(mid)
        views = {(b, m): v for b, mids in by_brand.items() for m, v in tracker.views(b, mids).items()}
        return [views.get(pair) for pair in pairs]

    return lookup


def review_of(deps: Deps) -> Review:
    """The app's review reader/actions, made once. SLA state comes from the SLA timers (another
    provider may be put in ``deps.extras['review.sla']`` before the routes are built)."""
    review = deps.extras.get(__name__)
    if review is None:
        audit = AuditLog(deps.connection, deps.settings.key_prefix)
        tracker = sla_tracker(deps)
        sla = deps.extras.get(SLA_PROVIDER_KEY) or sla_views(tracker)
        review = Review(
            ReviewReader(deps.store, sla=sla), ReviewActions(deps.store, deps.brands, audit, sla=tracker), audit
        )
        deps.extras[__name__] = review
    return review


def _error(status: int, message: str, **detail: Any) -> JSONResponse:
    return JSONResponse({"error": message, **detail}, status_code=status)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def routes(deps: Deps) -> list[BaseRoute]:
    review = review_of(deps)
    acts = review.actions

    async def queue(request: Request, user: User, session: Session) -> Response:
        try:
            filters = QueueFilters.from_query(request.query_params)
        except FilterError as exc:
            return _error(400, str(exc))
        brands = review.brands_of(deps, user)
        view = await run_in_threadpool(review.reader.queue, brands, filters, user.name)
        return JSONResponse(
            {
                "total": view.total,
                "items": [i.as_dict() for i in view.items],
                "counts": {k: dict(v) for k, v in view.counts.items()},
            }
        )

    async def item(request: Request, user: User, session: Session) -> Response:
        brand, mid = request.path_params["brand"], request.path_params["message_id"]
        data = await run_in_threadpool(review.item, deps, user, brand, mid)
        if data is None:
            return _error(404, f"no item {brand}/{mid}")
        return JSONResponse(data)

    async def templates(request: Request, user: User, session: Session) -> Response:
        brand = request.path_params["brand"]
        if not user.may_see(brand) or brand not in deps.brands:
            return _error(404, f"no brand {brand}")
        return JSONResponse({"templates": acts.templates(brand)})

    # one small function per action: (user, brand, id, body) -> result
    handlers = {
        "claim": lambda u, b, m, body: acts.claim(u, b, m),
        "release": lambda u, b, m, body: acts.release(u, b, m),
        "preview": lambda u, b, m, body: acts.preview(u, b, m, str(body.get("template", "")), _variables(body)),
        "reply": lambda u, b, m, body: acts.reply_template(
            u, b, m, str(body.get("template", "")), _variables(body), resolve=body.get("resolve", True) is not False
        ),
        "send": lambda u, b, m, body: acts.send_text(
            u, b, m, body.get("text"), resolve=body.get("resolve", True) is not False
        ),
        "hide": lambda u, b, m, body: acts.hide(u, b, m, True),
        "unhide": lambda u, b, m, body: acts.hide(u, b, m, False),
        "not-spam": lambda u, b, m, body: acts.not_label(u, b, m, "not_spam"),
        "not-abusive": lambda u, b, m, body: acts.not_label(u, b, m, "not_abusive"),
        "labels": lambda u, b, m, body: acts.correct_labels(
            u,
            b,
            m,
            intent=_text(body.get("intent")) or None,
            spam=body.get("spam"),
            abuse=_text(body.get("abuse")) or None,
            note=_text(body.get("note")) or None,
        ),
        "route": lambda u, b, m, body: acts.reroute(
            u, b, m, _text(body.get("role")) or None, _text(body.get("priority")) or None
        ),
        "resolve": lambda u, b, m, body: acts.resolve(u, b, m, _text(body.get("note"))),
        "reopen": lambda u, b, m, body: acts.reopen(u, b, m, _text(body.get("note"))),
        "tag": lambda u, b, m, body: acts.tag_author(u, b, m, body.get("tag")),
        "untag": lambda u, b, m, body: acts.tag_author(u, b, m, body.get("tag"), remove=True),
        "block": lambda u, b, m, body: acts.block_author(u, b, m, True),
        "unblock": lambda u, b, m, body: acts.block_author(u, b, m, False),
    }

    async def action(request: Request, user: User, session: Session) -> Response:
        name = request.path_params["action"]
        handler = handlers.get(name)
        if handler is None:
            return _error(404, f"no action {name!r}; actions: {', '.join(handlers)}")
        try:
            body = await json_body(request)
        except ValueError as exc:
            return _error(400, str(exc))
        brand, mid = request.path_params["brand"], request.path_params["message_id"]
        try:
            result = await run_in_threadpool(handler, user, brand, mid, body)
        except ActionError as exc:
            return _error(exc.status, str(exc), **exc.detail)
        return JSONResponse({"ok": True, **result})

    async def bulk(request: Request, user: User, session: Session) -> Response:
        try:
            body = await json_body(request)
        except ValueError as exc:
            return _error(400, str(exc))
        params = body.get("params") if isinstance(body.get("params"), dict) else {}
        try:
            results = await run_in_threadpool(acts.bulk, user, str(body.get("action", "")), body.get("items"), params)
        except ActionError as exc:
            return _error(exc.status, str(exc))
        return JSONResponse({"ok": all(r["ok"] for r in results), "results": results})

    return [
        Route("/api/review/queue", api(deps, queue), methods=["GET"]),
        Route("/api/review/templates/{brand}", api(deps, templates), methods=["GET"]),
        Route("/api/review/items/{brand}/{message_id:path}", api(deps, item), methods=["GET"]),
        Route("/api/review/items/{brand}/{message_id:path}/{action}", api(deps, action), methods=["POST"]),
        Route("/api/review/bulk", api(deps, bulk), methods=["POST"]),
    ]


def _variables(body: dict[str, Any]) -> dict[str, str]:
    raw = body.get("variables")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ActionError(422, "variables: must be an object of name -> text")
    return {str(k): v for k, v in raw.items()}
