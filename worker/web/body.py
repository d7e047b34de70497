"""Reading request bodies with a size limit (before anything else looks at them)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from worker import defaults


async def read_limited(request: Request, limit: int = defaults.MAX_REQUEST_BYTES) -> bytes | Response:
    """The raw body, or a 413 response if it is (or announces itself as) larger than ``limit``."""
    too_large = JSONResponse({"error": f"request body over {limit} bytes"}, status_code=413)
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                return too_large
        except ValueError:
            return JSONResponse({"error": "Content-Length is not a number"}, status_code=400)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return too_large
        chunks.append(chunk)
    return b"".join(chunks)
