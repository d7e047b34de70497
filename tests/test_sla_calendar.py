"""SLA business time and timer transitions: pure functions, no Redis, no clock."""

from __future__ import annotations

import itertools
import json
import random
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from worker.exceptions import PolicyError
from worker.policy import load_policy
from worker.settings import REPO_ROOT
from worker.sla.config import SlaPolicy, parse_duration
from worker.sla.hours import ALWAYS_OPEN, BusinessCalendar
from worker.sla.timers import (
    clock_views,
    new_timer,
    record_customer_message,
    record_resolution,
    record_response,
    record_step,
)

TOKYO = ZoneInfo("Asia/Tokyo")
WEEKDAYS_9_TO_18 = {d: [(9 * 60, 18 * 60)] for d in range(5)}


@pytest.fixture(scope="module")
def demo_calendar() -> BusinessCalendar:
    policy = load_policy(REPO_ROOT / "policies" / "demo-shop.yaml").policy
    return BusinessCalendar.of(policy.business_hours)


def tokyo(*args: int) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


def test_friday_1730_plus_one_hour_is_monday_opening_plus_30_minutes(demo_calendar) -> None:
    due = demo_calendar.add(tokyo(2026, 11, 27, 17, 30), timedelta(hours=1))  # Friday
    assert due == tokyo(2026, 11, 30, 9, 30)  # Monday
    assert demo_calendar.elapsed(tokyo(2026, 11, 27, 17, 30), due) == timedelta(hours=1)


def test_start_outside_hours_counts_from_the_next_opening(demo_calendar) -> None:
    assert demo_calendar.add(tokyo(2026, 11, 28, 10, 0), timedelta(hours=1)) == tokyo(2026, 11, 30, 10, 0)  # Saturday
    assert demo_calendar.add(tokyo(2026, 11, 24, 7, 0), timedelta(minutes=15)) == tokyo(2026, 11, 24, 9, 15)
    assert demo_calendar.add(tokyo(2026, 11, 24, 17, 0), timedelta(hours=10)) == tokyo(2026, 11, 25, 18, 0)
    assert demo_calendar.add(tokyo(2026, 11, 24, 17, 0), timedelta(hours=10, minutes=1)) == tokyo(2026, 11, 26, 9, 1)


def test_holidays_are_closed(demo_calendar) -> None:
    # Wednesday 30 Dec 17:30; 31 Dec - 3 Jan are holidays in the demo policy (and 2-3 Jan a weekend)
    assert demo_calendar.add(tokyo(2026, 12, 30, 17, 30), timedelta(hours=1)) == tokyo(2027, 1, 4, 9, 30)
    assert demo_calendar.elapsed(tokyo(2026, 12, 30, 18, 0), tokyo(2027, 1, 4, 9, 0)) == timedelta(0)


def test_time_zones_utc_input_and_a_brand_elsewhere() -> None:
    cal = BusinessCalendar("America/New_York", WEEKDAYS_9_TO_18)
    # Friday 21:30 UTC = 16:30 New York (EST): 1.5 h left on Friday, so 2 h ends Monday 09:30 EST = 14:30 UTC
    due = cal.add(datetime(2026, 11, 27, 21, 30, tzinfo=timezone.utc), timedelta(hours=2))
    assert due == datetime(2026, 11, 30, 14, 30, tzinfo=timezone.utc)
    assert due.astimezone(ZoneInfo("America/New_York")).hour == 9
    assert cal.is_open(datetime(2026, 11, 30, 14, 0, tzinfo=timezone.utc))
    assert not cal.is_open(datetime(2026, 11, 30, 13, 59, tzinfo=timezone.utc))


def test_daylight_saving_day_counts_its_real_length() -> None:
    cal = BusinessCalendar("Europe/London", {d: [(0, 1440)] for d in range(7)})  # always open, in London
    start = datetime(2026, 10, 24, 12, 0, tzinfo=ZoneInfo("Europe/London"))  # clocks go back on 25 Oct
    due = cal.add(start, timedelta(hours=24))
    assert due == start.astimezone(timezone.utc) + timedelta(hours=24)
    assert due.astimezone(ZoneInfo("Europe/London")).hour == 11  # the extra hour is counted


def test_add_and_elapsed_agree_everywhere() -> None:
    cal = BusinessCalendar(
        "Asia/Tokyo", {0: [(540, 720), (780, 1080)], 2: [(0, 1440)], 5: [(600, 660)]}, holidays=[date(2026, 12, 2)]
    )
    rng = random.Random(7)
    base = tokyo(2026, 11, 1, 0, 0)
    for _ in range(300):
        start = base + timedelta(minutes=rng.randrange(60 * 24 * 60))
        length = timedelta(minutes=rng.randrange(1, 60 * 30))
        due = cal.add(start, length)
        assert cal.elapsed(start, due) == length
        assert due > start and (cal.is_open(due - timedelta(seconds=1)))


def _walked(cal: BusinessCalendar, start: datetime, count: int) -> list[tuple[datetime, datetime]]:
    """The first ``count`` opening intervals after ``start``, found by walking the days one by one
    (what BusinessCalendar.intervals did before it kept a window of intervals ready)."""
    out: list[tuple[datetime, datetime]] = []
    day = start.astimezone(cal.zone).date() - timedelta(days=1)
    while len(out) < count:
        if day not in cal.holidays:
            for a, b in cal.weekly.get(day.weekday(), []):
                when, at = (day + timedelta(days=1), a - 1440) if a >= 1440 else (day, a)
                opens = datetime.combine(when, time(at // 60, at % 60), tzinfo=cal.zone).astimezone(timezone.utc)
                when, at = (day + timedelta(days=1), b - 1440) if b >= 1440 else (day, b)
                closes = datetime.combine(when, time(at // 60, at % 60), tzinfo=cal.zone).astimezone(timezone.utc)
                if closes > start and closes > opens:
                    out.append((opens, closes))
        day += timedelta(days=1)
    return out[:count]


@pytest.mark.parametrize(
    "zone, weekly, holidays",
    [
        ("Asia/Tokyo", {0: [(540, 720), (780, 1080)], 2: [(0, 1440)], 5: [(600, 660)]}, [date(2026, 12, 2)]),
        ("Europe/London", {d: [(0, 1440)] for d in range(7)}, []),  # daylight-saving days
        ("America/New_York", {d: [(60, 150), (1380, 1440)] for d in range(6)}, [date(2027, 3, 14)]),
        ("Pacific/Auckland", {4: [(1200, 1440)], 5: [(0, 120)]}, [date(2027, 1, 1)]),
    ],
)
def test_kept_intervals_are_the_walked_ones(zone: str, weekly: dict, holidays: list) -> None:
    """Starts spread over 400 days (the kept window moves, back and forth) give the intervals of
    the day-by-day walk, in order, and add() / elapsed() agree with them."""
    cal = BusinessCalendar(zone, weekly, holidays)
    rng = random.Random(11)
    base = datetime(2026, 9, 1, tzinfo=timezone.utc)
    for _ in range(400):
        start = base + timedelta(seconds=rng.randrange(400 * 86400), microseconds=rng.choice([0, 123456]))
        count = rng.choice([1, 3, 40])
        kept = list(itertools.islice(cal.intervals(start), count))
        assert kept == _walked(cal, start, count), (zone, start)
        length = timedelta(minutes=rng.randrange(1, 60 * 24 * 20))
        assert cal.elapsed(start, cal.add(start, length)) == length
        # several instants from one start (an SLA timer's clocks), in any order, zero and negative ones too
        lengths = [timedelta(seconds=rng.choice([-5, 0, 0.5, 59, 3600, 86400 * 9])) for _ in range(rng.randrange(1, 6))]
        assert cal.add_many(start, lengths) == [cal.add(start, d) for d in lengths], (zone, start, lengths)
        assert ALWAYS_OPEN.add_many(start, lengths) == [ALWAYS_OPEN.add(start, d) for d in lengths]


def test_always_open_and_bad_input() -> None:
    t = datetime(2026, 11, 27, 8, 30, tzinfo=timezone.utc)
    assert ALWAYS_OPEN.add(t, timedelta(minutes=15)) == t + timedelta(minutes=15)
    with pytest.raises(ValueError, match="timezone-aware"):
        ALWAYS_OPEN.add(datetime(2026, 11, 27), timedelta(1))
    assert parse_duration("1h30m") == timedelta(minutes=90) and parse_duration("2d") == timedelta(days=2)
    for bad in ("", "15", "1m1h", "0m", "ten minutes"):
        with pytest.raises(ValueError, match="duration|zero"):
            parse_duration(bad)


# -- timers -------------------------------------------------------------------------------------


def rule(**fields) -> SlaPolicy:
    return SlaPolicy.model_validate(
        {
            "name": "t",
            "first_response": "1h",
            "next_response": "30m",
            "resolution": "4h",
            "warn_before": "10m",
            **fields,
        }
    )


def make_timer(calendar, started: datetime, **fields):
    return new_timer(
        rule(**fields),
        clock="business_hours",
        brand="b",
        message_id="m",
        conversation_id="c",
        role="tier1",
        priority="normal",
        started_at=started,
        calendar=calendar,
    )


def test_timer_due_times_follow_business_hours(demo_calendar) -> None:
    t = make_timer(demo_calendar, tokyo(2026, 11, 27, 17, 30))
    assert t.clocks["first_response"].due_at == tokyo(2026, 11, 30, 9, 30)
    assert t.clocks["first_response"].warn_at == tokyo(2026, 11, 30, 9, 20)
    assert t.clocks["resolution"].due_at == tokyo(2026, 11, 30, 12, 30)
    assert "next_response" in t.clocks and t.clocks["next_response"].started_at is None
    assert t.clocks["first_response"].state(tokyo(2026, 11, 28, 12, 0)) == "active"
    assert t.clocks["first_response"].state(tokyo(2026, 11, 30, 9, 25)) == "warning"
    assert t.clocks["first_response"].state(tokyo(2026, 11, 30, 9, 30)) == "breached"
    assert t.next_due() == tokyo(2026, 11, 30, 9, 20)
    assert t.due_steps(tokyo(2026, 11, 30, 9, 21)) == [("warning", "first_response")]
    warned = record_step(t, "warning", "first_response", tokyo(2026, 11, 30, 9, 21))
    assert warned.next_due() == tokyo(2026, 11, 30, 9, 30)
    assert t.clocks["first_response"].warned_at is None  # transitions never mutate their input


def test_paused_clock_while_waiting_for_the_customer(demo_calendar) -> None:
    t = make_timer(demo_calendar, tokyo(2026, 11, 24, 10, 0))  # Tuesday
    t = record_response(t, tokyo(2026, 11, 24, 10, 30), "agent-a", demo_calendar)
    fr, res = t.clocks["first_response"], t.clocks["resolution"]
    assert fr.state(tokyo(2026, 11, 24, 11)) == "met" and t.first_response_by == "agent-a"
    assert t.waiting_on_customer and res.state(tokyo(2026, 11, 25, 12)) == "paused" and res.due_at is None
    assert res.used_seconds == 30 * 60
    # the customer answers the next day at 17:00: 3.5 h of the 4 h remain -> 1 h on Wednesday, 2.5 h Thursday
    t = record_customer_message(t, tokyo(2026, 11, 25, 17, 0), demo_calendar)
    res = t.clocks["resolution"]
    assert not t.waiting_on_customer and res.due_at == tokyo(2026, 11, 26, 11, 30)
    nxt = t.clocks["next_response"]
    assert nxt.state(tokyo(2026, 11, 25, 17, 1)) == "active" and nxt.due_at == tokyo(2026, 11, 25, 17, 30)
    t = record_response(t, tokyo(2026, 11, 25, 17, 10), "agent-b", demo_calendar)
    assert t.clocks["next_response"].state(tokyo(2026, 11, 26)) == "met"
    t = record_resolution(t, tokyo(2026, 11, 25, 17, 20), "agent-b", demo_calendar)
    assert {c.state(tokyo(2026, 12, 1)) for c in t.clocks.values()} == {"met"}
    assert t.next_due() is None and not t.open


def test_automated_reply_counts_only_when_the_policy_says_so(demo_calendar) -> None:
    at = tokyo(2026, 11, 24, 10, 1)
    plain = record_response(
        make_timer(demo_calendar, tokyo(2026, 11, 24, 10)), at, "replyguard", demo_calendar, automated=True
    )
    assert plain.first_response_at is None and plain.clocks["first_response"].state(at) == "active"
    counted = record_response(
        make_timer(demo_calendar, tokyo(2026, 11, 24, 10), automated_reply_counts=True),
        at,
        "replyguard",
        demo_calendar,
        automated=True,
    )
    assert counted.first_response_at == at and counted.clocks["first_response"].state(at) == "met"
    assert not counted.waiting_on_customer  # an acknowledgment does not stop the resolution clock


def test_a_breach_stays_a_breach_when_met_later(demo_calendar) -> None:
    t = make_timer(demo_calendar, tokyo(2026, 11, 24, 10))
    t = record_step(t, "breach", "first_response", tokyo(2026, 11, 24, 11, 1))
    t = record_response(t, tokyo(2026, 11, 24, 11, 5), "late", demo_calendar)
    assert t.clocks["first_response"].state(tokyo(2026, 11, 25)) == "breached"
    assert t.due_steps(tokyo(2026, 11, 24, 11, 6)) == []


# -- policy validation --------------------------------------------------------------------------


def broken(tmp_path: Path, sla: object, drop_hours: bool = False) -> str:
    doc = yaml.safe_load((REPO_ROOT / "policies" / "demo-shop.yaml").read_text(encoding="utf-8"))
    doc["sla"] = sla
    if drop_hours:
        doc.pop("business_hours")
        doc.pop("greeting", None)
    path = tmp_path / "demo-shop.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return str(info.value)


@pytest.mark.parametrize(
    ("sla", "message"),
    [
        ({"policies": [{"name": "a", "first_response": "15"}]}, "is not a duration"),
        (
            {"policies": [{"name": "a", "first_response": "10m", "warn_before": "10m"}]},
            "warn_before (10m) must be shorter",
        ),
        ({"policies": [{"name": "a", "match": {"kinds": ["dm"]}}]}, "sets none of first_response"),
        ({"policies": [{"name": "a", "first_response": "2h", "resolution": "1h"}]}, "first_response is longer than"),
        (
            {"policies": [{"name": "a", "first_response": "1h"}, {"name": "b", "first_response": "1h"}]},
            "matches everything",
        ),
        (
            {
                "policies": [
                    {"name": "a", "first_response": "1h", "match": {"tags": ["x"]}},
                    {"name": "a", "first_response": "1h"},
                ]
            },
            "must be unique",
        ),
        ({"policies": [{"name": "a", "first_response": "1h", "on_breach": {}}]}, "on_breach must"),
        (
            {"policies": [{"name": "a", "first_response": "1h", "match": {"platforms": ["fax"]}}]},
            "sla.policies.0.match",
        ),
    ],
)
def test_broken_sla_sections_are_named(tmp_path, sla, message) -> None:
    text = broken(tmp_path, sla)
    assert message in text and "sla" in text


def test_business_hours_clock_needs_business_hours(tmp_path) -> None:
    text = broken(
        tmp_path, {"policies": [{"name": "a", "clock": "business_hours", "first_response": "1h"}]}, drop_hours=True
    )
    assert "count business hours but the policy sets no business_hours" in text


def test_demo_policy_sends_unanswered_vips_to_a_manager() -> None:
    sla = load_policy(REPO_ROOT / "policies" / "demo-shop.yaml").policy.sla
    chosen = sla.select(platform="instagram", kind="dm", priority="high", tags=["vip"], role="vip_care")
    assert chosen.name == "vip" and chosen.first_response == timedelta(minutes=15)
    assert chosen.on_breach.reroute_to == "manager" and chosen.clock == "always"
    assert (
        sla.select(platform="youtube", kind="comment", priority="high", tags=[], role="moderator").name == "moderation"
    )
    assert sla.select(platform="x", kind="dm", priority="low", tags=[], role="tier1").name == "standard"


def test_started_event_due_times_are_the_clock_views(demo_calendar) -> None:
    """The ``sla.started`` event's due times (``started_timer_text``'s started clocks, the event's
    text from them) say what clock_views says of the new timer."""
    from worker.sla.timers import started_timer_text
    from worker.sla.tracker import _quote, _started_event

    for start in (tokyo(2026, 11, 27, 17, 30), tokyo(2026, 11, 30, 9, 0), tokyo(2026, 12, 30, 17, 59, 59)):
        t = make_timer(demo_calendar, start)
        kw = {k: getattr(t, k) for k in ("brand", "message_id", "conversation_id", "role", "priority")}
        _, _, started = started_timer_text(
            rule(), clock="business_hours", started_at=start, calendar=demo_calendar, **kw
        )
        views = clock_views(t, tokyo(2026, 11, 30, 10, 0))
        assert [(name, due.isoformat()) for name, due, _ in started] == [(c["target"], c["due_at"]) for c in views]
        event = json.loads(_started_event(rule(), started, *kw.values(), _quote("now")))
        assert event["due"] == {c["target"]: c["due_at"] for c in views}


def test_add_many_beyond_the_kept_window_and_on_its_edges() -> None:
    """add_many counts open time within the kept window; durations that end beyond it, starts at an
    opening or a closing instant, inside and between intervals, give add()'s instants."""
    cal = BusinessCalendar("Europe/London", {0: [(540, 720), (780, 1020)], 3: [(0, 1440)], 5: [(600, 601)]})
    rng = random.Random(5)
    base = datetime(2026, 10, 20, tzinfo=timezone.utc)
    for _ in range(200):
        start = base + timedelta(minutes=rng.randrange(200 * 1440))
        if rng.random() < 0.5:  # an opening or closing instant of the start's week
            opens, closes = next(cal.intervals(start))
            start = rng.choice([opens, closes, closes - timedelta(microseconds=1), opens + timedelta(microseconds=1)])
        lengths = [timedelta(minutes=rng.choice([1, 59, 180, 1440, 20 * 1440, 90 * 1440])) for _ in range(3)]
        lengths.append(timedelta(microseconds=rng.randrange(1, 10**6)))
        assert cal.add_many(start, lengths) == [cal.add(start, d) for d in lengths], (start, lengths)
        zone = start.astimezone(ZoneInfo("America/New_York"))  # a start in another zone: the same instants
        assert cal.add_many(zone, lengths) == cal.add_many(start, lengths)
        assert ALWAYS_OPEN.add_many(zone, lengths) == [ALWAYS_OPEN.add(zone, d) for d in lengths]
        assert all(d.tzinfo is timezone.utc for d in cal.add_many(zone, lengths) + ALWAYS_OPEN.add_many(zone, lengths))


def test_a_calendar_kept_across_batches_adds_as_a_fresh_one() -> None:
    """Trackers (one a batch) share a calendar per business_hours object (tracker.shared_calendar):
    one used for other starts first (its window and instants elsewhere) gives every start the
    instants a fresh calendar gives; a reloaded policy's hours get their own."""
    from worker.sla.tracker import shared_calendar

    policy = load_policy(REPO_ROOT / "policies" / "demo-shop.yaml").policy
    hours = policy.business_hours
    kept = shared_calendar(hours)
    assert shared_calendar(hours) is kept
    assert shared_calendar(load_policy(REPO_ROOT / "policies" / "demo-shop.yaml").policy.business_hours) is not kept
    rng = random.Random(29)
    base = datetime(2026, 11, 29, tzinfo=timezone.utc)
    durations = [timedelta(minutes=15), timedelta(hours=1), timedelta(hours=8), timedelta(days=3)]
    for _ in range(300):
        start = base + timedelta(minutes=rng.randrange(-400 * 1440, 400 * 1440))
        assert kept.add_many(start, durations) == BusinessCalendar.of(hours).add_many(start, durations), start
