"""Crash recovery with real worker processes: kill -9 a worker (with its work-horse) and another
worker's work-horse in the middle of their batches; the survivors re-run both batches within 30 s,
and every message is decided exactly once in effect (one decision, at most one reply)."""

from __future__ import annotations

import os
import signal
import time

from rq import Worker
from rq.job import Job, JobStatus

from tests.faults import Workers, horse_of, outbox_replies, traffic
from worker import defaults
from worker.ingest import ingest_events
from worker.settings import Settings
from worker.store import Store

RECOVERY_LIMIT_SECONDS = 30


def _job_of(client, pid: int) -> str | None:
    for w in Worker.all(connection=client):
        if f".{pid}." in w.name:
            return w.get_current_job_id()
    return None


def _busy_victim(workers: Workers, client, exclude: set[int], timeout: float = 60):
    """A worker process whose horse is running a batch right now, with that batch's job id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in workers.alive():
            if proc.pid in exclude:
                continue
            horse = horse_of(proc.pid)
            job_id = _job_of(client, proc.pid) if horse else None
            if horse and job_id and horse_of(proc.pid) == horse:
                return proc, horse, job_id
        time.sleep(0.005)
    raise AssertionError("no worker was busy with a batch")


def test_batches_of_killed_workers_and_horses_rerun_within_30s(client, redis_url, tmp_path) -> None:
    settings = Settings(redis_url=redis_url, home=tmp_path / "home")
    workers = Workers(redis_url, tmp_path / "logs")
    try:
        workers.start(3)
        workers.wait_registered(client, 3)
        events = traffic(800)
        report = ingest_events(events, client, settings, batch_size=8, batch_wait=0.01)
        assert len(report.accepted) == 800

        # 1. a worker and its horse, mid-batch: nobody is left to notice but the other workers
        proc, _, killed_job = _busy_victim(workers, client, exclude=set())
        workers.kill_worker(proc)
        killed_at = time.monotonic()
        serializer = __import__("rq.serializers", fromlist=["JSONSerializer"]).JSONSerializer
        # in flight: taken off the queue (not started yet) or started, but not done
        assert Job.fetch(killed_job, connection=client, serializer=serializer).get_status() in (
            JobStatus.QUEUED, JobStatus.STARTED)
        # 2. another worker's horse only: its worker sees it die
        other, horse, horse_job = _busy_victim(workers, client, exclude={proc.pid})
        os.killpg(horse, signal.SIGKILL)

        store = Store(client, settings.key_prefix)
        queue_serializer = __import__("rq.serializers", fromlist=["JSONSerializer"]).JSONSerializer
        finished_after = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(finished_after) < 2:
            for job_id in (killed_job, horse_job):
                if job_id in finished_after:
                    continue
                job = Job.fetch(job_id, connection=client, serializer=queue_serializer)
                if job.get_status() == JobStatus.FINISHED:
                    finished_after[job_id] = time.monotonic() - killed_at
            time.sleep(0.1)
        if set(finished_after) != {killed_job, horse_job}:
            info = {j: (Job.fetch(j, connection=client, serializer=queue_serializer).get_status(),
                        Job.fetch(j, connection=client, serializer=queue_serializer).retries_left,
                        "killed" if j == killed_job else "horse") for j in (killed_job, horse_job)}
            raise AssertionError(f"{info} {tmp_path}")
        assert max(finished_after.values()) <= RECOVERY_LIMIT_SECONDS, finished_after

        while time.monotonic() < deadline and not all(store.decided(report.accepted)):
            time.sleep(0.2)
        assert all(store.decided(report.accepted))
        replies = outbox_replies(client, store.keys.outbox("demo-shop"))
        assert len(replies) == len(set(replies)) > 0  # nothing sent twice
        assert store.stats("demo-shop")["decisions"] == 800  # each decided once
        assert len(workers.alive()) == 2 and other.poll() is None
        # the horse's batch failed once and was retried (its worker saw the horse die)
        assert Job.fetch(horse_job, connection=client, serializer=queue_serializer).retries_left == \
            defaults.JOB_RETRY_MAX - 1
    finally:
        workers.stop()
