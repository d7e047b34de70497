"""RQ job functions. They take plain JSON and return plain JSON.

The worker process builds the :class:`~worker.pipeline.Pipeline` once, before
RQ forks for each job (:func:`install`), so models and policies are loaded once
and shared copy-on-write. A job running where nothing was installed (for
example under a stock ``rq worker``) loads the configuration from the
environment on first use.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rq import get_current_job
from rq.job import Job

from worker import defaults
from worker.brands import load_brands
from worker.connection import is_connection_error, wait_for_redis
from worker.exceptions import StoreError
from worker.models import InboundEvent
from worker.pipeline import Ordering, Pipeline
from worker.queues import batch_queue, enqueue_llm_tasks, parked_batch
from worker.settings import Settings
from worker.sla.tracker import SlaTracker
from worker.store import Store

log = logging.getLogger("replyguard.jobs")

_pipeline: Pipeline | None = None
_settings: Settings | None = None
_lock = threading.Lock()


def installed() -> tuple[Pipeline, Settings] | None:
    """The pipeline and settings :func:`install` made current, if any (never loads them)."""
    with _lock:
        return (_pipeline, _settings) if _pipeline is not None and _settings is not None else None


def install(pipeline: Pipeline, settings: Settings) -> None:
    """Make ``pipeline`` the one jobs in this process use."""
    global _pipeline, _settings
    with _lock:
        _pipeline, _settings = pipeline, settings


def current() -> tuple[Pipeline, Settings]:
    global _pipeline, _settings
    with _lock:
        if _pipeline is None or _settings is None:
            _settings = Settings.from_env()
            _pipeline = Pipeline(load_brands(_settings))
        return _pipeline, _settings


def process_batch(messages: list[Any], enqueued_at: float | None = None) -> dict[str, Any]:
    """Decide a batch of inbound events (dicts). Returns a JSON summary."""
    pipeline, settings = current()
    job = get_current_job()
    if job is None:
        raise RuntimeError("process_batch runs inside an RQ job")
    parts = job_parts(job.connection, pipeline, settings)
    store, queue = parts.store, parts.queue

    def schedule(pending: list[tuple[str, str, float]]) -> None:
        enqueue_llm_tasks(job.connection, settings, pending)

    def park(event: InboundEvent, seq: int) -> bool:
        parked = parked_batch(queue, [event.model_dump(mode="json")])
        done, previous = store.park(event, seq, parked.id)
        if not done:
            parked.delete()
        elif previous and previous != parked.id:  # parked before by an earlier run of this batch
            job.connection.delete(Job.key_for(previous))
        return done

    order = Ordering(queue_key=queue.key, park=park)

    waited = 0.0
    while True:
        try:
            sla = parts.sla
            report = pipeline.process(
                messages, store, job_id=job.id, enqueued_at=enqueued_at, schedule_llm=schedule, sla=sla, order=order
            )
            report.swept, report.sla_fired = after_batch(store, sla)
            break
        except StoreError as exc:
            # Redis went away mid-batch: wait for it, then decide the batch again from the start
            # (persisting is idempotent, so what was already written is not written twice).
            if not is_connection_error(exc) or waited >= defaults.JOB_REDIS_WAIT_SECONDS:
                raise
            started = time.monotonic()
            log.warning("batch %s: %s; waiting for Redis", job.id, exc)
            back = wait_for_redis(
                job.connection, timeout=defaults.JOB_REDIS_WAIT_SECONDS - waited, what=f"batch {job.id}"
            )
            waited += time.monotonic() - started
            if not back:
                raise
    result = report.as_dict()
    result["redis_wait_seconds"] = round(waited, 2)
    return result


@dataclass(frozen=True)
class JobParts:
    """What a batch job works with besides the pipeline: its Store, the SLA tracker (with a Store of
    its own, as :func:`sla_tracker` makes it) and the batch queue."""

    connection: Any
    policies: dict[str, Any]
    store: Store
    sla: SlaTracker
    queue: Any


#: (connection, key prefix, queue name) -> the JobParts made for it in this process
_parts: dict[tuple[int, str, str], JobParts] = {}


def job_parts(connection: Any, pipeline: Pipeline, settings: Settings) -> JobParts:
    """The Store, SLA tracker and batch queue of a batch job on ``connection``, made once per worker
    process and reused by every later job on the same connection, key prefix, queue and brand
    policies (made again when any of them changes). Making them cost each job ~100 µs of CPU (the
    SHA-1 of seven Lua scripts, RQ's queue objects), a fixed cost that small batches at light
    traffic pay per few messages. Reusing them is safe: none keeps per-job state (a job's Store gets
    the brands' retention at the start of every batch, as before), and none holds a connection of
    its own: after a Redis restart or a script flush their scripts are loaded again on NOSCRIPT,
    and redis-py's pool reconnects (a forked child makes its own connection, so its own parts)."""
    policies = {name: brand.policy for name, brand in pipeline.brands.items()}
    key = (id(connection), settings.key_prefix, settings.queue)
    found = _parts.get(key)
    if (
        found is None
        or found.connection is not connection
        or found.policies.keys() != policies.keys()
        or any(found.policies[name] is not policy for name, policy in policies.items())
    ):
        if len(_parts) >= defaults.JOB_PARTS_KEPT:
            _parts.clear()
        store = Store(connection, settings.key_prefix)
        queue = batch_queue(connection, settings)
        sla = sla_tracker(connection, pipeline, settings, queue=queue)
        found = _parts[key] = JobParts(connection, policies, store, sla, queue)
    return found


def sla_tracker(connection: Any, pipeline: Pipeline, settings: Settings, *, queue: Any = None) -> SlaTracker:
    """The SLA timers of the pipeline's brands, with a Store of their own; steps are scheduled on the batch
    queue (``queue``, when the caller has made it already)."""
    return SlaTracker(
        Store(connection, settings.key_prefix),
        {name: brand.policy for name, brand in pipeline.brands.items()},
        schedule_queue=queue if queue is not None else batch_queue(connection, settings),
    )


def after_batch(store: Store, sla: SlaTracker, limit: int = 100) -> tuple[list[str], list[str]]:
    """The sweeps after a batch: :func:`finish_overdue`, then ``sla.fire_due()``, their reads in one
    script call (lua/after_batch.lua). When an overdue decision was finalised (its SLA timer may have
    started), the due steps are read again. Returns (finalised, fired)."""
    now = datetime.now(timezone.utc)
    read = sla.read_after_batch(now, limit)
    overdue = [(b, m) for b, _, m in (member.decode().partition("/") for member in read.overdue)]
    swept = finish_overdue(store, sla, limit, overdue=overdue)
    return swept, sla.fire_due() if overdue else sla.fire_due(now, read=read)


def finish_overdue(
    store: Store, sla: SlaTracker | None = None, limit: int = 100, *, overdue: list[tuple[str, str]] | None = None
) -> list[str]:
    """Finalise decisions whose LLM deadline passed with their plain outcome (``overdue``: (brand,
    message id) of those, as just read; else read here).

    The scheduled deadline job normally does this; the sweep (run after every batch) covers a
    deadline or LLM job that was lost, e.g. when a worker died between saving a decision and
    enqueueing its jobs.
    """
    from worker.drafting import at_deadline

    done = []
    if overdue is None:
        overdue = store.overdue(datetime.now(timezone.utc), limit)
    for brand, message_id in overdue:
        policy = sla.policies.get(brand) if sla is not None else None
        final = store.finalize(brand, message_id, at_deadline, policy)
        if final is not None:
            done.append(f"{brand}/{message_id}")
            if sla is not None:
                sla.start(final, datetime.now(timezone.utc))
        else:  # already final (or gone): drop it from the index
            store.client.zrem(store.keys.llm_pending, f"{brand}/{message_id}")
    return done
