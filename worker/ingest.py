"""Ingestion: validate inbound events and enqueue them in batches.

:class:`Ingestor` groups valid events into batches of at most ``batch_size``
and, when traffic is light, never holds an event longer than ``batch_wait`` seconds:
a background timer flushes a partial batch when its oldest event reaches that age,
so a slow stream (stdin, a webhook) still flows. When every worker already has a
batch (running, or waiting on the queue for it), the hold grows until a worker is free
(at most ``BATCH_BUSY_WAIT_SECONDS``): the batch would only have waited on the queue,
and it fills up meanwhile, so under backlog the workers catch up on fewer, fuller jobs
instead of queueing many small ones. Invalid events are reported with every
bad field and never enqueued. Events already decided, or seen earlier in the
same session, are skipped (persisting is idempotent anyway, so a duplicate that
slips through still yields one decision).

If Redis goes away, a batch waits for it (with backoff, up to
``INGEST_REDIS_WAIT_SECONDS``) and is enqueued again under the same job id, which
RQ enqueues at most once (``unique``), so an enqueue whose reply was lost is
neither lost nor doubled. If Redis stays away, :class:`~worker.exceptions.StoreError`
is raised (from ``submit`` or ``close``) with the report attached as ``exc.report``:
``accepted`` holds exactly the events whose batch RQ confirmed, ``not_enqueued`` the
events read but not enqueued, ``uncertain`` those of a batch whose enqueue was sent
but not confirmed, and ``last_source`` says where reading stopped; ingesting the same
input again is safe.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis
from rq import Worker
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from worker import defaults
from worker.connection import Backoff, is_connection_error, wait_for_redis
from worker.exceptions import InputError, InvalidEvent, NoWorker, Problem, StoreError, WaitTimeout
from worker.models import Decision, InboundEvent, parse_event
from worker.queues import batch_queue, enqueue_events
from worker.settings import Settings
from worker.store import Store


@dataclass
class IngestReport:
    accepted: list[tuple[str, str]] = field(default_factory=list)  # (brand, id) enqueued
    invalid: list[InvalidEvent] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # already decided / repeated
    jobs: list[str] = field(default_factory=list)
    not_enqueued: list[tuple[str, str]] = field(default_factory=list)
    uncertain: list[tuple[str, str]] = field(default_factory=list)  # enqueue sent, not confirmed
    redis_waits: int = 0  # times a batch waited for Redis to come back
    last_source: str | None = None  # where reading stopped (for a failure report)

    @property
    def keys(self) -> list[tuple[str, str]]:
        return self.accepted + self.skipped


class Ingestor:
    """Validate and batch events onto the RQ queue. Use as a context manager."""

    def __init__(
        self,
        connection: redis.Redis,
        settings: Settings,
        *,
        batch_size: int | None = None,
        batch_wait: float | None = None,
        known_brands: Iterable[str] | None = None,
        redis_wait: float = defaults.INGEST_REDIS_WAIT_SECONDS,
        busy_wait: float = defaults.BATCH_BUSY_WAIT_SECONDS,
    ):
        """``known_brands``: when given, an event for any other brand is rejected as invalid (no policy).
        ``redis_wait``: seconds a batch waits for Redis to come back before the ingest gives up.
        ``busy_wait``: longest hold (seconds) of a batch while every worker is busy."""
        self.settings = settings
        self.known_brands = None if known_brands is None else frozenset(known_brands)
        self.connection = connection
        self.redis_wait = redis_wait
        self.queue = batch_queue(connection, settings)
        self.store = Store(connection, settings.key_prefix)
        self.batch_size = batch_size or settings.batch_size
        self.batch_wait = settings.batch_wait_seconds if batch_wait is None else batch_wait
        self.backlog_wait = max(self.batch_wait, busy_wait)
        self._workers_key = WORKERS_BY_QUEUE_KEY % self.queue.name
        self.report = IngestReport()
        self._pending: list[InboundEvent] = []
        self._oldest = 0.0
        self._seen: set[tuple[str, str]] = set()
        self._cond = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self._timer = threading.Thread(target=self._run_timer, name="replyguard-batcher", daemon=True)
        self._timer.start()

    # -- public ---------------------------------------------------------------------

    def submit(self, data: object, source: str = "event") -> InboundEvent:
        """Validate one event and queue it for batching.

        Raises InvalidEvent (nothing is enqueued) or StoreError (Redis failed: the ingestor is
        closed, and every event not enqueued, this one included, is in ``report.not_enqueued``).
        """
        event = data if isinstance(data, InboundEvent) else parse_event(data, source)
        if self.known_brands is not None and event.brand not in self.known_brands:
            raise InvalidEvent(
                source,
                Problem(
                    "brand",
                    f"no policy for brand {event.brand!r} in "
                    f"{self.settings.policies_dir} (known: {sorted(self.known_brands)})",
                ),
            )
        with self._cond:
            try:
                self._raise_pending_error()
                if event.key in self._seen:
                    self.report.skipped.append(event.key)
                    return event
                self._seen.add(event.key)
                if not self._pending:
                    self._oldest = time.monotonic()
                    self._cond.notify_all()
                self._pending.append(event)
                if len(self._pending) >= self.batch_size:
                    self._flush_locked()
            except StoreError as exc:
                if (
                    event not in self._pending
                    and event.key not in self.report.accepted
                    and event.key not in self.report.uncertain
                ):
                    self.report.not_enqueued.append(event.key)
                self._abandon_locked()
                exc.report = self.report  # type: ignore[attr-defined]
                raise
        return event

    def flush(self) -> None:
        with self._cond:
            self._raise_pending_error()
            self._flush_locked()

    def close(self) -> IngestReport:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._timer.join(timeout=5)
        with self._cond:
            try:
                self._raise_pending_error()
                self._flush_locked()
            except StoreError as exc:
                self._abandon_locked()
                exc.report = self.report  # type: ignore[attr-defined]
                raise
        return self.report

    def __enter__(self) -> "Ingestor":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            with self._cond:
                self._abandon_locked()

    # -- internals ------------------------------------------------------------------

    def _abandon_locked(self) -> None:
        """Stop batching; whatever is still pending is reported as not enqueued."""
        self.report.not_enqueued.extend(e.key for e in self._pending if e.key not in self.report.not_enqueued)
        self._pending = []
        self._closed = True
        self._cond.notify_all()

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        batch = self._pending
        job_id = f"rg-batch-{uuid.uuid4().hex}"
        sent = False  # an enqueue was sent, maybe applied
        deadline = time.monotonic() + self.redis_wait
        backoff = Backoff()
        while True:
            try:
                # one script call: each message's place in its conversation (the same for a repeat
                # of an id; workers decide a conversation's messages in this order), None if decided
                numbers = self.store.number(batch)
                done = [n is None for n in numbers]
                fresh = [e for e, d in zip(batch, done, strict=True) if not d]
                if fresh:
                    sent = True
                    try:
                        enqueue_events(self.queue, fresh, job_id)
                    except DuplicateJobError:
                        pass  # an earlier attempt's enqueue did arrive
                    self.report.jobs.append(job_id)
                    self.report.accepted.extend(e.key for e in fresh)
                self.report.skipped.extend(e.key for e, d in zip(batch, done, strict=True) if d)
                break
            except (redis.RedisError, StoreError) as exc:
                left = deadline - time.monotonic()
                if (
                    not is_connection_error(exc)
                    or left <= 0
                    or not wait_for_redis(self.connection, timeout=left, what="ingest", backoff=backoff)
                ):
                    if sent:
                        self.report.uncertain.extend(e.key for e in batch)
                        self._pending = []
                    raise StoreError(f"cannot enqueue a batch of {len(batch)} events: {exc}") from exc
                self.report.redis_waits += 1
        self._pending = []

    def _busy_workers(self) -> tuple[bool, bool]:
        """(busy, queued): busy when every worker of the queue has a batch, one running or taken (RQ's
        started registry and intermediate list) or already waiting on the queue for it; queued when
        batches wait on the queue. A batch enqueued while the workers are busy would only wait behind
        those, so holding it costs its messages nothing and lets it grow; it is enqueued as soon as a
        worker is free. One round trip of four counts; not busy (enqueue now) when no worker is
        registered or Redis does not answer. A worker that died unseen still counts as a worker until
        RQ's registry drops it (a batch is then enqueued early), and its batch as running until the
        recovery sweep re-queues it (a batch is then held up to ``backlog_wait``)."""
        try:
            with self.connection.pipeline(transaction=False) as pipe:
                pipe.scard(self._workers_key)
                pipe.zcard(self.queue.started_job_registry.key)
                pipe.llen(self.queue.intermediate_queue_key)
                pipe.llen(self.queue.key)
                workers, running, taken, waiting = (int(n) for n in pipe.execute())
        except redis.RedisError:
            return False, False
        return workers > 0 and running + taken + waiting >= workers, waiting > 0

    def _run_timer(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._pending:
                    self._cond.wait()
                    continue
                remaining = self._oldest + self.batch_wait - time.monotonic()
                if remaining > 0:
                    self._cond.wait(timeout=remaining)
                    continue
                longest = self._oldest + self.backlog_wait - time.monotonic()
                if longest > 0:
                    oldest = self._oldest
                    self._cond.release()  # submit() goes on while the counts are read
                    try:
                        busy, queued = self._busy_workers()
                    finally:
                        self._cond.acquire()
                    if self._closed or not self._pending or self._oldest != oldest:
                        continue  # closed, or the batch was flushed (full) meanwhile: look again
                    if busy:
                        # re-checked often while every worker runs a batch (one may finish any moment),
                        # less often while batches wait on the queue (those go to the next free worker)
                        poll = defaults.BATCH_QUEUED_POLL_SECONDS if queued else defaults.BATCH_BUSY_POLL_SECONDS
                        self._cond.wait(timeout=min(longest, poll))
                        continue
                try:
                    self._flush_locked()
                except StoreError as exc:
                    self._error = exc
                    self._cond.wait(timeout=1.0)


def read_lines(stream: IO[bytes], on_invalid: Callable[[InvalidEvent], None]) -> Iterable[tuple[str, object]]:
    """Yield (source, raw event) for each non-blank JSONL line; invalid lines go to ``on_invalid``.

    A line over ``MAX_EVENT_BYTES`` is reported and skipped without being held in memory whole;
    reading goes on with the next line.
    """
    name = getattr(stream, "name", "<stdin>")
    limit = defaults.MAX_EVENT_BYTES
    number = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        number += 1
        source = f"{name}:{number}"
        if len(line) > limit:
            size = len(line)
            while not line.endswith(b"\n"):
                line = stream.readline(64 * 1024)
                if not line:
                    break
                size += len(line)
            on_invalid(InvalidEvent(source, Problem("(line)", f"{size} bytes; the limit is {limit}")))
            continue
        if not line.strip():
            continue
        yield source, line


def ingest_stream(
    ingestor: Ingestor, stream: IO[bytes], on_invalid: Callable[[InvalidEvent], None] | None = None
) -> IngestReport:
    def invalid(exc: InvalidEvent) -> None:
        ingestor.report.invalid.append(exc)
        if on_invalid:
            on_invalid(exc)

    for source, raw in read_lines(stream, invalid):
        ingestor.report.last_source = source
        try:
            ingestor.submit(raw, source)
        except InvalidEvent as exc:
            invalid(exc)
    return ingestor.close()


def ingest_events(
    events: Iterable[object], connection: redis.Redis, settings: Settings | None = None, **kwargs: Any
) -> IngestReport:
    """Python API: validate and enqueue ``events`` (dicts, JSON strings or InboundEvents).

    Invalid events are collected in ``report.invalid``; valid ones are enqueued.
    """
    settings = settings or Settings.from_env()
    ingestor = Ingestor(connection, settings, **kwargs)
    for position, data in enumerate(events):
        ingestor.report.last_source = f"event {position}"
        try:
            ingestor.submit(data, f"event {position}")
        except InvalidEvent as exc:
            ingestor.report.invalid.append(exc)
    return ingestor.close()


def policy_brands(settings: Settings) -> set[str] | None:
    """Brands with a policy file in ``settings.policies_dir`` (None when the directory is absent)."""
    directory = settings.policies_dir
    if not directory.is_dir():
        return None
    return {path.stem for path in directory.glob("*.yaml")}


def open_input(path: str) -> IO[bytes]:
    """The events file (``-``: stdin). Raises InputError if it is missing or unreadable."""
    if path == "-":
        return sys.stdin.buffer
    if Path(path).is_dir():
        raise InputError(path, "is a directory")
    try:
        return Path(path).open("rb")
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from exc


@dataclass
class WaitResult:
    decisions: list[Decision]
    missing: list[tuple[str, str]]
    failed_jobs: list[str]
    seconds: float
    rejected: list[dict[str, Any]] = field(default_factory=list)  # the worker refused them (e.g. no policy)

    def summary(self) -> dict[str, Any]:
        actions: Counter[str] = Counter()
        rules: Counter[str] = Counter()
        for d in self.decisions:
            actions["+".join(a.value for a in d.actions)] += 1
            rules[d.rule] += 1
        return {
            "decided": len(self.decisions),
            "missing": len(self.missing),
            "rejected": len(self.rejected),
            "failed_jobs": self.failed_jobs,
            "actions": dict(actions.most_common()),
            "rules": dict(rules.most_common()),
            "seconds": round(self.seconds, 2),
        }


def wait_for(
    report: IngestReport,
    connection: redis.Redis,
    settings: Settings | None = None,
    *,
    timeout: float = defaults.WAIT_TIMEOUT_SECONDS,
    progress: Callable[[int, int], None] | None = None,
    poll: float = 0.1,
    until_final: bool = False,
    no_worker_seconds: float | None = defaults.NO_WORKER_SECONDS,
) -> WaitResult:
    """Block until every event in ``report`` is decided, rejected by the worker, or its job failed for good.

    With ``until_final``, also wait until no decision is pending an LLM task (bounded by the
    tasks' own deadlines, and by ``timeout``). Raises :class:`WaitTimeout` after ``timeout``
    seconds, and :class:`NoWorker` as soon as no worker has listened on the queue for
    ``no_worker_seconds`` (None: never); both carry the :class:`WaitResult` so far as ``.result``.
    If Redis goes away meanwhile, it waits for Redis (within ``timeout``) and goes on.
    """
    if not isinstance(report, IngestReport):
        raise TypeError("wait_for(report, connection, settings): the first argument is the IngestReport")
    settings = settings or Settings()
    store = Store(connection, settings.key_prefix)
    queue = batch_queue(connection, settings)
    keys = list(dict.fromkeys(report.keys))
    started = time.monotonic()

    def resilient(fn: Callable[[], Any]) -> Any:
        """Run ``fn``; if Redis went away, wait for it (within the timeout) and run it again."""
        while True:
            try:
                return fn()
            except (StoreError, redis.RedisError) as exc:
                left = timeout - (time.monotonic() - started)
                if (
                    not is_connection_error(exc)
                    or left <= 0
                    or not wait_for_redis(connection, timeout=left, what="ingest --wait")
                ):
                    raise StoreError(f"Redis failed while waiting for decisions: {exc}") from exc

    def poll_once() -> tuple[int, list[str], bool, int | None]:
        done = store.decided(keys) if keys else []
        failed, waiting_jobs = [], False
        if sum(done) < len(keys):
            for job in Job.fetch_many(report.jobs, connection=connection, serializer=queue.serializer):
                if job is None:
                    continue
                status = job.get_status(refresh=False)
                if status == JobStatus.FAILED:
                    failed.append(job.id)
                elif status not in (JobStatus.FINISHED, JobStatus.CANCELED, JobStatus.STOPPED):
                    waiting_jobs = True
        workers = Worker.count(connection=connection, queue=queue) if waiting_jobs else None
        return sum(done), failed, waiting_jobs, workers

    failed: list[str] = []
    alone_since: float | None = None
    problem: type[WaitTimeout] | None = None
    while True:
        count, failed, waiting_jobs, workers = resilient(poll_once)
        if progress:
            progress(count, len(keys))
        if count == len(keys) or not waiting_jobs:
            break
        now = time.monotonic()
        if no_worker_seconds is not None and workers == 0:
            alone_since = now if alone_since is None else alone_since
            if now - alone_since >= no_worker_seconds:
                problem = NoWorker
                break
        else:
            alone_since = None
        if now - started > timeout:
            problem = WaitTimeout
            break
        time.sleep(poll)
    pairs = [k for k, d in zip(keys, resilient(lambda: store.decided(keys) if keys else []), strict=True) if d]
    decisions = [d for d in resilient(lambda: store.decisions(pairs)) if d is not None]
    while problem is None and until_final and any(d.pending for d in decisions):
        if time.monotonic() - started > timeout:
            problem = WaitTimeout
            break
        time.sleep(poll)
        decisions = [d for d in resilient(lambda: store.decisions(pairs)) if d is not None]
    decided_keys = set(pairs)
    undecided = [k for k in keys if k not in decided_keys]
    rejected: list[dict[str, Any]] = []
    if undecided:
        wanted = set(undecided)
        for entry in resilient(lambda: store.rejected(limit=defaults.REJECTED_MAX_ENTRIES)):
            key = (str(entry.get("brand")), str(entry.get("message_id")))
            if key in wanted:
                wanted.discard(key)
                rejected.append(
                    {
                        "brand": key[0],
                        "message_id": key[1],
                        "source": entry.get("source"),
                        "reason": entry.get("reason"),
                    }
                )
        undecided = [k for k in undecided if k in wanted]
    result = WaitResult(
        decisions=decisions,
        missing=undecided,
        failed_jobs=failed,
        seconds=time.monotonic() - started,
        rejected=rejected,
    )
    if problem is NoWorker:
        raise NoWorker(
            f"no worker is consuming queue {settings.queue!r} (none for {no_worker_seconds:g}s); "
            f"start one with: replyguard worker",
            result,
        )
    if problem is not None:
        raise WaitTimeout(f"{len(result.missing)} of {len(keys)} events not decided after {timeout:g}s", result)
    return result
