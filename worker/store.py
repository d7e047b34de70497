"""Everything replyguard keeps in Redis, and the key layout.

Every key replyguard writes is in this table (``{p}`` is ``REPLYGUARD_KEY_PREFIX``,
``rg`` by default) and built by :class:`Keys`; a test runs the whole pipeline,
LLM tasks included, and checks that Redis holds no other key of ours. RQ's own
keys (``rq:*``) are RQ's.

=======================================  ======  ================================================
key                                      type    what
=======================================  ======  ================================================
``{p}:decision:{brand}:{message_id}``    string  the decision record (JSON)
``{p}:decisions:{brand}``                zset    message ids by decision time (ms)
``{p}:message:{message_id}``             set     brands that decided this message id (for ``show``)
``{p}:review``                           zset    escalations, ``brand/message_id``, by priority then age
``{p}:outbox:{brand}``                   stream  replies, hides and decisions for deliverers (group ``deliverers``)
``{p}:delivery:{brand}:{mid}:{action}``  hash    idempotency record of one outbound action (state, owner, attempts)
``{p}:deadletter:{brand}``               list    outbound webhook deliveries that failed for good (JSON)
``{p}:ratelimit:{platform}:{acct}:{s}``  string  calls to one platform account in one second
``{p}:youtube:cursor:{brand}:{channel}`` hash    newest comment time seen, and the ids seen at that time
``{p}:youtube:quota:{date}``             hash    YouTube quota units spent that day, by brand
``{p}:optout:{brand}``                   set     author ids that opted out of automated messages
``{p}:history:{brand}:{conversation}``   list    recent messages of a conversation (JSON entries)
``{p}:conversation:{brand}:{conv}``      hash    first_seen, last_seen, away_sent_at (ms)
``{p}:stats:{brand}``                    hash    counters: decisions, action:*, rule:*
``{p}:rejected``                         list    events that could not be decided, with the reason
``{p}:llm:pending``                      zset    decisions waiting for an LLM task, by deadline (ms)
``{p}:order:{brand}:{conversation}``     hash    conversation order: next, done (decided up to), m:{mid}, p:{seq}
``{p}:order:parked``                     zset    parked messages, ``<order key>#<seq>`` by park time (ms)
``{p}:correction:{brand}:{message_id}``  string  a reviewer's correction (JSON)
``{p}:corrections:{brand}``              zset    corrected message ids by time
``{p}:sla:timer:{brand}:{message_id}``   string  an escalation's SLA timer (JSON, see worker/sla/timers.py)
``{p}:sla:timers:{brand}``               zset    message ids with an SLA timer, by start time (ms)
``{p}:sla:due``                          zset    ``brand/message_id`` by the timer's next step (ms)
``{p}:sla:open:{brand}:{conversation}``  set     message ids with an open timer in a conversation
``{p}:sla:events:{brand}``               stream  sla.started / warning / breached / met / resolved
``{p}:user:{name}``                      string  a review-app user (JSON: role, brands, argon2 hash)
``{p}:users``                            set     user names
``{p}:session:{sha256(token)}``          string  a login session (user, CSRF token), expires
``{p}:login:fail:{user|addr}``           string  failed sign-ins in the current window, expires
``{p}:claim:{brand}:{message_id}``       string  who holds a review item, expires
``{p}:item:{brand}:{message_id}``        hash    a review item's human state (status, role, priority, hidden)
``{p}:audit:{brand}``                    stream  every human action, append-only (never trimmed)
``{p}:audit:item:{brand}:{message_id}``  list    ids of the item's audit entries
``{p}:author:{brand}:{author_id}``       set     tags people added to an author (``blocked`` too)
``{p}:llm:circuit:{provider}``           hash    an LLM provider's circuit breaker: failures, open_until
``{p}:llm:circuit-trial:{provider}``     string  the one half-open trial call in flight (expires)
``{p}:llm:inflight:{provider}``          zset    concurrency slots in use, by expiry time
``{p}:llm:tokens:{brand}:{YYYY-MM}``     string  LLM tokens used this month (the brand's budget)
``{p}:inbox``                            stream  requests ``serve`` accepted, not yet enqueued (group ``ingest``)
``{p}:inbox:stats``                      hash    counters of the inbox consumer (events, drops by reason, ...)
``{p}:receipt:{platform}:{platform_id}`` hash    delivery / read receipts of a message we sent (worker.inbound.receipts)
``{p}:watermark:{platform}:{acct}:{usr}`` hash   "read / delivered up to" times (ms) of a conversation
``{p}:lock:recovery:{queue}``            string  the one worker running the recovery sweep now (expires)
``{p}:lock:dequeued:{job_id}``           string  when a batch was first seen taken but not started (expires)
``{p}:person:{brand}:{author_id}``       set     where one person's data is: ``m:{message_id}``, ``c:{conversation}`` (expires)
=======================================  ======  ================================================

``{provider}`` is a short hash of the provider's name and base URL.

Conversation order: ingestion gives each message a sequence number in its
conversation (``lua/order.lua``, the same number for a repeat of the same id); a
message is decided only when every earlier one is (``done``), and only if the
context it was decided in (opted out, first contact, away message sent) still
holds when it is written, else it is decided again on a fresh read. A message
whose predecessor is not decided is parked as a created-but-not-queued RQ job
(``p:{seq}``); the script that decides the predecessor queues it. The recovery
sweep releases a message parked longer than ``ORDER_PARK_TIMEOUT_SECONDS``.

Personal data expires (the brand policy's ``retention``, worker/privacy/): a decision key
carries a TTL of ``active_days`` (plus a grace period when the sweep archives it first),
history and conversation state at most as long, and the person index as long as the person's
data; ``replyguard retention sweep`` archives and deletes index entries, corrections and audit
entries older than ``active_days``; ``replyguard forget`` deletes one person's data everywhere.

A decision and all its side effects (outbox, review queue, history, counters,
opt-out, conversation state, conversation order, LLM-pending index) are written by one Lua script,
``lua/apply_decision.lua``, through :meth:`Store._entry`, for a message's
first decision and for an LLM task's finalisation alike: they appear together or
not at all, and only once per (brand, message id). A change to a stored decision
after the fact goes through the same script (its ``amend`` mode, see
:meth:`Store.queue_amendment`) inside the caller's transaction: an SLA breach or a
person re-routing its escalation (:meth:`Store.queue_escalation_change`), and a
delivery's outcome with the escalation a failed one needs and its counters
(:meth:`Store.record_delivery`).

Writes to those keys outside the script, because they are not a decision's effects
(tests/test_write_path.py lists them by name and fails on any other):

* ``sla:*`` counters in ``{p}:stats:{brand}`` (worker/sla/tracker.py): the SLA timer
  counts its own warnings and breaches, whether or not the decision changes;
* ``youtube:*`` counters in ``{p}:stats:{brand}`` (worker/delivery/youtube.py): API quota spent;
* a person's actions in the review app (worker/review_actions.py): their outbox entries
  (:meth:`Store.queue_outbox`), their reply in the conversation history
  (:meth:`Store.queue_brand_message`), and putting an item back on (or moving it in) the
  review queue; each is audited.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from typing import Any, TypeVar

import redis
from pydantic_core import to_json

from worker import defaults, json_text
from worker.exceptions import StoreError
from worker.models import (
    Action,
    Correction,
    Decision,
    DecisionContext,
    DeliveryRecord,
    Escalation,
    InboundEvent,
    llm_pending,
)
from worker.resp import evalsha_command


F = TypeVar("F", bound=Callable[..., Any])

#: exact types (``set(map(type, values)) <= _ONLY_STR``)
_ONLY_STR = {str}

#: Action's members read once: ``Action.X`` goes through the enum metaclass's ``__getattr__`` hook
_HIDE, _AUTO_REPLY, _ESCALATE = Action.HIDE, Action.AUTO_REPLY, Action.ESCALATE


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def entry_json(value: Any) -> str:
    """The JSON text of an outbox or history entry: compact, non-ASCII characters as they are
    (pydantic-core's encoder: ~6x cheaper than ``json.dumps``, and a decision writes up to five).
    Readers parse entries as JSON; none depends on the spacing."""
    return to_json(value).decode()


@functools.cache
def _apply_script() -> str:
    return resources.files("worker").joinpath("lua/apply_decision.lua").read_text()


@functools.cache
def _order_script() -> str:
    return resources.files("worker").joinpath("lua/order.lua").read_text()


@functools.cache
def _context_script() -> str:
    return resources.files("worker").joinpath("lua/context.lua").read_text()


#: the conversation contexts without an away message, shared (a DecisionContext is never changed in place)
_PLAIN_CONTEXTS: dict[tuple[bool, bool], DecisionContext] = {}


def _context(opted_out: bool, first_contact: bool, away_ms: int | None) -> DecisionContext:
    if away_ms is not None:
        away = datetime.fromtimestamp(away_ms / 1000, tz=timezone.utc)
        return DecisionContext(opted_out=opted_out, first_contact=first_contact, away_sent_at=away)
    found = _PLAIN_CONTEXTS.get((opted_out, first_contact))
    if found is None:
        found = _PLAIN_CONTEXTS[(opted_out, first_contact)] = DecisionContext(
            opted_out=opted_out, first_contact=first_contact
        )
    return found


class Evalsha:
    """A Lua script run as EVALSHA commands written on one connection (a pipeline without redis-py's
    own): redis-py's scripts on a pipeline ask ``SCRIPT EXISTS`` on every ``execute()``, one more
    round trip a batch, and its packing of ~8 arguments a decision cost more than the rest of sending
    them. Each call is written as soon as the caller has made it (``calls`` may be a generator), so
    Redis runs one call while the caller makes the next; the replies are read after the last. The
    script is loaded only after Redis answered NOSCRIPT (its script cache was flushed, or it
    restarted), and the calls that got NOSCRIPT are run again, in their order. Each call is atomic on
    its own and the script's conditions make running one twice a no-op, so a call that succeeded is
    never repeated and one that got NOSCRIPT wrote nothing. A connection error, or an error raised
    while making a call, propagates (the calls written before it ran; the worker decides the batch
    again, and what they wrote is not written twice)."""

    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def _send(
        self, client: Any, calls: Iterable[tuple[list[str], list[Any]]], meanwhile: Callable[[], None] | None = None
    ) -> tuple[list[Any], list[Any]]:
        """(the calls, as made; their replies, errors included); ``meanwhile`` runs after the last call
        is written, before the first reply is read."""
        pool = client.connection_pool
        connection = pool.get_connection()
        sent: list[tuple[list[str], list[Any]]] = []
        try:
            for keys, args in calls:
                connection.send_packed_command([evalsha_command(self.sha, keys, args)])
                sent.append((keys, args))
            if meanwhile is not None:
                meanwhile()
            replies: list[Any] = []
            for _ in sent:  # every reply is read, errors too, so the connection stays in step
                try:
                    replies.append(connection.read_response())
                except redis.exceptions.ResponseError as exc:
                    replies.append(exc)
            return sent, replies
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    def run(
        self, client: Any, calls: Iterable[tuple[list[str], list[Any]]], meanwhile: Callable[[], None] | None = None
    ) -> list[Any]:
        """The replies of ``calls`` ((keys, args) each), run in order in one round trip. ``meanwhile``
        (work of the caller's that needs no reply) runs once, while Redis runs the calls."""
        made, first = self._send(client, calls, meanwhile)
        replies: list[Any] = [None] * len(made)
        todo = list(range(len(made)))
        for attempt in range(2):
            got = first if attempt == 0 else self._send(client, [made[i] for i in todo])[1]
            missing = []
            for i, reply in zip(todo, got, strict=True):
                if isinstance(reply, redis.exceptions.NoScriptError) and attempt == 0:
                    missing.append(i)
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    replies[i] = reply
            if not missing:
                break
            client.script_load(self.source)
            todo = missing
        return replies


@functools.cache
def _delivery_begin_script() -> str:
    return resources.files("worker").joinpath("lua/delivery_begin.lua").read_text()


class Keys:
    def __init__(self, prefix: str = defaults.KEY_PREFIX):
        self.prefix = prefix

    def decision(self, brand: str, message_id: str) -> str:
        return f"{self.prefix}:decision:{brand}:{message_id}"

    def decisions(self, brand: str) -> str:
        return f"{self.prefix}:decisions:{brand}"

    def message(self, message_id: str) -> str:
        return f"{self.prefix}:message:{message_id}"

    @property
    def review(self) -> str:
        return f"{self.prefix}:review"

    def outbox(self, brand: str) -> str:
        return f"{self.prefix}:outbox:{brand}"

    def optout(self, brand: str) -> str:
        return f"{self.prefix}:optout:{brand}"

    def history(self, brand: str, conversation_id: str) -> str:
        return f"{self.prefix}:history:{brand}:{conversation_id}"

    def conversation(self, brand: str, conversation_id: str) -> str:
        return f"{self.prefix}:conversation:{brand}:{conversation_id}"

    def stats(self, brand: str) -> str:
        return f"{self.prefix}:stats:{brand}"

    @property
    def rejected(self) -> str:
        return f"{self.prefix}:rejected"

    @property
    def llm_pending(self) -> str:
        return f"{self.prefix}:llm:pending"

    def order(self, brand: str, conversation_id: str) -> str:
        return f"{self.prefix}:order:{brand}:{conversation_id}"

    @property
    def order_parked(self) -> str:
        return f"{self.prefix}:order:parked"

    def correction(self, brand: str, message_id: str) -> str:
        return f"{self.prefix}:correction:{brand}:{message_id}"

    def corrections(self, brand: str) -> str:
        return f"{self.prefix}:corrections:{brand}"

    def sla_timer(self, brand: str, message_id: str) -> str:
        return f"{self.prefix}:sla:timer:{brand}:{message_id}"

    def sla_timers(self, brand: str) -> str:
        return f"{self.prefix}:sla:timers:{brand}"

    @property
    def sla_due(self) -> str:
        return f"{self.prefix}:sla:due"

    def sla_open(self, brand: str, conversation_id: str) -> str:
        return f"{self.prefix}:sla:open:{brand}:{conversation_id}"

    def sla_events(self, brand: str) -> str:
        return f"{self.prefix}:sla:events:{brand}"

    def delivery(self, brand: str, message_id: str, action: str) -> str:
        return f"{self.prefix}:delivery:{brand}:{message_id}:{action}"

    def deadletter(self, brand: str) -> str:
        return f"{self.prefix}:deadletter:{brand}"

    def ratelimit(self, platform: str, account: str, second: int) -> str:
        return f"{self.prefix}:ratelimit:{platform}:{account}:{second}"

    def youtube_cursor(self, brand: str, channel: str) -> str:
        return f"{self.prefix}:youtube:cursor:{brand}:{channel}"

    def youtube_quota(self, day: str) -> str:
        return f"{self.prefix}:youtube:quota:{day}"

    # -- review app ---------------------------------------------------------------------

    def user(self, name: str) -> str:
        return f"{self.prefix}:user:{name}"

    @property
    def users(self) -> str:
        return f"{self.prefix}:users"

    def session(self, token_hash: str) -> str:
        return f"{self.prefix}:session:{token_hash}"

    def recovery_lock(self, queue: str) -> str:
        return f"{self.prefix}:lock:recovery:{queue}"

    def dequeued_seen(self, job_id: str) -> str:
        return f"{self.prefix}:lock:dequeued:{job_id}"

    def login_failures(self, scope: str) -> str:
        return f"{self.prefix}:login:fail:{scope}"

    def claim(self, brand: str, message_id: str) -> str:
        return f"{self.prefix}:claim:{brand}:{message_id}"

    def item(self, brand: str, message_id: str) -> str:
        return f"{self.prefix}:item:{brand}:{message_id}"

    def audit(self, brand: str) -> str:
        return f"{self.prefix}:audit:{brand}"

    def item_audit(self, brand: str, message_id: str) -> str:
        return f"{self.prefix}:audit:item:{brand}:{message_id}"

    def author(self, brand: str, author_id: str) -> str:
        return f"{self.prefix}:author:{brand}:{author_id}"

    def llm_circuit(self, provider: str) -> str:
        return f"{self.prefix}:llm:circuit:{provider}"

    def llm_circuit_trial(self, provider: str) -> str:
        return f"{self.prefix}:llm:circuit-trial:{provider}"

    def llm_inflight(self, provider: str) -> str:
        return f"{self.prefix}:llm:inflight:{provider}"

    def llm_tokens(self, brand: str, month: str) -> str:
        return f"{self.prefix}:llm:tokens:{brand}:{month}"

    @property
    def inbox(self) -> str:
        return f"{self.prefix}:inbox"

    @property
    def inbox_stats(self) -> str:
        return f"{self.prefix}:inbox:stats"

    def receipt(self, platform: str, platform_message_id: str) -> str:
        return f"{self.prefix}:receipt:{platform}:{platform_message_id}"

    def watermark(self, platform: str, account_id: str, user_id: str) -> str:
        return f"{self.prefix}:watermark:{platform}:{account_id}:{user_id}"

    def person(self, brand: str, author_id: str) -> str:
        return f"{self.prefix}:person:{brand}:{author_id}"


def llm_stat_fields(llm: Any) -> dict[str, int | float]:
    """Counters an LLM record adds to the brand's stats hash (summed by `replyguard stats`, exported to Prometheus)."""
    from worker.llm import LATENCY_BUCKETS

    fields: dict[str, int | float] = {f"llm:{llm.task}:{llm.outcome}": 1}
    if llm.reason:
        fields[f"llm:reason:{llm.reason}"] = 1
    if llm.attempts:
        fields["llm:calls"] = 1
        fields["llm:attempts"] = llm.attempts
        fields["llm:tokens_in"] = llm.tokens_in
        fields["llm:tokens_out"] = llm.tokens_out
        fields["llm:latency_ms_sum"] = float(round(llm.latency_ms, 3))
        for bucket in LATENCY_BUCKETS:
            if llm.latency_ms / 1000 <= bucket:
                fields[f"llm:latency_le:{bucket}"] = 1
    return fields


def outbox_payload(event: InboundEvent, kind: str, **fields: Any) -> dict[str, Any]:
    """One outbox entry (what connectors carry out), the same for automated and human actions.

    ``kind`` is reply, hide, unhide, block or unblock; a reply carries ``text``, ``templates``
    (``id@version``; empty when a person wrote the text), ``llm`` and is public under a comment,
    private in a DM. Human actions add ``by`` (the user) and ``action_id`` (their audit entry,
    unique per action: one message may get several human replies or hide/unhide cycles, so
    deliverers must key idempotency on it when present, not on the message id alone).
    """
    payload = _outbox_head(event)
    payload.update(_outbox_tail(event, kind, fields))
    return payload


def _outbox_head(event: InboundEvent) -> dict[str, Any]:
    """The fields every outbox entry of ``event`` starts with, in their order."""
    ev = event.__dict__  # one read: a model's attribute reads go through pydantic's __getattr__ hook
    return {
        "brand": ev["brand"],
        "message_id": ev["id"],
        "platform": ev["platform"],
        "kind": ev["kind"],
        "conversation_id": ev["conversation_id"],
        "post_id": ev["post_id"],
        "author_id": ev["author"].__dict__["id"],
    }


def _outbox_tail(event: InboundEvent, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The fields of one outbox entry of ``event`` after its head: type, visibility, ``fields``."""
    tail: dict[str, Any] = {"type": kind}
    if kind == "reply":
        tail["visibility"] = "public" if event.__dict__["kind"] == "comment" else "private"
    tail.update(fields)
    return tail


#: the tail of a decision's outbox entry by its actions and rule (a policy has a few dozen of them):
#: ``to_json`` of the same small dict for every message otherwise (~8k instructions)
_DECISION_TAILS: dict[tuple[tuple[str, ...], str], bytes] = {}


class OutboxEntries:
    """The JSON text of a message's outbox entries, ``to_json(outbox_payload(event, kind, **fields))`` each,
    with their common head made once a message instead of once an entry (a decision writes up to three:
    hide, reply, decision), from an f-string (worker.json_text: the same bytes; ``to_json`` when that
    refuses). ``fields`` must not repeat a head field (the automated path's never do)."""

    def __init__(self, event: InboundEvent):
        self.event = event
        try:
            self.head = json_text.outbox_head(event.__dict__)  # '{"brand":…,"author_id":…,'
        except (TypeError, UnicodeEncodeError):
            self.head = to_json(_outbox_head(event))[:-1] + b","

    def json(self, kind: str, **fields: Any) -> bytes:
        return self.head + to_json(_outbox_tail(self.event, kind, fields))[1:]

    def decision(self, actions: list[str], rule: str) -> bytes:
        """``json("decision", actions=actions, rule=rule)``, its tail remembered by actions and rule
        when they are exactly str (equal keys, the same text)."""
        plain = type(rule) is str and set(map(type, actions)) <= _ONLY_STR
        key = (tuple(actions), rule)
        tail = _DECISION_TAILS.get(key) if plain else None
        if tail is None:
            tail = to_json(_outbox_tail(self.event, "decision", {"actions": actions, "rule": rule}))[1:]
            if plain:
                if len(_DECISION_TAILS) >= defaults.DECISION_TAILS_REMEMBERED:
                    _DECISION_TAILS.clear()
                _DECISION_TAILS[key] = tail
        return self.head + tail


def review_member(brand: str, message_id: str) -> str:
    return f"{brand}/{message_id}"


def review_score(priority: str, created_at: datetime) -> float:
    """Lower is served first: priority rank, then the message's age (oldest first).

    The age part is clamped to [0, 1e13) ms (1970 to 2286) so no date can change the priority band.
    """
    return _review_score_ms(priority, _ms(created_at))


def _review_score_ms(priority: str, created_ms: int) -> float:
    """:func:`review_score` of a message created at ``created_ms`` (ms since the epoch)."""
    return defaults.PRIORITIES.index(priority) * 1e13 + min(max(created_ms, 0), 1e13 - 1)


#: the fields of a decision's spec (as ``Store._entry`` makes it, 0-based) that a call passes once for
#: the decisions that share them (lua/apply_decision.lua's shape S1, S3-S7, S10-S15), and those it
#: passes a decision (its spec 2-9)
_shape_fields = operator.itemgetter(0, 3, 5, 6, 8, 9, 16, 17, 18, 19, 21, 22)
_spec_fields = operator.itemgetter(2, 4, 7, 10, 13, 14, 15)  # then 'c:' + the conversation id (20)


def _shape_json(shape: tuple[Any, ...]) -> list[Any]:
    """A shape of ``Store._apply_call`` (brand number, counters, floats, then _shape_fields) as
    apply_decision.lua reads it (S1-S15)."""
    brand, counters, floats, condition, decided, nout, optout, nhistory, ttl, *checks, decision_ttl, person_ttl = shape
    return [
        condition,
        brand,
        decided,
        nout,
        optout,
        nhistory,
        ttl,
        dict(counters),
        dict(floats),
        *checks,
        decision_ttl,
        person_ttl,
    ]


@dataclass
class _Entry:
    """One decision of an apply_decision.lua call: its brand, its own 7 keys, its JSON, its spec (23
    fields, which ``Store._apply_call`` splits into its shape and what it passes a decision) and its
    outbox payloads then history entries (the spec has their numbers)."""

    brand: str
    keys: list[str]
    json: str | bytes  # as stored
    spec: list[Any]
    entries: list[bytes]
    counters: dict[str, str]  # the integer counters (part of its shape)


@dataclass
class ReviewItem:
    brand: str
    message_id: str
    priority: str
    waiting_seconds: float
    decision: Decision | None


def _guard(operation: str) -> Callable[[F], F]:
    """Decorator: convert redis errors into StoreError naming the operation."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except redis.RedisError as exc:
                raise StoreError(f"Redis failed while {operation}: {exc}") from exc

        return inner  # type: ignore[return-value]

    return wrap


class Store:
    def __init__(self, client: redis.Redis, prefix: str | None = None):
        """``prefix`` defaults to the configured one (``REPLYGUARD_KEY_PREFIX``, else ``rg``)."""
        if prefix is None:
            from worker.settings import Settings

            prefix = Settings().key_prefix
        # redis-py types its replies as unions of sync and async results; ours are always sync bytes
        self.client: Any = client
        self.keys = Keys(prefix)
        self._apply = client.register_script(_apply_script())
        self._apply_many = Evalsha(_apply_script())
        self._delivery_begin = client.register_script(_delivery_begin_script())
        self._order = client.register_script(_order_script())
        self._number_many = Evalsha(_order_script())  # ingest's numbering: 2 keys and an id a message
        self._context = client.register_script(_context_script())
        self._context_many = Evalsha(_context_script())  # a batch's read in one write
        #: brand -> its policy's retention (worker.privacy.config.Retention); unknown brands get the defaults
        self.retention: dict[str, Any] = {}
        self._ttls: dict[str, tuple[str, str, str]] = {}  # brand -> _entry's TTL arguments

    def use_retention(self, retention: dict[str, Any]) -> None:
        """Expire each brand's data after its policy's ``retention`` (brand -> Retention)."""
        self.retention = dict(retention)
        self._ttls = {}

    def _entry_ttls(self, brand: str) -> tuple[str, str, str]:
        """(conversation history and state, decision, person index) TTLs of ``brand``'s decisions,
        as the persist script's arguments: worked out once per brand, not once per decision."""
        found = self._ttls.get(brand)
        if found is None:
            retention = self.retention_for(brand)
            found = self._ttls[brand] = (
                str(retention.history_ttl(defaults.CONVERSATION_TTL_SECONDS)),
                str(retention.decision_ttl),
                str(retention.person_index_ttl),
            )
        return found

    def retention_for(self, brand: str) -> Any:
        from worker.privacy.config import Retention

        return self.retention.get(brand) or Retention()

    # -- reading context -----------------------------------------------------------

    @_guard("reading conversation context")
    def contexts(self, events: list[InboundEvent]) -> tuple[list[bool], list[DecisionContext]]:
        """For each event: whether it is already decided, and its conversation context."""
        decided, contexts, _ = self.read_context(events)
        return decided, contexts

    @_guard("reading conversation context")
    def read_context(
        self, events: list[InboundEvent], *, ordered: bool = False, meanwhile: Callable[[], None] | None = None
    ) -> tuple[list[bool], list[DecisionContext], list[tuple[int | None, int]]]:
        """For each event, in one script call (lua/context.lua): whether it is already decided, its
        conversation context and, when ``ordered``, (its sequence number or None, its conversation's
        "decided up to"); else (None, 0). ``meanwhile`` (the caller's work that needs no context) runs
        once, while Redis reads."""
        if not events:
            if meanwhile is not None:
                meanwhile()
            return [], [], []
        k = self.keys
        brands: dict[str, int] = {}
        for e in events:
            brands.setdefault(e.__dict__["brand"], len(brands) + 1)
        keys = [k.optout(b) for b in brands]
        numbers = {b: str(n) for b, n in brands.items()}  # every argument str: packed by one join (worker.resp)
        args: list[str] = [str(len(brands)), "1" if ordered else ""]
        several = len(brands) > 1  # a brand's number is passed only then
        for e in events:
            ev = e.__dict__  # one read: a model's attribute reads go through pydantic's __getattr__ hook
            brand, conv, mid = ev["brand"], ev["conversation_id"], ev["id"]
            keys += [k.decision(brand, mid), k.conversation(brand, conv)]
            if several:
                args.append(numbers[brand])
            args.append(ev["author"].__dict__["id"])
            if ordered:
                keys.append(k.order(brand, conv))
                args.append("m:" + mid)
        decided, contexts, state = [], [], []
        (lines,) = self._context_many.run(self.client, [(keys, args)], meanwhile)
        for line in lines.decode().split("\n"):
            done, opted, first, away, seq, upto = line.split(" ")
            decided.append(done == "1")
            contexts.append(_context(opted == "1", first == "1", None if away == "-" else int(away)))
            state.append((None if seq == "-" else int(seq), int(upto)))
        return decided, contexts, state

    # -- conversation order (lua/order.lua) ---------------------------------------------

    @_guard("numbering messages in their conversations")
    def assign_order(self, events: list[InboundEvent]) -> list[int]:
        """Each event's sequence number in its conversation, given out now in this order (a
        repeat of a message id gets the number it got before)."""
        pipe = self.client.pipeline(transaction=False)
        for e in events:
            self._order(
                keys=[self.keys.order(e.brand, e.conversation_id)],
                args=["assign", e.id, defaults.CONVERSATION_TTL_SECONDS],
                client=pipe,
            )
        return [int(n) for n in pipe.execute()]

    @_guard("numbering messages in their conversations")
    def number(self, events: list[InboundEvent]) -> list[int | None]:
        """Ingest, one script call: None for an event already decided, else its sequence number in its
        conversation (given out now in this order; a repeat of a message id gets the number it got before)."""
        if not events:
            return []
        keys: list[str] = []
        ids: list[str] = []
        decision, order = self.keys.decision, self.keys.order
        for e in events:
            fields = e.__dict__  # one attribute look-up through pydantic's hook instead of four
            brand, message_id = fields["brand"], fields["id"]
            keys += (decision(brand, message_id), order(brand, fields["conversation_id"]))
            ids.append(message_id)
        # every argument a str (the TTL as its text, the bytes sent unchanged): packed by C loops
        (numbers,) = self._number_many.run(
            self.client, [(keys, ["number", str(defaults.CONVERSATION_TTL_SECONDS), *ids])]
        )
        return [int(n) or None for n in numbers]

    @_guard("reading conversation order")
    def order_state(self, events: list[InboundEvent]) -> list[tuple[int | None, int]]:
        """For each event: (its sequence number, None if it has none; its conversation's "decided up to")."""
        pipe = self.client.pipeline(transaction=False)
        for e in events:
            pipe.hmget(self.keys.order(e.brand, e.conversation_id), ["m:" + e.id, "done"])
        return [(int(seq) if seq else None, int(done or 0)) for seq, done in pipe.execute()]

    @_guard("parking a message")
    def park(self, event: InboundEvent, seq: int, job_id: str) -> tuple[bool, str | None]:
        """Park ``event`` (sequence ``seq``) as the created, not queued RQ job ``job_id`` until its
        predecessor is decided. Returns (False, None) when the predecessor is decided already
        (decide it now), else (True, the job id parked for it before, if any)."""
        k = self.keys
        parked, previous = self._order(
            keys=[k.order(event.brand, event.conversation_id), k.order_parked, ""],
            args=["park", seq, job_id, int(time.time() * 1000), defaults.CONVERSATION_TTL_SECONDS],
        )
        return bool(parked), (previous.decode() or None) if parked else None

    @_guard("releasing parked messages")
    def release_overdue(self, queue_key: str, now: float | None = None, limit: int = 100) -> int:
        """Queue the messages parked for longer than ORDER_PARK_TIMEOUT_SECONDS (their predecessor
        never came or failed for good), skipping the gap. Returns how many were queued."""
        cutoff = int(((time.time() if now is None else now) - defaults.ORDER_PARK_TIMEOUT_SECONDS) * 1000)
        released = 0
        for member in self.client.zrangebyscore(self.keys.order_parked, "-inf", cutoff, start=0, num=limit):
            order_key, _, seq = member.decode().rpartition("#")
            released += int(self._order(keys=[order_key, self.keys.order_parked, queue_key], args=["release", seq]))
        return released

    @_guard("skipping a message in its conversation's order")
    def skip_order(self, event: InboundEvent, queue_key: str) -> bool:
        """``event`` will never be decided (the worker rejected it): let its successor go."""
        return bool(
            self._order(
                keys=[self.keys.order(event.brand, event.conversation_id), self.keys.order_parked, queue_key],
                args=["skip", event.id],
            )
        )

    # -- writing decisions ------------------------------------------------------------

    def _decision_keys(self, b: str, mid: str, conv: str, author_id: str, open_timers: bool = False) -> list[str]:
        """A decision's own 7 KEYS of apply_decision.lua, in its order (``open_timers``: read the
        conversation's open SLA timers as the decision is written): ``Keys``'s decision, message,
        history, conversation, order, person and sla_open keys, written here in one list (seven
        method calls were ~11k instructions a decision; tests/test_persist_script.py compares them)."""
        p = self.keys.prefix
        return [
            f"{p}:decision:{b}:{mid}",
            f"{p}:message:{mid}",
            f"{p}:history:{b}:{conv}",
            f"{p}:conversation:{b}:{conv}",
            f"{p}:order:{b}:{conv}",
            f"{p}:person:{b}:{author_id}",
            f"{p}:sla:open:{b}:{conv}" if open_timers else "",
        ]

    def _apply_call(self, entries: list[_Entry], queue_key: str = "") -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of one ``lua/apply_decision.lua`` call writing ``entries`` in order: the
        global keys once, each brand's keys once, the call's distinct shapes once, then each decision's
        keys, JSON and spec."""
        k = self.keys
        brands: dict[str, int] = {}
        for entry in entries:
            brands.setdefault(entry.brand, len(brands) + 1)
        keys = [k.review, k.llm_pending, k.order_parked, queue_key or k.order_parked]
        for b in brands:
            keys += [k.decisions(b), k.outbox(b), k.optout(b), k.stats(b)]
        # what decisions have in common (their shape, _shape_fields of the spec with the brand's number
        # and the counters), passed once a call: a call's decisions share a few, and cjson decodes
        # each field for ~0.8k Redis instructions
        shapes: dict[tuple[Any, ...], int] = {}
        # the arguments bytes (the numbers' text, as RESP carries them; a persist's JSON is bytes): packed
        # by one join (worker.resp)
        args: list[Any] = [
            b"%d" % len(brands),
            b"%d" % defaults.HISTORY_MAX_MESSAGES,
            b"%d" % defaults.OUTBOX_MAX_ENTRIES,
            *(b.encode() for b in brands),
            b"",
        ]
        for entry in entries:
            keys += entry.keys
            spec = entry.spec
            floats = spec[12]
            shape = (brands[entry.brand], tuple(entry.counters.items()), tuple(floats.items()) if floats else ())
            shape += _shape_fields(spec)
            own = [shapes.setdefault(shape, len(shapes) + 1), *_spec_fields(spec), "c:" + spec[20]]
            args += [entry.json, to_json(own), *entry.entries]  # cjson reads UTF-8 as is
        args[3 + len(brands)] = to_json([_shape_json(shape) for shape in shapes])
        return keys, args

    def _entry(
        self,
        decision: Decision,
        event: InboundEvent,
        *,
        first: bool,
        optout_op: str | None = None,
        away_sent: bool = False,
        expected: bytes | None = None,
        seq: int | None = None,
        queue_key: str = "",
        opted_out: bool | None = None,
        open_timers: bool = False,
        decided_ms: int | None = None,
    ) -> _Entry:
        """One decision of a ``lua/apply_decision.lua`` call: every effect ``decision`` implies.

        ``first``: the message's first decision (the customer's message joins the history, the
        conversation is touched, opt-outs apply; a pending decision defers its reply, review
        entry and outcome counters to its finalisation). Otherwise the finalisation of the
        pending decision ``expected`` (the stored bytes the caller read).

        A first decision is written only if the context it was decided in (``decision.context``)
        still holds and, when ``seq`` is given, every earlier message of the conversation is
        decided (then its parked successor is queued on ``queue_key``). A finalisation is written
        only if the author's opt-out is still ``opted_out`` (when given). ``open_timers``: a written
        first decision's reply carries its conversation's open SLA timers (see ``persist``).
        ``decided_ms``: ``decision.decided_at`` in ms, when the caller has it (a batch's decisions
        share their instant: ``datetime.timestamp()`` of an aware one is ~3.8k instructions).
        """
        # each field read once, from the models' __dict__: a model's attribute reads go through
        # pydantic's __getattr__ hook (~400 instructions each, ~40 a decision here)
        ev, fields = event.__dict__, decision.__dict__
        b, mid, conv, author_id = ev["brand"], ev["id"], ev["conversation_id"], ev["author"].__dict__["id"]
        history_ttl, decision_ttl, person_ttl = self._entry_ttls(b)
        history: list[bytes] = []  # entry_json as bytes (arguments of their own)
        counters: dict[str, int] = {}
        floats: dict[str, float] = {}
        created = _ms(ev["created_at"])
        created_ms = str(created)
        if decided_ms is None:
            decided_ms = _ms(fields["decided_at"])
        actions, llm, reply = fields["actions"], fields["llm"], fields["reply"]
        llm_fields = llm.__dict__ if llm is not None else None
        pending = llm_pending(llm)
        if first:
            history.append(
                to_json(
                    {
                        "role": "customer",
                        "message_id": mid,
                        "at": created,
                        "text": ev["text"][: defaults.HISTORY_MAX_CHARS],
                    }
                )
            )
            counters["decisions"] = 1
        outbox: list[bytes] = []
        score = ""
        if pending:
            counters[f"llm:{llm_fields['task']}:pending"] = 1  # type: ignore[index]
        else:
            entries = OutboxEntries(event)
            if _HIDE in actions:
                outbox.append(entries.json("hide"))
            if _AUTO_REPLY in actions and reply:
                outbox.append(
                    entries.json(
                        "reply",
                        text=reply,
                        templates=[f"{t.__dict__['id']}@{t.__dict__['version']}" for t in fields["templates"]],
                        llm=bool(llm_fields and llm_fields["outcome"] == "used"),
                    )
                )
                history.append(
                    to_json(
                        {
                            "role": "brand",
                            "message_id": mid,
                            "at": decided_ms,
                            "text": reply[: defaults.HISTORY_MAX_CHARS],
                        }
                    )
                )
            # every final decision, for outbound connectors (CRM webhooks, Chatwoot hand-off)
            rule = fields["rule"]
            values = [a._value_ for a in actions]  # Action's .value is a property of the enum: the same string
            outbox.append(entries.decision(values, rule))
            escalation = fields["escalation"]
            if _ESCALATE in actions and escalation is not None:
                score = repr(_review_score_ms(escalation.__dict__["priority"], created))
            for name in [f"rule:{rule}"] + [f"action:{value}" for value in values]:
                counters[name] = counters.get(name, 0) + 1
            if llm is not None:
                for name, amount in llm_stat_fields(llm).items():
                    if isinstance(amount, float):
                        floats[name] = floats.get(name, 0.0) + amount
                    else:
                        counters[name] = counters.get(name, 0) + amount
        context = fields["context"]
        if first and context is not None:
            known = context.__dict__
            away = known["away_sent_at"]
            checks = [
                "1" if known["opted_out"] else "0",
                "1" if known["first_contact"] else "0",
                str(_ms(away)) if away is not None else "none",
            ]
        else:
            checks = ["" if opted_out is None else "1" if opted_out else "0", "", ""]
        spec: list[Any] = [
            "" if first else hashlib.sha1(expected or b"").hexdigest(),
            "",  # not passed: the brand's number is in the decision's shape (_apply_call)
            mid,
            str(decided_ms),
            score,
            len(outbox),
            (optout_op or "") if first else "",
            author_id,
            len(history),
            history_ttl,
            created_ms if first and away_sent else "",
            0,  # not passed: the integer counters are in the shape (_apply_call)
            {name: repr(x) for name, x in floats.items()},
            created_ms if first else "",
            str(_ms(llm_fields["deadline"])) if first and pending else "",  # type: ignore[index]
            str(seq) if first and seq is not None and queue_key else "",
            *checks,
            "",  # the review queue entry is added or moved
            conv,
            decision_ttl,  # personal data
            person_ttl,
        ]
        keys = self._decision_keys(b, mid, conv, author_id, open_timers)
        return _Entry(
            b, keys, decision.json_bytes(), spec, [*outbox, *history], {name: str(n) for name, n in counters.items()}
        )

    def queue_amendment(
        self, pipe: Any, decision: Decision, *, review: str = "", counters: dict[str, int] | None = None
    ) -> None:
        """Inside the caller's MULTI (the caller WATCHes the decision key): store ``decision`` again, changed
        after the fact, through ``lua/apply_decision.lua`` in its ``amend`` mode.

        ``review``: ``""`` leaves the review queue alone; ``"add"`` queues the decision's escalation (a
        delivery failure escalated it); ``"move"`` re-scores its entry for the escalation's priority, only
        if it is still queued (an SLA breach or a person re-routed it). ``counters`` go to the brand's stats.
        """
        if review not in ("", "add", "move"):
            raise ValueError(f"review must be '', 'add' or 'move', not {review!r}")
        b, mid = decision.brand, decision.message_id
        conv = decision.conversation_id
        score = ""
        if review and decision.escalation is not None:
            created = datetime.fromisoformat(decision.event["created_at"])
            score = repr(review_score(decision.escalation.priority, created))
        spec: list[Any] = [
            "amend",
            "",
            mid,
            "",
            score,
            0,
            "",
            decision.author_id,
            0,
            str(defaults.CONVERSATION_TTL_SECONDS),
            "",
            0,  # not passed: the integer counters are in the shape (_apply_call)
            {},
            "",
            "",
            "",
            "",
            "",
            "",
            "XX" if review == "move" else "",
            conv,
            "",  # 22-23 and the person index are not used in amend mode
            "",
        ]
        entry = _Entry(
            b,
            self._decision_keys(b, mid, conv, decision.author_id),
            decision.to_json(),
            spec,
            [],
            {name: str(n) for name, n in (counters or {}).items()},
        )
        keys, args = self._apply_call([entry])
        self._apply(keys=keys, args=args, client=pipe)

    @_guard("finalising a decision")
    def finalize(
        self, brand: str, message_id: str, final: Callable[[Decision], Decision], policy: Any = None
    ) -> Decision | None:
        """Replace a pending decision by ``final(pending)`` and carry out its side effects, once.

        If the author opted out since the message was decided, the final decision sends nothing
        automated (:func:`worker.decide.opted_out_meanwhile`, escalating as ``policy``'s opt-out
        says); the opt-out is checked again atomically as the decision is written.

        Returns the final decision, or None if the decision was not pending (another job or
        the deadline finalised it first). The effects are written by the same script as a
        first decision's, on condition that the stored decision is still the one read.
        """
        from worker.decide import opted_out_meanwhile

        key = self.keys.decision(brand, message_id)
        while True:
            raw = self.client.get(key)
            current = Decision.from_json(raw) if raw else None
            if current is None or not current.pending:
                return None
            opted = bool(self.client.sismember(self.keys.optout(brand), current.author_id))
            decision = final(current)
            if decision.pending:
                raise ValueError("finalize() must return a decision whose LLM record is done")
            if opted and not current.context.opted_out:
                # the author opted out after this message (a STOP decided while the LLM worked)
                decision = opted_out_meanwhile(decision, policy)
            event = InboundEvent.model_validate(decision.event)
            entry = self._entry(decision, event, first=False, expected=raw, opted_out=opted)
            keys, args = self._apply_call([entry])
            if self._apply(keys=keys, args=args)[0] == 1:
                return decision
            # the stored decision changed since it was read: read it again

    @_guard("listing overdue LLM tasks")
    def overdue(self, now: datetime, limit: int = 100) -> list[tuple[str, str]]:
        """Pending decisions whose LLM deadline has passed (their jobs may have been lost)."""
        members = self.client.zrangebyscore(self.keys.llm_pending, "-inf", _ms(now), start=0, num=limit)
        return [(b, m) for b, _, m in (member.decode().partition("/") for member in members)]

    def queue_escalation_change(self, pipe: Any, decision: Decision, escalation: Escalation) -> Decision:
        """Inside the caller's MULTI: ``decision``'s escalation becomes ``escalation`` (a re-route or a
        priority change made by :func:`worker.decide.sla_breach`) and its place in the review queue follows
        the new priority, if it is still queued. The caller WATCHes the decision key."""
        from worker.decide import with_escalation

        changed = with_escalation(decision, escalation)
        self.queue_amendment(pipe, changed, review="move")
        return changed

    @_guard("reading conversation history")
    def history(self, brand: str, conversation_id: str) -> list[dict[str, Any]]:
        return [json.loads(h) for h in self.client.lrange(self.keys.history(brand, conversation_id), 0, -1)]

    @_guard("saving decisions")
    def persist(
        self,
        items: list[tuple[Decision, InboundEvent, str | None, bool]],
        seqs: list[int | None] | None = None,
        queue_key: str = "",
        *,
        open_timers: dict[tuple[str, str], list[str]] | None = None,
    ) -> list[int]:
        """Write each (decision, event, opt-out op, away sent), in order. For each: 1 written, 0
        already decided, -1 its context changed since it was read (decide it again), -2 an earlier
        message of its conversation is not decided yet (``seqs``: the sequence numbers, enforced
        when ``queue_key`` names the queue a parked successor is woken on).

        ``open_timers``: for each decision written, (brand, message id) -> the ids of its
        conversation's open SLA timers (read by the same script call, as the decision is written;
        only non-empty lists are set), for :meth:`worker.sla.tracker.SlaTracker.on_decided`."""
        if not items:
            return []
        seqs = seqs if seqs is not None else [None] * len(items)
        reading = open_timers is not None
        # a batch's decisions share their decided_at (the pipeline stamps them with one instant): each
        # instant converted to ms once
        instant_ms: dict[datetime, int] = {}

        def calls() -> Iterator[tuple[list[str], list[Any]]]:
            # several decisions per script call, each call written as soon as it is made (Redis runs
            # it while the next one is made), the replies read after the last
            for start in range(0, len(items), defaults.PERSIST_CHUNK):
                entries = []
                for (decision, event, optout_op, away_sent), seq in zip(
                    items[start : start + defaults.PERSIST_CHUNK],
                    seqs[start : start + defaults.PERSIST_CHUNK],
                    strict=True,
                ):
                    decided_at = decision.__dict__["decided_at"]
                    decided_ms = instant_ms.get(decided_at)
                    if decided_ms is None:
                        decided_ms = instant_ms[decided_at] = _ms(decided_at)
                    entries.append(
                        self._entry(
                            decision,
                            event,
                            first=True,
                            optout_op=optout_op,
                            away_sent=away_sent,
                            seq=seq,
                            queue_key=queue_key,
                            open_timers=reading,
                            decided_ms=decided_ms,
                        )
                    )
                yield self._apply_call(entries, queue_key)

        results = []
        for (_, event, _, _), reply in zip(
            items, (r for chunk in self._apply_many.run(self.client, calls()) for r in chunk), strict=True
        ):
            if isinstance(reply, list):  # written, and its conversation has open SLA timers
                results.append(int(reply[0]))
                if open_timers is not None:
                    ev = event.__dict__
                    open_timers[(ev["brand"], ev["id"])] = [m.decode() for m in reply[1:]]
            else:
                results.append(int(reply))
        return results

    # -- human actions (review app): queued on the caller's MULTI pipeline -----------------

    def queue_outbox(self, pipe: Any, payload: dict[str, Any]) -> None:
        """Append an outbox entry exactly as the automated path does (same stream, cap and fields)."""
        pipe.xadd(
            self.keys.outbox(payload["brand"]),
            {"message_id": payload["message_id"], "payload": entry_json(payload)},
            maxlen=defaults.OUTBOX_MAX_ENTRIES,
            approximate=True,
        )

    def queue_brand_message(
        self, pipe: Any, brand: str, conversation_id: str, message_id: str, text: str, at: datetime
    ) -> None:
        """Record the brand's reply in the conversation history (context for later decisions)."""
        hkey = self.keys.history(brand, conversation_id)
        pipe.rpush(
            hkey,
            entry_json(
                {"role": "brand", "message_id": message_id, "at": _ms(at), "text": text[: defaults.HISTORY_MAX_CHARS]}
            ),
        )
        pipe.ltrim(hkey, -defaults.HISTORY_MAX_MESSAGES, -1)
        pipe.expire(hkey, defaults.CONVERSATION_TTL_SECONDS)

    @_guard("recording a rejected event")
    def reject(self, raw: object, reason: str, source: str) -> None:
        """Record an event the worker could not decide (``replyguard rejected`` lists them)."""
        brand = raw.get("brand") if isinstance(raw, dict) else None
        message_id = raw.get("id") if isinstance(raw, dict) else None
        entry = json.dumps(
            {
                "at": time.time(),
                "source": source,
                "reason": reason,
                "brand": brand if isinstance(brand, str) else None,
                "message_id": message_id if isinstance(message_id, str) else None,
                "event": raw,
            },
            ensure_ascii=False,
            default=str,
        )
        author = raw.get("author") if isinstance(raw, dict) else None
        author_id = author.get("id") if isinstance(author, dict) else None
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(self.keys.rejected, entry)
        pipe.ltrim(self.keys.rejected, 0, defaults.REJECTED_MAX_ENTRIES - 1)
        if isinstance(brand, str) and isinstance(author_id, str) and brand and author_id:
            # the person index says "look in the rejected list" (forget scans it by author id)
            person = self.keys.person(brand, author_id)
            pipe.sadd(person, "rejected")
            pipe.expire(person, self.retention_for(brand).person_index_ttl)  # from now: never shorter than it was
        pipe.execute()

    # -- delivery -----------------------------------------------------------------------

    @_guard("claiming an outbound action")
    def begin_delivery(
        self, brand: str, message_id: str, action: str, consumer: str, *, take_over: bool = False
    ) -> tuple[str, str]:
        """The idempotency check before sending (see lua/delivery_begin.lua): ('go', attempts),
        ('in_doubt', previous owner) or ('done', state)."""
        verdict, info = self._delivery_begin(
            keys=[self.keys.delivery(brand, message_id, action)],
            args=[consumer, int(time.time() * 1000), defaults.DELIVERY_STATE_TTL_SECONDS, "1" if take_over else ""],
        )
        return verdict.decode(), info.decode()

    @_guard("recording a retry")
    def delivery_retrying(self, brand: str, message_id: str, action: str, error: str) -> None:
        """The platform answered with a transient error: nothing was sent, the next attempt may send."""
        self.client.hset(self.keys.delivery(brand, message_id, action), mapping={"state": "retrying", "error": error})

    @_guard("recording a delivery")
    def record_delivery(
        self,
        brand: str,
        message_id: str,
        step: str,
        record: DeliveryRecord,
        *,
        escalate: Callable[[Decision], Decision] | None = None,
        ack: tuple[str, str, str] | None = None,
    ) -> Decision | None:
        """Write what became of one outbound action, in one transaction: the action's idempotency
        record (its final state), the decision's ``deliveries``, ``escalate(decision)`` when the
        failure needs a person (with its review-queue entry), delivery counters, and the XACK of
        ``ack`` = (stream, group, entry id). Returns the decision as stored (None if absent)."""
        key = self.keys.decision(brand, message_id)
        state_key = self.keys.delivery(brand, message_id, step)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    decision = Decision.from_json(raw) if raw else None
                    escalated = False
                    if decision is not None:
                        decision = decision.model_copy(deep=True)
                        decision.deliveries.append(record)
                        if escalate is not None:
                            was_escalated = Action.ESCALATE in decision.actions
                            decision = escalate(decision)
                            escalated = not was_escalated and decision.escalation is not None
                    pipe.multi()
                    pipe.hset(
                        state_key,
                        mapping={
                            "state": record.status,
                            "attempts": record.attempts,
                            "platform_message_id": record.platform_message_id or "",
                            "error": record.error or "",
                        },
                    )
                    pipe.expire(state_key, defaults.DELIVERY_STATE_TTL_SECONDS)
                    if decision is not None:
                        counters = {f"delivery:{record.status}": 1, f"delivery:{record.target}:{record.status}": 1}
                        if escalated:
                            counters.update({"action:escalate": 1, f"rule:{decision.rule}": 1})
                        self.queue_amendment(pipe, decision, review="add" if escalated else "", counters=counters)
                    if ack is not None:
                        pipe.xack(*ack)
                    pipe.execute()
                    return decision
                except redis.WatchError:
                    continue

    @_guard("acknowledging an outbox entry")
    def ack(self, stream: str, group: str, entry_id: str) -> None:
        self.client.xack(stream, group, entry_id)

    @_guard("writing the dead-letter list")
    def dead_letter(self, brand: str, entry: dict[str, Any]) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(self.keys.deadletter(brand), json.dumps(entry, ensure_ascii=False, default=str))
        pipe.ltrim(self.keys.deadletter(brand), 0, defaults.DEADLETTER_MAX_ENTRIES - 1)
        pipe.execute()

    @_guard("reading the dead-letter list")
    def dead_letters(self, brand: str, limit: int = 50) -> list[dict[str, Any]]:
        return [json.loads(r) for r in self.client.lrange(self.keys.deadletter(brand), 0, limit - 1)]

    @_guard("reading conversation times")
    def last_customer_message(self, brand: str, conversation_id: str) -> datetime | None:
        """When the customer last wrote in this conversation (for the 24-hour window)."""
        raw = self.client.hget(self.keys.conversation(brand, conversation_id), "last_seen")
        return datetime.fromtimestamp(int(raw) / 1000, tz=timezone.utc) if raw else None

    # -- queries ----------------------------------------------------------------------

    @_guard("reading a decision")
    def decision(self, brand: str, message_id: str) -> Decision | None:
        raw = self.client.get(self.keys.decision(brand, message_id))
        return Decision.from_json(raw) if raw else None

    @_guard("reading decisions")
    def decisions(self, pairs: list[tuple[str, str]]) -> list[Decision | None]:
        if not pairs:
            return []
        raws = self.client.mget([self.keys.decision(b, m) for b, m in pairs])
        return [Decision.from_json(r) if r else None for r in raws]

    @_guard("checking decisions")
    def decided(self, pairs: list[tuple[str, str]]) -> list[bool]:
        pipe = self.client.pipeline(transaction=False)
        for b, m in pairs:
            pipe.exists(self.keys.decision(b, m))
        return [bool(x) for x in pipe.execute()]

    @_guard("looking up a message")
    def brands_for(self, message_id: str) -> list[str]:
        return sorted(m.decode() for m in self.client.smembers(self.keys.message(message_id)))

    @_guard("listing decisions")
    def recent(self, brand: str, limit: int = 50) -> list[str]:
        return [m.decode() for m in self.client.zrevrange(self.keys.decisions(brand), 0, limit - 1)]

    @_guard("reading the review queue")
    def review(
        self,
        limit: int = 50,
        brand: str | None = None,
        role: str | None = None,
        now: float | None = None,
        offset: int = 0,
    ) -> list[ReviewItem]:
        """Escalations by priority, then age: ``limit`` items after the first ``offset`` that match."""
        return self.review_page(limit, brand=brand, role=role, now=now, offset=offset)[0]

    @_guard("reading the review queue")
    def review_page(
        self,
        limit: int = 50,
        *,
        brand: str | None = None,
        role: str | None = None,
        now: float | None = None,
        offset: int = 0,
    ) -> tuple[list[ReviewItem], int]:
        """(``limit`` items after the first ``offset`` that match, how many match in all)."""
        now = time.time() if now is None else now
        items: list[ReviewItem] = []
        matched, start, page = 0, 0, 500
        while True:
            members = self.client.zrange(self.keys.review, start, start + page - 1, withscores=True)
            if not members:
                break
            start += page
            pairs = []
            for member, score in members:
                b, _, mid = member.decode().partition("/")
                if not brand or b == brand:
                    pairs.append((b, mid, score))
            wanted = role is not None or any(offset <= matched + i < offset + limit for i in range(len(pairs)))
            decisions = self.decisions([(b, m) for b, m, _ in pairs]) if wanted else [None] * len(pairs)
            for (b, mid, score), d in zip(pairs, decisions, strict=True):
                if role and (d is None or d.escalation is None or d.escalation.role != role):
                    continue
                if offset <= matched < offset + limit:
                    priority = defaults.PRIORITIES[min(int(score // 1e13), len(defaults.PRIORITIES) - 1)]
                    created_ms = score - defaults.PRIORITIES.index(priority) * 1e13
                    items.append(ReviewItem(b, mid, priority, max(0.0, now - created_ms / 1000), d))
                matched += 1
        return items, matched

    @_guard("saving a correction")
    def resolve(self, correction: Correction) -> bool:
        """Record a reviewer's correction and take the message off the review queue. False if undecided."""
        b, mid = correction.brand, correction.message_id
        if not self.client.exists(self.keys.decision(b, mid)):
            return False
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.keys.correction(b, mid), correction.model_dump_json())
        pipe.zadd(self.keys.corrections(b), {mid: _ms(correction.at)})
        pipe.zrem(self.keys.review, review_member(b, mid))
        pipe.execute()
        return True

    @_guard("reading corrections")
    def corrections(self, brand: str) -> dict[str, Correction]:
        ids = [m.decode() for m in self.client.zrange(self.keys.corrections(brand), 0, -1)]
        raws = self.client.mget([self.keys.correction(brand, m) for m in ids]) if ids else []
        return {m: Correction.model_validate_json(r) for m, r in zip(ids, raws, strict=True) if r}

    @_guard("reading decisions")
    def all_decisions(self, brand: str, limit: int | None = None, page: int = 500) -> list[Decision]:
        """Stored decisions of ``brand``, oldest first (at most ``limit``)."""
        out: list[Decision] = []
        start = 0
        while limit is None or start < limit:
            stop = start + page - 1 if limit is None else min(start + page, limit) - 1
            ids = [m.decode() for m in self.client.zrange(self.keys.decisions(brand), start, stop)]
            if not ids:
                break
            out.extend(d for d in self.decisions([(brand, m) for m in ids]) if d is not None)
            start += len(ids)
        return out

    @_guard("reading stats")
    def stats(self, brand: str) -> dict[str, int | float]:
        def number(raw: bytes) -> int | float:
            text = raw.decode()
            return int(text) if text.lstrip("-").isdigit() else float(text)

        return {k.decode(): number(v) for k, v in self.client.hgetall(self.keys.stats(brand)).items()}

    @_guard("reading rejected events")
    def rejected(self, limit: int = 20) -> list[dict[str, Any]]:
        return [json.loads(r) for r in self.client.lrange(self.keys.rejected, 0, limit - 1)]
