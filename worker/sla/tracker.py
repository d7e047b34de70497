"""SLA timers in Redis: started with each escalation, stepped by a sweep, changed by people's actions.

Every change to a timer is one optimistic transaction (WATCH the timer and decision keys,
then MULTI/EXEC) that writes the timer, its entry in the due index ``{p}:sla:due``, any
re-route or priority change of the decision (through
:meth:`worker.store.Store.queue_escalation_change`), an ``sla.*`` event on the brand's
stream ``{p}:sla:events:{brand}`` and, when the timer has a next step, an RQ job scheduled
for that instant. Two sweepers racing over one due timer therefore record its warning or
breach exactly once: the loser's EXEC fails, it re-reads the timer, and finds nothing due.

Who runs the sweep (:meth:`SlaTracker.fire_due`):

* RQ's scheduler: every timer write schedules ``worker.sla.tracker.fire_due_timers`` at the
  timer's next step (job id derived from the instant, so timers due together share a job).
  Scheduled jobs live in Redis, so they survive worker restarts, and whichever worker holds
  RQ's scheduler lock moves them to the queue; any worker runs them.
* every batch job, after deciding, and every worker at start-up (a backstop for a job that
  was lost between two writes).

The outbound webhook is told through the events stream: entries with ``notify=1``
(``sla.breached`` when the policy's ``on_breach.notify`` is set) are for it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Literal, NamedTuple, TypeVar

import redis
from rq.job import Job

from worker import defaults
from worker.decide import sla_breach
from worker.exceptions import StoreError
from worker.models import Action, Decision, Escalation, InboundEvent
from worker.sla.config import Sla, SlaPolicy
from worker.sla.hours import ALWAYS_OPEN, BusinessCalendar
from worker.sla.timers import (
    BreachRecord,
    SlaTimer,
    clock_views,
    record_customer_message,
    record_resolution,
    record_response,
    record_step,
    set_waiting,
    started_timer,
    started_timer_text,
)
from worker.store import Store, Evalsha, review_member

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRE_FUNCTION = "worker.sla.tracker.fire_due_timers"
#: Action's members: ``Action.X`` is a class attribute read through the enum metaclass's ``__getattr__`` hook
#: (~0.15 µs; the SLA start reads two a message); the same objects
_ESCALATE, _AUTO_REPLY = Action.ESCALATE, Action.AUTO_REPLY
#: Worst first: the state that sums up an escalation's clocks.
STATE_ORDER = ("breached", "warning", "active", "paused", "met")


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@functools.cache
def _start_script() -> str:
    return resources.files("worker").joinpath("lua/sla_start.lua").read_text()


@functools.cache
def _after_batch_script() -> str:
    return resources.files("worker").joinpath("lua/after_batch.lua").read_text()


def _started_values(plan: _Start, now: datetime) -> tuple[str, str, str, str, str, datetime, datetime | None]:
    """(brand, message id, conversation id, role, priority, start, automated reply) of the timer
    ``plan`` starts: :func:`worker.sla.timers.new_timer` from the escalation's message (not after
    ``now``), then ``respond(automated=True)`` at the decision time when the decision replied."""
    # one read each: a model's attribute reads go through pydantic's __getattr__ hook
    decision, event, esc = plan.decision.__dict__, plan.event.__dict__, plan.escalation.__dict__
    replied = _AUTO_REPLY in decision["actions"] and bool(decision["reply"])
    # the earlier instant, in UTC: the message's instant converted first, so that the two compared
    # share their time zone (comparing instants of two zones asks each for its offset)
    started_at = min(event["created_at"].astimezone(_UTC), now).astimezone(_UTC)
    return (
        event["brand"],
        event["id"],
        event["conversation_id"],
        esc["role"],
        esc["priority"],
        started_at,
        decision["decided_at"] if replied else None,
    )


class _Start(NamedTuple):
    """A timer to start: the escalated decision, its event, the SLA rule that matched and its calendar.
    (A tuple: a frozen dataclass sets each field through ``object.__setattr__``, ~11k instructions an
    escalation for the six.)"""

    decision: Decision
    event: InboundEvent
    escalation: Escalation
    rule: SlaPolicy
    clock: Literal["business_hours", "always"]
    calendar: Any


#: ``json.dumps(body, default=str)`` with one encoder for every call (the same text; ``json.dumps``
#: with an argument builds a new encoder each time)
_event_json = json.JSONEncoder(default=str).encode


def _event_body(t: dict[str, Any], kind: str, at: str, **fields: Any) -> dict[str, Any]:
    """An SLA event's JSON body for a timer's fields ``t`` (``timer.__dict__``: one read, a model's
    attribute reads go through pydantic's __getattr__ hook; ``at``: the instant's ``isoformat()``)."""
    return {
        "type": kind,
        "brand": t["brand"],
        "message_id": t["message_id"],
        "conversation_id": t["conversation_id"],
        "policy": t["policy"],
        "role": t["role"],
        "priority": t["priority"],
        "at": at,
        **fields,
    }


#: JSON string literals as ``json.dumps`` writes them (ASCII only, the C escaper it uses)
_quote = json.encoder.encode_basestring_ascii


def _started_json(t: dict[str, Any], at: str, due: dict[str, str | None]) -> str:
    """``_event_json(_event_body(t, "sla.started", at, due=due))`` for a timer's fields ``t``
    (``timer.__dict__``): the same text (every value a str, or None in ``due``), written directly.
    The encoder walked the dict at ~37k instructions an escalation; this is about half.
    ``tests/test_sla_started_json.py`` compares the two."""
    pairs = ", ".join([f"{_quote(k)}: {'null' if v is None else _quote(v)}" for k, v in due.items()])
    return (
        '{"type": "sla.started", "brand": %s, "message_id": %s, "conversation_id": %s, "policy": %s, '
        '"role": %s, "priority": %s, "at": %s, "due": {%s}}'
        % (
            _quote(t["brand"]),
            _quote(t["message_id"]),
            _quote(t["conversation_id"]),
            _quote(t["policy"]),
            _quote(t["role"]),
            _quote(t["priority"]),
            _quote(at),
            pairs,
        )
    )


_started_formats: dict[int, tuple[SlaPolicy, str]] = {}


def _started_format(rule: SlaPolicy, started: list[tuple[str, datetime, bytes]]) -> str:
    """The text of :func:`_started_json` for the timers of ``rule`` (whose started clocks are
    the targets of ``started``, as :func:`worker.sla.timers.started_timer_text` gives them) with ``%s`` for the brand, message id, conversation id, role, priority, instant and
    each due time, each a JSON string literal; remembered per rule object (as the timer's shape)."""
    found = _started_formats.get(id(rule))
    if found is None or found[0] is not rule:
        if len(_started_formats) > 256:
            _started_formats.clear()
        fields = {"brand": "%s", "message_id": "%s", "conversation_id": "%s", "policy": rule.name, "role": "%s"}
        text = _started_json({**fields, "priority": "%s"}, "%s", {target: "%s" for target, _, _ in started})
        # the quoted placeholders become bare ones (no JSON string literal holds %s but these); the
        # policy's name is a constant whose % is doubled by the same substitution
        text = text.replace("%", "%%").replace('"%%s"', "%s")
        found = _started_formats[id(rule)] = (rule, text)
    return found[1]


def _started_event(
    rule: SlaPolicy,
    started: list[tuple[str, datetime, bytes]],
    brand: str,
    message_id: str,
    conversation_id: str,
    role: str,
    priority: str,
    at: str,
) -> str:
    """``_started_json(timer.__dict__, at, _due_times(timer))`` of the timer of ``rule`` whose started
    clocks :func:`worker.sla.timers.started_timer_text` gave as ``started``, with ``at`` already a JSON
    string literal: the rule's text (:func:`_started_format`) filled. A UTC instant's ``isoformat()``
    is its JSON by pydantic-core (made for the timer's JSON already) with ``+00:00`` for its ``Z``:
    the same digits, microseconds when not zero (``isoformat`` is ~11.6k instructions, through
    ``sprintf``); any other instant is formatted by ``isoformat``. ``tests/test_sla_started_json.py``
    compares the two on random instants, odd strings and real timers."""
    dues = [
        text[:-2].decode() + '+00:00"'
        if instant.tzinfo is _UTC and len(text) in (22, 29) and text[-2:] == b'Z"'
        else _quote(instant.isoformat())
        for _, instant, text in started
    ]
    return _started_format(rule, started) % (
        _quote(brand),
        _quote(message_id),
        _quote(conversation_id),
        _quote(role),
        _quote(priority),
        at,
        *dues,
    )


_UTC = timezone.utc


def overall_state(clocks: list[dict[str, Any]]) -> str | None:
    """The worst state among an escalation's clocks (breached > warning > active > paused > met)."""
    states = [c["state"] for c in clocks]
    return min(states, key=STATE_ORDER.index) if states else None


@dataclass(frozen=True)
class AfterBatch:
    """What lua/after_batch.lua read: overdue LLM tasks ('<brand>/<message id>'), due SLA steps (the
    same), the earliest pending step [(member, score)] or [], and (the second of max(earliest, now),
    whether its sweep job is scheduled) or None."""

    overdue: list[bytes]
    due: list[bytes]
    earliest: list[tuple[bytes, float]]
    checked: tuple[int, bool] | None


#: (id of an ``Sla``, platform, kind, priority, tags, role) -> (that ``Sla``, the rule it selects)
_selected: dict[tuple[Any, ...], tuple[Sla, SlaPolicy | None]] = {}


def _select(sla: Sla, platform: str, kind: str, priority: str, tags: list[str], role: str) -> SlaPolicy | None:
    """``sla.select(...)`` of an escalation, remembered per ``Sla`` object (a reloaded policy makes a
    new one) and escalation: the choice is a function of these alone, and an escalation of the same
    platform, kind, priority, author tags and role as an earlier one is the usual case (asking each
    rule's match was ~20k instructions an escalation; ``tests/test_sla_start_text.py`` compares)."""
    key = (id(sla), platform, kind, priority, tuple(tags), role)
    found = _selected.get(key)
    if found is None or found[0] is not sla:
        if len(_selected) > defaults.SLA_SELECTIONS_REMEMBERED:
            _selected.clear()
        rule = sla.select(platform=platform, kind=kind, priority=priority, tags=list(tags), role=role)
        found = _selected[key] = (sla, rule)
    return found[1]


_calendars: dict[int, tuple[Any, Any]] = {}


def shared_calendar(hours: Any) -> Any:
    """``BusinessCalendar.of(hours)``, one per ``business_hours`` object for the process's life (a
    reloaded policy makes new ones). A calendar is a pure function of its hours (what it remembers,
    opening instants and a window of intervals, only saves work), and building its window was ~0.15
    ms of every batch's fixed cost (a tracker is made per batch)."""
    found = _calendars.get(id(hours))
    if found is None or found[0] is not hours:
        if len(_calendars) > 256:
            _calendars.clear()
        found = _calendars[id(hours)] = (hours, BusinessCalendar.of(hours))
    return found[1]


class SlaTracker:
    """SLA timers of the brands in ``policies`` (brand -> Policy)."""

    def __init__(self, store: Store, policies: Mapping[str, Any], *, schedule_queue: Any | None = None):
        self.store = store
        self.client: Any = store.client  # redis-py types replies as sync-or-async unions; ours are sync bytes
        self.keys = store.keys
        self.policies = policies
        self.queue = schedule_queue  # an rq.Queue: steps are scheduled on it with RQ's scheduler
        self._start_script = Evalsha(_start_script())  # one write (its arguments are ~1.5 kB a timer)
        self._after_batch_script = self.client.register_script(_after_batch_script())
        self._calendars: dict[str, Any] = {}

    # -- helpers ------------------------------------------------------------------------------

    def calendar(self, brand: str, clock: str):
        policy = self.policies.get(brand)
        if clock == "business_hours" and policy is not None and policy.business_hours is not None:
            found = self._calendars.get(brand)
            if found is None:  # looked up once per tracker (a tracker serves one batch or one job)
                found = self._calendars[brand] = shared_calendar(policy.business_hours)
            return found
        return ALWAYS_OPEN

    def _rule(self, timer: SlaTimer):
        policy = self.policies.get(timer.brand)
        if policy is None or policy.sla is None:
            return None
        return next((p for p in policy.sla.policies if p.name == timer.policy), None)

    def _schedule(self, pipe: Any, at: datetime, scheduled: set[str] | None = None) -> None:
        """Schedule the sweep job for ``at``, rounded up to a whole second: timers due within the same
        second share one RQ job (a job costs RQ a few ms of CPU when it runs; a burst of escalations
        would otherwise schedule one each). ``scheduled``: job ids already queued on ``pipe``."""
        if self.queue is None:
            return
        second, job_id = self._sweep_job(at)
        if scheduled is not None:
            if job_id in scheduled:
                return
            scheduled.add(job_id)
        at = datetime.fromtimestamp(second, tz=timezone.utc)
        self.queue.enqueue_at(
            at,
            FIRE_FUNCTION,
            job_id=job_id,
            pipeline=pipe,
            result_ttl=defaults.SLA_JOB_RESULT_TTL_SECONDS,
            failure_ttl=defaults.JOB_FAILURE_TTL_SECONDS,
            description=f"replyguard SLA steps due {at.isoformat()}",
        )

    def _sweep_job(self, at: datetime) -> tuple[int, str]:
        """The whole second (rounded up) and the id of the sweep job for ``at``."""
        second = -(-_ms(at) // 1000)
        return second, "rg-sla-" + hashlib.sha1(f"{self.keys.prefix}:{second * 1000}".encode()).hexdigest()[:20]

    def _scheduled(self, at: datetime) -> bool:
        """Whether the sweep job :meth:`_schedule` would write for ``at`` is already scheduled for
        that second (its hash exists and the scheduled registry holds it at that time)."""
        if self.queue is None:
            return False
        second, job_id = self._sweep_job(at)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.exists(Job.key_for(job_id))
            pipe.zscore(self.queue.scheduled_job_registry.key, job_id)
            exists, score = pipe.execute()
        return bool(exists) and score == second

    def _queue_timer(self, pipe: Any, timer: SlaTimer, scheduled: set[str] | None = None) -> None:
        """Inside MULTI: write ``timer`` and keep the due index, open set and schedule in step."""
        k, member = self.keys, review_member(timer.brand, timer.message_id)
        pipe.set(
            k.sla_timer(timer.brand, timer.message_id), timer.model_dump_json(), ex=defaults.SLA_RECORD_TTL_SECONDS
        )
        due = timer.next_due() if timer.open else None
        if due is None:
            pipe.zrem(k.sla_due, member)
        else:
            pipe.zadd(k.sla_due, {member: _ms(due)})
            self._schedule(pipe, due, scheduled)
        if not timer.open:
            pipe.srem(k.sla_open(timer.brand, timer.conversation_id), timer.message_id)

    def _event(self, pipe: Any, timer: SlaTimer, kind: str, at: datetime, notify: bool = False, **fields: Any) -> None:
        pipe.xadd(
            self.keys.sla_events(timer.brand),
            {
                "type": kind,
                "notify": "1" if notify else "0",
                "payload": _event_json(_event_body(timer.__dict__, kind, at.isoformat(), **fields)),
            },
            maxlen=defaults.SLA_EVENTS_MAX_ENTRIES,
            approximate=True,
        )

    def timer(self, brand: str, message_id: str) -> SlaTimer | None:
        try:
            raw = self.client.get(self.keys.sla_timer(brand, message_id))
        except redis.RedisError as exc:
            raise StoreError(f"Redis failed while reading an SLA timer: {exc}") from exc
        return SlaTimer.model_validate_json(raw) if raw else None

    def _transact(self, brand: str, message_id: str, change: Callable[[Any, SlaTimer | None, Decision | None], T]) -> T:
        """WATCH timer + decision, let ``change(pipe, timer, decision)`` queue writes after MULTI."""
        tkey, dkey = self.keys.sla_timer(brand, message_id), self.keys.decision(brand, message_id)
        try:
            with self.client.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(tkey, dkey)
                        raw_t, raw_d = pipe.get(tkey), pipe.get(dkey)
                        timer = SlaTimer.model_validate_json(raw_t) if raw_t else None
                        decision = Decision.from_json(raw_d) if raw_d else None
                        pipe.multi()
                        result = change(pipe, timer, decision)
                        if len(pipe.command_stack) == 0:
                            pipe.reset()
                            return result
                        pipe.execute()
                        return result
                    except redis.WatchError:
                        continue
        except redis.RedisError as exc:
            raise StoreError(f"Redis failed while updating the SLA timer of {brand}/{message_id}: {exc}") from exc

    # -- starting -------------------------------------------------------------------------------

    def _plan(self, decision: Decision, now: datetime, event: InboundEvent | None = None) -> _Start | None:
        """What starting the timer of ``decision`` needs (no Redis), or None when no SLA policy applies."""
        d = decision.__dict__  # one read: a model's attribute reads go through pydantic's __getattr__ hook
        if _ESCALATE not in d["actions"] or d["escalation"] is None or decision.pending:
            return None
        policy = self.policies.get(d["brand"])
        if policy is None or policy.sla is None:
            return None
        if event is None:
            event = InboundEvent.model_validate(d["event"])
        esc = d["escalation"]
        e, found = event.__dict__, esc.__dict__
        rule = _select(policy.sla, e["platform"], e["kind"], found["priority"], e["author"].tags, found["role"])
        if rule is None:
            return None
        clock: Literal["business_hours", "always"] = rule.clock or (
            "business_hours" if policy.business_hours else "always"
        )
        return _Start(decision, event, esc, rule, clock, self.calendar(d["brand"], clock))

    def _started_args(self, plan: _Start, now: datetime) -> dict[str, Any]:
        """The keyword arguments of the timer ``plan`` starts (:func:`worker.sla.timers.started_timer`'s)."""
        brand, message_id, conversation_id, role, priority, started_at, reply_at = _started_values(plan, now)
        return {
            "clock": plan.clock,
            "brand": brand,
            "message_id": message_id,
            "conversation_id": conversation_id,
            "role": role,
            "priority": priority,
            "started_at": started_at,
            "calendar": plan.calendar,
            "automated_reply_at": reply_at,
        }

    def start(self, decision: Decision, now: datetime) -> SlaTimer | None:
        """Start the timer of an escalated decision (idempotent; None when no SLA policy applies)."""
        return self.start_many([(decision, None)], now)[0]

    def start_many(self, items: list[tuple[Decision, InboundEvent | None]], now: datetime) -> list[SlaTimer | None]:
        """Start the timers of many escalated decisions, each at most once however many workers try:
        one call of ``lua/sla_start.lua`` writes each timer that does not exist yet with its indexes
        and ``sla.started`` event; then the sweep jobs of their steps are scheduled (one per second
        they fall in). Returns each item's new timer (None: no SLA policy applies, or it had one).

        Should the worker die between the two, the steps are not lost: every batch and the recovery
        sweep run :meth:`fire_due`, which schedules the job of the earliest pending step again."""
        out: list[SlaTimer | None] = [None] * len(items)
        for i, plan in self._begin(items, now):  # the timers written, built as written
            out[i] = started_timer(plan.rule, **self._started_args(plan, now))
        return out

    def _begin(self, items: list[tuple[Decision, InboundEvent | None]], now: datetime) -> list[tuple[int, _Start]]:
        """:meth:`start_many` without building the timers (what is written is their text, from
        :func:`worker.sla.timers.started_timer_text`): the items whose timer started, with its plan."""
        planned = [(i, self._plan(decision, now, event)) for i, (decision, event) in enumerate(items)]
        plans = [(i, plan) for i, plan in planned if plan is not None]
        if not plans:
            return []
        k = self.keys
        brands: dict[str, int] = {}
        for _, plan in plans:
            brands.setdefault(plan.event.__dict__["brand"], len(brands) + 1)
        keys: list[str] = [k.sla_due]
        for brand in brands:
            keys += [k.sla_timers(brand), k.sla_events(brand)]
        # every argument bytes (the numbers' text, as RESP carries them): packed by one join (worker.resp)
        numbers = {brand: b"%d" % n for brand, n in brands.items()}
        args: list[bytes] = [
            b"%d" % len(brands),
            b"%d" % defaults.SLA_RECORD_TTL_SECONDS,
            b"%d" % defaults.SLA_EVENTS_MAX_ENTRIES,
            *(brand.encode() for brand in brands),
        ]
        at = _quote(now.isoformat())  # the same in every sla.started event of the call (~15k instructions each)
        several = len(brands) > 1
        dues: list[tuple[datetime, int] | None] = []  # each timer's first step and its ms
        for _, plan in plans:
            brand, message_id, conversation_id, role, priority, started_at, reply_at = _started_values(plan, now)
            timer_json, due, started = started_timer_text(
                plan.rule,
                clock=plan.clock,
                brand=brand,
                message_id=message_id,
                conversation_id=conversation_id,
                role=role,
                priority=priority,
                started_at=started_at,
                calendar=plan.calendar,
                automated_reply_at=reply_at,
            )
            due_ms = _ms(due) if due is not None else None
            dues.append((due, due_ms) if due is not None else None)  # type: ignore[arg-type]
            keys += [k.sla_timer(brand, message_id), k.sla_open(brand, conversation_id)]
            event = _started_event(plan.rule, started, brand, message_id, conversation_id, role, priority, at)
            if several:  # a timer's brand number is passed only when the call has several brands
                args.append(numbers[brand])
            args += [
                timer_json,
                b"" if due_ms is None else b"%d" % due_ms,
                message_id.encode(),
                b"%d" % _ms(started_at),
                event.encode(),
            ]
        try:
            (written,) = self._start_script.run(self.client, [(keys, args)])
            created = [(i, plan) for (i, plan), done in zip(plans, written, strict=True) if int(done) == 1]
            if self.queue is not None and created:
                # one sweep job a second (_schedule rounds up to the second): its first due time each
                seconds: dict[int, datetime] = {}
                for step, done in zip(dues, written, strict=True):
                    if step is not None and int(done) == 1:
                        seconds.setdefault(-(-step[1] // 1000), step[0])
                with self.client.pipeline(transaction=True) as pipe:
                    for due in seconds.values():
                        self._schedule(pipe, due)
                    pipe.execute()
        except redis.RedisError as exc:
            raise StoreError(f"Redis failed while starting {len(plans)} SLA timer(s): {exc}") from exc
        return created

    def on_decided(
        self,
        items: Iterable[tuple[Decision, InboundEvent]],
        now: datetime,
        open_timers: Mapping[tuple[str, str], list[str]] | None = None,
    ) -> int:
        """After a batch is persisted: tell open timers of the same conversations that the customer
        wrote again, then start the timers of the escalations (one transaction for the batch).
        ``open_timers``: (brand, message id) -> its conversation's open timers, as ``Store.persist``
        read them while writing the decisions (absent: none); without it they are read here.
        Returns how many timers started."""
        items = list(items)
        if open_timers is None:
            pipe = self.client.pipeline(transaction=False)
            for _, event in items:
                pipe.smembers(self.keys.sla_open(event.brand, event.conversation_id))
            try:
                open_sets = [[raw.decode() for raw in members] for members in pipe.execute()]
            except redis.RedisError as exc:
                raise StoreError(f"Redis failed while reading open SLA timers: {exc}") from exc
        else:
            open_sets = [open_timers.get((event.brand, event.id), []) for _, event in items]
        for (_, event), members in zip(items, open_sets, strict=True):
            at = min(event.created_at, now)
            for other in members:
                if other != event.id:
                    self.customer_wrote(event.brand, other, at)
        return len(self._begin([(decision, event) for decision, event in items], now))

    # -- what people (and the customer) do ------------------------------------------------------

    def _apply(
        self, brand: str, message_id: str, kind: str, at: datetime, fn: Callable[[SlaTimer], SlaTimer], **fields: Any
    ) -> SlaTimer | None:
        def change(pipe: Any, timer: SlaTimer | None, _: Decision | None) -> SlaTimer | None:
            if timer is None:
                return None
            after = fn(timer)
            if after == timer:
                return timer
            self._queue_timer(pipe, after)
            met = [
                c["target"]
                for c in clock_views(after, at)
                if c["state"] == "met"
                and c["target"] not in {x["target"] for x in clock_views(timer, at) if x["state"] == "met"}
            ]
            self._event(pipe, after, kind, at, met=met, **fields)
            return after

        return self._transact(brand, message_id, change)

    def responded(
        self, brand: str, message_id: str, at: datetime, by: str, *, automated: bool = False, waiting: bool = True
    ) -> SlaTimer | None:
        """The brand replied (a person, or an automation). Meets the first/next response target."""
        return self._apply(
            brand,
            message_id,
            "sla.responded",
            at,
            lambda t: record_response(t, at, by, self.calendar(brand, t.clock), automated=automated, waiting=waiting),
            by=by,
            automated=automated,
        )

    def resolved(self, brand: str, message_id: str, at: datetime, by: str) -> SlaTimer | None:
        """The escalation was resolved (with or without a reply): every clock stops."""
        return self._apply(
            brand,
            message_id,
            "sla.resolved",
            at,
            lambda t: record_resolution(t, at, by, self.calendar(brand, t.clock)),
            by=by,
        )

    def waiting(self, brand: str, message_id: str, waiting: bool, at: datetime) -> SlaTimer | None:
        """Waiting (or no longer) for the customer: pauses (resumes) the resolution clock."""
        return self._apply(
            brand,
            message_id,
            "sla.waiting" if waiting else "sla.resumed",
            at,
            lambda t: set_waiting(t, waiting, at, self.calendar(brand, t.clock)),
        )

    def customer_wrote(self, brand: str, message_id: str, at: datetime) -> SlaTimer | None:
        return self._apply(
            brand,
            message_id,
            "sla.customer_wrote",
            at,
            lambda t: record_customer_message(t, at, self.calendar(brand, t.clock)),
        )

    # -- the sweep ------------------------------------------------------------------------------

    def step(self, brand: str, message_id: str, now: datetime) -> list[str]:
        """Record what is due on one timer (warnings, breaches and their actions), once."""

        def change(pipe: Any, timer: SlaTimer | None, decision: Decision | None) -> list[str]:
            if timer is None or not timer.open:
                pipe.zrem(self.keys.sla_due, review_member(brand, message_id))
                return []
            steps = timer.due_steps(now)
            if not steps:
                self._queue_timer(pipe, timer)  # the index was stale: put the real next step back
                return []
            rule = self._rule(timer)
            done = []
            for step, target in steps:
                clock = timer.clocks[target]
                timer = record_step(timer, step, target, now)
                if step == "warning":
                    self._event(
                        pipe,
                        timer,
                        "sla.warning",
                        now,
                        target=target,
                        due_at=clock.due_at.isoformat() if clock.due_at else None,
                    )
                    self._count(pipe, brand, f"sla:warning:{target}")
                    done.append(f"warning:{target}")
                    continue
                before = Escalation(
                    role=timer.role,
                    priority=timer.priority,  # type: ignore[arg-type]
                    reason=decision.escalation.reason if decision and decision.escalation else "",
                )
                outcome = sla_breach(before, rule, target, clock.due_at) if rule is not None and clock.due_at else None
                after = outcome.escalation if outcome else before
                if outcome is not None and outcome.changed and decision is not None:
                    decision = self.store.queue_escalation_change(pipe, decision, after)
                timer.breaches.append(
                    BreachRecord(
                        target=target,
                        at=now,
                        due_at=clock.due_at or now,
                        role_before=before.role,
                        role_after=after.role,
                        priority_before=before.priority,
                        priority_after=after.priority,
                        notified=bool(outcome and outcome.notify),
                    )
                )
                timer.role, timer.priority = after.role, after.priority
                self._event(
                    pipe,
                    timer,
                    "sla.breached",
                    now,
                    notify=bool(outcome and outcome.notify),
                    target=target,
                    due_at=clock.due_at.isoformat() if clock.due_at else None,
                    role_before=before.role,
                    priority_before=before.priority,
                )
                self._count(pipe, brand, f"sla:breached:{target}")
                done.append(f"breach:{target}")
            self._queue_timer(pipe, timer)
            return done

        return self._transact(brand, message_id, change)

    def _count(self, pipe: Any, brand: str, field: str) -> None:
        pipe.hincrby(self.keys.stats(brand), field, 1)

    def read_after_batch(self, now: datetime, overdue_limit: int, limit: int = defaults.SLA_SWEEP_BATCH) -> AfterBatch:
        """What the sweeps after a batch read (lua/after_batch.lua, one round trip): the LLM tasks past
        their deadline, the due steps, the earliest pending one and whether its sweep job is scheduled."""
        registry = self.queue.scheduled_job_registry.key if self.queue is not None else ""
        try:
            overdue, members, earliest, second, scheduled = self._after_batch_script(
                keys=[self.keys.llm_pending, self.keys.sla_due, registry],
                args=[_ms(now), overdue_limit, limit, self.keys.prefix, Job.key_for("")],
            )
        except redis.RedisError as exc:
            raise StoreError(f"Redis failed while reading due SLA timers and LLM tasks: {exc}") from exc
        pending = [(earliest[0], float(earliest[1]))] if earliest else []
        checked = (int(second), bool(scheduled)) if second else None
        return AfterBatch(overdue, members, pending, checked)

    def fire_due(
        self, now: datetime | None = None, limit: int = defaults.SLA_SWEEP_BATCH, *, read: AfterBatch | None = None
    ) -> list[str]:
        """Step every timer whose next step is due. Safe to run anywhere, any number of times at once.
        ``read``: the due steps as :meth:`read_after_batch` read them at ``now`` (else read here)."""
        now = now or datetime.now(timezone.utc)
        checked = None
        if read is not None:
            members, earliest, checked = read.due, read.earliest, read.checked
        else:
            try:  # the due steps and the earliest pending one in one round trip
                with self.client.pipeline(transaction=False) as pipe:
                    pipe.zrangebyscore(self.keys.sla_due, "-inf", _ms(now), start=0, num=limit)
                    pipe.zrange(self.keys.sla_due, 0, 0, withscores=True)
                    members, earliest = pipe.execute()
            except redis.RedisError as exc:
                raise StoreError(f"Redis failed while reading due SLA timers: {exc}") from exc
        fired = []
        for raw in members:
            brand, _, message_id = raw.decode().partition("/")
            for what in self.step(brand, message_id, now):
                fired.append(f"{brand}/{message_id}:{what}")
        # nothing stepped: the earliest pending step read above is still the earliest
        self.reschedule_next(now, None if members else earliest, None if members else checked)
        return fired

    def reschedule_next(
        self, now: datetime, earliest: list[tuple[bytes, float]] | None = None, checked: tuple[int, bool] | None = None
    ) -> None:
        """Make sure an RQ job is scheduled for the earliest pending step (self-healing).
        ``earliest``: the due index's first member with its score, if just read; ``checked``: (a second,
        whether its sweep job is scheduled), as lua/after_batch.lua read it with ``earliest``."""
        if self.queue is None:
            return
        nxt = earliest if earliest is not None else self.client.zrange(self.keys.sla_due, 0, 0, withscores=True)
        if nxt:
            at = datetime.fromtimestamp(max(nxt[0][1], _ms(now)) / 1000, tz=timezone.utc)
            if checked is not None and checked[0] == self._sweep_job(at)[0]:
                scheduled = checked[1]  # read with the earliest step: no second round trip
            else:
                scheduled = self._scheduled(at)
            if scheduled:  # the usual case after a batch: skip rebuilding the same RQ job
                return
            with self.client.pipeline(transaction=True) as pipe:
                self._schedule(pipe, at)
                pipe.execute()

    # -- reading --------------------------------------------------------------------------------

    def views(self, brand: str, message_ids: list[str], now: datetime | None = None) -> dict[str, dict[str, Any]]:
        """message id -> {policy, state, clocks: [{target, state, due_at, ...}], waiting_on_customer, ...}.

        For ``review list --json``, the review app's item page and its SLA-state filter."""
        now = now or datetime.now(timezone.utc)
        if not message_ids:
            return {}
        try:
            raws = self.client.mget([self.keys.sla_timer(brand, m) for m in message_ids])
        except redis.RedisError as exc:
            raise StoreError(f"Redis failed while reading SLA timers: {exc}") from exc
        out = {}
        for mid, raw in zip(message_ids, raws, strict=True):
            if not raw:
                continue
            t = SlaTimer.model_validate_json(raw)
            clocks = clock_views(t, now)
            out[mid] = {
                "policy": t.policy,
                "clock": t.clock,
                "state": overall_state(clocks),
                "clocks": clocks,
                "waiting_on_customer": t.waiting_on_customer,
                "role": t.role,
                "priority": t.priority,
                "breaches": [b.model_dump(mode="json") for b in t.breaches],
            }
        return out

    def timers(self, brand: str, since: datetime | None = None, until: datetime | None = None) -> list[SlaTimer]:
        """Timers of ``brand`` started in [since, until] (oldest first), for KPIs."""
        lo = _ms(since) if since else "-inf"
        hi = _ms(until) if until else "+inf"
        try:
            ids = [m.decode() for m in self.client.zrangebyscore(self.keys.sla_timers(brand), lo, hi)]
            out = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                raws = self.client.mget([self.keys.sla_timer(brand, m) for m in chunk])
                out += [SlaTimer.model_validate_json(r) for r in raws if r]
        except redis.RedisError as exc:
            raise StoreError(f"Redis failed while reading SLA timers: {exc}") from exc
        return out


# -- RQ job ------------------------------------------------------------------------------------


def tracker_for_job(connection: redis.Redis) -> SlaTracker:
    from worker.jobs import current
    from worker.queues import batch_queue

    pipeline, settings = current()
    store = Store(connection, settings.key_prefix)
    policies = {name: brand.policy for name, brand in pipeline.brands.items()}
    return SlaTracker(store, policies, schedule_queue=batch_queue(connection, settings))


def fire_due_timers() -> dict[str, Any]:
    """RQ job (scheduled at each timer's next step): record every due SLA warning and breach."""
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        raise RuntimeError("fire_due_timers runs inside an RQ job")
    return {"fired": tracker_for_job(job.connection).fire_due()}
