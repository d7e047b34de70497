"""Ingest's cheaper validation and payload JSON are exact.

``parse_event`` first tries the screen (``models._screened``: pydantic-core's validation of the event
with the string checks as a pattern in Rust instead of Python callbacks, the bounds walk skipped when
nothing it looks at can be out of bounds); what the screen refuses goes the full way. Whatever the
input, the outcome is the full way's: the same event (values, fields set, field order) or the same
InvalidEvent (message and problems). ``canonical_json`` writes the same bytes as pydantic-core's
``ensure_ascii=True``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from pydantic import ValidationError, field_validator

import worker.models as models
from tests.conftest import make_event
from worker import bounded_json
from worker.demo import load_sample
from worker.exceptions import InvalidEvent
from worker.models import InboundEvent, canonical_json, parse_event

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
SETTINGS = hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: characters around every class the string checks treat apart (controls, DEL, C1, bidi, surrogates)
SPECIAL = [chr(c) for c in [*range(0x00, 0x21), *range(0x7E, 0xA1), *range(0x2026, 0x2070), 0xD800, 0xDFFF, 0xFEFF]]
SPECIAL += ["é", "値", "😀", "\u2028", '"', "\\", "/"]


def full_parse(data: object) -> InboundEvent:
    """What parse_event did with a dict before the screen: the bounds walk, then full validation."""
    bad = bounded_json.walk_problems(data)
    if bad:
        raise InvalidEvent("t", bad)
    try:
        return InboundEvent.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent("t", models.problems_from(exc)) from exc
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        raise InvalidEvent("t", models.Problem("(event)", f"cannot be validated: {type(exc).__name__}")) from exc


def outcome(parse: Any, data: object) -> tuple[str, Any]:
    try:
        event = parse(data)
    except InvalidEvent as exc:
        return "invalid", (str(exc), [(p.where, p.reason) for p in exc.problems])
    author = event.author
    return "event", (
        list(event.__dict__.items()),
        event.model_fields_set,
        type(author),
        list(author.__dict__.items()),
        author.model_fields_set,
        canonical_json(event),
    )


def same_as_full(data: dict[str, Any]) -> None:
    assert outcome(lambda d: parse_event(d, "t"), data) == outcome(full_parse, data)


def test_the_screen_accepts_exactly_the_strings_the_checks_keep() -> None:
    for char in SPECIAL:
        for field in ("id", "conversation_id", "post_id", "text"):
            data = make_event(**{field: f"a{char}b"})
            kept = not models._NOT_CANONICAL.search(char)
            assert (models._screened(data) is not None) == kept, (field, hex(ord(char)))
            same_as_full(data)
        for field in ("id", "name"):
            data = make_event(author={**make_event()["author"], field: f"a{char}b"})
            same_as_full(data)


def test_demo_traffic_and_shared_texts_are_screened_to_the_same_events() -> None:
    raw = list(load_sample())
    if SHARED.is_dir():
        for path in sorted(SHARED.glob("*.jsonl")):
            lines = path.read_text(encoding="utf-8").splitlines()[:400]
            raw += [make_event(id=f"{path.stem}-{i}", text=json.loads(line)["text"]) for i, line in enumerate(lines)]
    screened = 0
    for data in raw:
        same_as_full(data)
        screened += models._screened(data) is not None
    assert screened > len(raw) * 0.9  # the usual event takes the screen


def test_edges_of_every_other_check_go_the_full_way() -> None:
    cases = [
        make_event(kind="comment", post_id=None),
        make_event(kind="comment", post_id=""),
        make_event(kind="comment", post_id="p-1"),
        make_event(metadata={"a": [1, 2.5, None, True, {"b": "c"}]}),
        make_event(metadata={"big": 10**60}),
        make_event(metadata={"inf": float("inf")}),
        make_event(metadata={"deep": json.loads("[" * 40 + "]" * 40)}),
        make_event(metadata={"size": "x" * 20_000}),
        make_event(metadata={"set": {1, 2}}),
        make_event(metadata={"surrogate": "\ud800"}),
        make_event(created_at=1_700_000_000),
        make_event(created_at=1_700_000_000.5),
        make_event(created_at=10**60),
        make_event(created_at=float("inf")),
        make_event(created_at=True),
        make_event(created_at="2026-11-24T13:30:00"),
        make_event(created_at=b"2026-11-24T13:30:00Z"),
        make_event(id=b"bytes-id", text=b"bytes text"),
        make_event(id=10**60),
        make_event(text="x" * 20_001),
        make_event(author={"id": "a", "tags": ("t1", "t2")}),
        make_event(author={"id": "a", "tags": [["deep"]]}),
        make_event(author={"id": "a", "extra": 1}),
        {**make_event(), "author": models.Author(id="a-1", name="n")},
        {**make_event(), "author": models.Author.model_construct(id="a\u202eb", name="n")},
        make_event(unreadable="sticker"),
        make_event(unreadable="Sticker"),
        {**make_event(), "surplus": {"x": 10**60}},
        {k: v for k, v in make_event().items() if k != "metadata"},
        {k: v for k, v in make_event().items() if k != "text"},
    ]
    for data in cases:
        same_as_full(data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=20,
)
FIELDS = ["id", "brand", "platform", "kind", "conversation_id", "post_id", "author", "text", "created_at", "metadata"]
FIELDS += ["unreadable", "author.id", "author.name", "author.locale", "author.tags"]


@SETTINGS
@given(field=st.sampled_from(FIELDS), value=JSON, as_text=st.booleans())
def test_any_value_in_any_field_has_the_full_outcome(field: str, value: Any, as_text: bool) -> None:
    data = make_event()
    if "." in field:
        outer, inner = field.split(".")
        data[outer] = {**data[outer], inner: value}
    else:
        data[field] = value
    if as_text:  # through the text path: JSON read with the bounds, then the same
        text = json.dumps(data, ensure_ascii=False)
        new, old = outcome(lambda t: parse_event(t, "t"), text), None
        try:
            old = outcome(full_parse, bounded_json.loads(text))
        except ValueError:
            return  # not JSON the way out: parse_event's own text checks, unchanged
        assert new == old
    else:
        same_as_full(data)


@SETTINGS
@given(
    text=st.text(st.characters(codec="utf-8") | st.sampled_from(SPECIAL), max_size=60),
    name=st.none() | st.text(st.sampled_from(SPECIAL) | st.characters(), max_size=12),
    ident=st.text(st.sampled_from(SPECIAL) | st.characters(codec="ascii"), min_size=1, max_size=8),
)
def test_any_strings_have_the_full_outcome(text: str, name: str | None, ident: str) -> None:
    same_as_full(make_event(text=text, id=ident, author={"id": ident, "name": name, "locale": None, "tags": [ident]}))


def _ascii_json(event: InboundEvent) -> bytes:
    return InboundEvent.__pydantic_serializer__.to_json(event, ensure_ascii=True)


@SETTINGS
@given(
    text=st.text(st.characters(codec="utf-8"), max_size=80),
    name=st.none() | st.text(st.characters(codec="utf-8"), max_size=20),
    tag=st.text(st.characters(codec="utf-8"), min_size=1, max_size=8),
    value=JSON,
)
def test_canonical_json_is_pydantic_cores_ascii_json(text: str, name: str | None, tag: str, value: Any) -> None:
    data = make_event(text=text, author={"id": tag, "name": name, "locale": None, "tags": [tag]}, metadata={"v": value})
    try:
        event = InboundEvent.model_validate(data)
    except ValidationError:
        return
    assert canonical_json(event) == _ascii_json(event)


def test_canonical_json_on_every_character() -> None:
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    for start in range(0, len(chars), 2048):
        chunk = "".join(chars[start : start + 2048])
        kept = models._NOT_CANONICAL.sub("", chunk)
        for event in (
            InboundEvent.model_validate(make_event(text=kept, metadata={"m": chunk})),
            InboundEvent.model_validate(make_event(text=kept, author={"id": "a", "name": kept[:256]})),
            # DEL, which validation refuses in the text, in an event made otherwise
            InboundEvent.model_validate(make_event(id="ü")).model_copy(update={"text": kept + "\x7f"}),
        ):
            assert canonical_json(event) == _ascii_json(event)


def test_a_validator_unknown_to_the_screen_is_refused() -> None:
    class Stricter(InboundEvent):
        @field_validator("brand")
        @classmethod
        def _no_test_brands(cls, value: str) -> str:
            return value

    with pytest.raises(TypeError, match="_no_test_brands"):
        models._screen_schema(Stricter.__pydantic_core_schema__, top=True)
