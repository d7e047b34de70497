"""Adaptive batching in ingest, against a real Redis and a real RQ worker process: a partial batch is
held while every worker is busy and enqueued as soon as one is free, and never held longer than its
bound even while jobs wait (worker/ingest.py, defaults.BATCH_BUSY_*)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rq import Worker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from tests.conftest import make_event
from worker.ingest import Ingestor
from worker.queues import batch_queue


@pytest.fixture
def rq_worker(client, settings) -> Iterator[subprocess.Popen]:
    """One stock RQ SimpleWorker process listening on the batch queue (it runs our test's sleep jobs)."""
    queue = batch_queue(client, settings)
    argv = [str(Path(sys.executable).with_name("rq")), "worker", "--url", settings.redis_url]
    argv += ["-w", "rq.worker.SimpleWorker", "--serializer", "rq.serializers.JSONSerializer", queue.name]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while Worker.count(connection=client, queue=queue) < 1:
            assert process.poll() is None and time.monotonic() < deadline, "the RQ worker did not start"
            time.sleep(0.05)
        yield process
    finally:
        process.kill()  # not RQ's warm shutdown: that would wait for the sleeping job
        process.wait(10)


def busy(client, settings, seconds: float) -> Job:
    """Give the one worker a job that keeps it busy for ``seconds``; returns once it is running."""
    job = batch_queue(client, settings).enqueue("time.sleep", seconds)
    deadline = time.monotonic() + 10
    while job.get_status() != JobStatus.STARTED:
        assert time.monotonic() < deadline, "the worker did not start the job"
        time.sleep(0.01)
    return job


def enqueued_at(client, job_id: str) -> float:
    """When ingest enqueued a batch (the time it passes to the job)."""
    return float(Job.fetch(job_id, connection=client, serializer=JSONSerializer).args[1])


def wait_for_job(ingestor: Ingestor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not ingestor.report.jobs and time.monotonic() < deadline:
        time.sleep(0.005)


def test_a_batch_waits_while_every_worker_is_busy_and_goes_when_one_is_free(client, settings, rq_worker) -> None:
    sleeper = busy(client, settings, 1.0)
    ingestor = Ingestor(client, settings, batch_size=100, batch_wait=0.01, busy_wait=30)
    ingestor.submit(make_event(id="held"))
    time.sleep(0.5)
    assert not ingestor.report.jobs  # its hold (10 ms) is long past, but it would only wait behind the job
    ingestor.submit(make_event(id="joins-the-held-batch"))
    wait_for_job(ingestor, 10)
    sleeper.refresh()
    assert sleeper.ended_at is not None
    freed = sleeper.ended_at.timestamp()
    (job_id,) = ingestor.report.jobs
    assert freed - 0.05 <= enqueued_at(client, job_id) <= freed + 0.5  # as soon as the worker was free
    ingestor.close()
    job = Job.fetch(job_id, connection=client, serializer=JSONSerializer)
    assert [m["id"] for m in job.args[0]] == ["held", "joins-the-held-batch"]


def test_a_held_batch_goes_when_its_bound_expires_even_while_jobs_wait(client, settings, rq_worker) -> None:
    busy(client, settings, 3)
    batch_queue(client, settings).enqueue("time.sleep", 0)  # a job waiting behind the running one
    ingestor = Ingestor(client, settings, batch_size=100, batch_wait=0.01, busy_wait=0.3)
    submitted = time.time()
    ingestor.submit(make_event(id="bounded"))
    wait_for_job(ingestor, 2)
    (job_id,) = ingestor.report.jobs
    assert 0.3 <= enqueued_at(client, job_id) - submitted < 1.0
    ingestor.close()


def test_a_batch_goes_after_its_short_hold_when_a_worker_is_free(client, settings, rq_worker) -> None:
    ingestor = Ingestor(client, settings, batch_size=100, batch_wait=0.05, busy_wait=30)
    submitted = time.time()
    ingestor.submit(make_event(id="light"))
    wait_for_job(ingestor, 5)
    (job_id,) = ingestor.report.jobs
    assert 0.05 <= enqueued_at(client, job_id) - submitted < 0.5
    ingestor.close()
