"""Stand-ins for the Graph API, the YouTube Data API, Chatwoot and a webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from worker.standins.base import Recorded, StandIn


def _graph_error(status: int, code: int, message: str, subcode: int | None = None) -> tuple[int, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException" if code == 190 else "GraphMethodException",
        "code": code,
        "fbtrace_id": "standin",
    }
    if subcode:
        error["error_subcode"] = subcode
    return status, {"error": error}


class GraphStandIn(StandIn):
    """Meta Graph API. Accepts only ``Authorization: Bearer <token>`` (else error 190)."""

    name = "graph-standin"

    def __init__(self, token: str = "standin-token", **kwargs: Any):
        super().__init__(**kwargs)
        self.token = token

    def answer(self, r: Recorded) -> tuple[int, Any]:
        if r.method != "POST":
            return _graph_error(400, 100, "Unsupported get request")
        if r.headers.get("authorization") != f"Bearer {self.token}":
            return _graph_error(401, 190, "Error validating access token: Session has expired", 463)
        parts = [p for p in r.path.split("/") if p]
        if parts and parts[0].startswith("v") and parts[0][1:].replace(".", "").isdigit():
            parts = parts[1:]  # a versioned base path
        body = r.json if isinstance(r.json, dict) else {}
        if len(parts) == 2 and parts[1] == "messages" and body.get("messaging_product") == "whatsapp":
            kind = body.get("type")
            ok = body.get("to") and (
                (kind == "text" and (body.get("text") or {}).get("body"))
                or (kind == "template" and (body.get("template") or {}).get("name"))
            )
            if not ok:
                return _graph_error(400, 100, "(#100) Invalid parameter")
            return 200, {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": self.new_id("wamid.SI")}],
            }
        if len(parts) == 2 and parts[1] == "messages":
            recipient = body.get("recipient") or {}
            if not (recipient.get("id") or recipient.get("comment_id")) or not (body.get("message") or {}).get("text"):
                return _graph_error(400, 100, "(#100) Invalid parameter")
            return 200, {"recipient_id": recipient.get("id") or "psid-from-comment", "message_id": self.new_id("m_SI")}
        if len(parts) == 2 and parts[1] in ("replies", "comments"):
            if not body.get("message"):
                return _graph_error(400, 100, "(#100) message is required")
            return 200, {"id": self.new_id(f"{parts[0]}_reply")}
        if len(parts) == 1 and (
            r.query.get("hide") in ("true", "false") or r.query.get("is_hidden") in ("true", "false")
        ):
            return 200, {"success": True}
        return _graph_error(400, 100, f"Unknown path components: /{'/'.join(parts)}")


class YouTubeStandIn(StandIn):
    """YouTube Data API v3. ``threads[channel_id]`` holds commentThread resources, newest first."""

    name = "youtube-standin"

    def __init__(self, token: str = "standin-token", page_size: int = 100, **kwargs: Any):
        super().__init__(**kwargs)
        self.token = token
        self.page_size = page_size
        self.threads: dict[str, list[dict[str, Any]]] = {}

    def answer(self, r: Recorded) -> tuple[int, Any]:
        if r.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {
                "error": {
                    "code": 401,
                    "message": "Invalid Credentials",
                    "errors": [{"reason": "authError", "domain": "global"}],
                }
            }
        if r.method == "GET" and r.path.endswith("/commentThreads"):
            items = self.threads.get(r.query.get("allThreadsRelatedToChannelId", ""), [])
            start = int(r.query.get("pageToken") or 0)
            page = items[start : start + self.page_size]
            out: dict[str, Any] = {
                "kind": "youtube#commentThreadListResponse",
                "items": page,
                "pageInfo": {"totalResults": len(items), "resultsPerPage": self.page_size},
            }
            if start + self.page_size < len(items):
                out["nextPageToken"] = str(start + self.page_size)
            return 200, out
        if r.method == "POST" and r.path.endswith("/comments/setModerationStatus"):
            if r.query.get("moderationStatus") not in ("heldForReview", "published", "rejected") or not r.query.get(
                "id"
            ):
                return 400, {
                    "error": {"code": 400, "message": "bad request", "errors": [{"reason": "invalidModerationStatus"}]}
                }
            if r.query.get("banAuthor") == "true" and r.query.get("moderationStatus") != "rejected":
                return 400, {
                    "error": {
                        "code": 400,
                        "message": "banAuthor needs rejected",
                        "errors": [{"reason": "banWithoutReject"}],
                    }
                }
            return 204, None
        if r.method == "POST" and r.path.endswith("/comments"):
            snippet = (r.json or {}).get("snippet") or {}
            if not snippet.get("parentId") or not snippet.get("textOriginal"):
                return 400, {
                    "error": {
                        "code": 400,
                        "message": "parentId and textOriginal required",
                        "errors": [{"reason": "invalidValue"}],
                    }
                }
            return 200, {"kind": "youtube#comment", "id": self.new_id("Ug"), "snippet": snippet}
        return 404, {"error": {"code": 404, "message": "not found", "errors": [{"reason": "notFound"}]}}


class ChatwootStandIn(StandIn):
    """Chatwoot's application API: messages and toggle_status (``api_access_token`` header)."""

    name = "chatwoot-standin"

    def __init__(self, token: str = "standin-token", **kwargs: Any):
        super().__init__(**kwargs)
        self.token = token

    def answer(self, r: Recorded) -> tuple[int, Any]:
        if r.headers.get("api_access_token") != self.token:
            return 401, {"error": "You need to sign in or sign up before continuing."}
        parts = [p for p in r.path.split("/") if p]
        if (
            r.method == "POST"
            and len(parts) == 7
            and parts[:3] == ["api", "v1", "accounts"]
            and parts[4] == "conversations"
        ):
            body = r.json or {}
            if parts[6] == "messages":
                if not body.get("content"):
                    return 422, {"message": "content is required"}
                return 200, {
                    "id": int(self.new_id("")),
                    "content": body["content"],
                    "message_type": 1,
                    "private": bool(body.get("private")),
                    "conversation_id": int(parts[5]),
                }
            if parts[6] == "toggle_status":
                return 200, {
                    "meta": {},
                    "payload": {
                        "success": True,
                        "conversation_id": int(parts[5]),
                        "current_status": body.get("status", "open"),
                    },
                }
        return 404, {"error": "not found"}


class WebhookReceiver(StandIn):
    """A CRM endpoint that verifies replyguard's signature and drops repeated deliveries."""

    name = "webhook-receiver"

    def __init__(self, secret: str = "standin-secret", **kwargs: Any):
        super().__init__(**kwargs)
        self.secret = secret
        self.accepted: dict[str, Any] = {}

    def answer(self, r: Recorded) -> tuple[int, Any]:
        timestamp = r.headers.get("x-replyguard-timestamp", "")
        expected = (
            "sha256=" + hmac.new(self.secret.encode(), timestamp.encode() + b"." + r.body, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(expected, r.headers.get("x-replyguard-signature", "")):
            return 401, {"error": "bad signature"}
        delivery = r.headers.get("x-replyguard-delivery", "")
        with self._lock:
            repeat = delivery in self.accepted
            self.accepted.setdefault(delivery, r.json)
        return 200, {"ok": True, "duplicate": repeat}
