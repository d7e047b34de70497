"""The RQ side: the batch queue, how batches are enqueued, and the worker.

Jobs carry plain JSON (RQ's JSONSerializer): ``worker.jobs.process_batch(messages,
enqueued_at)`` where ``messages`` is a list of inbound events as dicts. RQ's
retries, failed-job registry, CLI (``rq info``) and dashboards work as usual.

Crash recovery: every worker runs :meth:`Recovering.recover` every
``RECOVERY_SWEEP_SECONDS`` (one worker at a time): RQ's started-job registry is
cleaned, so a batch whose worker or work-horse was killed (its heartbeat, sent every
``JOB_HEARTBEAT_SECONDS``, is more than ``JOB_HEARTBEAT_GRACE_SECONDS`` late) is
re-queued at the front of its queue, and decisions whose LLM deadline passed are
finalised. Neither needs RQ's scheduler, which runs inside one worker and dies with it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from rq import Queue, Retry, SimpleWorker, Worker
from rq.exceptions import DequeueTimeout
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus

from worker import defaults
from worker.settings import Settings
from worker.store import Keys

JOB_FUNCTION = "worker.jobs.process_batch"
LLM_FUNCTION = "worker.llm_jobs.run_llm_task"
DEADLINE_FUNCTION = "worker.llm_jobs.finish_at_deadline"


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


def batch_queue(connection: redis.Redis, settings: Settings) -> Queue:
    return ReplyguardQueue(
        settings.queue, connection=connection, serializer=JSONSerializer, default_timeout=defaults.JOB_TIMEOUT_SECONDS
    )


def llm_queue(connection: redis.Redis, settings: Settings) -> Queue:
    """LLM calls run on their own queue, so a slow provider never holds up classification."""
    return ReplyguardQueue(
        f"{settings.queue}-llm",
        connection=connection,
        serializer=JSONSerializer,
        default_timeout=defaults.JOB_TIMEOUT_SECONDS,
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


def enqueue_batch(queue: Queue, messages: list[dict[str, Any]], job_id: str | None = None) -> Job:
    """Enqueue one batch job. RQ writes the job and pushes its id in one transaction, so after a
    connection error ``Job.exists(job_id)`` says whether it was enqueued."""
    brands = sorted({str(m.get("brand")) for m in messages})
    return queue.enqueue(
        JOB_FUNCTION,
        messages,
        time.time(),
        job_id=job_id,
        unique=job_id is not None,
        retry=Retry(max=defaults.JOB_RETRY_MAX, enqueue_at_front=True),
        job_timeout=defaults.JOB_TIMEOUT_SECONDS,
        result_ttl=defaults.JOB_RESULT_TTL_SECONDS,
        failure_ttl=defaults.JOB_FAILURE_TTL_SECONDS,
        description=f"replyguard batch of {len(messages)} ({', '.join(brands)})",
    )


def parked_batch(queue: Queue, messages: list[dict[str, Any]]) -> Job:
    """A batch job saved but not queued: a message parked until its conversation's previous message
    is decided (the Lua script that decides that one pushes this job's id onto ``queue``)."""
    job = queue.create_job(
        JOB_FUNCTION,
        args=[messages, time.time()],
        retry=Retry(max=defaults.JOB_RETRY_MAX, enqueue_at_front=True),
        timeout=defaults.JOB_TIMEOUT_SECONDS,
        result_ttl=defaults.JOB_RESULT_TTL_SECONDS,
        failure_ttl=defaults.JOB_FAILURE_TTL_SECONDS,
        description=f"replyguard parked message ({', '.join(sorted({str(m.get('brand')) for m in messages}))})",
    )
    job.enqueued_at = datetime.now(timezone.utc)
    pipe = queue.connection.pipeline(transaction=True)
    job.save(pipeline=pipe)
    pipe.expire(job.key, defaults.PARKED_JOB_TTL_SECONDS)  # RQ re-sets it when the job finishes or fails
    pipe.execute()
    return job


class Recovering:
    """Mixed into RQ's worker classes: short heartbeats and the frequent recovery sweep."""

    settings: Settings
    connection: redis.Redis
    queues: list[Queue]

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
        self.recover()

    def recover(self) -> dict[str, Any]:
        """Re-queue abandoned batches and finalise overdue LLM decisions (one worker at a time)."""
        self._recovered_at = time.monotonic()
        lock = Keys(self.settings.key_prefix).recovery_lock(self.settings.queue)
        if not self.connection.set(lock, os.getpid(), nx=True, ex=defaults.RECOVERY_SWEEP_SECONDS):
            return {"skipped": True}
        abandoned = 0
        for queue in self.queues:
            registry = StartedJobRegistry(queue.name, connection=self.connection, serializer=queue.serializer)
            abandoned += len(registry.get_expired_job_ids())
            registry.cleanup()
            abandoned += self._recover_dequeued(queue, registry)
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

    def _recover_dequeued(self, queue: Queue, registry: StartedJobRegistry) -> int:
        """Jobs a worker took off the queue (RQ moves them to an intermediate list) but died
        before starting: back to the front of the queue once they have sat there for
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
            if self.connection.set(seen_key, time.time(), nx=True, ex=3600):
                continue  # first seen now
            first = float(self.connection.get(seen_key) or time.time())
            if time.time() - first < defaults.JOB_HEARTBEAT_GRACE_SECONDS:
                continue
            job = queue.fetch_job(job_id)
            never_started = job is not None and job.get_status(refresh=False) == JobStatus.QUEUED
            with self.connection.pipeline() as pipe:
                pipe.lrem(intermediate.key, 1, job_id)
                pipe.delete(seen_key)
                if job is not None and never_started:
                    queue._enqueue_job(job, pipeline=pipe, at_front=True)
                pipe.execute()
            requeued += never_started
        return requeued

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

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        done = threading.Event()
        beat = threading.Thread(
            target=self._beat_while_running, args=(job, execution, done), daemon=True, name="replyguard-job-heartbeat"
        )
        beat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            beat.join(timeout=1)
        self.set_state(WorkerStatus.IDLE)

    def _beat_while_running(self, job: Job, execution: Any, done: threading.Event) -> None:
        while not done.wait(self.job_monitoring_interval):
            try:
                self.maintain_heartbeats(job, execution)
            except redis.RedisError:  # Redis away: the job itself waits for it; beat again later
                continue


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
        worker_ttl=defaults.WORKER_TTL_SECONDS,
        job_monitoring_interval=defaults.JOB_HEARTBEAT_SECONDS,
    )
    worker.settings = settings
    return worker
