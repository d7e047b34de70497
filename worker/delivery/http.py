"""HTTP calls to platforms: httpx exceptions and statuses become :class:`DeliveryError` here.

* connection refused / connect timeout → :class:`TransientDeliveryError` ``unreachable`` (nothing left)
* timeout or connection lost after the request was sent → :class:`AmbiguousDeliveryError`
  (the platform may have carried it out)
* a non-2xx answer → whatever the platform's ``classify`` function says (429 and 5xx are
  transient, with ``Retry-After`` honoured)
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import Any

import httpx

from worker.exceptions import (
    AmbiguousDeliveryError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), if any."""
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def generic_error(response: httpx.Response) -> DeliveryError:
    """Default classification: 408/429/5xx transient, other 4xx permanent."""
    status = response.status_code
    detail = f"HTTP {status}"
    if status in (408, 425, 429) or status >= 500:
        code = "rate_limited" if status == 429 else "server_error"
        return TransientDeliveryError(code, detail, status=status, retry_after=retry_after(response))
    if status in (401, 403):
        return PermanentDeliveryError("unauthorized", detail, status=status)
    return PermanentDeliveryError("rejected", detail, status=status)


def call(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    classify: Callable[[httpx.Response], DeliveryError] = generic_error,
    **kwargs: Any,
) -> httpx.Response:
    """Make one request; return the 2xx response or raise a DeliveryError."""
    try:
        response = http.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise TransientDeliveryError("unreachable", f"{type(exc).__name__} to {_host(url)}") from exc
    except httpx.TimeoutException as exc:
        raise AmbiguousDeliveryError("timeout", f"no answer from {_host(url)} in time") from exc
    except httpx.HTTPError as exc:
        raise AmbiguousDeliveryError("connection_lost", f"{type(exc).__name__} talking to {_host(url)}") from exc
    if response.is_success:
        return response
    raise classify(response)


def json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _host(url: str) -> str:
    try:
        return httpx.URL(url).host or url
    except Exception:  # noqa: BLE001 - only used for an error message
        return "the platform"
