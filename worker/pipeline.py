"""One batch of messages: validate → read context → classify (vectorised) → decide → persist.

A bad message never sinks its batch: an invalid event or an unknown brand is
recorded in the rejected list with the reason; an unexpected error while
deciding one message becomes an escalation (rule ``error.internal``) so a person
still sees it. Errors that affect the whole batch (Redis gone, a model failing)
propagate, so RQ retries the job; persisting is idempotent, so messages
already decided by an earlier attempt are not decided twice.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from classifiers.persistence import LoadedModel
from classifiers.shared_pass import SharedPass
from worker import defaults
from worker.brands import Brand
from worker.decide import ClassifierScores, Outcome, decide, error_outcome
from worker.drafting import plan
from worker.exceptions import InvalidEvent
from worker.models import DecisionContext, InboundEvent, parse_event, trusted_event
from worker.sla.tracker import SlaTracker
from worker.store import Store
from worker.unvalidated import assign

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    decided: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    llm_pending: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)  # waiting for an earlier message of their conversation
    rounds: int = 0  # context reads (more than one when another worker decided in a conversation first)
    swept: list[str] = field(default_factory=list)
    sla_started: int = 0
    sla_fired: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "decided": self.decided,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors,
            "llm_pending": self.llm_pending,
            "parked": self.parked,
            "rounds": self.rounds,
            "swept": self.swept,
            "sla_started": self.sla_started,
            "sla_fired": self.sla_fired,
            "timings": self.timings,
        }


@dataclass
class Ordering:
    """How a batch keeps each conversation in order (see worker/lua/order.lua): ``queue_key`` is the
    RQ queue a parked message is woken on; ``park(event, seq)`` parks one as a job of its own and
    returns True, or returns False when its predecessor has been decided meanwhile."""

    queue_key: str
    park: Callable[[InboundEvent, int], bool]


_shared_passes: dict[tuple[int, ...], SharedPass] = {}


def shared_pass(models: list[LoadedModel]) -> SharedPass:
    """One SharedPass per set of loaded models (models are cached per process by the registry)."""
    key = tuple(id(m) for m in models)
    found = _shared_passes.get(key)
    if found is None:
        if len(_shared_passes) > 64:
            _shared_passes.clear()
        found = _shared_passes[key] = SharedPass(models)
    return found


def classify(tasks: dict[str, list[tuple[int, LoadedModel]]], texts: list[str]) -> list[dict[str, dict[str, float]]]:
    """Scores per event: one shared text pass feeds every model (classifiers.shared_pass), each model
    scoring the texts that use it (the same probabilities as each model's own pipeline). An event's
    scores are a :class:`ClassifierScores` (str labels, float scores) unless a model's labels are not
    all ``str`` or its probabilities not floats (then a plain dict, checked score by score in decide)."""
    scores: list[dict[str, dict[str, float]]] = [ClassifierScores() for _ in texts]
    users: dict[int, tuple[LoadedModel, list[tuple[str, int]]]] = {}
    for task, uses in tasks.items():
        for index, model in uses:
            users.setdefault(id(model), (model, []))[1].append((task, index))
    if not users:
        return scores
    models = [model for model, _ in users.values()]
    rows = sorted({index for _, uses in users.values() for _, index in uses})
    position = {index: k for k, index in enumerate(rows)}
    probabilities = shared_pass(models).predict_proba([texts[i] for i in rows])
    unchecked: set[int] = set()
    for (owner, wanted), proba in zip(users.values(), probabilities, strict=True):
        rounded = np.round(proba, 6).tolist()  # Python floats, converted in one call (float(p) each before)
        labels = owner.labels
        plain = np.asarray(proba).dtype.kind == "f" and all(type(label) is str for label in labels)
        for task_name, row in wanted:
            scores[row][task_name] = dict(zip(labels, rounded[position[row]], strict=True))
            if not plain:
                unchecked.add(row)
    for row in unchecked:
        scores[row] = dict(scores[row])
    return scores


class Pipeline:
    """Decides batches of messages for the brands it was built with."""

    def __init__(self, brands: dict[str, Brand]):
        self.brands = brands

    def _valid(
        self, messages: list[Any], store: Store, source: str, report: BatchReport, order: Ordering | None = None
    ) -> list[InboundEvent]:
        events: list[InboundEvent] = []
        seen: set[tuple[str, str]] = set()
        for position, raw in enumerate(messages):
            # an ingestor's job carries validated events in canonical form: rebuilt without a
            # second validation; anything else is validated in full
            event = trusted_event(raw)
            if event is None:
                try:
                    event = parse_event(raw, source=f"{source} message {position}")
                except InvalidEvent as exc:
                    where = f"{source} message {position}"
                    store.reject(raw, str(exc), where)
                    report.rejected.append({"source": where, "reason": str(exc)})
                    continue
            fields = event.__dict__  # a model's attribute reads go through pydantic's __getattr__ hook
            if fields["brand"] not in self.brands:
                where = f"{source} message {position}"
                reason = f"no policy for brand {event.brand!r} (known: {sorted(self.brands)})"
                store.reject(raw, reason, where)
                report.rejected.append({"source": where, "reason": reason})
                if order is not None:  # never decided here: its conversation's next message must not wait for it
                    store.skip_order(event, order.queue_key)
                continue
            key = (fields["brand"], fields["id"])  # event.key
            if key in seen:
                report.duplicates.append(fields["id"])
                continue
            seen.add(key)
            events.append(event)
        return events

    def classify(self, events: list[InboundEvent]) -> list[dict[str, dict[str, float]]]:
        """Every event's spam, abuse and intent scores under its brand's models (each model runs once)."""
        texts = [e.text[: defaults.CLASSIFY_MAX_CHARS] for e in events]
        tasks: dict[str, list[tuple[int, LoadedModel]]] = defaultdict(list)
        for i, event in enumerate(events):
            brand = self.brands[event.brand]
            tasks["spam"].append((i, brand.spam))
            tasks["abuse"].append((i, brand.abuse))
            tasks["intent"].append((i, brand.intent))
        return classify(tasks, texts) if events else []

    def _score(
        self, events: list[InboundEvent], scores: dict[int, dict[str, dict[str, float]]], spent: dict[str, float]
    ) -> None:
        """Classify those of ``events`` not in ``scores`` yet (keyed by ``id()``), timed in ``spent``."""
        started = time.perf_counter()
        unscored = [e for e in events if id(e) not in scores]
        for event, found in zip(unscored, self.classify(unscored), strict=True):
            scores[id(event)] = found
        spent["classify"] += time.perf_counter() - started

    def decide(
        self,
        events: list[InboundEvent],
        scores: list[dict[str, dict[str, float]]],
        contexts: list[DecisionContext],
        *,
        now: datetime,
        plan_llm: bool = False,
        carry_context: bool = True,
    ) -> tuple[list[Outcome], list[str]]:
        """Decide ``events`` (in order) with their ``scores`` and conversation ``contexts``; no Redis.

        The one path from scores to outcomes: the worker decides every batch with it and
        ``eval.replay`` re-decides stored decisions with it. With ``carry_context``, a later
        message sees what an earlier one in the same call changed (an opt-out, the
        conversation's first message, an away message sent). ``plan_llm`` marks the decisions
        an LLM task may improve (:func:`worker.drafting.plan`). An unexpected error while
        deciding one message becomes its ``error.internal`` escalation, listed in the errors.
        """
        outcomes: list[Outcome] = []
        errors: list[str] = []
        opted: dict[tuple[str, str], bool] = {}
        away: dict[tuple[str, str], datetime | None] = {}
        for event, event_scores, context in zip(events, scores, contexts, strict=True):
            fields = event.__dict__  # a model's attribute reads go through pydantic's __getattr__ hook
            brand = self.brands[fields["brand"]]
            author_key = (fields["brand"], fields["author"].id)
            conv_key = (fields["brand"], fields["conversation_id"])
            if carry_context and author_key in opted:
                context = context.model_copy(update={"opted_out": opted[author_key]})
            if carry_context and conv_key in away:
                context = context.model_copy(
                    update={"first_contact": False, "away_sent_at": away[conv_key] or context.away_sent_at}
                )
            one = time.perf_counter()
            try:
                outcome = decide(
                    event, event_scores, context, brand, truncated=len(fields["text"]) > defaults.CLASSIFY_MAX_CHARS
                )
                if plan_llm:
                    outcome.decision.llm = plan(outcome.decision, brand, now)
            except Exception as exc:  # noqa: BLE001 - one bad message must not sink the batch
                log.exception("deciding %s/%s failed", event.brand, event.id)
                errors.append(f"{event.brand}/{event.id}: {type(exc).__name__}: {exc}")
                outcome = error_outcome(event, brand, event_scores, f"{type(exc).__name__}: {exc}", now, context)
            if outcome.optout_op:
                opted[author_key] = outcome.optout_op == "add"
            away[conv_key] = fields["created_at"] if outcome.away_sent else away.get(conv_key)
            assign(
                outcome.decision,
                {"decided_at": now, "timings": {"decide_ms": round((time.perf_counter() - one) * 1000, 3)}},
            )
            outcomes.append(outcome)
        return outcomes, errors

    def process(
        self,
        messages: list[Any],
        store: Store,
        *,
        job_id: str | None = None,
        enqueued_at: float | None = None,
        schedule_llm: Callable[[list[tuple[str, str, float]]], None] | None = None,
        sla: SlaTracker | None = None,
        order: Ordering | None = None,
    ) -> BatchReport:
        """Decide ``messages``. ``schedule_llm`` receives (brand, id, seconds to deadline) for each
        decision left pending for an LLM task; without it, no LLM task is planned. ``sla`` starts
        the SLA timers of new escalations (idempotently, so a retried batch starts them too).

        Every decision is written only if the context it was made in still holds (else the
        message is decided again on a fresh read). With ``order``, a conversation's messages are
        also decided in their sequence order: a message whose predecessor is not decided yet waits
        (ORDER_WAIT_SECONDS, after the rest of the batch is written), then is parked
        (``order.park``) and decided by the job its predecessor's decision wakes.
        """
        wall_start = time.time()
        report = BatchReport()
        store.use_retention({name: brand.policy.retention for name, brand in self.brands.items()})
        if not isinstance(messages, list):
            store.reject(messages, "job payload must be a list of events", f"job {job_id}")
            report.rejected.append({"source": f"job {job_id}", "reason": "job payload must be a list of events"})
            return report
        events = self._valid(messages, store, f"job {job_id}", report, order)
        scores: dict[int, dict[str, dict[str, float]]] = {}  # by id() of the event: one event per key (_valid)
        finished: list[tuple[Outcome, InboundEvent, bool]] = []
        spent = {"context": 0.0, "classify": 0.0, "decide": 0.0, "persist": 0.0}
        todo, rounds, contended = events, 0, 0
        # the open SLA timers of each written decision's conversation, read by the persist script
        open_timers: dict[tuple[str, str], list[str]] | None = {} if sla is not None else None
        wait_until = time.monotonic() + defaults.ORDER_WAIT_SECONDS
        held = False
        while todo:
            rounds += 1
            if held:  # only messages waiting for a predecessor another worker is deciding: give it a moment
                time.sleep(defaults.ORDER_POLL_SECONDS)
            t0 = time.perf_counter()
            classified = spent["classify"]
            decided, contexts, state = store.read_context(  # one script call
                todo,
                ordered=order is not None,
                # classified while Redis reads (nearly every event of a first round is decided now)
                meanwhile=functools.partial(self._score, todo, scores, spent) if rounds == 1 else None,
            )
            fresh = []
            for event, context, done, (seq, upto) in zip(todo, contexts, decided, state, strict=True):
                if not done:
                    fresh.append((event, context, seq, upto))
                    continue
                report.duplicates.append(event.id)
                if order is not None and seq == upto + 1:  # decided without its number: let the next go
                    store.skip_order(event, order.queue_key)
            ready, waiting = in_order(fresh)
            retry: list[InboundEvent] = []
            patient = time.monotonic() < wait_until
            for event, seq in waiting:
                if order is not None and not patient and order.park(event, seq):
                    report.parked.append(event.id)
                else:  # still waiting a moment, or its predecessor was decided meanwhile
                    retry.append(event)
            held = bool(retry) and patient
            t1 = time.perf_counter()
            spent["context"] += t1 - t0 - (spent["classify"] - classified)

            batch = [e for e, _, _ in ready]
            self._score(batch, scores, spent)
            t2 = time.perf_counter()

            now = datetime.now(timezone.utc)
            outcomes, errors = self.decide(
                batch,
                [scores[id(e)] for e in batch],
                [c for _, c, _ in ready],
                now=now,
                plan_llm=schedule_llm is not None,
            )
            report.errors.extend(errors)
            shared_timings = {  # the same for every decision of the round
                "queue_wait_ms": round(max(0.0, wall_start - enqueued_at) * 1000, 2) if enqueued_at else 0.0,
                "context_ms": round(spent["context"] * 1000 / max(1, len(events)), 3),
                "classify_ms": round(spent["classify"] * 1000 / max(1, len(events)), 3),
            }
            for outcome in outcomes:
                d = outcome.decision
                assign(d, {"job_id": job_id, "timings": {**shared_timings, **d.__dict__["timings"]}})
            t3 = time.perf_counter()
            spent["decide"] += t3 - t2

            results = store.persist(
                [(o.decision, e, o.optout_op, o.away_sent) for o, e in zip(outcomes, batch, strict=True)],
                [seq for _, _, seq in ready],
                order.queue_key if order is not None else "",
                open_timers=open_timers,
            )
            for outcome, event, result in zip(outcomes, batch, results, strict=True):
                if result in (0, 1):
                    finished.append((outcome, event, result == 1))
                else:  # its context changed, or an earlier message is not decided yet: read and decide again
                    retry.append(event)
                    held = False
                    contended += 1
            if contended > defaults.ORDER_MAX_ROUNDS * max(1, len(events)):
                raise RuntimeError(f"job {job_id}: {len(retry)} message(s) still contended after {contended} attempts")
            spent["persist"] += time.perf_counter() - t3
            todo = retry

        pending = []
        for outcome, event, new in finished:
            ev = event.__dict__  # a model's attribute reads go through pydantic's __getattr__ hook
            (report.decided if new else report.duplicates).append(ev["id"])
            d = outcome.decision
            llm = d.__dict__["llm"]
            if new and llm is not None and d.pending:
                pending.append((ev["brand"], ev["id"], max(0.0, (llm.deadline - d.decided_at).total_seconds())))
        if sla is not None:
            t4 = time.perf_counter()
            now = datetime.now(timezone.utc)
            report.sla_started = sla.on_decided([(o.decision, e) for o, e, new in finished if new], now, open_timers)
            sla.start_many([(o.decision, e) for o, e, new in finished if not new], now)  # a retried batch
            spent["sla"] = time.perf_counter() - t4
        if pending and schedule_llm is not None:
            schedule_llm(pending)
            report.llm_pending = [f"{b}/{m}" for b, m, _ in pending]
        report.rounds = rounds
        report.timings = {f"{name}_ms": round(seconds * 1000, 2) for name, seconds in spent.items()}
        return report


def in_order(
    fresh: list[tuple[InboundEvent, DecisionContext, int | None, int]],
) -> tuple[list[tuple[InboundEvent, DecisionContext, int | None]], list[tuple[InboundEvent, int]]]:
    """Split (event, context, sequence number, conversation decided up to) into the events to decide
    now, each conversation's in sequence order (in the slots its events had), and those waiting for
    an earlier message of their conversation that is neither decided nor in this batch."""
    by_conversation: dict[tuple[str, str], list[int]] = defaultdict(list)
    for position, (event, _, _, _) in enumerate(fresh):
        by_conversation[(event.brand, event.conversation_id)].append(position)
    slots: dict[int, tuple[InboundEvent, DecisionContext, int | None]] = {}
    waiting: list[tuple[InboundEvent, int]] = []
    for positions in by_conversation.values():
        members = sorted((fresh[p] for p in positions), key=lambda item: -1 if item[2] is None else item[2])
        expected = members[0][3] + 1
        free = iter(positions)
        for event, context, seq, _ in members:
            if seq is None or seq <= expected:
                slots[next(free)] = (event, context, seq)
                if seq is not None:
                    expected = max(expected, seq + 1)
            else:
                waiting.append((event, seq))
                expected = -1  # everything after a gap waits too
    return [slots[p] for p in sorted(slots)], waiting
