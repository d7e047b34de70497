"""Webhook bodies shaped as Meta documents them (written for replyguard; ids are made up): used by the
demo, the webhook benchmark and the tests.

The demo brand's example ids (policies/demo-shop.yaml ``channels``) route them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

WA_PHONE_ID = "106540352242922"
PAGE_ID = "101234567890123"
IG_ID = "17841400000000000"
TS = "1764144000"  # 2025-11-26T08:00:00Z, seconds as WhatsApp sends them


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def whatsapp(
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    name: str = "Kerry Fisher",
    wa_id: str = "16315551234",
    phone_id: str = WA_PHONE_ID,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_id},
    }
    if messages is not None:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


def wa_text(mid: str, body: str, sender: str = "16315551234", ts: str = TS) -> dict[str, Any]:
    return {"from": sender, "id": mid, "timestamp": ts, "type": "text", "text": {"body": body}}


def wa_message(
    mid: str, mtype: str, content: dict[str, Any], sender: str = "16315551234", ts: str = TS
) -> dict[str, Any]:
    return {"from": sender, "id": mid, "timestamp": ts, "type": mtype, mtype: content}


def wa_status(mid: str, status: str, callback: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": mid, "status": status, "timestamp": TS, "recipient_id": "16315551234"}
    if status == "failed":
        out["errors"] = [{"code": 131047, "title": "Re-engagement message"}]
    if callback:
        out["biz_opaque_callback_data"] = callback
    return out


def messaging(obj: str, account: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": obj, "entry": [{"id": account, "time": 1764144000000, "messaging": items}]}


def dm(
    mid: str,
    text: str | None,
    sender: str = "6254412345678901",
    account: str = PAGE_ID,
    ts_ms: int = 1764144000000,
    **message: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"mid": mid, **message}
    if text is not None:
        body["text"] = text
    return {"sender": {"id": sender}, "recipient": {"id": account}, "timestamp": ts_ms, "message": body}


def ig_comment(
    comment_id: str,
    text: str,
    author_id: str = "17841455555555555",
    username: str = "aiko.t",
    media_id: str = "17900000000000001",
    ts: int | None = None,
) -> dict[str, Any]:
    extra = {"timestamp": ts} if ts else {}
    return {
        "field": "comments",
        "value": {
            **extra,
            "from": {"id": author_id, "username": username},
            "media": {"id": media_id, "media_product_type": "FEED"},
            "id": comment_id,
            "text": text,
        },
    }


def ig_comments(changes: list[dict[str, Any]], account: str = IG_ID) -> dict[str, Any]:
    return {"object": "instagram", "entry": [{"id": account, "time": 1764144000, "changes": changes}]}


def feed_comment(
    comment_id: str,
    message: str,
    verb: str = "add",
    author_id: str = "5432112345678",
    name: str = "Sam Lee",
    post_id: str = f"{PAGE_ID}_998877",
    ts: int = 1764144000,
) -> dict[str, Any]:
    return {
        "field": "feed",
        "value": {
            "from": {"id": author_id, "name": name},
            "item": "comment",
            "verb": verb,
            "comment_id": comment_id,
            "post_id": post_id,
            "parent_id": post_id,
            "message": message,
            "created_time": ts,
        },
    }


def page_feed(changes: list[dict[str, Any]], page: str = PAGE_ID) -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": page, "time": 1764144000, "changes": changes}]}
