"""A decision's outbox entries and keys written the cheaper ways are the same as before: the outbox
head from an f-string of quoted values (worker.json_text) is ``to_json``'s text, the decision entry's
remembered tail is ``to_json``'s, and ``Store._decision_keys`` are ``Keys``'s."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic_core import to_json

import worker.store as store_module
from tests.conftest import make_event
from worker import defaults, json_text
from worker.demo import load_sample
from worker.models import Action, InboundEvent, parse_event
from worker.store import Keys, OutboxEntries, Store, _outbox_head, outbox_payload


def _events() -> list[InboundEvent]:
    from bench.throughput import messages, texts

    pool, _ = texts()
    raws = [*load_sample(), *messages(300, "oh", pool)]
    raws.append(make_event(id="oh-c", kind="comment", post_id='p "1"\\', author={"id": 'u "é"\t'}))
    raws.append(make_event(id="oh-日本", conversation_id="c\u00e9 \u2028", kind="comment", post_id="p-1"))
    # through JSON as a worker receives them (trusted_event), and validated
    from worker.models import trusted_event

    payloads = json.loads(json.dumps([parse_event(r).model_dump(mode="json") for r in raws]))
    return [parse_event(r) for r in raws] + [trusted_event(p) or parse_event(p) for p in payloads]


def test_the_head_is_to_json_s_on_real_traffic_and_odd_values() -> None:
    events = _events()
    for event in events:
        assert json_text.outbox_head(event.__dict__) == to_json(_outbox_head(event))[:-1] + b",", event.id
    assert {e.kind for e in events} >= {"dm", "comment"} and any(e.post_id is None for e in events)


@pytest.mark.parametrize("field", ["brand", "id", "platform", "kind", "conversation_id", "post_id", "author_id"])
def test_each_character_is_escaped_as_to_json_escapes_it(field: str) -> None:
    """Every character below U+3000 and a few beyond, in each field of the head."""
    base = parse_event(make_event(post_id="p-1")).__dict__
    chars = [chr(c) for c in range(0x3000) if not 0xD800 <= c < 0xE000] + ["\u2028", "\ufeff", "\U0001f600"]
    for start in range(0, len(chars), 64):
        value = "a" + "".join(chars[start : start + 64]) + "b"
        ev = dict(base)
        if field == "author_id":
            ev["author"] = base["author"].model_copy(update={"id": value})
        else:
            ev[field] = value
        head = _outbox_head(SimpleNamespace(**ev))  # the store's own head of these fields
        assert json_text.outbox_head(ev) == to_json(head)[:-1] + b",", (field, start)


def test_what_the_f_string_cannot_write_goes_to_to_json() -> None:
    """A value that is not a str, or a lone surrogate: the head raises, and OutboxEntries writes it with
    to_json (which refuses a lone surrogate too)."""
    event = parse_event(make_event())
    ev = dict(event.__dict__)
    ev["post_id"] = 12
    with pytest.raises(TypeError):
        json_text.outbox_head(ev)
    odd = event.model_copy(update={"post_id": 12})
    assert OutboxEntries(odd).head == to_json(_outbox_head(odd))[:-1] + b","
    ev["post_id"] = "\ud800"
    with pytest.raises(UnicodeEncodeError):
        json_text.outbox_head(ev)
    with pytest.raises(Exception, match="surrogates not allowed"):
        OutboxEntries(event.model_copy(update={"post_id": "\ud800"}))


def test_the_decision_entry_is_to_json_s_and_its_tail_remembered(monkeypatch) -> None:
    """OutboxEntries.decision is json("decision", ...) for every action set and rule of the demo
    traffic's decisions and odd rules; a tail is remembered only for exact str values (an Action member
    equal to its value is not a key), and the memory starts afresh at its bound."""
    monkeypatch.setattr(store_module, "_DECISION_TAILS", {})
    monkeypatch.setattr(defaults, "DECISION_TAILS_REMEMBERED", 5)
    rules = ["intent.auto_reply", 'r "x"\\', "é\u2028", "", "keyword.stop"]
    actions = [[], ["ignore"], ["hide", "auto_reply"], ["escalate", "auto_reply", "tag"]]
    for event in _events()[:40]:
        entries = OutboxEntries(event)
        for rule in rules:
            for values in actions:
                for _ in range(2):  # made, then remembered
                    expected = to_json(outbox_payload(event, "decision", actions=values, rule=rule))
                    assert entries.decision(values, rule) == expected
                    assert entries.decision(list(values), rule) == entries.json("decision", actions=values, rule=rule)
        assert 0 < len(store_module._DECISION_TAILS) <= 5
    store_module._DECISION_TAILS.clear()
    event = parse_event(make_event())
    members = [Action.HIDE, Action.AUTO_REPLY]
    assert OutboxEntries(event).decision(members, "r") == to_json(
        outbox_payload(event, "decision", actions=members, rule="r")
    )
    assert not store_module._DECISION_TAILS  # an enum member is not remembered


@pytest.mark.parametrize("open_timers", [False, True])
def test_a_decision_s_keys_are_the_keys_of_keys(client: Any, open_timers: bool) -> None:
    for prefix in ["rg", "other:prefix"]:
        store = Store(client, prefix)
        k = Keys(prefix)
        for b, mid, conv, author in [("demo-shop", "m-1", "c-1", "u-1"), ("b:x", "返品", "c é", "")]:
            assert store._decision_keys(b, mid, conv, author, open_timers) == [
                k.decision(b, mid),
                k.message(mid),
                k.history(b, conv),
                k.conversation(b, conv),
                k.order(b, conv),
                k.person(b, author),
                k.sla_open(b, conv) if open_timers else "",
            ]
