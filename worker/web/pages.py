"""Server-rendered pages: one Jinja2 environment (autoescaping on), one base layout, the nav.

Every page extends ``templates/base.html`` (top bar with the nav, the signed-in
user, sign-out, the keyboard help) and is rendered with :func:`render`. Another
router adds a nav entry with :func:`add_nav` (e.g. the KPI dashboard) and its own
templates in ``worker/web/templates``; static files (CSS, JS) are served from
``/static`` by this module's routes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from worker.ages import age_text
from worker.web.deps import Deps

HERE = Path(__file__).parent
NAV_KEY = "worker.web.pages.nav"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return age_text(max(0.0, float(seconds)))


def _when(value: Any) -> str:
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=timezone.utc)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return ""


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["age"] = _age
    env.filters["when"] = _when
    return env


def _env(deps: Deps) -> Environment:
    env = deps.extras.get(__name__)
    if env is None:
        env = deps.extras[__name__] = environment()
    return env


def add_nav(deps: Deps, label: str, href: str, order: int = 50) -> None:
    """Add a link to the top bar of every page (``order``: review links are 10–30)."""
    deps.extras.setdefault(NAV_KEY, []).append((order, label, href))


def nav(deps: Deps) -> list[tuple[str, str]]:
    return [(label, href) for _, label, href in sorted(deps.extras.get(NAV_KEY, []))]


def render(
    deps: Deps,
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    user: Any = None,
    session: Any = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    values = {"request": request, "user": user, "nav": nav(deps), "path": request.url.path, **context}
    if session is not None:
        values["csrf"] = session.csrf
    html = _env(deps).get_template(template).render(**values)
    response = HTMLResponse(html, status_code=status, headers=headers)
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def routes(deps: Deps) -> list[BaseRoute]:
    async def home(request: Request) -> Response:
        return RedirectResponse("/review", status_code=303)

    return [
        Route("/", home, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
