"""Meta webhook payloads (WhatsApp Cloud API, Messenger, Instagram messaging, Instagram and
Facebook Page comments) turned into replyguard events, receipts and named drops.

Pure functions: no Redis, no clock, no secrets. :func:`adapt` takes one verified, parsed
payload and a :class:`Routing` (account id -> brand, from the brands' ``channels``) and
returns an :class:`Adapted`: the events to decide, the receipts (delivery / read
statuses) to record, and what was dropped and why. It never raises on a payload's
content: anything it cannot use is a named drop, and a message it cannot read (a
sticker, an image without caption, a location) becomes an event with ``unreadable`` set,
which the policy decides (rule ``content.unreadable``).

Shapes handled (``object`` says which product sent it):

==========================  =====================================================================
``whatsapp_business_account``  ``entry[].changes[].value``: ``messages[]`` (text, button,
                            interactive button/list replies, media captions; others unreadable),
                            ``contacts[].profile.name``, ``statuses[]``; ``metadata.phone_number_id``
                            picks the brand
``page`` / ``instagram``    ``entry[].messaging[]``: ``message`` (``mid``, ``text``, attachments;
                            ``is_echo`` dropped), ``postback``, ``delivery``, ``read``;
                            ``entry[].id`` (page / Instagram account id) picks the brand
``page``                    ``entry[].changes[]`` with ``field: feed``, ``item: comment``,
                            ``verb: add`` (others dropped); the page's own comments dropped
``instagram``               ``entry[].changes[]`` with ``field: comments``; the account's own
                            comments dropped
(flat form)                 ``{"field": ..., "value": ...}`` without ``entry`` (Meta's dashboard
                            test samples): routed when exactly one brand has that channel
==========================  =====================================================================

Every event's ``metadata`` carries ``account_id`` (the brand's phone number id, page id or
Instagram account id that received it), ``source: "meta_webhook"`` and, for comments,
``comment_id`` / ``parent_id`` / ``media_type``; delivery reads ``account_id`` and ``comment_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: Webhook ``object`` values and the platforms each can carry.
OBJECTS = {"whatsapp_business_account": "whatsapp", "page": "messenger", "instagram": "instagram"}

#: WhatsApp message types whose text we read, and where the text is.
_WA_MEDIA_WITH_CAPTION = ("image", "video", "document")


@dataclass(frozen=True)
class Route:
    brand: str
    own_ids: frozenset[str]  # the brand's own account ids on this platform (to drop its own comments)


@dataclass
class Routing:
    """(platform, account id) -> brand; built from the brands' ``channels`` sections."""

    by_account: dict[tuple[str, str], Route] = field(default_factory=dict)

    @classmethod
    def from_channels(cls, channels: Mapping[str, Mapping[str, Iterable[str]]]) -> "Routing":
        """``{brand: {platform: account_ids}}``."""
        routing = cls()
        for brand, platforms in channels.items():
            for platform, ids in platforms.items():
                own = frozenset(str(i) for i in ids)
                for account in own:
                    routing.by_account[(platform, account)] = Route(brand, own)
        return routing

    def route(self, platform: str, account_id: str | None) -> Route | None:
        if account_id is None:
            brands = {r.brand: r for (p, _), r in self.by_account.items() if p == platform}
            return next(iter(brands.values())) if len(brands) == 1 else None
        return self.by_account.get((platform, str(account_id)))


@dataclass(frozen=True)
class Receipt:
    """A platform's report about a message *we* sent (sent / delivered / read / failed)."""

    brand: str
    platform: str
    account_id: str
    status: str
    at_ms: int
    platform_message_id: str | None = None  # None for a read watermark
    recipient_id: str | None = None
    decision: str | None = None  # "brand/message_id" when the platform echoes our callback data
    error: str | None = None
    watermark_ms: int | None = None


@dataclass
class Adapted:
    events: list[dict[str, Any]] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (reason, detail)

    def drop(self, reason: str, detail: str = "") -> None:
        self.dropped.append((reason, detail[:200]))


def _text(value: Any, limit: int = 20_000) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _ident(value: Any) -> str | None:
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
        return str(value)[:256]
    return None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _time(value: Any, fallback: datetime) -> datetime:
    """Meta sends seconds (WhatsApp, strings), milliseconds (Messenger) or ISO 8601 / epoch (feed)."""
    try:
        if isinstance(value, str) and not value.isdigit():
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("+0000", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        number = int(value)
        if number > 10**11:  # milliseconds
            number //= 1000
        return datetime.fromtimestamp(number, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return fallback


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def adapt(payload: Any, routing: Routing, received_at: datetime) -> Adapted:
    """Turn one verified webhook payload into events, receipts and named drops."""
    out = Adapted()
    if not isinstance(payload, dict):
        out.drop("not_an_object", type(payload).__name__)
        return out
    kind = payload.get("object")
    if "entry" not in payload and "field" in payload and isinstance(payload.get("value"), dict):
        _change(out, kind, None, payload, routing, received_at)  # flat form
        return out
    if kind not in OBJECTS:
        out.drop("unknown_object", repr(kind)[:80])
        return out
    entries = _dicts(payload.get("entry"))
    if not entries:
        out.drop("no_entries")
    for entry in entries:
        account = _ident(entry.get("id"))
        for change in _dicts(entry.get("changes")):
            _change(out, kind, account, change, routing, received_at)
        for item in _dicts(entry.get("messaging")):
            _messaging(out, kind, account, item, routing, received_at)
        if not entry.get("changes") and not entry.get("messaging"):
            out.drop("empty_entry", f"entry {account}")
    return out


# -- entry[].changes[] ------------------------------------------------------------------


def _change(
    out: Adapted, kind: Any, account: str | None, change: dict[str, Any], routing: Routing, received_at: datetime
) -> None:
    name = change.get("field")
    value = change.get("value")
    if not isinstance(value, dict):
        out.drop("no_value", f"field {name!r}")
        return
    if name == "messages" and (kind in (None, "whatsapp_business_account")) and "messaging_product" in value:
        _whatsapp(out, value, routing, received_at)
    elif name == "comments" and kind in (None, "instagram"):
        _instagram_comment(out, account, value, routing, received_at)
    elif name == "feed" and kind in (None, "page"):
        _feed(out, account, value, routing, received_at)
    else:
        out.drop("unhandled_field", f"{kind}/{name}")


def _whatsapp(out: Adapted, value: dict[str, Any], routing: Routing, received_at: datetime) -> None:
    meta = _obj(value.get("metadata"))
    phone_id = _ident(meta.get("phone_number_id"))
    route = routing.route("whatsapp", phone_id) if phone_id else None
    if route is None:
        out.drop("unknown_account", f"whatsapp phone_number_id {phone_id}")
        return
    names = {}
    for contact in _dicts(value.get("contacts")):
        profile = _obj(contact.get("profile"))
        if _ident(contact.get("wa_id")):
            names[str(contact["wa_id"])] = _text(profile.get("name"), 256) or None
    for message in _dicts(value.get("messages")):
        mid, sender = _ident(message.get("id")), _ident(message.get("from"))
        if not mid or not sender:
            out.drop("incomplete_message", "whatsapp message without id or from")
            continue
        mtype = str(message.get("type") or "unknown")[:40]
        text, unreadable = _whatsapp_text(message, mtype)
        metadata: dict[str, Any] = {"source": "meta_webhook", "account_id": phone_id, "message_type": mtype}
        context = _obj(message.get("context"))
        if _ident(context.get("id")):
            metadata["in_reply_to"] = str(context["id"])
        out.events.append(
            _event(
                route.brand,
                "whatsapp",
                "dm",
                mid,
                f"wa:{phone_id}:{sender}",
                sender,
                names.get(sender),
                text,
                unreadable,
                _time(message.get("timestamp"), received_at),
                metadata,
            )
        )
    for status in _dicts(value.get("statuses")):
        errors = _dicts(status.get("errors"))
        callback = status.get("biz_opaque_callback_data")
        out.receipts.append(
            Receipt(
                brand=route.brand,
                platform="whatsapp",
                account_id=phone_id or "",
                status=str(status.get("status"))[:20],
                at_ms=_ms(_time(status.get("timestamp"), received_at)),
                platform_message_id=_ident(status.get("id")),
                recipient_id=_ident(status.get("recipient_id")),
                decision="/".join(callback.split("/")[:2])[:300]
                if isinstance(callback, str) and callback.count("/") >= 1
                else None,
                error="; ".join(f"{e.get('code')}: {e.get('title')}" for e in errors)[:300] or None,
            )
        )
    if not value.get("messages") and not value.get("statuses"):
        out.drop("nothing_to_do", "whatsapp change without messages or statuses")


def _whatsapp_text(message: dict[str, Any], mtype: str) -> tuple[str, str | None]:
    """(text, unreadable type or None)."""
    body = _obj(message.get(mtype))
    if mtype == "text":
        return _text(body.get("body")), None
    if mtype == "button":
        return _text(body.get("text")) or _text(body.get("payload")), None
    if mtype == "interactive":
        reply = body.get("button_reply") or body.get("list_reply") or body.get("nfm_reply") or {}
        if isinstance(reply, dict) and _text(reply.get("title")):
            return _text(reply.get("title")), None
        return "", f"interactive:{str(body.get('type'))[:30]}"
    if mtype in _WA_MEDIA_WITH_CAPTION and _text(body.get("caption")).strip():
        return _text(body.get("caption")), None
    return "", mtype


# -- entry[].messaging[] ------------------------------------------------------------------


def _messaging(
    out: Adapted, kind: Any, account: str | None, item: dict[str, Any], routing: Routing, received_at: datetime
) -> None:
    platform = OBJECTS.get(kind, "messenger")
    sender = _ident((item.get("sender") or {}).get("id")) if isinstance(item.get("sender"), dict) else None
    recipient = _ident((item.get("recipient") or {}).get("id")) if isinstance(item.get("recipient"), dict) else None
    route = routing.route(platform, account or recipient)
    if route is None:
        out.drop("unknown_account", f"{platform} account {account or recipient}")
        return
    account = account or recipient or ""
    at = _time(item.get("timestamp"), received_at)
    if isinstance(item.get("delivery"), dict):
        delivery = item["delivery"]
        for mid in delivery.get("mids") or []:
            if _ident(mid):
                out.receipts.append(Receipt(route.brand, platform, account, "delivered", _ms(at), str(mid), sender))
        if not delivery.get("mids") and delivery.get("watermark"):
            out.receipts.append(
                Receipt(
                    route.brand,
                    platform,
                    account,
                    "delivered",
                    _ms(at),
                    None,
                    sender,
                    watermark_ms=_ms(_time(delivery.get("watermark"), at)),
                )
            )
        return
    if isinstance(item.get("read"), dict):
        read = item["read"]
        out.receipts.append(
            Receipt(
                route.brand,
                platform,
                account,
                "read",
                _ms(at),
                _ident(read.get("mid")),
                sender,
                watermark_ms=_ms(_time(read["watermark"], at)) if read.get("watermark") else None,
            )
        )
        return
    message = item.get("message") if isinstance(item.get("message"), dict) else None
    postback = item.get("postback") if isinstance(item.get("postback"), dict) else None
    if message is None and postback is None:
        out.drop(
            "unhandled_messaging",
            ", ".join(sorted(k for k in item if k not in ("sender", "recipient", "timestamp")))[:80],
        )
        return
    if message is not None and message.get("is_echo"):
        out.drop("echo", f"{platform} {message.get('mid')}")
        return
    if sender is None or sender in route.own_ids:
        out.drop("own_message", f"{platform} sender {sender}")
        return
    source = message if message is not None else postback
    mid = _ident(source.get("mid")) if source else None
    if not mid:
        out.drop("incomplete_message", f"{platform} message without mid")
        return
    text, unreadable, mtype = "", None, "text"
    if message is not None:
        text = _text(message.get("text"))
        attachments = _dicts(message.get("attachments"))
        if not text.strip():
            mtype = str(attachments[0].get("type") or "attachment")[:40] if attachments else "unknown"
            if message.get("sticker_id"):
                mtype = "sticker"
            unreadable = mtype
        elif attachments:
            mtype = "text+attachment"
    else:
        mtype = "postback"
        text = _text(_obj(postback).get("title")) or _text(_obj(postback).get("payload"))
        unreadable = None if text.strip() else "postback"
    metadata = {"source": "meta_webhook", "account_id": account, "message_type": mtype}
    out.events.append(
        _event(
            route.brand,
            platform,
            "dm",
            mid,
            f"{platform[:2]}:{account}:{sender}",
            sender,
            None,
            text,
            unreadable,
            at,
            metadata,
        )
    )


# -- comments -------------------------------------------------------------------------------


def _instagram_comment(
    out: Adapted, account: str | None, value: dict[str, Any], routing: Routing, received_at: datetime
) -> None:
    route = routing.route("instagram", account)
    if route is None:
        out.drop("unknown_account", f"instagram account {account}")
        return
    author, media = _obj(value.get("from")), _obj(value.get("media"))
    text = _text(value.get("text"))
    _comment(
        out,
        "instagram",
        route,
        account,
        comment_id=_ident(value.get("id")),
        author_id=_ident(author.get("id")),
        post_id=_ident(media.get("id")),
        parent=_ident(value.get("parent_id")),
        name=_text(author.get("username"), 256) or None,
        text=text,
        unreadable=None if text.strip() else "comment",
        at=_time(value.get("timestamp") or value.get("created_time"), received_at),
        metadata={"media_type": str(media.get("media_product_type") or "")[:40] or None},
        incomplete="instagram comment without id, from.id or media.id",
    )


def _feed(out: Adapted, account: str | None, value: dict[str, Any], routing: Routing, received_at: datetime) -> None:
    item, verb = value.get("item"), value.get("verb")
    if item != "comment" or verb != "add":
        out.drop("feed_ignored", f"item {str(item)[:20]} verb {str(verb)[:20]}")
        return
    route = routing.route("facebook", account)
    if route is None:
        out.drop("unknown_account", f"facebook page {account}")
        return
    author = _obj(value.get("from"))
    post_id, parent = _ident(value.get("post_id")), _ident(value.get("parent_id"))
    text = _text(value.get("message"))
    unreadable = None
    if not text.strip():
        unreadable = "photo" if value.get("photo") else ("video" if value.get("video") else "comment")
    _comment(
        out,
        "facebook",
        route,
        account,
        comment_id=_ident(value.get("comment_id")),
        author_id=_ident(author.get("id")),
        post_id=post_id,
        parent=parent if parent != post_id else None,
        name=_text(author.get("name"), 256) or None,
        text=text,
        unreadable=unreadable,
        at=_time(value.get("created_time"), received_at),
        metadata={},
        incomplete="feed comment without comment_id, from.id or post_id",
    )


#: Conversation id prefixes of comment threads, by platform.
THREAD_PREFIX = {"instagram": "ig", "facebook": "fb"}


def _comment(
    out: Adapted,
    platform: str,
    route: Route,
    account: str | None,
    *,
    comment_id: str | None,
    author_id: str | None,
    post_id: str | None,
    parent: str | None,
    name: str | None,
    text: str,
    unreadable: str | None,
    at: datetime,
    metadata: dict[str, Any],
    incomplete: str,
) -> None:
    """A comment on a post or media (Instagram ``comments``, Facebook ``feed``) as an event: incomplete
    ones and the brand's own are dropped; a reply's thread is its parent comment."""
    if not comment_id or not author_id or not post_id:
        out.drop("incomplete_comment", incomplete)
        return
    if author_id in route.own_ids:
        out.drop("own_comment", f"{platform} {comment_id}")
        return
    metadata = {
        "source": "meta_webhook",
        "account_id": account or sorted(route.own_ids)[0],
        "comment_id": comment_id,
        **metadata,
    }
    if parent:
        metadata["parent_id"] = parent
    out.events.append(
        _event(
            route.brand,
            platform,
            "comment",
            comment_id,
            f"{THREAD_PREFIX[platform]}:{post_id}:{parent or comment_id}",
            author_id,
            name,
            text,
            unreadable,
            at,
            metadata,
            post_id=post_id,
        )
    )


def _event(
    brand: str,
    platform: str,
    kind: str,
    mid: str,
    conversation: str,
    author_id: str,
    name: str | None,
    text: str,
    unreadable: str | None,
    at: datetime,
    metadata: dict[str, Any],
    *,
    post_id: str | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": mid,
        "brand": brand,
        "platform": platform,
        "kind": kind,
        "conversation_id": conversation[:256],
        "author": {"id": author_id, "name": name},
        "text": text,
        "created_at": at.isoformat(),
        "metadata": {k: v for k, v in metadata.items() if v is not None},
    }
    if post_id:
        event["post_id"] = post_id
    if unreadable:
        event["unreadable"] = unreadable
    return event
