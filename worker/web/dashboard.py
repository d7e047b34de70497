"""The KPI dashboard: ``/dashboard/{brand}`` (charts per day) and ``/dashboard/{brand}/export.csv``.

Signed-in users only (the review app's session, :func:`worker.web.auth.page`), and only for
brands they may see: any other brand answers 404, the same as a brand that does not exist.
The figures are :mod:`worker.kpi`'s; the charts are inline SVG (:mod:`worker.web.charts`).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from worker import kpi
from worker.accounts import Session, User
from worker.sla.tracker import SlaTracker
from worker.web import charts
from worker.web.auth import page
from worker.web.deps import Deps
from worker.web.pages import add_nav, render

#: Periods the dashboard offers (days); the default is the first.
PERIODS = (14, 7, 30, 90)


def _days(request: Request) -> int | None:
    raw = request.query_params.get("days", str(PERIODS[0]))
    return int(raw) if raw.isdigit() and int(raw) in PERIODS else None


def _charts(rows: list[kpi.DayKpi]) -> list[dict[str, str]]:
    labels = [r.day.strftime("%m-%d") for r in rows]

    def series(name: str) -> list[Any]:
        return [getattr(r, name) for r in rows]

    return [
        {
            "title": "Average first response",
            "svg": charts.chart(
                "Average first-response time per day",
                labels,
                series("avg_first_response_seconds"),
                fmt=charts.duration,
                color="#2f5bd3",
                steps=charts.DURATION_STEPS,
            ),
        },
        {
            "title": "Resolution rate",
            "svg": charts.chart(
                "Share of the day's escalations resolved",
                labels,
                series("resolution_rate"),
                fmt=charts.percent,
                top=1.0,
                color="#1f7a3d",
            ),
        },
        {
            "title": "Automation rate",
            "svg": charts.chart(
                "Share of messages decided without a person",
                labels,
                series("automation_rate"),
                fmt=charts.percent,
                top=1.0,
                color="#7c3aed",
            ),
        },
        {
            "title": "Messages per agent",
            "svg": charts.chart(
                "Replies per agent who replied",
                labels,
                series("messages_per_agent"),
                kind="bar",
                fmt=charts.number,
                color="#0e7490",
            ),
        },
        {
            "title": "Oldest open escalation (end of day)",
            "svg": charts.chart(
                "Age of the oldest open escalation at the end of each day",
                labels,
                series("backlog_oldest_age_seconds"),
                fmt=charts.duration,
                color="#c65d00",
                steps=charts.DURATION_STEPS,
            ),
        },
        {
            "title": "SLA compliance",
            "svg": charts.chart(
                "Settled escalations that missed no SLA target",
                labels,
                series("sla_compliance"),
                fmt=charts.percent,
                top=1.0,
                color="#b3261e",
            ),
        },
        {
            "title": "Messages",
            "svg": charts.chart(
                "Messages decided per day", labels, series("messages"), kind="bar", fmt=charts.number, color="#37607f"
            ),
        },
        {
            "title": "SLA breaches",
            "svg": charts.chart(
                "SLA targets missed per day",
                labels,
                series("sla_breaches"),
                kind="bar",
                fmt=charts.number,
                color="#b3261e",
            ),
        },
    ]


def _summary(rows: list[kpi.DayKpi]) -> list[dict[str, str]]:
    """The period in one line per KPI (weighted over the days, not an average of averages)."""

    def total(name: str) -> float:
        return sum(getattr(r, name) or 0 for r in rows)

    def share(part: float, whole: float) -> str:
        return charts.percent(part / whole) if whole else "–"

    fr = [
        (r.avg_first_response_seconds, r.first_responses)
        for r in rows
        if r.first_responses and r.avg_first_response_seconds is not None
    ]
    fr_mean = sum(v * n for v, n in fr) / sum(n for _, n in fr) if fr else None
    agent_days = total("agents")
    last = rows[-1] if rows else None
    return [
        {
            "label": "Avg first response",
            "value": charts.duration(fr_mean) if fr_mean is not None else "–",
            "note": f"{int(total('first_responses'))} answered",
        },
        {
            "label": "Resolution rate",
            "value": share(total("resolved"), total("escalations")),
            "note": f"{int(total('resolved'))} of {int(total('escalations'))} escalations",
        },
        {
            "label": "Automation rate",
            "value": share(total("auto_resolved"), total("messages")),
            "note": f"{int(total('messages'))} messages",
        },
        {
            "label": "Messages per agent",
            "value": charts.number(total("agent_replies") / agent_days) if agent_days else "–",
            "note": f"{int(total('agent_replies'))} {'reply' if total('agent_replies') == 1 else 'replies'} by people",
        },
        {
            "label": "Backlog now",
            "value": str(last.backlog_open) if last else "–",
            "note": ("oldest " + charts.duration(last.backlog_oldest_age_seconds))
            if last and last.backlog_oldest_age_seconds
            else "none open",
        },
        {
            "label": "SLA compliance",
            "value": share(total("sla_met"), total("sla_settled")),
            "note": f"{int(total('sla_breaches'))} breaches",
        },
    ]


def routes(deps: Deps) -> list[BaseRoute]:
    tracker = SlaTracker(deps.store, {name: brand.policy for name, brand in deps.brands.items()})
    add_nav(deps, "Dashboard", "/dashboard", 40)

    def visible(user: User) -> list[str]:
        return user.visible(sorted(deps.brands))

    def not_found(request: Request, user: User, session: Session, message: str, status: int = 404) -> Response:
        return render(deps, request, "error.html", {"message": message}, user=user, session=session, status=status)

    async def index(request: Request, user: User, session: Session) -> Response:
        brands = visible(user)
        if not brands:
            return not_found(request, user, session, "You may not see any brand's dashboard.", 403)
        return RedirectResponse(f"/dashboard/{brands[0]}", status_code=303)

    async def dashboard(request: Request, user: User, session: Session) -> Response:
        brand = request.path_params["brand"]
        if brand not in visible(user):
            return not_found(request, user, session, f"No dashboard for {brand!r}.")
        days = _days(request)
        if days is None:
            return not_found(request, user, session, f"days: choose one of {', '.join(map(str, PERIODS))}", 400)
        policy = deps.policy(brand)
        rows = await run_in_threadpool(kpi.load, deps.store, tracker, brand, policy, days)
        context = {
            "brand": brand,
            "display_name": policy.display_name,
            "brands": visible(user),
            "days": days,
            "periods": PERIODS,
            "rows": rows,
            "charts": _charts(rows),
            "summary": _summary(rows),
            "zone": str(kpi.zone_of(policy)),
            "duration": charts.duration,
            "percent": charts.percent,
        }
        return render(deps, request, "dashboard.html", context, user=user, session=session)

    async def export(request: Request, user: User, session: Session) -> Response:
        brand = request.path_params["brand"]
        if brand not in visible(user):
            return Response(f"no dashboard for {brand!r}\n", status_code=404, media_type="text/plain")
        days = _days(request)
        if days is None:
            return Response(
                f"days: choose one of {', '.join(map(str, PERIODS))}\n", status_code=400, media_type="text/plain"
            )
        rows = await run_in_threadpool(kpi.load, deps.store, tracker, brand, deps.policy(brand), days)
        return Response(
            kpi.to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="replyguard-kpis-{brand}-{days}d.csv"'},
        )

    return [
        Route("/dashboard", page(deps, index), methods=["GET"]),
        Route("/dashboard/{brand}/export.csv", page(deps, export), methods=["GET"]),
        Route("/dashboard/{brand}", page(deps, dashboard), methods=["GET"]),
    ]
