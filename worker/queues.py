"""The RQ side: the batch queue, how batches are enqueued, and the worker.

Jobs carry plain JSON (RQ's JSONSerializer): ``worker.jobs.process_batch(messages,
enqueued_at)`` where ``messages`` is a list of inbound events as dicts. RQ's
retries, failed-job registry, CLI (``rq info``) and dashboards work as usual.

Crash recovery: every worker runs :meth:`Recovering.recover` every
``RECOVERY_SWEEP_SECONDS`` (one worker at a time): RQ's started-job registry is
cleaned, so a batch whose worker or work-horse was killed (its heartbeat, sent every
``JOB_HEARTBEAT_SECONDS``, is more than ``JOB_HEARTBEAT_GRACE_SECONDS`` late) is
re-queued at the front of its queue, decisions whose LLM deadline passed are
finalised, and due SLA steps are taken. None of it needs RQ's scheduler, which runs inside
one worker and dies with it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from collections.abc import Callable, Sequence
from typing import Any

import pydantic_core
import redis
import rq.job
import rq.queue
import rq.registry
import rq.results
import rq.scheduler
import rq.worker.base
from rq import Queue, Retry, SimpleWorker, Worker, serializers
from rq.exceptions import DequeueTimeout, DeserializationError
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.job_lifecycle import call_exception_handlers
from rq.registry import StartedJobRegistry
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus

from worker import defaults
from worker.models import InboundEvent, canonical_json
from worker.settings import Settings
from worker.store import Keys

_RQ_RESOLVE_SERIALIZER = serializers.resolve_serializer


def resolve_serializer(serializer: Any = None) -> Any:
    """RQ's ``resolve_serializer``, without its check of JSONSerializer, every replyguard queue's: the
    check is a runtime ``Protocol`` isinstance (~80k instructions; RQ makes one for every Job, Queue,
    registry and Result object it builds, ~7 a batch job in a worker, ~2 a batch in ingest), and
    JSONSerializer always passes it. Any other serializer is RQ's to resolve."""
    if serializer is JSONSerializer:
        return JSONSerializer
    return _RQ_RESOLVE_SERIALIZER(serializer)


#: the RQ modules that resolve serializers, each through its own imported name
RESOLVING_MODULES = (rq.job, rq.queue, rq.registry, rq.results, rq.scheduler, rq.worker.base)
for _module in RESOLVING_MODULES:
    _module.resolve_serializer = resolve_serializer  # type: ignore[attr-defined]

JOB_FUNCTION = "worker.jobs.process_batch"
LLM_FUNCTION = "worker.llm_jobs.run_llm_task"
DEADLINE_FUNCTION = "worker.llm_jobs.finish_at_deadline"


def payload_loads(data: bytes) -> Any:
    """``JSONSerializer.loads(data)`` (``json.loads`` of the UTF-8 text): the same values, read by
    pydantic-core's JSON parser, its object keys cached across payloads (~1/3 fewer instructions
    than ``json.loads`` for a batch's events: ~17.6k instead of ~26k a message). What that parser
    refuses and ``json.loads`` may accept (a lone surrogate escape, nesting deeper than its limit)
    or refuses too (with its own error) goes to ``json.loads``, which returns or raises as before."""
    try:
        return pydantic_core.from_json(data, cache_strings="keys")
    except ValueError:
        return JSONSerializer.loads(data)


class ReplyguardJob(Job):
    """RQ's job, except that saving a job read from Redis writes its payload back as it was read,
    and a JSON payload is read by :func:`payload_loads`.

    RQ saves the whole job again when it finishes (``Job._handle_success``), compressing the
    payload once more (zlib, ~1 ms of CPU for a batch of 256 events) although nothing in it
    changed. The compressed bytes read are kept and written back as long as the payload is the
    one read; a new or changed payload is compressed afresh, at ``defaults.JOB_PAYLOAD_ZLIB_LEVEL``."""

    _read_payload: tuple[bytes, bytes] | None = None  # (payload, its compressed form) as read

    def restore(self, raw_data: Any) -> Any:
        restored = super().restore(raw_data)
        packed = raw_data.get(b"data", raw_data.get("data")) if isinstance(raw_data, dict) else None
        payload = self._data
        read = isinstance(payload, bytes) and isinstance(packed, bytes) and packed is not payload
        self._read_payload = (payload, packed) if read else None  # type: ignore[assignment]
        return restored

    def _deserialize_data(self) -> None:
        data = self.data
        if self.serializer is not JSONSerializer or not isinstance(data, bytes):
            super()._deserialize_data()
            return
        try:
            self._func_name, self._instance, self._args, self._kwargs = payload_loads(data)
        except Exception as exc:  # as RQ's: any failure to read the payload
            raise DeserializationError() from exc

    def to_dict(self, include_meta: bool = True, include_result: bool = True) -> dict[str, Any]:
        read = self._read_payload
        payload = self.data
        if read is not None and read[0] is payload:
            packed = read[1]
        else:  # a new payload: compressed at a cheaper level than RQ's (``JOB_PAYLOAD_ZLIB_LEVEL``)
            packed = zlib.compress(payload, defaults.JOB_PAYLOAD_ZLIB_LEVEL)
        self._data = b""  # RQ's to_dict compresses self.data: give it nothing to compress
        try:
            mapping = super().to_dict(include_meta=include_meta, include_result=include_result)
        finally:
            self._data = payload
        mapping["data"] = packed
        return mapping


class ReplyguardQueue(Queue):
    """RQ's queue, except that taking a job off several queues also moves it to the queue's
    intermediate list (RQ does this only for a worker of one queue), so a job whose worker
    dies between taking it and starting it is found again by the recovery sweep."""

    @classmethod
    def lpop(cls, queue_keys: Any, timeout: int | None, connection: redis.Redis | None = None) -> Any:
        assert connection is not None
        if len(queue_keys) == 1:
            return cls.lmove(connection, queue_keys[0], timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for key in queue_keys:
                result = cls.lmove(connection, key, None)
                if result is not None:
                    return result
            if deadline is None:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise DequeueTimeout(timeout, queue_keys)
            # block on the first (most important) queue for a moment, then look at all again
            try:
                return cls.lmove(connection, queue_keys[0], max(1, min(int(left), defaults.MULTI_QUEUE_POLL_SECONDS)))
            except DequeueTimeout:
                continue  # the short wait ended: look at every queue again


def _intermediate_key(queue_name: str) -> str:
    """``ReplyguardQueue(queue_name, ...).intermediate_queue_key`` without the queue."""
    return IntermediateQueue.get_intermediate_queue_key(ReplyguardQueue.redis_queue_namespace_prefix + queue_name)


def batch_queue(connection: redis.Redis, settings: Settings) -> Queue:
    return ReplyguardQueue(
        settings.queue,
        connection=connection,
        serializer=JSONSerializer,
        default_timeout=defaults.JOB_TIMEOUT_SECONDS,
        job_class=ReplyguardJob,
    )


def llm_queue(connection: redis.Redis, settings: Settings) -> Queue:
    """LLM calls run on their own queue, so a slow provider never holds up classification."""
    return ReplyguardQueue(
        f"{settings.queue}-llm",
        connection=connection,
        serializer=JSONSerializer,
        default_timeout=defaults.JOB_TIMEOUT_SECONDS,
        job_class=ReplyguardJob,
    )


def enqueue_llm_tasks(connection: redis.Redis, settings: Settings, pending: list[tuple[str, str, float]]) -> None:
    """For each (brand, message id, seconds to deadline): the LLM job, and the deadline that bounds it."""
    if not pending:
        return
    llm, main = llm_queue(connection, settings), batch_queue(connection, settings)
    for brand, message_id, seconds in pending:
        llm.enqueue(
            LLM_FUNCTION,
            brand,
            message_id,
            job_timeout=max(30, int(seconds) + 30),
            result_ttl=defaults.JOB_RESULT_TTL_SECONDS,
            failure_ttl=defaults.JOB_FAILURE_TTL_SECONDS,
            description=f"replyguard LLM task {brand}/{message_id}",
        )
        main.enqueue_in(
            timedelta(seconds=seconds),
            DEADLINE_FUNCTION,
            brand,
            message_id,
            result_ttl=defaults.JOB_RESULT_TTL_SECONDS,
            failure_ttl=defaults.JOB_FAILURE_TTL_SECONDS,
            description=f"replyguard LLM deadline {brand}/{message_id}",
        )


def _batch_job(queue: Queue, args: list[Any], description: str, job_id: str | None = None) -> Job:
    """A batch job (not yet saved) with the options every batch job has, queued or parked: retried at
    the front of the queue, its timeout and its result and failure TTLs (its status ``queued``, as
    ``create_job`` makes every job, parked ones included)."""
    return queue.create_job(
        JOB_FUNCTION,
        args=args,
        job_id=job_id,
        status=JobStatus.QUEUED,
        retry=Retry(max=defaults.JOB_RETRY_MAX, enqueue_at_front=True),
        timeout=defaults.JOB_TIMEOUT_SECONDS,
        result_ttl=defaults.JOB_RESULT_TTL_SECONDS,
        failure_ttl=defaults.JOB_FAILURE_TTL_SECONDS,
        description=description,
    )


def _brands(names: Any) -> str:
    return ", ".join(sorted({str(name) for name in names}))


def enqueue_batch(queue: Queue, messages: list[dict[str, Any]], job_id: str | None = None) -> Job:
    """Enqueue one batch job. RQ writes the job and pushes its id in one transaction, so after a
    connection error ``Job.exists(job_id)`` says whether it was enqueued."""
    description = f"replyguard batch of {len(messages)} ({_brands(m.get('brand') for m in messages)})"
    job = _batch_job(queue, [messages, time.time()], description, job_id)
    return queue.enqueue_job(job, unique=job_id is not None)


#: how RQ's JSONSerializer writes a batch job's (function, instance, args, kwargs) around its events
_EVENTS_HEAD = b'["' + JOB_FUNCTION.encode() + b'", null, [['


def enqueue_events(queue: Queue, events: Sequence[InboundEvent], job_id: str) -> Job:
    """:func:`enqueue_batch` of ``[e.model_dump(mode="json") for e in events]`` (the canonical form
    a worker's ``trusted_event`` takes back), its job's payload written by pydantic-core straight
    from the events: the same JSON values (ASCII, as RQ's JSONSerializer writes; compact inside an
    event), without building each event's dict and encoding it again (~17 % of ingest's instructions
    a message; the compact JSON is also ~9 % less to compress). Unique by ``job_id``, as ingest enqueues."""
    enqueued_at = time.time()
    description = f"replyguard batch of {len(events)} ({_brands(e.brand for e in events)})"
    # its arguments are replaced by the payload below (``job.data``, which RQ reads them from)
    job = _batch_job(queue, [[], enqueued_at], description, job_id)
    job.data = b"".join(
        (_EVENTS_HEAD, b", ".join(map(canonical_json, events)), b"], ", json.dumps(enqueued_at).encode(), b"], {}]")
    )
    return queue.enqueue_job(job, unique=True)


def parked_batch(queue: Queue, messages: list[dict[str, Any]]) -> Job:
    """A batch job saved but not queued: a message parked until its conversation's previous message
    is decided (the Lua script that decides that one pushes this job's id onto ``queue``)."""
    description = f"replyguard parked message ({_brands(m.get('brand') for m in messages)})"
    job = _batch_job(queue, [messages, time.time()], description)
    job.enqueued_at = datetime.now(timezone.utc)
    pipe = queue.connection.pipeline(transaction=True)
    job.save(pipeline=pipe)
    pipe.expire(job.key, defaults.PARKED_JOB_TTL_SECONDS)  # RQ re-sets it when the job finishes or fails
    pipe.execute()
    return job


def redis_unreachable(exc: BaseException | None) -> bool:
    """Whether ``exc`` is Redis going away: a connection error or timeout, or an error of ours raised
    from one (a :class:`~worker.exceptions.StoreError` of the recovery sweep's store, say)."""
    seen = 0
    while exc is not None and seen < 8:  # a cause chain is short; never loop on a cycle
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return True
        exc, seen = exc.__cause__, seen + 1
    return False


class OneLineRedisErrors(logging.Filter):
    """On RQ's loggers: a record logged with a Redis connection error's traceback (RQ's "found an
    unhandled exception, quitting..." when Redis goes away mid-bookkeeping or mid-sweep; the worker then
    reconnects, :mod:`worker.connection`) keeps its message and gains the error in one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if redis_unreachable(exc):
            record.msg, record.args = f"{record.getMessage()} (Redis unreachable: {exc})", None
            record.exc_info, record.exc_text = None, None
        return True


def quiet_redis_tracebacks() -> None:
    """Install :class:`OneLineRedisErrors` on RQ's worker and scheduler loggers (once)."""
    for name in ("rq.worker", "rq.scheduler"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineRedisErrors) for f in logger.filters):
            logger.addFilter(OneLineRedisErrors())


_SCHEDULER_NAMES: dict[int, str] = {}


def scheduler_name() -> str:
    """The name of this process's RQ scheduler (its locks hold this name), the same for every RQ
    worker the process runs: a worker started afresh after Redis went away (its scheduler stopped
    with the old worker) takes the scheduler locks its predecessor left at once, instead of
    waiting out their minute-long TTL."""
    pid = os.getpid()
    return _SCHEDULER_NAMES.setdefault(pid, f"replyguard.{socket.gethostname()}.{pid}.{uuid.uuid4().hex[:6]}")


class OneLineScheduler(RQScheduler):
    """RQ's scheduler, whose process ends with one log line instead of two tracebacks (RQ's own log
    and multiprocessing's) when Redis goes away: the worker starts it again at its next recovery
    sweep once Redis is back (:meth:`Recovering.restart_scheduler`)."""

    def work(self) -> None:
        try:
            super().work()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.log.error(
                "Scheduler [PID %s] stopped: Redis unreachable (%s); the worker starts it again when Redis is back",
                os.getpid(),
                exc,
            )


class Recovering:
    """Mixed into RQ's worker classes: short heartbeats, the frequent recovery sweep, and fewer
    round trips around each job (RQ's own bookkeeping was ~20 round trips a job):

    * the worker's own heartbeat (three commands) goes in one round trip, and not again within
      ``WORKER_HEARTBEAT_MIN_SECONDS`` of the last full one, nor right after a job, when RQ's loop
      sends it once more at once inside its suspension check (RQ sent it five times a job);
    * the worker's state is written only when it changes (RQ writes ``idle`` twice a job);
    * a job's end is not announced by a heartbeat of its own when it has no callback to run
      (the success or failure transaction follows at once and records the end)."""

    settings: Settings
    connection: redis.Redis
    queues: list[Queue]
    scheduler: RQScheduler | None
    _state: str
    _full_beat_at: float | None = None  # when the last heartbeat with the full TTL was sent
    _keeps_scheduler = False  # started with a scheduler process (not in burst mode): keep one running
    #: RQ's idle worker waits 1, 2, 4, ... up to 60 s between attempts to reach Redis: after a minute's
    #: outage it took up to a minute more to notice Redis was back. replyguard's backoff stops at 10 s.
    max_connection_wait_time = defaults.REDIS_BACKOFF_MAX_SECONDS
    _loop_beats_next = False  # a job just ended: RQ's loop beats next inside its suspension check

    def work(self, *args: Any, **kwargs: Any) -> bool:
        quiet_redis_tracebacks()
        return super().work(*args, **kwargs)  # type: ignore[misc]

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """RQ's log of a job's exception, in one line when it is Redis going away (the job is
        retried, and the worker reconnects): RQ writes the whole traceback into the message."""
        if not redis_unreachable(exc_info[1]):
            super().handle_exception(job, *exc_info)  # type: ignore[misc]
            return
        self.log.error(  # type: ignore[attr-defined]
            "Worker %s: job %s stopped: Redis unreachable (%s); it is retried",
            self.name,  # type: ignore[attr-defined]
            job.id,
            exc_info[1],
        )
        call_exception_handlers(self._exc_handlers, job, *exc_info)  # type: ignore[attr-defined]

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """RQ's own (rq 3.0 ``BaseWorker._start_scheduler``) with :class:`OneLineScheduler` named by
        :func:`scheduler_name`."""
        scheduler = self.scheduler = OneLineScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,  # type: ignore[attr-defined]
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,  # type: ignore[attr-defined]
            name=scheduler_name(),
        )
        self._keeps_scheduler = not burst
        scheduler.acquire_locks()
        if not scheduler.acquired_locks:
            return
        if not burst:
            scheduler.start()
            return
        try:
            scheduler.register_birth()
            scheduler.enqueue_scheduled_jobs()
        finally:
            scheduler.release_locks()
            scheduler.register_death()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if self._loop_beats_next and timeout is None:
            self._loop_beats_next = False
            if pipeline is None:  # the suspension check's own heartbeat follows at once: this one is redundant
                return
        if timeout is not None:  # a shorter TTL (a job's start, its monitoring): always, and beat fully next time
            self._full_beat_at = None
            super().heartbeat(timeout, pipeline=pipeline)  # type: ignore[misc]
            return
        moment = time.monotonic()
        if pipeline is not None:  # inside RQ's own round trip (the suspension check)
            super().heartbeat(None, pipeline=pipeline)  # type: ignore[misc]
        else:
            last = self._full_beat_at
            if last is not None and moment - last < defaults.WORKER_HEARTBEAT_MIN_SECONDS:
                return
            with self.connection.pipeline(transaction=False) as pipe:
                super().heartbeat(None, pipeline=pipe)  # type: ignore[misc]
                pipe.execute()
        self._full_beat_at = moment

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is None and getattr(self, "_state", None) == state:
            return
        super().set_state(state, pipeline=pipeline)  # type: ignore[misc]

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        if job.success_callback is None and job.failure_callback is None and job.stopped_callback is None:
            job.ended_at = datetime.now(timezone.utc)
            return
        super().handle_execution_ended(job, queue, heartbeat_ttl)  # type: ignore[misc]

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        interval = defaults.JOB_HEARTBEAT_SECONDS
        if job.timeout and job.timeout > 0:
            interval = min(interval, max(1, int(job.timeout - working_time)))
        return interval + defaults.JOB_HEARTBEAT_GRACE_SECONDS

    @property
    def should_run_maintenance_tasks(self) -> bool:
        due = getattr(self, "_recovered_at", 0.0) + defaults.RECOVERY_SWEEP_SECONDS
        return time.monotonic() >= due or super().should_run_maintenance_tasks  # type: ignore[misc]

    def run_maintenance_tasks(self) -> None:
        if super().should_run_maintenance_tasks:  # type: ignore[misc]
            super().run_maintenance_tasks()  # type: ignore[misc]
        self.restart_scheduler()
        self.recover()

    def restart_scheduler(self) -> bool:
        """Start the scheduler process again if it ended (Redis went away: :class:`OneLineScheduler`),
        or take over the scheduler locks another worker's dead scheduler left, once they expire. RQ
        does this in its maintenance, every 10 minutes; here every RECOVERY_SWEEP_SECONDS, the first
        sweep after Redis answers again (one round trip per queue when there is nothing to do).
        True if a scheduler process was started."""
        scheduler = self.scheduler
        if not self._keeps_scheduler or scheduler is None:
            return False
        process = scheduler._process
        if process is not None and process.is_alive():
            return False
        if not scheduler.acquire_locks(auto_start=True):
            return False  # another worker's scheduler holds the locks
        started = scheduler._process
        self.log.warning(  # type: ignore[attr-defined]
            "Worker %s: scheduler started again (PID %s)",
            self.name,  # type: ignore[attr-defined]
            started.pid if started is not None else "?",
        )
        return True

    def recover(self) -> dict[str, Any]:
        """Re-queue abandoned batches, finalise overdue LLM decisions and take due SLA steps (one worker at a time)."""
        self._recovered_at = time.monotonic()
        lock = Keys(self.settings.key_prefix).recovery_lock(self.settings.queue)
        if not self.connection.set(lock, os.getpid(), nx=True, px=defaults.RECOVERY_LOCK_MILLISECONDS):
            return {"skipped": True}
        abandoned = 0
        for queue in self.queues:
            registry = StartedJobRegistry(queue.name, connection=self.connection, serializer=queue.serializer)
            expired = registry.get_expired_job_ids()
            abandoned += len(expired)
            registry.cleanup()
            abandoned += self._recover_dequeued(queue, registry, set(expired))
        from worker.jobs import finish_overdue, installed, sla_tracker
        from worker.store import Store

        store = Store(self.connection, self.settings.key_prefix)
        ready = installed()
        sla = sla_tracker(self.connection, ready[0], self.settings) if ready else None
        swept = finish_overdue(store, sla)
        # messages parked for a predecessor that never came (see ORDER_PARK_TIMEOUT_SECONDS)
        abandoned += store.release_overdue(batch_queue(self.connection, self.settings).key)
        if sla is not None:  # SLA steps whose scheduled job was lost with a worker's scheduler
            sla.fire_due()
        if abandoned or swept:
            logging.getLogger("replyguard.recovery").warning(
                "recovery: %d abandoned job(s) re-queued or failed, %d overdue LLM decision(s) finalised",
                abandoned,
                len(swept),
            )
        return {"abandoned": abandoned, "swept": len(swept)}

    def _recover_dequeued(self, queue: Queue, registry: StartedJobRegistry, expired: set[str]) -> int:
        """Jobs a worker took off the queue (RQ moves them to an intermediate list) but died
        before starting: back to the front of the queue. A job whose execution RQ's forking worker
        had begun (its heartbeat, in ``expired``, is JOB_HEARTBEAT_GRACE_SECONDS late: the worker died
        before its work-horse started the job, which RQ's cleanup leaves alone as not started) goes
        back at once; one with no heartbeat at all once it has sat there for
        JOB_HEARTBEAT_GRACE_SECONDS. (RQ's own check waits a minute, every ten minutes.)"""
        intermediate = queue.intermediate_queue
        stuck = intermediate.get_job_ids()
        if not stuck:
            return 0
        started = set(registry.get_job_ids(cleanup=False))
        requeued = 0
        for job_id in stuck:
            if job_id in started:
                continue
            seen_key = Keys(self.settings.key_prefix).dequeued_seen(job_id)
            if job_id not in expired and not self._dequeued_long_ago(seen_key):
                continue
            job = queue.fetch_job(job_id)
            never_started = job is not None and job.get_status(refresh=False) == JobStatus.QUEUED
            with self.connection.pipeline() as pipe:
                pipe.lrem(intermediate.key, 1, job_id)
                pipe.delete(seen_key)
                if job is not None and never_started:
                    queue._enqueue_job(job, pipeline=pipe, at_front=True)
                pipe.execute()
            requeued += never_started and job_id not in expired  # the expired ones are counted already
        return requeued

    def _dequeued_long_ago(self, seen_key: str) -> bool:
        """True once the job was first seen in the intermediate list JOB_HEARTBEAT_GRACE_SECONDS ago."""
        if self.connection.set(seen_key, time.time(), nx=True, ex=3600):
            return False  # first seen now
        first = float(self.connection.get(seen_key) or time.time())
        return time.time() - first >= defaults.JOB_HEARTBEAT_GRACE_SECONDS

    def unsubscribe(self) -> None:
        """Leave RQ's command channel without a 1-second stall. RQ unsubscribes first and then stops
        its pub/sub thread, which, no longer subscribed, sleeps in a 60-second wait, so RQ gives up
        joining it after 1 s: every worker stop (and every ``work(burst=True)``) took a second longer.
        Stopping the thread first lets the unsubscribe reply wake it, and it exits at once."""
        pubsub = getattr(self, "pubsub", None)
        thread = getattr(self, "pubsub_thread", None)
        if pubsub is None or thread is None:
            return
        thread.stop()
        pubsub.unsubscribe()
        thread.join(timeout=1)
        pubsub.close()

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        # every dequeue goes through the intermediate list (ReplyguardQueue), so always leave it
        super().prepare_job_execution(job, True)  # type: ignore[misc]


class ReplyguardWorker(Recovering, Worker):
    """RQ's forking worker with replyguard's crash recovery."""


class ReplyguardSimpleWorker(Recovering, SimpleWorker):
    """RQ's in-process worker with replyguard's crash recovery: the long-lived processes of
    ``replyguard worker`` (:mod:`worker.prefork`) and ``--simple``.

    RQ's forking worker proves a running job alive from the parent every
    ``job_monitoring_interval``; a worker that runs the job itself cannot, so a thread does it
    (a batch that waits minutes for Redis must not look abandoned to the recovery sweep)."""

    _started_job: str | None = None  # the job whose start prepare_execution already wrote

    def prepare_execution(self, job: Job) -> Execution:
        """RQ's two transactions before a job (its execution record, then the job's start) in one:
        the same writes, in the same order, in one MULTI, less the job's heartbeat (RQ's
        ``job.heartbeat``: an HSET of ``last_heartbeat`` that ``prepare_for_execution`` writes again
        in the same transaction), and with the intermediate list's key made from the job's queue
        name without building an RQ queue for it."""
        with self.connection.pipeline() as pipe:
            ttl = self.get_heartbeat_ttl(job)
            execution = Execution.create(job, ttl, pipeline=pipe, worker_name=self.name)
            self.executions[execution.id] = execution
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
            self.heartbeat(ttl, pipeline=pipe)
            job.prepare_for_execution(self.name, pipeline=pipe)
            pipe.persist(job.key)
            pipe.lrem(_intermediate_key(job.origin), 1, job.id)
            pipe.execute()
        self._started_job = job.id
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        if self._started_job == job.id:  # written with the execution record
            self._started_job = None
            self.procline(f"Processing {job.func_name} from {job.origin} since {time.time()}")
            return
        super().prepare_job_execution(job, remove_from_intermediate_queue)

    _beat: "JobHeartbeat | None" = None

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        if self._beat is None:
            self._beat = JobHeartbeat(self.maintain_heartbeats, self.job_monitoring_interval)
        self._beat.begin(job, execution)
        try:
            self.perform_job(job, queue, execution)
        finally:
            self._beat.end()
        self.set_state(WorkerStatus.IDLE)
        self._loop_beats_next = True

    def teardown(self) -> None:
        if self._beat is not None:
            self._beat.stop()
            self._beat = None
        super().teardown()


class JobHeartbeat:
    """The thread of an in-process worker that proves its running job alive every ``interval``
    seconds (``beat(job, execution)``: RQ's ``maintain_heartbeats``). One thread for the worker's
    life, told when a job begins and ends, instead of one started and joined per job (~90 µs of
    CPU and ~190 µs of wall time a job)."""

    def __init__(self, beat: Callable[[Job, Any], None], interval: float):
        self._beat = beat
        self._interval = interval
        self._cond = threading.Condition()
        self._running: tuple[Job, Any] | None = None
        self._stopped = False
        self.beats = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name="replyguard-job-heartbeat")
        self._thread.start()

    def begin(self, job: Job, execution: Any) -> None:
        with self._cond:
            self._running = (job, execution)
            self._cond.notify()

    def end(self) -> None:
        with self._cond:
            self._running = None
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._running = None
            self._cond.notify()
        self._thread.join(timeout=1)

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                running = self._running
                if running is None:
                    self._cond.wait()
                    continue
                deadline = time.monotonic() + self._interval
                while self._running is running and not self._stopped:  # woken early only by end/begin/stop
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._running is not running or self._stopped:
                    continue
                self._cond.release()  # never hold end() up behind a slow Redis
                try:
                    self._beat(*running)
                    self.beats += 1
                except redis.RedisError:  # Redis away: the job itself waits for it; beat again later
                    pass
                finally:
                    self._cond.acquire()


def make_worker(
    connection: redis.Redis, settings: Settings, *, simple: bool = False, queues: str = "all"
) -> ReplyguardWorker | ReplyguardSimpleWorker:
    """A replyguard RQ worker. ``queues``: all (batches first, then LLM tasks), batches, or llm.
    ``simple`` runs jobs in-process (no fork)."""
    chosen = {
        "all": [batch_queue(connection, settings), llm_queue(connection, settings)],
        "batches": [batch_queue(connection, settings)],
        "llm": [llm_queue(connection, settings)],
    }[queues]
    cls = ReplyguardSimpleWorker if simple else ReplyguardWorker
    name = f"replyguard.{socket.gethostname()}.{os.getpid()}.{queues}.{uuid.uuid4().hex[:6]}"
    worker = cls(
        chosen,
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        queue_class=ReplyguardQueue,
        job_class=ReplyguardJob,
        worker_ttl=defaults.WORKER_TTL_SECONDS,
        job_monitoring_interval=defaults.JOB_HEARTBEAT_SECONDS,
    )
    worker.settings = settings
    return worker
