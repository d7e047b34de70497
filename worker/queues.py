"""The RQ side: the batch queue, how batches are enqueued, and the worker.

Jobs carry plain JSON (RQ's JSONSerializer): ``worker.jobs.process_batch(messages,
enqueued_at)`` where ``messages`` is a list of inbound events as dicts. RQ's
retries, failed-job registry, CLI (``rq info``) and dashboards work as usual.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import redis
from rq import Queue, Retry, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from worker import defaults
from worker.settings import Settings

JOB_FUNCTION = "worker.jobs.process_batch"


def batch_queue(connection: redis.Redis, settings: Settings) -> Queue:
    return Queue(settings.queue, connection=connection, serializer=JSONSerializer,
                 default_timeout=defaults.JOB_TIMEOUT_SECONDS)


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


def make_worker(connection: redis.Redis, settings: Settings, *, simple: bool = False) -> Worker:
    """An RQ worker on the batch queue. ``simple`` runs jobs in-process (no fork)."""
    from rq import SimpleWorker

    cls = SimpleWorker if simple else Worker
    name = f"replyguard.{socket.gethostname()}.{os.getpid()}"
    return cls([batch_queue(connection, settings)], connection=connection, serializer=JSONSerializer, name=name)
