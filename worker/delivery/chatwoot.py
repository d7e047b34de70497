"""Chatwoot Agent Bot connector: replyguard as the bot of a Chatwoot inbox.

In: Chatwoot's ``message_created`` webhook, verified by ``X-Chatwoot-Signature``
(``sha256=`` + hex HMAC-SHA256(secret, ``"{X-Chatwoot-Timestamp}." + raw body``)) before the
body is read; only incoming, public messages become events. Out: replies via
``POST /api/v1/accounts/{account}/conversations/{id}/messages``; an escalation hands the
conversation to people with a private note (rule, scores, reason) and
``POST …/toggle_status {"status": "open"}``. The bot's access token goes in the
``api_access_token`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime, timezone
from typing import Any

import httpx

from worker.delivery.http import call, json_body
from worker.models import Decision

#: Chatwoot channel types → replyguard platforms (anything else is "other").
CHANNEL_PLATFORMS = {
    "Channel::Whatsapp": "whatsapp",
    "Channel::FacebookPage": "messenger",
    "Channel::Instagram": "instagram",
    "Channel::TwitterProfile": "x",
}


def verify_signature(
    secret: str,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    *,
    tolerance: float,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is Chatwoot's HMAC of ``timestamp.body`` and the timestamp is fresh."""
    if not secret or not timestamp or not signature:
        return False
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature) and age <= tolerance


def _created_at(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc).isoformat()
    if isinstance(value, str) and value:
        return value
    return datetime.now(timezone.utc).isoformat()


def event_from_payload(brand: str, data: dict[str, Any], account_id: int) -> dict[str, Any] | None:
    """The replyguard event for a ``message_created`` webhook, or None when there is nothing to decide
    (another event type, an outgoing / private / bot message, another account). The result is
    validated by the caller like any event (bad fields named)."""
    if data.get("event") != "message_created":
        return None
    if data.get("message_type") not in ("incoming", 0) or data.get("private"):
        return None
    account = data.get("account") or {}
    conversation = data.get("conversation") or {}
    sender = data.get("sender") or {}
    inbox = data.get("inbox") or {}
    if isinstance(account, dict) and account.get("id") not in (None, account_id):
        return None
    conv_id = conversation.get("id") if isinstance(conversation, dict) else None
    channel = conversation.get("channel") if isinstance(conversation, dict) else None
    return {
        "id": f"cw-{account_id}-{data.get('id')}",
        "brand": brand,
        "platform": CHANNEL_PLATFORMS.get(str(channel), "other"),
        "kind": "dm",
        "conversation_id": f"cw-{account_id}-{conv_id}",
        "author": {
            "id": f"cw-contact-{sender.get('id')}" if isinstance(sender, dict) else "cw-contact-?",
            "name": (sender.get("name") or None) if isinstance(sender, dict) else None,
        },
        "text": data.get("content") or "",
        "created_at": _created_at(data.get("created_at")),
        "metadata": {
            "chatwoot": {
                "account_id": account_id,
                "conversation_id": conv_id,
                "inbox_id": inbox.get("id") if isinstance(inbox, dict) else None,
                "message_id": data.get("id"),
            }
        },
    }


def handoff_note(decision: Decision) -> str:
    """The private note an escalation leaves for the people taking over."""
    esc = decision.escalation
    lines = [f"replyguard escalated this conversation (rule {decision.rule})."]
    if esc is not None:
        lines.append(f"Reason: {esc.reason}")
        lines.append(f"Role: {esc.role} · priority: {esc.priority}")
    tops = []
    for task, scores in sorted(decision.scores.items()):
        if scores:
            label = max(scores, key=lambda k: scores[k])
            tops.append(f"{task} {label} {scores[label]:.2f}")
    if tops:
        lines.append("Scores: " + ", ".join(tops))
    return "\n".join(lines)


class ChatwootClient:
    def __init__(self, base_url: str, account_id: int, token: str, http: httpx.Client):
        self.base = f"{base_url.rstrip('/')}/api/v1/accounts/{account_id}"
        self._headers = {"api_access_token": token}
        self.http = http

    def message(self, conversation_id: int | str, content: str, *, private: bool = False) -> str:
        response = call(
            self.http,
            "POST",
            f"{self.base}/conversations/{conversation_id}/messages",
            headers=self._headers,
            json={"content": content, "message_type": "outgoing", "private": private},
        )
        return str(json_body(response).get("id") or "")

    def open(self, conversation_id: int | str) -> str:
        call(
            self.http,
            "POST",
            f"{self.base}/conversations/{conversation_id}/toggle_status",
            headers=self._headers,
            json={"status": "open"},
        )
        return ""
