"""Business time: adding and measuring durations that only count while the brand is open.

Pure (no Redis, no clock). A :class:`BusinessCalendar` is built from a policy's
``business_hours`` (time zone, weekly opening spans, holidays); without one,
:data:`ALWAYS_OPEN` counts every second. All arithmetic is done on UTC instants, so a
day with a daylight-saving change counts its real length; opening times are read as
wall-clock times in the brand's zone (a span that starts inside a spring-forward gap
starts at the instant the gap ends).

    >>> cal = BusinessCalendar("Asia/Tokyo", {4: [(540, 1080)], 0: [(540, 1080)]})
    >>> cal.add(datetime(2026, 11, 27, 17, 30, tzinfo=ZoneInfo("Asia/Tokyo")), timedelta(hours=1))
    datetime.datetime(2026, 11, 30, 0, 30, tzinfo=datetime.timezone.utc)

(Friday 17:30 with one hour to go: 30 minutes on Friday, the rest from Monday 09:00.)
"""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from worker.exceptions import ConfigError

#: How far ahead the calendar looks for opening hours before giving up (days).
SEARCH_DAYS = 800
#: Opening and closing instants a calendar remembers (about a year of a few spans a day).
INSTANT_CACHE = 4096
#: Days of opening intervals a calendar keeps ready as one sorted list (the window moves when a
#: start falls outside it).
WINDOW_DAYS = 60

Span = tuple[int, int]  # (start minute, end minute) of a day, end up to 1440
#: A calendar's kept days: (first day, day after the last, their opening intervals in order, the
#: intervals' closing instants, the open time from the first interval's opening to each closing)
Window = tuple[date, date, list[tuple[datetime, datetime]], list[datetime], list[timedelta]]

_ZERO = timedelta(0)
_DAY = timedelta(days=1)


class BusinessCalendar:
    """Opening hours in one time zone: ``weekly`` maps weekday (0 = Monday) to spans of minutes."""

    def __init__(self, zone: str, weekly: Mapping[int, Iterable[Span]], holidays: Iterable[date] = ()):
        self.zone = ZoneInfo(zone)
        self.weekly = {day: _merge(spans) for day, spans in weekly.items()}
        self.holidays = frozenset(holidays)
        self._instants: dict[tuple[date, int], datetime] = {}  # _instant's results (a pure function)
        self._window: Window | None = None
        if not any(self.weekly.values()):
            raise ConfigError("business hours have no opening span on any weekday")

    @classmethod
    def of(cls, hours: object | None) -> "BusinessCalendar | AlwaysOpen":
        """The calendar of a policy's ``business_hours`` (or :data:`ALWAYS_OPEN` for None)."""
        if hours is None:
            return ALWAYS_OPEN
        return cls(hours.timezone, hours.spans_by_weekday(), hours.holidays)  # type: ignore[attr-defined]

    def intervals(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Opening intervals (UTC, start < end) that end after ``start``, in order."""
        _aware(start)
        first = start.astimezone(self.zone).date() - timedelta(days=1)  # a span may straddle midnight in UTC
        day = first
        window = self._window_from(first)
        if window is not None:  # the same intervals, from a list kept ready: no walk over the days
            _, day, spans, closing, _ = window
            yield from spans[bisect_right(closing, start) :]
        for _ in range(SEARCH_DAYS - (day - first).days):
            yield from self._day_intervals(day, start)
            day += timedelta(days=1)
        raise ConfigError(f"no opening hours within {SEARCH_DAYS} days after {start.isoformat()} (all holidays?)")

    def _day_intervals(self, day: date, start: datetime) -> list[tuple[datetime, datetime]]:
        """The opening intervals of ``day`` (local) that end after ``start``."""
        out = []
        if day not in self.holidays:
            for a, b in self.weekly.get(day.weekday(), []):
                opens, closes = self._instant(day, a), self._instant(day, b)
                if closes > start and closes > opens:
                    out.append((opens, closes))
        return out

    def _window_from(self, first: date) -> Window | None:
        """The kept intervals of the days from ``first`` on (None when they are not in closing order,
        which a daylight-saving oddity could cause: then the days are walked as before).

        Exact: the days before ``first`` (the day before a start's own) all close before the start,
        so the intervals that close after the start, in order, are those :meth:`intervals` walks to."""
        window = self._window
        if window is None or not window[0] <= first < window[1]:
            spans: list[tuple[datetime, datetime]] = []
            lowest = datetime.min.replace(tzinfo=timezone.utc)
            for k in range(WINDOW_DAYS):
                spans += self._day_intervals(first + timedelta(days=k), lowest)
            closing = [closes for _, closes in spans]
            ordered = all(a <= b for a, b in itertools.pairwise(closing))
            counted = list(itertools.accumulate(closes - opens for opens, closes in spans))
            window = self._window = (
                (first, first + timedelta(days=WINDOW_DAYS), spans, closing, counted) if ordered else None
            )
            if window is None:
                return None
        return window

    def _instant(self, day: date, minute: int) -> datetime:
        """The UTC instant of ``minute`` past midnight of ``day`` in the zone (remembered: a burst of
        escalations asks for the same few days' opening times over and over)."""
        found = self._instants.get((day, minute))
        if found is None:
            if len(self._instants) >= INSTANT_CACHE:
                self._instants.clear()
            when, at = (day + timedelta(days=1), minute - 1440) if minute >= 1440 else (day, minute)
            local = datetime.combine(when, time(at // 60, at % 60), tzinfo=self.zone)
            found = self._instants[(day, minute)] = local.astimezone(timezone.utc)
        return found

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which ``duration`` of open time has passed since ``start`` (UTC)."""
        start = _aware(start).astimezone(timezone.utc)
        if duration <= timedelta(0):
            return start
        left = duration
        for opens, closes in self.intervals(start):
            begin = max(opens, start)
            available = closes - begin
            if left <= available:
                return begin + left
            left -= available
        raise AssertionError("unreachable: intervals() raises when it runs out")  # pragma: no cover

    def add_many(self, start: datetime, durations: list[timedelta]) -> list[datetime]:
        """``[self.add(start, d) for d in durations]`` (a new SLA timer asks for the due and warning
        instants of two clocks from the same start). Within the kept window, by the open time counted
        from the window's first opening: ``start`` is ``base`` of it, so ``start + d`` in open time is
        the instant where ``base + d`` is reached, found by bisection, not by walking the intervals (the
        same integer arithmetic on microseconds as :meth:`add`'s walk, so the same instants;
        ``tests/test_sla_calendar.py`` compares them). Beyond the window, the walk."""
        start = _aware(start).astimezone(timezone.utc)
        window = self._window_from(start.astimezone(self.zone).date() - _DAY)  # as intervals() finds it
        if window is not None:
            spans, closing, counted = window[2], window[3], window[4]
            after = bisect_right(closing, start)  # the first interval that ends after the start
            if after < len(spans):
                opens = spans[after][0]
                base = (counted[after - 1] if after else _ZERO) + (max(opens, start) - opens)
                out: list[datetime] = []
                for duration in durations:
                    if duration <= _ZERO:
                        out.append(start)
                        continue
                    reached = base + duration
                    k = bisect_left(counted, reached, after)  # the interval in which it is reached
                    if k == len(counted):
                        break  # beyond the window
                    out.append(spans[k][1] - (counted[k] - reached))
                else:
                    return out
        return self._add_walking(start, durations)

    def _add_walking(self, start: datetime, durations: list[timedelta]) -> list[datetime]:
        """:meth:`add_many` by walking :meth:`intervals` (``start`` in UTC), finding them once."""
        out: list[datetime] = []
        found: list[tuple[datetime, datetime]] = []
        walk: Iterator[tuple[datetime, datetime]] | None = None
        for duration in durations:
            if duration <= timedelta(0):
                out.append(start)
                continue
            if walk is None:
                walk = self.intervals(start)
            left, k = duration, 0
            while True:  # add()'s loop over the intervals found so far, then further ones
                if k == len(found):
                    found.append(next(walk))
                opens, closes = found[k]
                k += 1
                begin = max(opens, start)
                available = closes - begin
                if left <= available:
                    out.append(begin + left)
                    break
                left -= available
        return out

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Open time between ``start`` and ``end`` (zero if ``end`` is not after ``start``)."""
        start = _aware(start).astimezone(timezone.utc)
        end = _aware(end).astimezone(timezone.utc)
        total = timedelta(0)
        if end <= start:
            return total
        for opens, closes in self.intervals(start):
            if opens >= end:
                break
            total += min(closes, end) - max(opens, start)
        return total

    def is_open(self, at: datetime) -> bool:
        at = _aware(at).astimezone(timezone.utc)
        opens, _ = next(self.intervals(at))
        return opens <= at


class AlwaysOpen:
    """Every second counts (a brand without business hours, or a clock that ignores them)."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        return _aware(start).astimezone(timezone.utc) + max(duration, timedelta(0))

    def add_many(self, start: datetime, durations: list[timedelta]) -> list[datetime]:
        """``[self.add(start, d) for d in durations]``, ``start`` checked and converted once."""
        start = _aware(start).astimezone(timezone.utc)
        return [start + duration if duration > _ZERO else start for duration in durations]

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        return max(_aware(end) - _aware(start), timedelta(0))

    def is_open(self, at: datetime) -> bool:
        return True


ALWAYS_OPEN = AlwaysOpen()


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"business time needs timezone-aware datetimes, got {at!r}")
    return at


def _merge(spans: Iterable[Span]) -> list[Span]:
    """Sorted, overlapping or touching spans joined."""
    out: list[Span] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
