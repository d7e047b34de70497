"""SLA timer state of one escalation, and the pure transitions that change it.

Nothing here reads Redis or the clock: every function takes the instant it acts at
and the business calendar to count in, and returns a new :class:`SlaTimer`. The
tracker (:mod:`worker.sla.tracker`) stores timers and calls these.

An escalation has up to three clocks, one per target of its SLA policy:

* ``first_response`` starts when the customer's message arrived; met by the first
  human reply (or an automated one when the policy says it counts).
* ``resolution`` starts at the same time; met when the escalation is resolved. It is
  paused while the brand waits for the customer (after a reply, until the customer
  writes again), when the policy says so.
* ``next_response`` starts when the customer writes again after a reply; met by the
  next reply.

A clock's state at an instant: ``active`` → ``warning`` (``warn_before`` its due
time) → ``breached`` (past due and not met), or ``met``; ``paused`` while stopped.
A breach stays a breach even if the target is met later.
"""

from __future__ import annotations

import operator
import re
from datetime import datetime, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from worker.sla.config import TARGETS, SlaPolicy, Target
from worker.unvalidated import built, stamped

State = Literal["active", "warning", "breached", "met", "paused"]
Step = Literal["warning", "breach"]


class Calendar(Protocol):
    def add(self, start: datetime, duration: timedelta) -> datetime: ...
    def add_many(self, start: datetime, durations: list[timedelta]) -> list[datetime]: ...
    def elapsed(self, start: datetime, end: datetime) -> timedelta: ...


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Clock(_Model):
    target: Target
    seconds: float = Field(description="The target, in counted (business or wall-clock) seconds.")
    warn_seconds: float | None = None
    started_at: datetime | None = None
    running_since: datetime | None = None
    used_seconds: float = Field(default=0.0, description="Counted seconds before running_since (earlier runs).")
    due_at: datetime | None = None
    warn_at: datetime | None = None
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    met_at: datetime | None = None

    def state(self, now: datetime) -> State:
        if self.breached_at is not None:
            return "breached"
        if self.met_at is not None:
            return "met"
        if self.running_since is None or self.due_at is None:
            return "paused"
        if now >= self.due_at:
            return "breached"
        if self.warned_at is not None or (self.warn_at is not None and now >= self.warn_at):
            return "warning"
        return "active"

    @property
    def running(self) -> bool:
        return _running(self.__dict__)


def _running(fields: dict) -> bool:
    """:attr:`Clock.running` of a clock's fields (``clock.__dict__``: hot paths read them in one go)."""
    return fields["running_since"] is not None and fields["met_at"] is None and fields["breached_at"] is None


class Response(_Model):
    at: datetime
    by: str
    automated: bool = False


class BreachRecord(_Model):
    target: Target
    at: datetime
    due_at: datetime
    role_before: str
    role_after: str
    priority_before: str
    priority_after: str
    notified: bool = False


class SlaTimer(_Model):
    schema_version: Literal[1] = 1
    brand: str
    message_id: str
    conversation_id: str
    policy: str = Field(description="Name of the SLA policy that matched.")
    clock: Literal["business_hours", "always"]
    started_at: datetime
    role: str
    priority: str
    original_role: str
    original_priority: str
    automated_reply_counts: bool = False
    pause_while_waiting: bool = True
    clocks: dict[str, Clock]
    waiting_on_customer: bool = False
    first_response_at: datetime | None = None
    first_response_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    responses: list[Response] = Field(default_factory=list)
    breaches: list[BreachRecord] = Field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.resolved_at is None

    def next_due(self) -> datetime | None:
        """The earliest instant at which a step (warning or breach) falls due, or None."""
        times = []
        for clock in self.clocks.values():
            c = clock.__dict__  # one read: a model's attribute reads go through pydantic's __getattr__ hook
            if _running(c) and c["due_at"] is not None:
                times.append(c["warn_at"] if c["warn_at"] is not None and c["warned_at"] is None else c["due_at"])
        return min(times, default=None)

    def due_steps(self, now: datetime) -> list[tuple[Step, Target]]:
        """Steps due at ``now`` that have not been recorded (a missed warning is skipped once breached)."""
        out: list[tuple[Step, Target]] = []
        for name in TARGETS:
            c = self.clocks.get(name)
            if c is None or not c.running or c.due_at is None:
                continue
            if now >= c.due_at:
                out.append(("breach", c.target))
            elif c.warn_at is not None and c.warned_at is None and now >= c.warn_at:
                out.append(("warning", c.target))
        return out


# -- transitions ------------------------------------------------------------------------------


def new_timer(
    rule: SlaPolicy,
    *,
    clock: Literal["business_hours", "always"],
    brand: str,
    message_id: str,
    conversation_id: str,
    role: str,
    priority: str,
    started_at: datetime,
    calendar: Calendar,
) -> SlaTimer:
    """A timer for a new escalation: first-response and resolution clocks run from ``started_at``."""
    warn = rule.warn_before.total_seconds() if rule.warn_before else None
    clocks: dict[str, Clock] = {}
    for name in TARGETS:
        target = rule.target(name)
        if target is not None:
            clocks[name] = Clock(target=name, seconds=target.total_seconds(), warn_seconds=warn)
    timer = SlaTimer(
        brand=brand,
        message_id=message_id,
        conversation_id=conversation_id,
        policy=rule.name,
        clock=clock,
        started_at=started_at,
        role=role,
        priority=priority,
        original_role=role,
        original_priority=priority,
        automated_reply_counts=rule.automated_reply_counts,
        pause_while_waiting=rule.pause_while_waiting,
        clocks=clocks,
    )
    for name in ("first_response", "resolution"):
        if name in timer.clocks:
            _start(timer.clocks[name], started_at, calendar)
    return timer


class _Shape:
    """What :func:`started_timer` works out from the rule alone, once per rule: its targets, the
    durations whose instants a new timer needs (as ``_start`` / ``_run_from`` work them out: a due
    time and, when the warning is after the start, a warning time per started clock) and the
    fields of each clock that do not depend on the start."""

    def __init__(self, rule: SlaPolicy):
        self.sla_rule = rule
        # the rule's own fields a timer copies (a rule is frozen): read once, not once a timer
        self.name = rule.name
        self.automated_reply_counts = rule.automated_reply_counts
        self.pause_while_waiting = rule.pause_while_waiting
        self.warn = warn = rule.warn_before.total_seconds() if rule.warn_before else None
        self.targets = [(name, target.total_seconds()) for name in TARGETS if (target := rule.target(name)) is not None]
        self.durations: list[timedelta] = []
        self.warns: list[bool] = []  # per started clock: its warning instant is a duration of its own
        #: per started clock, in target order: (target, the index of its due instant among the answers
        #: to ``durations``, the index of its warning instant: None without warnings, -1 at the start)
        self.started: list[tuple[str, int, int | None]] = []
        # prototypes of each clock (started, started and met, not started) with the fields a validated
        # clock would have set: a new clock is a prototype with its instants (unvalidated.stamped)
        self.clocks: dict[str, tuple[Clock, Clock]] = {}
        for name, seconds in self.targets:
            fields: dict[str, object] = {"target": name, "seconds": seconds, "warn_seconds": warn}
            if name == "next_response":  # not started until the customer writes again
                self.clocks[name] = (built(Clock, fields), built(Clock, fields))
                continue
            left = max(0.0, seconds)  # nothing used yet
            due_index, warn_index = len(self.durations), None if warn is None else -1
            self.durations.append(timedelta(seconds=left))
            self.warns.append(warn is not None and left - warn > 0)
            if self.warns[-1]:
                warn_index = len(self.durations)
                self.durations.append(timedelta(seconds=left - warn))  # type: ignore[operator]
            self.started.append((name, due_index, warn_index))
            # the fields _start and _run_from set, in their order; met: _meet's too
            fields.update(started_at=None, used_seconds=0.0, running_since=None, due_at=None, warn_at=None)
            self.clocks[name] = (built(Clock, fields), built(Clock, {**fields, "met_at": None}))
        self.response = built(Response, {"at": None, "by": "replyguard", "automated": True})
        #: (clock, reply counted, reply recorded) -> the JSON template of such timers (started_timer_text)
        self.json_templates: dict[tuple[str, bool, bool], _Template] = {}


_shapes: dict[int, _Shape] = {}


def _shape(rule: SlaPolicy) -> _Shape:
    """The rule's :class:`_Shape`, remembered per rule object (a reloaded policy makes new rules)."""
    found = _shapes.get(id(rule))
    if found is None or found.sla_rule is not rule:
        if len(_shapes) > 256:
            _shapes.clear()
        found = _shapes[id(rule)] = _Shape(rule)
    return found


def started_timer(
    rule: SlaPolicy,
    *,
    clock: Literal["business_hours", "always"],
    brand: str,
    message_id: str,
    conversation_id: str,
    role: str,
    priority: str,
    started_at: datetime,
    calendar: Calendar,
    automated_reply_at: datetime | None = None,
) -> SlaTimer:
    """:func:`new_timer`, then :func:`respond` with ``automated=True`` by ``"replyguard"`` at
    ``automated_reply_at`` when given: the same timer, built without validation and without
    pydantic's ``__setattr__`` (the clocks are computed first, with the same arithmetic: the new
    timer of every escalation is on the hot path). Every value is one this process made from a
    validated policy, so there is nothing to validate; ``tests/test_sla_fast_timer.py`` compares
    the two, field by field, fields set and JSON included."""
    return _started(
        _shape(rule),
        clock,
        brand,
        message_id,
        conversation_id,
        role,
        priority,
        started_at,
        calendar,
        automated_reply_at,
    )


def _template(shape: _Shape, clock: str, automated_reply_at: datetime | None) -> _Template:
    """The :class:`_Template` of the timers of ``shape`` and ``clock`` with or without an automated reply."""
    counted = automated_reply_at is not None and shape.automated_reply_counts
    key = (clock, counted, automated_reply_at is not None)
    template = shape.json_templates.get(key)
    if template is None:
        template = shape.json_templates[key] = _Template(shape, clock, counted, automated_reply_at is not None)
    return template


def started_timer_text(
    rule: SlaPolicy,
    *,
    clock: Literal["business_hours", "always"],
    brand: str,
    message_id: str,
    conversation_id: str,
    role: str,
    priority: str,
    started_at: datetime,
    calendar: Calendar,
    automated_reply_at: datetime | None = None,
) -> tuple[bytes, datetime | None, list[tuple[str, datetime, bytes]]]:
    """What starting the :func:`started_timer` of these arguments writes, without building the timer:
    its JSON (``timer.model_dump_json()`` as UTF-8 bytes, what ``lua/sla_start.lua`` stores), its
    ``next_due()``, and each started clock's target, due instant and that instant's JSON from
    pydantic-core, in target order (the ``sla.started`` event's due times).

    The fields that do not depend on the message are the same for every timer of a rule, clock and
    kind of reply, so the JSON is that shape's text (serialised once by pydantic-core itself, from a
    timer :func:`_started` built with placeholders, :class:`_Template`) with this timer's values,
    each serialised by pydantic-core, in its holes; the values are the arguments and the calendar's
    answers to what :func:`_started` asks it, taken directly (building the timer, its clocks and
    reply, was ~90k instructions of the ~180k the timer and its JSON cost). ``tests/test_sla_fast_timer.py``
    compares the three with the validated timer's own on the demo traffic and a grid of rules,
    calendars, replies and odd strings."""
    shape = _shape(rule)
    template = _template(shape, clock, automated_reply_at)
    instants = calendar.add_many(started_at, shape.durations)
    # the template's values in the order of its holes: the strings, the start, the reply, then the
    # calendar's answers as _started asks for them (the instants, then a counted reply's used seconds)
    values: list[object] = [brand, message_id, conversation_id, role, priority, started_at, automated_reply_at]
    values += instants
    met = template.counted and shape.started and shape.started[0][0] == "first_response"
    if met:  # _meet of the first response clock by the counted reply
        values.append(calendar.elapsed(started_at, automated_reply_at).total_seconds())  # type: ignore[arg-type]
    encoded = _encoded(values)
    first = _Template._STRINGS + 2  # the first instant's value
    steps: list[datetime] = []  # each running clock's next step: its warning (when it has one), else its due time
    dues: list[tuple[str, datetime, bytes]] = []
    for name, due_index, warn_index in shape.started:
        due = instants[due_index]
        dues.append((name, due, encoded[first + due_index]))
        if met and name == "first_response":  # met: not running
            continue
        steps.append(due if warn_index is None else started_at if warn_index < 0 else instants[warn_index])
    return template.format % template.pick(encoded), min(steps, default=None), dues


#: placeholders of a timer template's values: strings no real value is compared with (the template's
#: text is cut where their JSON stands; real values are never searched for them)
_HOLE = "\x00{}\x00"
#: a placeholder as pydantic-core writes it in JSON (the number captured)
_HOLE_JSON = re.compile(rb'"\\u0000(\d+)\\u0000"')


class _Seconds:
    """A placeholder duration: ``total_seconds()`` is a placeholder too."""

    def __init__(self, hole: str):
        self.hole = hole

    def total_seconds(self) -> str:
        return self.hole


class _HoleCalendar:
    """A calendar whose instants and durations are placeholders (in the order asked for)."""

    def __init__(self, first: int):
        self.next = first

    def _take(self) -> str:
        self.next += 1
        return _HOLE.format(self.next - 1)

    def add_many(self, start: datetime, durations: list[timedelta]) -> list[datetime]:
        return [self._take() for _ in durations]  # type: ignore[misc]

    def add(self, start: datetime, duration: timedelta) -> datetime:  # pragma: no cover - not used here
        raise NotImplementedError

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        return _Seconds(self._take())  # type: ignore[return-value]


class _Template:
    """The JSON of the timers :func:`_started` builds for one rule (its shape), clock and kind of
    reply (counted, recorded only, none), as pydantic-core writes it, cut into its constant text and
    the holes where a timer's own values go. Made by building a timer with placeholders through the
    same code (so the fields, their order and the constant values are pydantic's and this module's
    own) and serialising it once; a hole is filled with the value's JSON from pydantic-core."""

    # the values a template has holes for: the strings given, then the instants and durations
    # (started_at, the reply, the calendar's answers)
    _STRINGS = 5

    def __init__(self, shape: _Shape, clock: str, counted: bool, recorded: bool):
        holes = [_HOLE.format(n) for n in range(self._STRINGS + 2)]
        calendar = _HoleCalendar(len(holes))
        reply: object = holes[self._STRINGS + 1] if recorded else None
        if counted != (recorded and shape.automated_reply_counts):  # pragma: no cover - a caller's mistake
            raise ValueError("a counted reply is a recorded reply of a rule where automated replies count")
        brand, message_id, conversation_id, role, priority, started_at = holes[: self._STRINGS + 1]
        probe = _started(
            shape,
            clock,  # type: ignore[arg-type]
            brand,
            message_id,
            conversation_id,
            role,
            priority,
            started_at,  # type: ignore[arg-type]
            calendar,
            reply,  # type: ignore[arg-type]
        )
        text = SlaTimer.__pydantic_serializer__.to_json(probe, warnings=False)
        # the template: its head, then (value number, constant bytes after it) for each hole
        pieces = _HOLE_JSON.split(text)  # constant text, hole number, constant text, ...
        # one bytes format: the constant text with %s for each hole, filled in one call
        self.format = b"%s".join(piece.replace(b"%", b"%%") for piece in pieces[::2])
        self.pick = operator.itemgetter(*(int(n) for n in pieces[1::2]))  # the values the holes take, in order
        self.shape, self.counted = shape, counted
        # the calendar's answers started_timer_text gives the holes after these: the instants, then
        # the used seconds of the first response a counted reply met
        answers = len(shape.durations) + (counted and "first_response" in probe.clocks)
        if answers != calendar.next - len(holes):  # pragma: no cover
            raise RuntimeError("the timer template and started_timer_text disagree on the calendar's answers")


def _encoded(values: list[object]) -> list[bytes]:
    """Each value's JSON as pydantic-core writes it, from one call (each call costs ~4k instructions
    before its values), cut at the commas between them: instants, numbers and None hold none, so the
    cut is right exactly when there are as many pieces as values (else a string held a comma: one
    call each)."""
    encoded = to_json(values)[1:-1].split(b",")
    if len(encoded) != len(values):
        encoded = [to_json(value) for value in values]
    return encoded


def _started(
    shape: _Shape,
    clock: Literal["business_hours", "always"],
    brand: str,
    message_id: str,
    conversation_id: str,
    role: str,
    priority: str,
    started_at: datetime,
    calendar: Calendar,
    automated_reply_at: datetime | None,
) -> SlaTimer:
    """:func:`started_timer` of the rule whose shape is ``shape``."""
    warn = shape.warn
    reply = automated_reply_at if shape.automated_reply_counts else None
    # the due and warning instants of the clocks that start now, found together
    instants = iter(calendar.add_many(started_at, shape.durations))
    warns = iter(shape.warns)
    clocks: dict[str, Clock] = {}
    for name, _ in shape.targets:
        started, met = shape.clocks[name]
        if name == "next_response":  # not started until the customer writes again
            clocks[name] = stamped(started, {})
            continue
        due = next(instants)
        fields: dict[str, object] = {
            "started_at": started_at,
            "running_since": started_at,
            "due_at": due,
            "warn_at": None if warn is None else next(instants) if next(warns) else started_at,
        }
        if reply is not None and name == "first_response":  # _meet
            fields["used_seconds"] = calendar.elapsed(started_at, reply).total_seconds()
            fields["running_since"] = None
            fields["met_at"] = reply
            clocks[name] = stamped(met, fields)
        else:
            clocks[name] = stamped(started, fields)
    values: dict[str, object] = {
        "brand": brand,
        "message_id": message_id,
        "conversation_id": conversation_id,
        "policy": shape.name,
        "clock": clock,
        "started_at": started_at,
        "role": role,
        "priority": priority,
        "original_role": role,
        "original_priority": priority,
        "automated_reply_counts": shape.automated_reply_counts,
        "pause_while_waiting": shape.pause_while_waiting,
        "clocks": clocks,
    }
    if reply is not None:
        values["first_response_at"], values["first_response_by"] = reply, "replyguard"
    timer = built(SlaTimer, values)
    if automated_reply_at is not None:  # recorded whether or not it counts
        timer.responses.append(stamped(shape.response, {"at": automated_reply_at}))
    return timer


def record_response(
    timer: SlaTimer, at: datetime, by: str, calendar: Calendar, *, automated: bool = False, waiting: bool = True
) -> SlaTimer:
    """The brand replied. Meets the first (or next) response; then waits for the customer."""
    return respond(timer.model_copy(deep=True), at, by, calendar, automated=automated, waiting=waiting)


def respond(
    t: SlaTimer, at: datetime, by: str, calendar: Calendar, *, automated: bool = False, waiting: bool = True
) -> SlaTimer:
    """:func:`record_response` on ``t`` itself (a timer nobody else holds, such as a new one)."""
    if not t.open:
        return t
    counts = not automated or t.automated_reply_counts
    t.responses.append(Response(at=at, by=by, automated=automated))
    if not counts:
        return t
    if t.first_response_at is None:
        t.first_response_at, t.first_response_by = at, by
    for name in ("first_response", "next_response"):
        c = t.clocks.get(name)
        if c is not None and c.running:
            _meet(c, at, calendar)
    if waiting and not automated:
        t = _set_waiting(t, True, at, calendar)
    return t


def record_customer_message(timer: SlaTimer, at: datetime, calendar: Calendar) -> SlaTimer:
    """The customer wrote again: the resolution clock resumes and, after a reply, the next response is due."""
    t = timer.model_copy(deep=True)
    if not t.open:
        return t
    t = _set_waiting(t, False, at, calendar)
    c = t.clocks.get("next_response")
    if c is not None and t.first_response_at is not None and not c.running:
        c.warned_at = c.breached_at = c.met_at = None  # a new cycle
        _start(c, at, calendar)
    return t


def set_waiting(timer: SlaTimer, waiting: bool, at: datetime, calendar: Calendar) -> SlaTimer:
    """Mark the escalation as waiting (or no longer waiting) for the customer."""
    return _set_waiting(timer.model_copy(deep=True), waiting, at, calendar)


def record_resolution(timer: SlaTimer, at: datetime, by: str, calendar: Calendar) -> SlaTimer:
    """Resolved: every running clock stops; those not breached are met."""
    t = timer.model_copy(deep=True)
    if not t.open:
        return t
    t.resolved_at, t.resolved_by, t.waiting_on_customer = at, by, False
    for c in t.clocks.values():
        if c.breached_at is None and c.met_at is None and c.started_at is not None:
            _meet(c, at, calendar)
        c.running_since = None
    return t


def record_step(timer: SlaTimer, step: Step, target: str, at: datetime) -> SlaTimer:
    """Record a warning or a breach of ``target`` (re-routing is recorded by the caller)."""
    t = timer.model_copy(deep=True)
    c = t.clocks[target]
    if step == "warning":
        c.warned_at = c.warned_at or at
    else:
        c.breached_at = c.breached_at or at
        c.warned_at = c.warned_at or at
    return t


# -- clocks -----------------------------------------------------------------------------------


def _start(c: Clock, at: datetime, calendar: Calendar) -> None:
    c.started_at = c.started_at or at
    c.used_seconds = 0.0
    _run_from(c, at, calendar)


def _due_and_warning(
    seconds: float, used_seconds: float, warn_seconds: float | None, at: datetime, calendar: Calendar
) -> tuple[datetime, datetime | None]:
    """(due, warning) instants of a clock that runs from ``at`` with ``used_seconds`` already used."""
    left = max(0.0, seconds - used_seconds)
    due = calendar.add(at, timedelta(seconds=left))
    if warn_seconds is None:
        return due, None
    before = left - warn_seconds
    return due, calendar.add(at, timedelta(seconds=before)) if before > 0 else at


def _run_from(c: Clock, at: datetime, calendar: Calendar) -> None:
    c.running_since = at
    c.due_at, c.warn_at = _due_and_warning(c.seconds, c.used_seconds, c.warn_seconds, at, calendar)


def _pause(c: Clock, at: datetime, calendar: Calendar) -> None:
    if c.running_since is None:
        return
    c.used_seconds += calendar.elapsed(c.running_since, at).total_seconds()
    c.running_since, c.due_at, c.warn_at = None, None, None


def _meet(c: Clock, at: datetime, calendar: Calendar) -> None:
    if c.running_since is not None:
        c.used_seconds += calendar.elapsed(c.running_since, at).total_seconds()
    c.running_since = None
    if c.breached_at is None:
        c.met_at = at


def _set_waiting(t: SlaTimer, waiting: bool, at: datetime, calendar: Calendar) -> SlaTimer:
    if waiting == t.waiting_on_customer or not t.open:
        return t
    t.waiting_on_customer = waiting
    c = t.clocks.get("resolution")
    if c is None or not t.pause_while_waiting or c.breached_at is not None or c.met_at is not None:
        return t
    if waiting:
        _pause(c, at, calendar)
    else:
        _run_from(c, at, calendar)
    return t


def clock_views(timer: SlaTimer, now: datetime) -> list[dict[str, object]]:
    """Each started clock as JSON: target, state, due and warning times, met / breached times."""
    out: list[dict[str, object]] = []
    for name in TARGETS:
        c = timer.clocks.get(name)
        if c is None or c.started_at is None:
            continue
        out.append(
            {
                "target": name,
                "state": c.state(now),
                "due_at": c.due_at.isoformat() if c.due_at else None,
                "warn_at": c.warn_at.isoformat() if c.warn_at else None,
                "met_at": c.met_at.isoformat() if c.met_at else None,
                "breached_at": c.breached_at.isoformat() if c.breached_at else None,
                "target_seconds": c.seconds,
                "used_seconds": round(c.used_seconds, 3),
            }
        )
    return out
