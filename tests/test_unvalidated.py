"""Decisions built without validation (worker.unvalidated.built) are the validated ones, exactly.

decide() builds a decision's pydantic objects from values it made itself (``built``); given
scores that are not plain floats it validates them as before (``validated``). Both ways must give
equal objects: same fields in the same order, same ``model_fields_set``, same nested model types
and the same JSON, on the demo traffic, a shared-dataset sample and the edge cases (opt-outs,
VIPs, unreadable and empty messages, moderation, long texts, greetings and away messages).
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import worker.decide as decide_module
from tests.conftest import BASE_EVENT, make_event
from worker.decide import decide, event_json
from worker.demo import load_sample
from worker.exceptions import InvalidEvent
from worker.models import Decision, DecisionContext, Escalation, IntentResult, RuleHit, TemplateRef, parse_event
from worker.pipeline import Pipeline
from worker.sla.timers import Clock, Response, SlaTimer
from worker.templates import Rendered
from worker.unvalidated import built, given, shallow_copy, stamped


def _same(a: Any, b: Any, where: str) -> None:
    """Equal, with the same types, field order and fields set all the way down."""
    assert type(a) is type(b), where
    if isinstance(a, BaseModel):
        assert list(a.__dict__) == list(b.__dict__), where
        assert a.model_fields_set == b.model_fields_set, where
        for name in a.__dict__:
            _same(a.__dict__[name], b.__dict__[name], f"{where}.{name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _both(events: list[Any], scores: list[Any], contexts: list[DecisionContext], brands: dict[str, Any], **kw: Any):
    out = []
    for event, s, context in zip(events, scores, contexts, strict=True):
        brand = brands[event.brand]
        fast = decide(event, s, context, brand, **kw)
        plain_scores = {task: {label: p for label, p in labels.items()} for task, labels in s.items()}
        decide_module_plain = decide_module._plain_scores
        try:
            decide_module._plain_scores = lambda _: False  # type: ignore[assignment]
            plain = decide(event, plain_scores, context, brand, **kw)
        finally:
            decide_module._plain_scores = decide_module_plain  # type: ignore[assignment]
        out.append((fast, plain))
    return out


def _check(brands: dict[str, Any], raw: list[dict[str, Any]], contexts: list[DecisionContext] | None = None) -> int:
    pipeline = Pipeline(brands)
    events = [parse_event(e) for e in raw]
    scores = pipeline.classify(events)
    contexts = contexts or [DecisionContext() for _ in events]
    built_ones = 0
    for fast, plain in _both(events, scores, contexts, brands):
        d = fast.decision
        _same(d, plain.decision, d.message_id)
        assert d.to_json() == plain.decision.to_json()
        assert d.json_bytes() == d.to_json().encode()  # what the persist stage stores
        assert Decision.from_json(d.to_json()) == d
        assert (fast.optout_op, fast.away_sent) == (plain.optout_op, plain.away_sent)
        assert d.scores is not scores and d.context is not contexts  # nothing shared with the caller
        built_ones += 1
    return built_ones


def test_built_decisions_equal_validated_ones_on_the_demo_traffic(brands) -> None:
    sample = load_sample()
    assert _check(brands, sample) == len(sample)
    contexts = [
        DecisionContext(opted_out=i % 5 == 0, first_contact=i % 2 == 0, away_sent_at=None if i % 3 else None)
        for i in range(len(sample))
    ]
    _check(brands, sample, contexts)


def test_built_decisions_equal_validated_ones_on_edge_cases(brands) -> None:
    night = "2026-11-24T23:30:00+09:00"  # closed: away messages
    raw = [
        make_event(id="e1", text="STOP"),
        make_event(id="e2", text="START"),
        make_event(id="e3", text="where is my order", author={"tags": ["vip"]}),
        make_event(id="e4", text="", unreadable="sticker"),
        make_event(id="e5", text="   "),
        make_event(id="e6", text="BUY CHEAP VIAGRA NOW!!! click http://spam.example win $$$ free free free"),
        make_event(id="e7", text="you are all idiots and I hate you"),
        make_event(id="e8", text="x" * 4100 + " where is my order"),
        make_event(id="e9", text="my email is aiko@example.com and phone +81 90 1234 5678", kind="comment"),
        make_event(id="e10", text="where is my order KM-204815?", created_at=night),
        make_event(id="e11", text="I want to speak to a manager about a refund", created_at=night),
        make_event(id="e12", text="hello", metadata={"order": {"id": 7, "tags": ["a", "é"]}, "x": 1.5}),
        make_event(id="e13", text="こんにちは、注文はどこですか", author={"locale": "ja-JP", "name": "田中"}),
    ]
    for event in raw:
        if event["kind"] == "comment" and not event.get("post_id"):
            event["post_id"] = "post-1"
    contexts = [DecisionContext(), DecisionContext(opted_out=True)] * 6 + [DecisionContext(first_contact=False)]
    _check(brands, raw, contexts)
    away = datetime(2026, 11, 24, 13, tzinfo=timezone.utc)
    _check(brands, raw, [DecisionContext(first_contact=False, away_sent_at=away)] * len(raw))


@pytest.mark.shared_data
def test_built_decisions_equal_validated_ones_on_a_shared_dataset_sample(brands, shared: Path) -> None:
    raw = []
    for name in ("clinc150.jsonl", "sms_spam_collection.jsonl", "davidson_hate_offensive.jsonl"):
        rows = [json.loads(line) for line in (shared / name).read_text(encoding="utf-8").splitlines()]
        for k, row in enumerate([r for r in rows if r.get("split") == "test"][:100]):
            event = {
                **copy.deepcopy(BASE_EVENT),
                "id": f"{name}-{k}",
                "conversation_id": f"c-{name}-{k}",
                "text": row["text"],
                "kind": "comment" if k % 2 else "dm",
                "post_id": "p-1" if k % 2 else None,
            }
            try:
                parse_event(event)
            except InvalidEvent:
                continue
            raw.append(event)
    assert _check(brands, raw) > 250


def test_scores_that_are_not_plain_floats_are_validated_as_before(brands) -> None:
    event = parse_event(make_event(text="where is my order KM-204815?"))
    scores = {"spam": {"spam": 0, "ham": 1}, "abuse": {"hate": 0, "offensive": 0, "neither": 1}, "intent": {}}
    decision = decide(event, scores, DecisionContext(), brands["demo-shop"]).decision
    assert decision.scores["spam"]["ham"] == 1.0 and type(decision.scores["spam"]["ham"]) is float


def test_event_json_is_model_dump() -> None:
    cases = [
        make_event(),
        make_event(created_at="2026-11-24T10:00:00.123456+00:00"),
        make_event(created_at="2026-11-24T10:00:00Z", metadata={"a": [1, 2.5, None, True, {"b": "ü"}]}),
        make_event(kind="comment", post_id="p-9", unreadable="sticker", text=""),
        make_event(created_at=(datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))).isoformat()),
    ]
    for raw in cases:
        event = parse_event(raw)
        assert json.dumps(event_json(event)) == json.dumps(event.model_dump(mode="json"))
        assert event_json(event) == event.model_dump(mode="json")


def test_built_refuses_unknown_and_missing_fields_and_copies_like_model_copy() -> None:
    with pytest.raises(TypeError, match="unknown field.*nme"):
        built(RuleHit, {"name": "x", "nme": "y"})
    with pytest.raises(TypeError, match="missing .*name"):
        built(RuleHit, {"score": 0.5})
    _same(built(RuleHit, {"name": "x"}), RuleHit(name="x"), "rule")
    context = DecisionContext(opted_out=True)
    copied = shallow_copy(context)
    _same(copied, context.model_copy(), "context")
    assert copied is not context


def test_given_is_the_validated_small_model_and_refuses_other_fields() -> None:
    """unvalidated.given (a rule hit, escalation, intent or template reference with every field given)
    is what validation makes: same fields, order, fields set, JSON; any other set or order of fields
    is refused."""
    cases = [
        (RuleHit, {"name": "intent.auto_reply", "score": 0.91, "threshold": 0.5, "detail": "order_status"}),
        (RuleHit, {"name": "greeting.first_contact", "score": None, "threshold": None, "detail": None}),
        (Escalation, {"role": "tier1", "priority": "normal", "reason": "intent refund is routed to a person"}),
        (IntentResult, {"label": "refund", "score": 0.7, "threshold": None}),
        (TemplateRef, {"id": "greeting.en", "version": 3, "part": "greeting", "fallback": True}),
    ]
    for cls, values in cases:
        made = given(cls, dict(values))
        _same(made, cls(**values), cls.__name__)
        assert made.model_dump_json() == cls(**values).model_dump_json()
        assert (
            made.model_fields_set == set(values)
            and made.model_fields_set is not given(cls, dict(values)).model_fields_set
        )
    with pytest.raises(TypeError, match="every field"):
        given(RuleHit, {"name": "x"})
    with pytest.raises(TypeError, match="every field"):
        given(RuleHit, {"score": None, "name": "x", "threshold": None, "detail": None})
    with pytest.raises(TypeError, match="every field"):
        given(Escalation, {"role": "tier1", "priority": "low", "reason": "r", "note": "n"})


def test_rendered_reference_is_the_validated_one(brands) -> None:
    """Rendered.ref (built without validation when its values are certain) equals TemplateRef(...)
    for every approved template, part and fallback; a part outside TemplatePart is still refused."""
    from pydantic import ValidationError

    templates = [t for brand in brands.values() for t in brand.templates.by_id.values() if t.status == "approved"]
    assert templates
    for template in templates:
        for part in ("greeting", "reply", "away", "confirm"):
            for fallback in (False, True):
                expected = TemplateRef(id=template.id, version=template.version, part=part, fallback=fallback)
                _same(Rendered("text", template, fallback).ref(part), expected, template.id)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Rendered("text", templates[0], False).ref("footer")  # type: ignore[arg-type]


def test_stamped_is_built_with_the_changed_fields() -> None:
    """A prototype with some fields replaced (unvalidated.stamped, the SLA timer's clocks) is what
    built and validation make of the changed fields: same fields, fields set, JSON; defaults made by a
    factory are not shared with the prototype; a field the prototype did not set is refused."""
    at = datetime(2026, 11, 28, 9, 30, tzinfo=timezone.utc)
    proto = built(SlaTimer, {**TIMER_FIELDS, "started_at": None, "clocks": {}})
    clocks = {"resolution": Clock(target="resolution", seconds=60.0, started_at=at, due_at=at + timedelta(minutes=1))}
    fields = {**TIMER_FIELDS, "started_at": at, "clocks": clocks}
    made = stamped(proto, {"started_at": at, "clocks": clocks})
    _same(made, built(SlaTimer, fields), "timer")
    _same(made, SlaTimer(**fields), "timer")
    assert made.model_dump_json() == SlaTimer(**fields).model_dump_json()
    made.responses.append(Response(at=at, by="replyguard"))
    assert proto.responses == [] and stamped(proto, {}).responses == []  # a list of its own each
    clock = stamped(built(Clock, {"target": "next_response", "seconds": 7.0}), {})
    _same(clock, Clock(target="next_response", seconds=7.0), "clock")
    with pytest.raises(TypeError, match="met_at"):
        stamped(clock, {"met_at": at})


TIMER_FIELDS = {
    "brand": "b",
    "message_id": "m",
    "conversation_id": "c",
    "policy": "p",
    "clock": "always",
    "role": "tier1",
    "priority": "normal",
    "original_role": "tier1",
    "original_priority": "normal",
}


def test_assign_is_pydantics_setattr(brands) -> None:
    """unvalidated.assign (the pipeline's decided_at, timings and job id) leaves a decision as
    setattr does: the same fields, fields set and JSON, on built and on validated decisions."""
    from worker.unvalidated import assign

    pipeline = Pipeline(brands)
    events = [parse_event(e) for e in load_sample()[:20]]
    at = datetime(2026, 11, 28, 9, 30, tzinfo=timezone.utc)
    for make in (lambda d: d, lambda d: Decision(**d.model_dump())):
        contexts = [DecisionContext()] * len(events)
        outcomes, _ = pipeline.decide(events, pipeline.classify(events), contexts, now=at)
        for outcome in outcomes:
            mine, theirs = make(outcome.decision), make(outcome.decision).model_copy(deep=True)
            mine.__pydantic_fields_set__.discard("job_id")
            theirs.__pydantic_fields_set__.discard("job_id")
            assign(mine, {"job_id": "j-1", "timings": {"decide_ms": 0.5}, "decided_at": at})
            theirs.job_id, theirs.timings, theirs.decided_at = "j-1", {"decide_ms": 0.5}, at
            _same(mine, theirs, "decision")
            assert "job_id" in mine.model_fields_set and mine.model_dump_json() == theirs.model_dump_json()
