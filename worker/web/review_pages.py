"""The review app's pages: the queue, one item, the auto-actioned and rejected views.

Plain server-rendered HTML (templates in ``worker/web/templates``) with a little
vanilla JS (``static/review.js``): the buttons call the JSON API of
:mod:`worker.web.review_api`; the queue polls ``/review/rows`` for new
escalations every :data:`~worker.defaults.QUEUE_POLL_SECONDS`.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from worker import defaults
from worker.accounts import Session, User
from worker.review import AGES, FilterError, QueueFilters
from worker.web.auth import page
from worker.web.deps import Deps
from worker.web.pages import add_nav, render
from worker.web.review_api import review_of

BAND_NAMES = {"lt50": "< 0.50", "50-70": "0.50–0.70", "70-90": "0.70–0.90", "ge90": "≥ 0.90"}


def routes(deps: Deps) -> list[BaseRoute]:
    review = review_of(deps)
    add_nav(deps, "Queue", "/review", 10)
    add_nav(deps, "Auto-actioned", "/review/auto", 20)
    add_nav(deps, "Rejected", "/review/rejected", 30)

    def _queue_context(request: Request, user: User) -> dict:
        filters = QueueFilters.from_query(request.query_params)
        view = review.reader.queue(review.brands_of(deps, user), filters, user.name)
        return {
            "filters": filters,
            "view": view,
            "choices": review.reader.choices(view),
            "brands": review.brands_of(deps, user),
            "bands": BAND_NAMES,
            "ages": list(AGES),
            "poll_seconds": defaults.QUEUE_POLL_SECONDS,
            "sla_enabled": review.reader.sla is not None,
        }

    async def queue(request: Request, user: User, session: Session) -> Response:
        try:
            context = await run_in_threadpool(_queue_context, request, user)
        except FilterError as exc:
            return render(deps, request, "error.html", {"message": str(exc)}, user=user, session=session, status=400)
        return render(deps, request, "queue.html", context, user=user, session=session)

    async def rows(request: Request, user: User, session: Session) -> Response:
        try:
            context = await run_in_threadpool(_queue_context, request, user)
        except FilterError as exc:
            return HTMLResponse(str(exc), status_code=400)
        response = render(deps, request, "_rows.html", context, user=user, session=session)
        response.headers["X-Queue-Total"] = str(context["view"].total)
        return response

    async def item(request: Request, user: User, session: Session) -> Response:
        brand, mid = request.path_params["brand"], request.path_params["message_id"]
        data = await run_in_threadpool(review.item, deps, user, brand, mid)
        if data is None:
            return render(
                deps,
                request,
                "error.html",
                {"message": f"No item {brand}/{mid}."},
                user=user,
                session=session,
                status=404,
            )
        config = deps.brands.get(brand)
        context = {
            "item": data,
            "templates": review.actions.templates(brand),
            "intents": list(config.intent.labels) if config else [],
            "priorities": defaults.PRIORITIES,
            "moderates": user.moderates,
        }
        return render(deps, request, "item.html", context, user=user, session=session)

    async def auto(request: Request, user: User, session: Session) -> Response:
        rows_ = await run_in_threadpool(review.reader.auto_actioned, review.brands_of(deps, user))
        return render(
            deps, request, "auto.html", {"rows": rows_, "moderates": user.moderates}, user=user, session=session
        )

    async def rejected(request: Request, user: User, session: Session) -> Response:
        rows_ = await run_in_threadpool(review.reader.rejected, review.brands_of(deps, user), user.role == "admin")
        return render(deps, request, "rejected.html", {"rows": rows_}, user=user, session=session)

    return [
        Route("/review", page(deps, queue), methods=["GET"]),
        Route("/review/rows", page(deps, rows), methods=["GET"]),
        Route("/review/auto", page(deps, auto), methods=["GET"]),
        Route("/review/rejected", page(deps, rejected), methods=["GET"]),
        Route("/review/items/{brand}/{message_id:path}", page(deps, item), methods=["GET"]),
    ]
