"""The SLA timer of a new escalation, built without validation (worker.sla.timers.started_timer),
is the validated one exactly: ``new_timer`` then ``respond(automated=True)`` when the decision
replied. Same fields in the same order, same ``model_fields_set`` all the way down (a clock set
through pydantic's ``__setattr__`` records each field it was given), same JSON, and the stored
JSON reads back equal; on the demo traffic through the pipeline and on a grid of SLA policies,
calendars and start instants (warnings or none, automated replies that count or not, a reply
before, at and after the start, the next-response clock, a closed business calendar). What the SLA
start writes without building the timer (``started_timer_text``: its JSON, next step and due
times) is the validated timer's, on the same traffic and grid with odd strings."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.conftest import make_event
from tests.test_unvalidated import _same
from worker.demo import load_sample
from worker.models import DecisionContext, parse_event
from worker.pipeline import Pipeline
from worker.sla.config import SlaPolicy
from worker.sla.hours import ALWAYS_OPEN, BusinessCalendar
from pydantic_core import to_json

from worker.sla.timers import SlaTimer, new_timer, respond, started_timer, started_timer_text
from worker.sla.tracker import SlaTracker
from worker.store import Store


def _reference(rule: SlaPolicy, calendar: Any, reply_at: datetime | None, **kw: Any) -> SlaTimer:
    timer = new_timer(rule, calendar=calendar, **kw)
    if reply_at is not None:
        respond(timer, reply_at, "replyguard", calendar, automated=True)
    return timer


def _compare(fast: SlaTimer, slow: SlaTimer, where: str) -> None:
    _same(fast, slow, where)
    assert fast == slow, where
    assert fast.model_dump_json() == slow.model_dump_json(), where
    assert SlaTimer.model_validate_json(fast.model_dump_json()) == fast, where
    assert fast.next_due() == slow.next_due(), where


def _same_text(text: tuple[bytes, datetime | None, list[tuple[str, datetime, bytes]]], slow: SlaTimer, where: str):
    """``started_timer_text``'s answer is the validated timer's JSON (what sla_start.lua stores), next
    step and each started clock's due instant with its JSON, in target order."""
    stored, due, started = text
    assert stored == slow.model_dump_json().encode(), where
    assert due == slow.next_due(), where
    if due is not None:
        assert due.tzinfo is slow.next_due().tzinfo, where
    clocks = [(n, c.due_at) for n, c in slow.clocks.items() if c.started_at is not None]
    assert [(n, d) for n, d, _ in started] == clocks, where
    assert [t for _, _, t in started] == [to_json(d) for _, d in clocks], where


def test_fast_timers_equal_validated_ones_on_the_demo_traffic(client, brands) -> None:
    night = "2026-11-24T23:30:00+09:00"  # closed: away messages, which are automated replies
    raw = [*load_sample()]
    raw += [
        make_event(id="vip-day", text="where is my order KM-204815?", author={"id": "u-v", "tags": ["vip"]}),
        make_event(id="vip-night", text="I want a refund", created_at=night, author={"id": "u-w", "tags": ["vip"]}),
        make_event(id="agent-night", text="I'd like to speak to a real person please", created_at=night),
        make_event(id="hate", text="you are all idiots and I hate you"),
    ]
    events = [parse_event(e) for e in raw]
    pipeline = Pipeline(brands)
    now = datetime.now(timezone.utc)
    outcomes, errors = pipeline.decide(events, pipeline.classify(events), [DecisionContext() for _ in events], now=now)
    assert not errors
    tracker = SlaTracker(Store(client), {b: brand.policy for b, brand in brands.items()})
    compared = replied = 0
    for outcome, event in zip(outcomes, events, strict=True):
        d = outcome.decision
        plan = tracker._plan(d, now, event)
        if plan is None:
            continue
        slow = _reference(
            plan.rule,
            plan.calendar,
            d.decided_at if "auto_reply" in d.actions and d.reply else None,
            clock=plan.clock,
            brand=event.brand,
            message_id=event.id,
            conversation_id=event.conversation_id,
            role=plan.escalation.role,
            priority=plan.escalation.priority,
            started_at=min(event.created_at, now).astimezone(timezone.utc),
        )
        kw = tracker._started_args(plan, now)
        _compare(started_timer(plan.rule, **kw), slow, event.id)
        _same_text(started_timer_text(plan.rule, **kw), slow, event.id)
        compared += 1
        replied += bool(slow.responses)
    assert compared >= 10 and replied >= 2  # escalations with and without an automated reply


@pytest.mark.parametrize("counts", [False, True])
@pytest.mark.parametrize("warn", [None, timedelta(minutes=5)])
@pytest.mark.parametrize("next_response", [None, timedelta(minutes=30)])
def test_fast_timers_equal_validated_ones_on_a_grid(brands, counts: bool, warn, next_response) -> None:
    policy = brands["demo-shop"].policy
    calendars = {"always": ALWAYS_OPEN, "business_hours": BusinessCalendar.of(policy.business_hours)}
    london = BusinessCalendar("Europe/London", {d: [(540, 1020)] for d in range(5)})  # daylight saving
    rule = SlaPolicy(
        name="grid",
        first_response=timedelta(minutes=15),
        next_response=next_response,
        resolution=timedelta(hours=8),
        warn_before=warn,
        automated_reply_counts=counts,
        pause_while_waiting=not counts,
    )
    only_resolution = SlaPolicy(name="resolution_only", resolution=timedelta(hours=2), automated_reply_counts=counts)
    # the other kinds of rule: a first response alone, without a resolution, a next response alone
    others = [
        SlaPolicy(
            name="first_only", first_response=timedelta(hours=3), warn_before=warn, automated_reply_counts=counts
        ),
        SlaPolicy(
            name="no_resolution",
            first_response=timedelta(minutes=45),
            next_response=timedelta(hours=1),
            automated_reply_counts=counts,
        ),
        SlaPolicy(name="next_only", next_response=timedelta(hours=1), warn_before=warn, automated_reply_counts=counts),
    ]
    starts = [
        datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc),  # Tuesday, open in Tokyo
        datetime(2026, 11, 24, 14, 30, 15, 123000, tzinfo=timezone.utc),  # Tuesday night in Tokyo: closed
        datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc),  # Saturday
        datetime(2027, 3, 28, 0, 59, 59, 999999, tzinfo=timezone.utc),  # London's clocks go forward at 01:00
        datetime(2026, 11, 24, 18, 0, 0, 5, tzinfo=timezone(timedelta(hours=9))),  # not in UTC
    ]
    for r in (rule, only_resolution, *others):
        for clock, calendar in [*calendars.items(), ("business_hours", london)]:
            for start in starts:
                for reply in (None, start, start + timedelta(seconds=1.5), start + timedelta(hours=20)):
                    kw: dict[str, Any] = {
                        "clock": clock,
                        "brand": "demo-shop",
                        "message_id": "m-1",
                        "conversation_id": "c-1",
                        "role": "tier1",
                        "priority": "normal",
                        "started_at": start,
                    }
                    fast = started_timer(r, calendar=calendar, automated_reply_at=reply, **kw)
                    slow = _reference(r, calendar, reply, **kw)
                    _compare(fast, slow, f"{r.name} {clock} {start} {reply}")
                    _same_text(started_timer_text(r, calendar=calendar, automated_reply_at=reply, **kw), slow, "")
                    if reply not in (None, start):
                        continue  # the strings below the same with every kind of reply
                    for odd in (
                        "m-1",
                        'comma, and "quoted,"',
                        'quote " and \\ back',
                        "日本語 ✓",
                        "tab\tline\n",
                        "per %s cent %% and %d",
                        "",
                        "emoji 😀 \u2028 \x7f",
                    ):  # the strings' holes
                        kw |= {"message_id": odd, "conversation_id": odd + "c", "role": odd + "r", "brand": odd + "b"}
                        kw["priority"] = odd or "normal"
                        slow = _reference(r, calendar, reply, **kw)
                        where = f"{r.name} {clock} {start} {reply} {odd!r}"
                        _compare(started_timer(r, calendar=calendar, automated_reply_at=reply, **kw), slow, where)
                        text = started_timer_text(r, calendar=calendar, automated_reply_at=reply, **kw)
                        _same_text(text, slow, where)
