"""The inbound message contract: validation errors name every bad field; the schema is published."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_event
from worker import defaults
from worker.exceptions import InvalidEvent
from worker.models import event_json_schema, parse_event
from worker.settings import REPO_ROOT


def test_valid_event_parses() -> None:
    event = parse_event(make_event())
    assert event.key == ("demo-shop", "m-1")
    assert event.created_at.utcoffset().total_seconds() == 9 * 3600


def test_every_bad_field_is_named_at_once() -> None:
    bad = make_event(platform="myspace", kind="email", created_at="yesterday", author={"id": ""})
    bad["colour"] = "blue"
    with pytest.raises(InvalidEvent) as info:
        parse_event(bad, source="events.jsonl:7")
    fields = set(info.value.fields)
    assert {"platform", "kind", "created_at", "author.id", "colour"} <= fields
    message = str(info.value)
    assert "events.jsonl:7" in message
    assert "unknown field" in message


def test_missing_fields_are_listed() -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event({"id": "x"})
    assert {"brand", "platform", "kind", "conversation_id", "author", "text", "created_at"} <= set(info.value.fields)


def test_comment_requires_post_id() -> None:
    event = make_event(kind="comment")
    del event["post_id"]
    with pytest.raises(InvalidEvent, match="post_id is required"):
        parse_event(event)


def test_timestamp_needs_an_offset() -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(make_event(created_at="2026-11-24T10:00:00"))
    assert info.value.fields == ["created_at"]


def test_text_over_the_limit_is_rejected_with_its_length() -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(make_event(text="x" * (defaults.MAX_TEXT_CHARS + 1)))
    assert info.value.fields == ["text"]
    assert str(defaults.MAX_TEXT_CHARS) in str(info.value)


def test_invalid_unicode_is_rejected() -> None:
    with pytest.raises(InvalidEvent, match="unicode|surrogate") as info:
        parse_event(make_event(text="bad \ud800 text"))
    assert info.value.fields == ["text"]
    with pytest.raises(InvalidEvent, match="control character"):
        parse_event(make_event(text="nul\x00byte"))


def test_invalid_utf8_and_json_bytes() -> None:
    raw = json.dumps(make_event()).encode().replace(b"where", b"wh\xffere")
    with pytest.raises(InvalidEvent, match="not valid UTF-8"):
        parse_event(raw, source="line 3")
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        parse_event(b'{"id": ', source="line 4")
    with pytest.raises(InvalidEvent, match="must be a JSON object"):
        parse_event(b"[1, 2]")


def test_metadata_is_bounded() -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(make_event(metadata={"blob": "x" * (defaults.MAX_METADATA_BYTES + 1)}))
    assert info.value.fields == ["metadata"]


def test_published_schema_matches_the_model() -> None:
    published = json.loads((REPO_ROOT / "worker" / "schema" / "inbound-event.schema.json").read_text())
    assert published == event_json_schema(), "run: replyguard schema event > worker/schema/inbound-event.schema.json"
    assert set(published["required"]) >= {
        "id",
        "brand",
        "platform",
        "kind",
        "conversation_id",
        "author",
        "text",
        "created_at",
    }
