"""Crash recovery with real worker processes, in both worker models:

* ``replyguard worker --processes 2`` (the default model: long-lived RQ workers forked once from a
  parent that loaded the models): kill -9 one busy worker process, and a whole ``replyguard worker``
  (parent and children) while one of its processes is busy;
* ``replyguard worker --fork-per-job`` (RQ's forking worker): kill -9 a worker with its work-horse,
  and another worker's work-horse.

In both, the survivors re-run the interrupted batches within 30 s, and every message is decided
exactly once in effect (one decision, at most one reply)."""

from __future__ import annotations

import os
import signal
import time

from rq import Worker
from rq.job import Job, JobStatus

from tests.faults import Workers, children, horse_of, outbox_replies, traffic
from worker import defaults
from worker.ingest import ingest_events
from worker.settings import Settings
from worker.store import Store

RECOVERY_LIMIT_SECONDS = 30
SERIALIZER = __import__("rq.serializers", fromlist=["JSONSerializer"]).JSONSerializer


def _job_of(client, pid: int) -> str | None:
    for w in Worker.all(connection=client):
        if f".{pid}." in w.name:
            return w.get_current_job_id()
    return None


def _finished_within(client, job_ids: list[str], since: float, timeout: float = 120) -> dict[str, float]:
    """Seconds after ``since`` at which each job finished (jobs that did not finish are left out)."""
    finished: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(finished) < len(job_ids):
        for job_id in job_ids:
            if (
                job_id not in finished
                and Job.fetch(job_id, connection=client, serializer=SERIALIZER).get_status() == JobStatus.FINISHED
            ):
                finished[job_id] = time.monotonic() - since
        time.sleep(0.1)
    return finished


def _busy_process(workers: Workers, client, exclude: set[int], timeout: float = 60):
    """(parent process, worker process of it running a batch now, that batch's job id)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in workers.alive():
            if proc.pid in exclude:
                continue
            for child in children(proc.pid):
                job_id = _job_of(client, child)
                if job_id and job_id.startswith("rg-batch-"):
                    return proc, child, job_id
        time.sleep(0.005)
    raise AssertionError("no worker process was busy with a batch")


def test_preforked_worker_processes_killed_mid_batch_are_replaced_and_their_batches_rerun(
    client, redis_url, tmp_path
) -> None:
    settings = Settings(redis_url=redis_url, home=tmp_path / "home")
    workers = Workers(redis_url, tmp_path / "logs")
    try:
        workers.start(2, "--processes", "2")
        workers.wait_registered(client, 2, registered=4)
        events = traffic(800)
        report = ingest_events(events, client, settings, batch_size=8, batch_wait=0.01)
        assert len(report.accepted) == 800

        # 1. one worker process of the first `replyguard worker`, mid-batch: its parent forks another
        parent, child, child_job = _busy_process(workers, client, exclude=set())
        os.kill(child, signal.SIGKILL)
        killed_at = time.monotonic()
        # 2. the whole other `replyguard worker` (parent and its processes), one of them mid-batch
        other, _, other_job = _busy_process(workers, client, exclude={parent.pid})
        workers.kill_worker(other)
        assert Job.fetch(child_job, connection=client, serializer=SERIALIZER).get_status() in (
            JobStatus.QUEUED,
            JobStatus.STARTED,
        )

        finished = _finished_within(client, [child_job, other_job], killed_at)
        assert set(finished) == {child_job, other_job}, (finished, workers.logs()[-3000:])
        assert max(finished.values()) <= RECOVERY_LIMIT_SECONDS, finished

        store = Store(client, settings.key_prefix)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(store.decided(report.accepted)):
            time.sleep(0.2)
        assert all(store.decided(report.accepted))
        replies = outbox_replies(client, store.keys.outbox("demo-shop"))
        assert len(replies) == len(set(replies)) > 0  # nothing sent twice
        assert store.stats("demo-shop")["decisions"] == 800  # each decided once
        # the first `replyguard worker` is whole again: two processes, the killed one replaced
        assert workers.alive() == [parent]
        live = children(parent.pid)
        assert len(live) == 2 and child not in live, live
        assert "ended unexpectedly" in workers.logs()
    finally:
        workers.stop()


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
        workers.start(3, "--fork-per-job")
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
            JobStatus.QUEUED,
            JobStatus.STARTED,
        )
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
            info = {
                j: (
                    Job.fetch(j, connection=client, serializer=queue_serializer).get_status(),
                    Job.fetch(j, connection=client, serializer=queue_serializer).retries_left,
                    "killed" if j == killed_job else "horse",
                )
                for j in (killed_job, horse_job)
            }
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
        assert (
            Job.fetch(horse_job, connection=client, serializer=queue_serializer).retries_left
            == defaults.JOB_RETRY_MAX - 1
        )
    finally:
        workers.stop()
