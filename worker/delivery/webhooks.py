"""Outbound signed webhooks for CRM and ticketing systems (``connectors.webhooks`` in a policy).

Each decision the connector's filter wants is POSTed as JSON with these headers:

==========================  =====================================================================
``X-Replyguard-Timestamp``  unix seconds when it was signed
``X-Replyguard-Signature``  ``sha256=`` + hex HMAC-SHA256(secret, ``"{timestamp}." + raw body``)
``X-Replyguard-Delivery``   the delivery's idempotency key: the same on every retry, so the
                            receiver can drop repeats
``X-Replyguard-Event``      ``decision``, or the SLA event (``sla.breached`` …) when the SLA
                            policy's ``on_breach.notify`` asks for it
==========================  =====================================================================

The receiver should check the signature in constant time and refuse timestamps older than
a few minutes. 2xx is success; 408/429/5xx and network errors are retried with backoff;
another 4xx, or running out of attempts, puts the delivery on the brand's dead-letter list
(``replyguard connectors dead-letters``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from worker.delivery.http import call
from worker.models import Decision

SIGNATURE_HEADER = "X-Replyguard-Signature"
TIMESTAMP_HEADER = "X-Replyguard-Timestamp"
DELIVERY_HEADER = "X-Replyguard-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300.0, now: float | None = None
) -> bool:
    """Check a signature made by :func:`sign` (what a receiver does), in constant time."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def payload(decision: Decision) -> dict[str, Any]:
    """What a CRM receives: the decision (as ``replyguard show --json`` prints it)."""
    return {"event": "decision", "decision": decision.model_dump(mode="json")}


def post(
    http: httpx.Client, url: str, secret: str, delivery_id: str, data: dict[str, Any], event: str = "decision"
) -> str:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        DELIVERY_HEADER: delivery_id,
        "X-Replyguard-Event": event,
    }
    call(http, "POST", url, content=body, headers=headers)
    return delivery_id
