"""The ``sla.started`` event an escalation's SLA start writes (worker.sla.tracker._started_json) is
the text the encoder the other SLA events use makes of its body (``_event_json`` with ``default=str``
over ``_event_body``): the same characters for plain, non-ASCII, quoted and control-character
values, with due times present, absent or null; and so is the SLA start's (``_started_event``: a rule's
text filled, due times from pydantic-core's JSON of the instants) on random instants and odd strings."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from pydantic_core import to_json

from worker.sla.tracker import _event_body, _event_json, _quote, _started_event, _started_json
from worker.sla.timers import SlaTimer, started_timer
from worker.sla.config import SlaPolicy
from worker.sla.hours import ALWAYS_OPEN


def _reference(t: dict[str, Any], at: str, due: dict[str, str | None]) -> str:
    return _event_json(_event_body(t, "sla.started", at, due=due))


ODD = [
    "plain",
    "",
    "naïve café",
    "日本語のメッセージ",
    'quote " and \\ backslash',
    "tab\tnew\nline\x01",
    "emoji 😀",
    "\u2028",
]


@pytest.mark.parametrize("value", ODD)
def test_started_json_is_the_encoders_text(value: str) -> None:
    fields = {
        "brand": value,
        "message_id": f"m-{value}",
        "conversation_id": value,
        "policy": value,
        "role": value,
        "priority": "normal",
    }
    at = "2026-11-29T17:03:05.123456+00:00"
    for due in (
        {},
        {"first_response": "2026-11-29T18:03:05+00:00"},
        {"first_response": None, "resolution": "2026-11-30T18:03:05.000001+00:00"},
        {"first_response": value, "next_response": None, "resolution": value},
    ):
        assert _started_json(fields, at, due) == _reference(fields, at, due)


def test_started_json_of_a_real_timer() -> None:
    rule = SlaPolicy.model_validate(
        {"name": "std", "first_response": "1h", "resolution": "1d", "next_response": "2h", "warn_before": "10m"}
    )
    timer: SlaTimer = started_timer(
        rule,
        clock="always",
        brand="acme",
        message_id="m-1",
        conversation_id="c-1",
        role="support",
        priority="high",
        started_at=datetime(2026, 11, 29, 17, 3, 5, 123456, tzinfo=timezone.utc),
        calendar=ALWAYS_OPEN,
    )
    at = datetime.now(timezone.utc).isoformat()
    due = {name: c.due_at.isoformat() for name, c in timer.clocks.items() if c.started_at is not None}
    assert set(due) == {"first_response", "resolution"}
    assert _started_json(timer.__dict__, at, due) == _reference(timer.__dict__, at, due)
    started = [(name, c.due_at, to_json(c.due_at)) for name, c in timer.clocks.items() if c.started_at is not None]
    t = timer.__dict__
    fields = (t["brand"], t["message_id"], t["conversation_id"], t["role"], t["priority"])
    assert _started_event(rule, started, *fields, _quote(at)) == _reference(t, at, due)


@pytest.mark.parametrize("value", ODD)
def test_started_event_is_the_encoders_text(value: str) -> None:
    """The SLA start's event (a rule's text filled; a due time's isoformat from pydantic-core's JSON of
    it) on random instants, edge years and other offsets, with odd strings: the encoder's text."""
    import random
    from datetime import timedelta

    rnd = random.Random(7)
    instants: list[datetime] = []
    for _ in range(1000):
        micro = rnd.choice([0, rnd.randrange(10**6), rnd.randrange(10) * 100000])
        instants.append(
            datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rnd.randrange(10**9), microseconds=micro)
        )
    instants += [
        datetime(1, 1, 1, tzinfo=timezone.utc),
        datetime(999, 3, 4, 5, 6, 7, 8, tzinfo=timezone.utc),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
        datetime(2026, 1, 1, 9, tzinfo=timezone(timedelta(hours=9))),
        datetime(2026, 1, 1, 9, 0, 0, 5, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(seconds=1))),
    ]
    rules = [
        SlaPolicy.model_validate({"name": "both", "first_response": "1h", "resolution": "1d"}),
        SlaPolicy.model_validate({"name": "first_only", "first_response": "1h"}),
        SlaPolicy.model_validate({"name": "next_only", "next_response": "1h"}),
    ]
    at = "2026-11-29T17:03:05.123456+00:00"
    fields = {"brand": value, "message_id": f"m-{value}", "conversation_id": value, "role": value, "priority": value}
    for i, instant in enumerate(instants):
        other = instants[i - 1]
        for rule, targets in zip(rules, (["first_response", "resolution"], ["first_response"], []), strict=True):
            started = [(name, d, to_json(d)) for name, d in zip(targets, (instant, other), strict=False)]
            due = {name: d.isoformat() for name, d, _ in started}
            expected = _reference({**fields, "policy": rule.name}, at, due)
            assert _started_event(rule, started, *fields.values(), _quote(at)) == expected, (instant, other)
