"""The RQ side: the batch queue, how batches are enqueued, and the worker.

Jobs carry plain JSON (RQ's JSONSerializer): ``worker.jobs.process_batch(messages,
enqueued_at)`` where ``messages`` is a list of inbound events as dicts. RQ's
retries, failed-job registry, CLI (``rq info``) and dashboards work as usual.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from typing import Any

import redis
from rq import Queue, Retry, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from worker import defaults
from worker.settings import Settings

JOB_FUNCTION = "worker.jobs.process_batch"
LLM_FUNCTION = "worker.llm_jobs.run_llm_task"
DEADLINE_FUNCTION = "worker.llm_jobs.finish_at_deadline"


def batch_queue(connection: redis.Redis, settings: Settings) -> Queue:
    return Queue(settings.queue, connection=connection, serializer=JSONSerializer,
                 default_timeout=defaults.JOB_TIMEOUT_SECONDS)


def llm_queue(connection: redis.Redis, settings: Settings) -> Queue:
    """LLM calls run on their own queue, so a slow provider never holds up classification."""
    return Queue(f"{settings.queue}-llm", connection=connection, serializer=JSONSerializer,
                 default_timeout=defaults.JOB_TIMEOUT_SECONDS)


def enqueue_llm_tasks(connection: redis.Redis, settings: Settings, pending: list[tuple[str, str, float]]) -> None:
    """For each (brand, message id, seconds to deadline): the LLM job, and the deadline that bounds it."""
    if not pending:
        return
    llm, main = llm_queue(connection, settings), batch_queue(connection, settings)
    for brand, message_id, seconds in pending:
        llm.enqueue(LLM_FUNCTION, brand, message_id, job_timeout=max(30, int(seconds) + 30),
                    result_ttl=defaults.JOB_RESULT_TTL_SECONDS, failure_ttl=defaults.JOB_FAILURE_TTL_SECONDS,
                    description=f"replyguard LLM task {brand}/{message_id}")
        main.enqueue_in(timedelta(seconds=seconds), DEADLINE_FUNCTION, brand, message_id,
                        result_ttl=defaults.JOB_RESULT_TTL_SECONDS, failure_ttl=defaults.JOB_FAILURE_TTL_SECONDS,
                        description=f"replyguard LLM deadline {brand}/{message_id}")


def enqueue_batch(queue: Queue, messages: list[dict[str, Any]]) -> Job:
    brands = sorted({str(m.get("brand")) for m in messages})
    return queue.enqueue(
        JOB_FUNCTION,
        messages,
        time.time(),
        retry=Retry(max=defaults.JOB_RETRY_MAX, interval=list(defaults.JOB_RETRY_INTERVALS)),
        job_timeout=defaults.JOB_TIMEOUT_SECONDS,
        result_ttl=defaults.JOB_RESULT_TTL_SECONDS,
        failure_ttl=defaults.JOB_FAILURE_TTL_SECONDS,
        description=f"replyguard batch of {len(messages)} ({', '.join(brands)})",
    )


def make_worker(connection: redis.Redis, settings: Settings, *, simple: bool = False,
                queues: str = "all") -> Worker:
    """An RQ worker. ``queues``: all (batches first, then LLM tasks), batches, or llm.
    ``simple`` runs jobs in-process (no fork)."""
    from rq import SimpleWorker

    chosen = {"all": [batch_queue(connection, settings), llm_queue(connection, settings)],
              "batches": [batch_queue(connection, settings)],
              "llm": [llm_queue(connection, settings)]}[queues]
    cls = SimpleWorker if simple else Worker
    name = f"replyguard.{socket.gethostname()}.{os.getpid()}.{queues}"
    return cls(chosen, connection=connection, serializer=JSONSerializer, name=name)
