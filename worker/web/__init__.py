"""replyguard's HTTP service (``replyguard serve``): one Starlette app on uvicorn.

Build it with :func:`worker.web.app.create_app`; every route module is listed in
``worker.web.app.ROUTERS`` and exposes ``routes(deps) -> list[BaseRoute]``. See
:mod:`worker.web.app` for how to add one.
"""

from worker.web.app import create_app
from worker.web.deps import Deps

__all__ = ["Deps", "create_app"]
