"""Meta webhook payloads -> events, receipts and named drops (pure; the HTTP path is in test_webhooks_meta)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from worker.inbound import samples as s
from worker.inbound.meta import Routing, adapt
from worker.models import parse_event

NOW = datetime(2025, 11, 26, 8, 0, 5, tzinfo=timezone.utc)
ROUTING = Routing.from_channels(
    {
        "demo-shop": {
            "whatsapp": [s.WA_PHONE_ID],
            "messenger": [s.PAGE_ID],
            "instagram": [s.IG_ID],
            "facebook": [s.PAGE_ID],
        },
        "other": {"whatsapp": ["999"]},
    }
)


def events_of(payload):
    adapted = adapt(payload, ROUTING, NOW)
    for event in adapted.events:  # every event the adapters make passes the message contract
        parse_event(event)
    return adapted


def test_whatsapp_message_types() -> None:
    adapted = events_of(
        s.whatsapp(
            [
                s.wa_text("wamid.1", "where is my order KM-204815?"),
                s.wa_message("wamid.2", "button", {"text": "Track my order", "payload": "TRACK"}),
                s.wa_message(
                    "wamid.3", "interactive", {"type": "list_reply", "list_reply": {"id": "r1", "title": "Returns"}}
                ),
                s.wa_message(
                    "wamid.4", "interactive", {"type": "button_reply", "button_reply": {"id": "b", "title": "Yes"}}
                ),
                s.wa_message(
                    "wamid.5", "image", {"id": "media-1", "mime_type": "image/jpeg", "caption": "is this broken?"}
                ),
                s.wa_message("wamid.6", "sticker", {"id": "media-2", "mime_type": "image/webp"}),
                s.wa_message("wamid.7", "location", {"latitude": 35.0, "longitude": 135.7}),
                s.wa_message("wamid.8", "image", {"id": "media-3", "mime_type": "image/jpeg"}),
            ]
        )
    )
    got = {e["id"]: e for e in adapted.events}
    assert [got[f"wamid.{i}"]["text"] for i in range(1, 6)] == [
        "where is my order KM-204815?",
        "Track my order",
        "Returns",
        "Yes",
        "is this broken?",
    ]
    assert {got[f"wamid.{i}"].get("unreadable") for i in (6, 7, 8)} == {"sticker", "location", "image"}
    first = got["wamid.1"]
    assert first["brand"] == "demo-shop" and first["platform"] == "whatsapp" and first["kind"] == "dm"
    assert first["author"] == {"id": "16315551234", "name": "Kerry Fisher"}
    assert first["conversation_id"] == f"wa:{s.WA_PHONE_ID}:16315551234"
    assert first["metadata"]["account_id"] == s.WA_PHONE_ID
    assert first["created_at"] == "2025-11-26T08:00:00+00:00"
    assert not adapted.dropped


def test_whatsapp_statuses_are_receipts_not_events() -> None:
    adapted = events_of(
        s.whatsapp(
            statuses=[
                s.wa_status("wamid.out1", "delivered", "demo-shop/wamid.1/reply"),
                s.wa_status("wamid.out2", "failed"),
            ]
        )
    )
    assert adapted.events == []
    first, second = adapted.receipts
    assert (first.platform_message_id, first.status, first.decision) == ("wamid.out1", "delivered", "demo-shop/wamid.1")
    assert second.status == "failed" and "131047" in second.error


def test_whatsapp_for_an_unknown_phone_number_is_dropped_by_name() -> None:
    adapted = events_of(s.whatsapp([s.wa_text("wamid.9", "hi")], phone_id="123"))
    assert adapted.events == [] and adapted.dropped[0][0] == "unknown_account"


def test_messenger_and_instagram_messaging() -> None:
    adapted = events_of(
        s.messaging(
            "page",
            s.PAGE_ID,
            [
                s.dm("m_1", "do you ship to Canada?"),
                s.dm("m_echo", "Thanks for your message", sender=s.PAGE_ID, is_echo=True),
                s.dm(
                    "m_sticker",
                    None,
                    sticker_id=369239263222822,
                    attachments=[{"type": "image", "payload": {"url": "https://example.invalid/s.png"}}],
                ),
                {
                    "sender": {"id": "6254412345678901"},
                    "recipient": {"id": s.PAGE_ID},
                    "timestamp": 1764144000000,
                    "delivery": {"mids": ["m_out1"], "watermark": 1764144000000},
                },
                {
                    "sender": {"id": "6254412345678901"},
                    "recipient": {"id": s.PAGE_ID},
                    "timestamp": 1764144000000,
                    "read": {"watermark": 1764144000000},
                },
            ],
        )
    )
    got = {e["id"]: e for e in adapted.events}
    assert set(got) == {"m_1", "m_sticker"}
    assert got["m_1"]["platform"] == "messenger" and got["m_1"]["author"]["id"] == "6254412345678901"
    assert got["m_sticker"]["unreadable"] == "sticker" and got["m_sticker"]["text"] == ""
    assert ("echo", "messenger m_echo") in adapted.dropped
    assert [(r.status, r.platform_message_id) for r in adapted.receipts] == [("delivered", "m_out1"), ("read", None)]
    assert adapted.receipts[1].watermark_ms == 1764144000000

    ig = events_of(
        s.messaging(
            "instagram",
            s.IG_ID,
            [s.dm("aWdfZAG1", "こんにちは、在庫はありますか？", sender="1122334455", account=s.IG_ID)],
        )
    )
    (event,) = ig.events
    assert event["platform"] == "instagram" and event["kind"] == "dm" and event["text"].startswith("こんにちは")


def test_instagram_comments_own_comments_dropped_and_flat_form() -> None:
    adapted = events_of(
        s.ig_comments(
            [
                s.ig_comment("179000001", "love this mug! price?"),
                s.ig_comment("179000002", "Thank you!", author_id=s.IG_ID),
            ]
        )
    )
    (event,) = adapted.events
    assert event["kind"] == "comment" and event["post_id"] == "17900000000000001"
    assert event["metadata"]["comment_id"] == "179000001" and event["author"]["name"] == "aiko.t"
    assert adapted.dropped == [("own_comment", "instagram 179000002")]

    flat = events_of({"object": "instagram", **s.ig_comment("179000003", "flat form")})
    assert [e["id"] for e in flat.events] == ["179000003"]
    assert events_of(s.ig_comment("179000004", "no object at all")).events[0]["platform"] == "instagram"


def test_facebook_feed_only_added_comments_of_others() -> None:
    adapted = events_of(
        s.page_feed(
            [
                s.feed_comment("998877_1", "when is the sale?"),
                s.feed_comment("998877_2", "edited text", verb="edited"),
                s.feed_comment("998877_3", "Thanks everyone!", author_id=s.PAGE_ID),
                {"field": "feed", "value": {"item": "reaction", "verb": "add", "reaction_type": "like"}},
            ]
        )
    )
    (event,) = adapted.events
    assert event["platform"] == "facebook" and event["kind"] == "comment" and event["text"] == "when is the sale?"
    assert event["post_id"] == f"{s.PAGE_ID}_998877" and event["author"]["name"] == "Sam Lee"
    assert [reason for reason, _ in adapted.dropped] == ["feed_ignored", "own_comment", "feed_ignored"]


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "text",
        {"object": "whatsapp_business_account"},
        {"object": "page", "entry": "x"},
        {"object": "page", "entry": [{"id": s.PAGE_ID, "messaging": [{"message": "not a dict"}]}]},
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"phone_number_id": s.WA_PHONE_ID},
                                "messages": [{"type": "text"}, "junk", {"id": ["x"], "from": {"a": 1}}],
                            },
                        }
                    ]
                }
            ],
        },
        {"object": "unknown_product", "entry": []},
    ],
)
def test_malformed_payloads_become_named_drops_never_exceptions(payload) -> None:
    adapted = events_of(payload)
    assert adapted.events == [] and adapted.dropped


def test_an_account_id_claimed_by_two_brands_stops_start_up(tmp_path) -> None:
    from worker.exceptions import PolicyError
    from worker.policy import load_policies
    from worker.settings import REPO_ROOT

    source = (REPO_ROOT / "policies" / "demo-shop.yaml").read_text()
    (tmp_path / "demo-shop.yaml").write_text(source)
    (tmp_path / "other-shop.yaml").write_text(source.replace("brand: demo-shop", "brand: other-shop"))
    with pytest.raises(PolicyError, match=r"channels\.\w+\.account_ids.*also an account of brand 'demo-shop'"):
        load_policies(tmp_path)
