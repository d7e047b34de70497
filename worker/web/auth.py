"""Signing in to the review app, and the guards every page and API route goes through.

* ``GET /login`` shows the form (fields ``username``, ``password`` and a
  ``csrf_token`` that matches the ``rg_login`` cookie the page sets);
  ``POST /login`` signs in and redirects to ``next`` (a local path) or ``/review``;
  ``POST /logout`` ends the session.
* The session cookie ``rg_session`` holds a random token signed with
  ``REPLYGUARD_SESSION_SECRET`` (HMAC-SHA256): HttpOnly, SameSite=Lax, Secure
  when the request came over HTTPS; the session itself is in Redis.
* :func:`page` and :func:`api` wrap route functions: no valid session → a
  redirect to ``/login`` (pages) or 401 (API); a state-changing request
  (anything but GET/HEAD) without the session's CSRF token (header
  ``X-CSRF-Token`` or form field ``csrf_token``) → 403.
* Sign-in failures are counted per user name and per client address; past the
  limits in :mod:`worker.defaults` ``/login`` answers 429 with Retry-After.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, quote

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from worker import defaults
from worker.accounts import Accounts, Session, User, sign, unsign
from worker.exceptions import StoreError
from worker.web.deps import Deps

log = logging.getLogger("replyguard.web.auth")

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOGIN_COOKIE = "rg_login"
MAX_FORM_BYTES = 16 * 1024


@dataclass
class Auth:
    accounts: Accounts
    secret: bytes

    async def current(self, request: Request) -> tuple[User, Session] | None:
        """The signed-in, enabled user of this request and their session, or None."""
        signed = request.cookies.get(defaults.SESSION_COOKIE)
        token = unsign(self.secret, signed) if signed else None
        if not token:
            return None

        def load() -> tuple[User, Session] | None:
            session = self.accounts.session(token)
            if session is None:
                return None
            user = self.accounts.get(session.user)
            if user is None or user.disabled:
                return None
            return user, session

        return await run_in_threadpool(load)


def auth_of(deps: Deps) -> Auth:
    """The app's one :class:`Auth` (made on first use; kept in ``deps.extras``)."""
    auth = deps.extras.get(__name__)
    if auth is None:
        secret = deps.settings.session_secret
        if secret is None:
            log.warning(
                "REPLYGUARD_SESSION_SECRET is not set: session cookies are signed with a random key, so "
                "sign-ins end when this process restarts and are not shared with other serve processes"
            )
            key = secrets.token_bytes(32)
        else:
            key = secret.get_secret_value().encode()
        auth = Auth(Accounts(deps.connection, deps.settings.key_prefix), key)
        deps.extras[__name__] = auth
    return auth


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body (at most MAX_FORM_BYTES), first value of each field."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in parsed.items()}


def _csrf_ok(session: Session, supplied: str | None) -> bool:
    return bool(supplied) and hmac.compare_digest(session.csrf.encode(), str(supplied).encode())


Handler = Callable[[Request, User, Session], Awaitable[Response]]


def _guard(
    deps: Deps, handler: Handler, refuse: Callable[[Request, Session | None], Awaitable[Response | None]]
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of a signed-in route: ``refuse(request, session)`` (session None: signed out)
    answers instead of ``handler`` when it returns a response; a Redis failure becomes StoreError (503)."""
    auth = auth_of(deps)

    async def endpoint(request: Request) -> Response:
        try:
            found = await auth.current(request)
            refused = await refuse(request, found[1] if found else None)
            if found is None or refused is not None:  # refuse() answers for every signed-out request
                return refused if refused is not None else Response(status_code=401)
            return await handler(request, *found)
        except redis.RedisError as exc:  # the app answers 503 for StoreError
            raise StoreError(f"Redis failed while serving {request.url.path}: {exc}") from exc

    return endpoint


def page(deps: Deps, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a page: signed out → 303 to /login?next=…; a POST needs the form's csrf_token."""

    async def refuse(request: Request, session: Session | None) -> Response | None:
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        if request.method not in SAFE_METHODS:
            supplied = request.headers.get("x-csrf-token") or (await read_form(request)).get("csrf_token")
            if not _csrf_ok(session, supplied):
                return Response(
                    "CSRF token missing or wrong: reload the page and try again",
                    status_code=403,
                    media_type="text/plain",
                )
        return None

    return _guard(deps, handler, refuse)


def api(deps: Deps, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a JSON API route: signed out → 401; a state change needs header X-CSRF-Token → else 403."""

    async def refuse(request: Request, session: Session | None) -> Response | None:
        if session is None:
            return JSONResponse({"error": "not signed in (or the session ended): sign in at /login"}, status_code=401)
        if request.method not in SAFE_METHODS and not _csrf_ok(session, request.headers.get("x-csrf-token")):
            return JSONResponse(
                {"error": "CSRF token missing or wrong (send the X-CSRF-Token header)"}, status_code=403
            )
        return None

    return _guard(deps, handler, refuse)


async def json_body(request: Request, limit: int = 256 * 1024) -> dict:
    """The request's JSON object; raises ValueError with a clear message."""
    body = await request.body()
    if len(body) > limit:
        raise ValueError(f"request body is {len(body)} bytes; at most {limit}")
    if not body.strip():
        return {}
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("request body must be a JSON object")
    return data


def _safe_next(target: str | None) -> str:
    """Only local paths, never another host (``//evil`` or ``https://…``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/review"
    return target


def routes(deps: Deps) -> list[BaseRoute]:
    from worker.web.pages import render

    auth = auth_of(deps)

    def login_form(
        request: Request, error: str | None = None, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        token = secrets.token_urlsafe(24)
        response = render(
            deps,
            request,
            "login.html",
            {"error": error, "csrf": token, "next": _safe_next(request.query_params.get("next"))},
            status=status,
            headers=headers,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            sign(auth.secret, token),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/login",
            max_age=3600,
        )
        return response

    async def login_page(request: Request) -> Response:
        if await auth.current(request) is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
        return login_form(request)

    async def login(request: Request) -> Response:
        try:
            return await sign_in(request)
        except redis.RedisError as exc:
            raise StoreError(f"Redis failed while signing in: {exc}") from exc

    async def sign_in(request: Request) -> Response:
        form = await read_form(request)
        expected = unsign(auth.secret, request.cookies.get(LOGIN_COOKIE, ""))
        supplied = form.get("csrf_token", "")
        if not expected or not hmac.compare_digest(expected.encode(), supplied.encode()):
            return login_form(request, "The sign-in form expired (CSRF check failed). Please try again.", status=403)
        name = form.get("username", "").strip().lower()[:64]
        password = form.get("password", "")[:1024]
        address = request.client.host if request.client else "unknown"
        wait = await run_in_threadpool(auth.accounts.login_blocked, name, address)
        if wait:
            return login_form(
                request,
                f"Too many failed sign-ins. Try again in {max(1, wait // 60)} minute(s).",
                status=429,
                headers={"Retry-After": str(wait)},
            )
        user = await run_in_threadpool(auth.accounts.authenticate, name, password)
        if user is None:
            await run_in_threadpool(auth.accounts.login_failed, name, address)
            log.info("failed sign-in for %r from %s", name, address)
            return login_form(request, "Wrong user name or password, or the account is disabled.", status=401)
        await run_in_threadpool(auth.accounts.login_succeeded, name)
        token, _ = await run_in_threadpool(auth.accounts.start_session, user)
        response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
        response.set_cookie(
            defaults.SESSION_COOKIE,
            sign(auth.secret, token),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
            max_age=defaults.SESSION_TTL_SECONDS,
        )
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        log.info("%s signed in from %s", user.name, address)
        return response

    async def logout(request: Request, user: User, session: Session) -> Response:
        signed = request.cookies.get(defaults.SESSION_COOKIE, "")
        token = unsign(auth.secret, signed)
        if token:
            await run_in_threadpool(auth.accounts.end_session, token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(defaults.SESSION_COOKIE, path="/")
        return response

    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", page(deps, logout), methods=["POST"]),
    ]
