"""Delivery workers: a Redis Streams consumer group over every brand's outbox.

Protocol for one outbox entry (``XREADGROUP … >``, or ``XAUTOCLAIM`` of an entry a dead
deliverer left pending longer than ``DELIVERY_CLAIM_IDLE_MS``):

1. plan its steps (:mod:`worker.delivery.plan`); for each step, **begin** it with one Lua
   script on its idempotency record ``{p}:delivery:{brand}:{message id}:{step}``: a step
   that already ended (sent, failed, skipped, dry_run, unknown) is not sent again; otherwise
   it becomes ``sending`` *before* the HTTP call.
2. call the platform; 429 / 5xx / unreachable → the record goes back to ``retrying`` (the
   platform answered: nothing was sent) and the step is retried with backoff honouring
   ``Retry-After``, at most ``DELIVERY_MAX_ATTEMPTS`` times; a permanent error (expired token,
   invalid recipient, window closed) is recorded and escalated at once.
3. record the outcome in one MULTI/EXEC: the record's final state, the decision's
   ``deliveries``, the escalation (through :func:`worker.decide.escalate_after_delivery`) and
   its review-queue entry. When every step has ended, ``XACK``.

**The residual window.** A deliverer killed between sending and recording leaves the record
``sending``. Whoever claims the entry next finds it *in doubt*: the platform may or may not
have the message. Meta's and YouTube's APIs take no idempotency key, so replyguard does not
send again (never twice): it records ``unknown`` and escalates so a person checks the
conversation. The window is one HTTP round trip per kill. WhatsApp sends carry
``biz_opaque_callback_data`` = ``brand/message id/reply`` so status webhooks can settle it.
Outbound webhooks carry their delivery id (``X-Replyguard-Delivery``), so receivers drop
repeats and an in-doubt webhook *is* sent again.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import httpx
import redis

from worker import defaults
from worker.connection import Backoff
from worker.decide import escalate_after_delivery
from worker.delivery.plan import MissingToken, Planner, Step
from worker.exceptions import (
    AmbiguousDeliveryError,
    DeliveryError,
    PermanentDeliveryError,
    StoreError,
    TransientDeliveryError,
)
from worker.models import DeliveryRecord
from worker.policy import Policy
from worker.queues import batch_queue
from worker.settings import Settings
from worker.sla.tracker import SlaTracker
from worker.store import Store
from worker.templates import TemplateBook

log = logging.getLogger(__name__)


def consumer_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


class Deliverer:
    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        policies: Mapping[str, Policy],
        books: Mapping[str, TemplateBook],
        *,
        consumer: str | None = None,
        http: httpx.Client | None = None,
        claim_idle_ms: int = defaults.DELIVERY_CLAIM_IDLE_MS,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = defaults.DELIVERY_MAX_ATTEMPTS,
    ):
        self.client = client
        self.settings = settings
        self.store = Store(client, settings.key_prefix)
        self.policies = policies
        self.consumer = consumer or consumer_name()
        self.group = defaults.DELIVERY_GROUP
        self.http = http or httpx.Client(timeout=defaults.DELIVERY_HTTP_TIMEOUT_SECONDS)
        self.planner = Planner(settings, self.store, policies, books, self.http, environ)
        self.claim_idle_ms = claim_idle_ms
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.streams = {self.store.keys.outbox(b): b for b in sorted(policies)}
        # SLA events (worker/sla): those marked notify=1 go to the brand's webhook connectors
        self.sla_streams = {
            self.store.keys.sla_events(b): b
            for b, p in sorted(policies.items())
            if any(h.sla_events for h in p.connectors.webhooks)
        }
        self.streams.update(self.sla_streams)
        self._cursors = {s: "0-0" for s in self.streams}
        self.sla = SlaTracker(self.store, policies, schedule_queue=batch_queue(client, settings))
        self.stopping = threading.Event()
        self.handled = 0

    # -- the loop ----------------------------------------------------------------------

    def ensure_groups(self) -> None:
        for stream in self.streams:
            try:
                self.client.xgroup_create(stream, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise StoreError(f"cannot create consumer group on {stream}: {exc}") from exc

    def run(self, *, burst: bool = False, block_ms: int = defaults.DELIVERY_BLOCK_MS) -> int:
        """Deliver until stopped (or, with ``burst``, until nothing is left). Returns entries handled.

        Redis going away is waited out with backoff (:class:`~worker.connection.Backoff`), not an exit:
        entries in hand stay pending and are taken up again (the idempotency records keep a step from
        being sent twice); the consumer groups are created again if Redis came back empty.
        """
        log.info("deliverer %s reading %d outbox stream(s)", self.consumer, len(self.streams))
        backoff = Backoff()
        groups_ready = False
        while not self.stopping.is_set():
            try:
                if not groups_ready:
                    self.ensure_groups()
                    groups_ready = True
                n = self.step(block_ms=0 if burst else block_ms)
                if backoff.attempts:
                    log.warning("deliverer %s: Redis is back; delivering again", self.consumer)
                    backoff.reset()
                if burst and n == 0 and not self._pending_elsewhere():
                    break
            except (redis.RedisError, StoreError) as exc:
                if burst:
                    raise StoreError(f"Redis failed while delivering: {exc}") from exc
                groups_ready = False
                delay = backoff.next_delay()
                log.warning("deliverer %s: Redis unavailable (%s); retrying in %.1f s", self.consumer, exc, delay)
                self.stopping.wait(delay)
        return self.handled

    def _pending_elsewhere(self) -> bool:
        """Entries other deliverers hold (burst mode waits for them to become claimable)."""
        for stream in self.streams:
            info = self.client.xpending(stream, self.group)
            if info and info.get("pending"):
                self.sleep(min(0.2, self.claim_idle_ms / 1000))
                return True
        return False

    def step(self, block_ms: int = 0) -> int:
        handled = 0
        for stream in self.streams:  # entries dead deliverers left behind
            claimed: Any = self.client.xautoclaim(
                stream,
                self.group,
                self.consumer,
                self.claim_idle_ms,
                start_id=self._cursors[stream],
                count=defaults.DELIVERY_READ_COUNT,
            )
            cursor, entries = claimed[0], claimed[1]
            self._cursors[stream] = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
            for entry_id, fields in entries:
                if fields:
                    log.info("deliverer %s took over outbox entry %s of %s", self.consumer, _s(entry_id), stream)
                    self.handle(stream, _s(entry_id), fields)
                    handled += 1
        replies: Any = self.client.xreadgroup(
            self.group,
            self.consumer,
            {s: ">" for s in self.streams},
            count=defaults.DELIVERY_READ_COUNT,
            block=block_ms or None,
        )
        for stream, entries in replies or []:
            for entry_id, fields in entries:
                self.handle(_s(stream), _s(entry_id), fields)
                handled += 1
        self.handled += handled
        return handled

    # -- one entry ---------------------------------------------------------------------

    def handle(self, stream: str, entry_id: str, fields: dict[bytes, bytes]) -> None:
        brand = self.streams[stream]
        if stream in self.sla_streams:
            self._handle_sla(stream, entry_id, brand, fields)
            return
        try:
            payload = json.loads(fields[b"payload"])
            message_id = str(payload["message_id"])
        except (KeyError, ValueError, TypeError) as exc:
            self.store.reject({"stream": stream, "entry": entry_id}, f"unreadable outbox entry: {exc}", "deliverer")
            self.store.ack(stream, self.group, entry_id)
            return
        decision = self.store.decision(brand, message_id)
        if decision is None:
            self.store.reject(payload, "outbox entry for a decision that does not exist", "deliverer")
            self.store.ack(stream, self.group, entry_id)
            return
        for step in self.planner.steps(payload, decision):
            self._carry_out(stream, entry_id, brand, message_id, step)
        self.store.ack(stream, self.group, entry_id)

    def _handle_sla(self, stream: str, entry_id: str, brand: str, fields: dict[bytes, bytes]) -> None:
        if fields.get(b"notify") == b"1":
            try:
                payload = json.loads(fields[b"payload"])
                message_id = str(payload["message_id"])
            except (KeyError, ValueError, TypeError) as exc:
                self.store.reject({"stream": stream, "entry": entry_id}, f"unreadable SLA event: {exc}", "deliverer")
            else:
                for step in self.planner.sla_steps(brand, entry_id, payload):
                    self._carry_out(stream, entry_id, brand, message_id, step)
        self.store.ack(stream, self.group, entry_id)

    def _record(
        self,
        brand: str,
        message_id: str,
        step: Step,
        status: str,
        *,
        attempts: int,
        platform_id: str | None = None,
        error: DeliveryError | None = None,
        escalate: bool = False,
    ) -> None:
        record = DeliveryRecord(
            action=step.action,
            target=step.target,
            status=status,  # type: ignore[arg-type]
            platform_message_id=platform_id or None,
            attempts=attempts,
            error=str(error) if error else None,
            at=datetime.now(timezone.utc),
        )
        policy = self.policies[brand]
        how = None
        if escalate and error is not None:

            def how(d, code=error.code, detail=error.detail):  # noqa: ANN001
                return escalate_after_delivery(d, policy, step.action, code, detail)

        stored = self.store.record_delivery(brand, message_id, step.key, record, escalate=how)
        if how is not None and stored is not None:
            self.sla.start(stored, datetime.now(timezone.utc))  # the new escalation's response-time clock

    def _carry_out(self, stream: str, entry_id: str, brand: str, message_id: str, step: Step) -> None:
        verdict, info = self.store.begin_delivery(brand, message_id, step.key, self.consumer)
        if verdict == "done":
            return
        if verdict == "in_doubt" and not step.dedupable:
            log.warning(
                "%s/%s %s: in doubt (deliverer %s stopped mid-send); not sent again, escalated",
                brand,
                message_id,
                step.action,
                info,
            )
            self._record(
                brand,
                message_id,
                step,
                "unknown",
                attempts=0,
                escalate=True,
                error=AmbiguousDeliveryError("unknown", f"deliverer {info} stopped while sending"),
            )
            return
        if verdict == "in_doubt":  # the receiver deduplicates by our delivery id: send again
            verdict, info = self.store.begin_delivery(brand, message_id, step.key, self.consumer, take_over=True)
        attempts = int(info)
        if step.skip is not None:
            code, detail = step.skip
            log.info("%s/%s %s on %s skipped: %s", brand, message_id, step.action, step.target, code)
            self._record(
                brand,
                message_id,
                step,
                "skipped",
                attempts=0,
                escalate=step.escalate_skip,
                error=PermanentDeliveryError(code, detail),
            )
            return
        if self.planner.mode(brand) == "dry_run":
            log.info(
                "dry_run: would %s on %s (account %s, %d characters) for %s/%s",
                step.action,
                step.target,
                step.account,
                step.chars,
                brand,
                message_id,
            )
            self._record(brand, message_id, step, "dry_run", attempts=0)
            return
        while True:
            self._throttle(brand, step)
            try:
                platform_id = step.send() if step.send else ""
            except MissingToken as exc:
                error = PermanentDeliveryError("missing_token", f"environment variable {exc.variable} is not set")
                self._fail(brand, message_id, step, attempts, error)
                return
            except TransientDeliveryError as exc:
                if attempts >= self.max_attempts:
                    self._fail(brand, message_id, step, attempts, exc)
                    return
                self.store.delivery_retrying(brand, message_id, step.key, str(exc))
                wait = self._backoff(attempts, exc.retry_after)
                log.info(
                    "%s/%s %s on %s: %s; attempt %d again in %.2fs",
                    brand,
                    message_id,
                    step.action,
                    step.target,
                    exc.code,
                    attempts + 1,
                    wait,
                )
                self._wait(stream, entry_id, wait)
                verdict, info = self.store.begin_delivery(brand, message_id, step.key, self.consumer)
                if verdict != "go":
                    return
                attempts = int(info)
                continue
            except AmbiguousDeliveryError as exc:
                if step.dedupable and attempts < self.max_attempts:
                    self.store.delivery_retrying(brand, message_id, step.key, str(exc))
                    self._wait(stream, entry_id, self._backoff(attempts, None))
                    verdict, info = self.store.begin_delivery(brand, message_id, step.key, self.consumer)
                    if verdict != "go":
                        return
                    attempts = int(info)
                    continue
                log.warning(
                    "%s/%s %s on %s: %s; not repeated (the platform may have it)",
                    brand,
                    message_id,
                    step.action,
                    step.target,
                    exc.code,
                )
                self._record(brand, message_id, step, "unknown", attempts=attempts, error=exc, escalate=True)
                return
            except DeliveryError as exc:
                self._fail(brand, message_id, step, attempts, exc)
                return
            log.info("delivered %s on %s for %s/%s (attempt %d)", step.action, step.target, brand, message_id, attempts)
            self._record(brand, message_id, step, "sent", attempts=attempts, platform_id=platform_id)
            return

    def _fail(self, brand: str, message_id: str, step: Step, attempts: int, error: DeliveryError) -> None:
        log.warning(
            "%s/%s %s on %s failed after %d attempt(s): %s",
            brand,
            message_id,
            step.action,
            step.target,
            attempts,
            error.code,
        )
        if step.on_failure == "dead_letter":
            self._record(brand, message_id, step, "failed", attempts=attempts, error=error)
            self.store.dead_letter(
                brand,
                {
                    "at": datetime.now(timezone.utc).isoformat(),
                    "connector": step.target,
                    "message_id": message_id,
                    "attempts": attempts,
                    "error": str(error),
                },
            )
        else:
            self._record(brand, message_id, step, "failed", attempts=attempts, error=error, escalate=True)

    # -- pacing ------------------------------------------------------------------------

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(0.0, retry_after), defaults.DELIVERY_RETRY_AFTER_MAX_SECONDS)
        base = defaults.DELIVERY_BACKOFF_BASE_SECONDS * 2 ** (attempts - 1)
        return min(defaults.DELIVERY_BACKOFF_MAX_SECONDS, base) * (1 + random.random() / 10)  # noqa: S311

    def _wait(self, stream: str, entry_id: str, seconds: float) -> None:
        """Sleep, keeping the entry claimed (XCLAIM … JUSTID resets its idle time) so that no other
        deliverer takes it over while this one waits out a Retry-After."""
        deadline = time.monotonic() + seconds
        while True:
            self.client.xclaim(stream, self.group, self.consumer, 0, [entry_id], justid=True)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sleep(min(left, self.claim_idle_ms / 3000))

    def _throttle(self, brand: str, step: Step) -> None:
        """At most N calls per second per (target, account), shared by every deliverer through Redis."""
        limit = self.policies[brand].delivery.rate_limit_per_second or defaults.DELIVERY_RATE_PER_SECOND
        while True:
            now = time.time()
            key = self.store.keys.ratelimit(step.target, step.account or "-", int(now))
            pipe = self.client.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 2)
            count = pipe.execute()[0]
            if count <= max(1, int(limit)):
                return
            self.sleep(max(0.001, 1 - (now % 1)))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
