"""Crash recovery with real worker processes, in both worker models:

* ``replyguard worker --processes 2`` (the default model: long-lived RQ workers forked once from a
  parent that loaded the models): kill -9 one busy worker process, and a whole ``replyguard worker``
  (parent and children) while one of its processes is busy;
* ``replyguard worker --fork-per-job`` (RQ's forking worker): kill -9 a worker with its work-horse,
  and another worker's work-horse.

In both, the survivors take the interrupted batches up again (re-queued, or retried at once when only
a horse died) within RECOVERY_LIMIT_SECONDS of the kill, and every message is decided exactly once in
effect (one decision, at most one reply). What is measured is the recovery itself, kill to the batch
back on the queue or started by another worker: how long the re-run then takes depends on how busy
the survivors are (it was measured before, and went over 30 s on a loaded machine)."""

from __future__ import annotations

import os
import signal
import time

from rq import Worker
from rq.job import Job, JobStatus

from tests.faults import Workers, children, horse_of, outbox_replies, taken_up_again, traffic, with_ignored
from worker import defaults
from worker.ingest import ingest_events
from worker.settings import Settings
from worker.store import Store

#: README ("Crashes and outages") says 20 s: a batch's heartbeat goes every JOB_HEARTBEAT_SECONDS, so at
#: most JOB_HEARTBEAT_SECONDS + JOB_HEARTBEAT_GRACE_SECONDS after the kill it is late, and a survivor's
#: next recovery sweep (every RECOVERY_SWEEP_SECONDS) re-queues it. Margin: a survivor idle on the
#: queues wakes for its sweep when its wait for a batch ends, which can overrun by one poll of the
#: queues (MULTI_QUEUE_POLL_SECONDS), and 1 s for a loaded machine and this test's polling.
RECOVERY_LIMIT_SECONDS = (
    defaults.JOB_HEARTBEAT_SECONDS
    + defaults.JOB_HEARTBEAT_GRACE_SECONDS
    + defaults.RECOVERY_SWEEP_SECONDS
    + defaults.MULTI_QUEUE_POLL_SECONDS
    + 1
)
SERIALIZER = __import__("rq.serializers", fromlist=["JSONSerializer"]).JSONSerializer


def _job_of(client, pid: int) -> str | None:
    for w in Worker.all(connection=client):
        if f".{pid}." in w.name:
            return w.get_current_job_id()
    return None


def _in_flight(client, job_id: str) -> tuple[str | None, int | None]:
    """(worker name, retries left) of a batch whose worker is killed: taken off the queue or started, not done."""
    job = Job.fetch(job_id, connection=client, serializer=SERIALIZER)
    assert job.get_status() in (JobStatus.QUEUED, JobStatus.STARTED), job.get_status()
    return job.worker_name, job.retries_left


def _taken_up_within(client, job_id: str, killed: tuple[str | None, int | None], since: float) -> float | None:
    """Seconds after ``since`` at which a killed worker's batch was taken up again (None: not in 120 s)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if taken_up_again(client, job_id, killed):
            return time.monotonic() - since
        time.sleep(0.05)
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
        child_killed = _in_flight(client, child_job)
        # 2. the whole other `replyguard worker` (parent and its processes), one of them mid-batch
        other, _, other_job = _busy_process(workers, client, exclude={parent.pid})
        workers.kill_worker(other)
        other_killed_at = time.monotonic()
        other_killed = _in_flight(client, other_job)

        taken = {
            child_job: _taken_up_within(client, child_job, child_killed, killed_at),
            other_job: _taken_up_within(client, other_job, other_killed, other_killed_at),
        }
        assert all(t is not None and t <= RECOVERY_LIMIT_SECONDS for t in taken.values()), (
            taken,
            workers.logs()[-3000:],
        )
        finished = _finished_within(client, [child_job, other_job], killed_at)
        assert set(finished) == {child_job, other_job}, (finished, workers.logs()[-3000:])
        print(f"seconds from kill to taken up again: {sorted(taken.values())}")

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


def _kill_a_busy_horse(workers: Workers, client, exclude: set[int]):
    """kill -9 the work-horse of a worker busy with a batch: (that worker, the batch, seconds from the
    kill until the worker retried the batch, which it does as soon as it sees the horse die). A horse
    that finished its batch just before the signal landed (the batch finished, never retried) does not
    count: another is killed, up to three times."""
    for _ in range(3):
        worker, horse, job_id = _busy_victim(workers, client, exclude=exclude)
        with_ignored(os.killpg, horse, signal.SIGKILL)  # gone already: its batch finished, see below
        killed_at = time.monotonic()
        deadline = killed_at + 120
        while time.monotonic() < deadline:
            job = Job.fetch(job_id, connection=client, serializer=SERIALIZER)
            if job.retries_left != defaults.JOB_RETRY_MAX:
                return worker, job_id, time.monotonic() - killed_at
            if job.get_status() == JobStatus.FINISHED:
                break  # finished before the signal landed: kill another
            time.sleep(0.05)
        else:
            raise AssertionError(f"{job_id}: its worker never retried it after its horse was killed")
    raise AssertionError("three horses finished their batches before kill -9 reached them")


def test_batches_of_killed_workers_and_horses_are_taken_up_again_within_the_bound(client, redis_url, tmp_path) -> None:
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
        killed = _in_flight(client, killed_job)
        # 2. another worker's horse only: its worker sees it die and retries the batch at once
        other, horse_job, horse_taken = _kill_a_busy_horse(workers, client, exclude={proc.pid})

        taken = {horse_job: horse_taken, killed_job: _taken_up_within(client, killed_job, killed, killed_at)}
        assert all(t is not None and t <= RECOVERY_LIMIT_SECONDS for t in taken.values()), (taken, tmp_path)
        finished = _finished_within(client, [killed_job, horse_job], killed_at)
        if set(finished) != {killed_job, horse_job}:
            info = {
                j: (
                    Job.fetch(j, connection=client, serializer=SERIALIZER).get_status(),
                    Job.fetch(j, connection=client, serializer=SERIALIZER).retries_left,
                    "killed" if j == killed_job else "horse",
                )
                for j in (killed_job, horse_job)
            }
            raise AssertionError(f"{info} {tmp_path}")
        print(f"seconds from kill to taken up again: {sorted(taken.values())}")

        store = Store(client, settings.key_prefix)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(store.decided(report.accepted)):
            time.sleep(0.2)
        assert all(store.decided(report.accepted))
        replies = outbox_replies(client, store.keys.outbox("demo-shop"))
        assert len(replies) == len(set(replies)) > 0  # nothing sent twice
        assert store.stats("demo-shop")["decisions"] == 800  # each decided once
        assert len(workers.alive()) == 2 and other.poll() is None
        # the horse's batch failed once and was retried (its worker saw the horse die)
        assert Job.fetch(horse_job, connection=client, serializer=SERIALIZER).retries_left == defaults.JOB_RETRY_MAX - 1
    finally:
        workers.stop()
