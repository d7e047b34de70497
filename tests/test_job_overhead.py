"""RQ's bookkeeping around each job, in replyguard's in-process worker (worker/queues.py), against a
real Redis: what a job costs the worker in Redis commands besides the job itself (the worker's
heartbeat sent in one round trip and not again within WORKER_HEARTBEAT_MIN_SECONDS, its state written
only when it changes, the execution record and the job's start in one transaction, no heartbeat for a
job's end when it has no callback), the job's payload written back as read instead of compressed
again, and one heartbeat thread for the worker's life proving each running job alive."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from typing import Any

import pytest
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from worker import defaults
from worker.queues import JobHeartbeat, ReplyguardJob, batch_queue, make_worker

JOBS = 20

WORKER_SCRIPT = """
import sys
import redis
from worker.queues import make_worker
from worker.settings import Settings
settings = Settings(redis_url=sys.argv[1])
connection = redis.Redis.from_url(sys.argv[1])
make_worker(connection, settings, simple=True, queues="batches").work(burst=True, logging_level="WARNING")
"""


def _monitor(client: Any, commands: list[list[str]], ready: threading.Event, stop: threading.Event) -> None:
    """Every command sent to ``client``'s database (MONITOR sees the whole server), as words."""
    db = int(client.connection_pool.connection_kwargs.get("db") or 0)
    with client.monitor() as monitor:
        ready.set()
        for line in monitor.listen():
            if int(line.get("db", -1)) != db:
                continue
            words = str(line["command"]).split(" ")
            commands.append([w.strip('"') for w in words])
            if stop.is_set() and words[:2] == ["ECHO", "stop"]:
                return


def test_a_job_costs_the_worker_few_bookkeeping_commands(client, settings, redis_url) -> None:
    """A real worker process drains 20 one-line jobs: per job, its heartbeat goes twice, both inside
    transactions (RQ: five times, three of them alone, three commands and round trips each), its
    state is written twice (busy, idle: RQ three times), three transactions (RQ four), and the job's
    own heartbeat twice, both at its start (RQ: a third time, alone, at its end)."""
    queue = batch_queue(client, settings)
    jobs = [queue.enqueue("builtins.len", [k, k + 1], result_ttl=600) for k in range(JOBS)]
    commands: list[list[str]] = []
    ready, stop = threading.Event(), threading.Event()
    watcher = threading.Thread(target=_monitor, args=(client.__class__.from_url(redis_url), commands, ready, stop))
    watcher.start()
    assert ready.wait(10)
    time.sleep(0.2)
    try:
        subprocess.run([sys.executable, "-c", WORKER_SCRIPT, redis_url], check=True, timeout=120)
    finally:
        stop.set()
        client.echo("stop")
        watcher.join(10)

    fetched = Job.fetch_many([j.id for j in jobs], connection=client, serializer=JSONSerializer)
    assert [j.get_status(refresh=False) for j in fetched] == [JobStatus.FINISHED] * JOBS
    assert [j.latest_result().return_value for j in fetched] == [2] * JOBS
    assert queue.started_job_registry.count == 0 and client.llen(queue.intermediate_queue_key) == 0

    worker_keys = {c[1] for c in commands if len(c) > 1 and c[1].startswith("rq:worker:replyguard.")}
    worker_key = min(worker_keys, key=len)  # rq:worker:<name> (not its :executions set)
    counts: Counter[str] = Counter()
    for words in commands:
        if words[0] == "HSET" and words[1] == worker_key and "last_heartbeat" in words[2::2]:
            counts["worker heartbeat"] += 1
        if words[0] == "HSET" and words[1] == worker_key and "state" in words[2::2]:
            counts["worker state"] += 1
        if words[0] == "MULTI":
            counts["transactions"] += 1
        if words[0] == "HSET" and words[1].startswith("rq:job:") and words[2:3] == ["last_heartbeat"]:
            counts["job heartbeat"] += 1
    per_job = {
        name: counts[name] / JOBS for name in ("worker heartbeat", "worker state", "transactions", "job heartbeat")
    }
    assert per_job["worker state"] > 0 and per_job["transactions"] > 0, per_job  # MONITOR saw the jobs run
    assert per_job["worker heartbeat"] <= 2.2, per_job
    assert per_job["worker state"] <= 2.2, per_job
    assert per_job["transactions"] <= 3.2, per_job
    assert per_job["job heartbeat"] <= 2.2, per_job  # none at all is fine (seen once on a loaded machine)


def test_a_finished_job_keeps_its_payload_as_read_without_compressing_it_again(client, settings, monkeypatch) -> None:
    queue = batch_queue(client, settings)
    payload = [{"id": f"m{k}", "text": "where is my order?" * 20} for k in range(50)]
    enqueued = queue.enqueue("builtins.len", payload)
    stored = client.hget(enqueued.key, "data")
    job = Job.fetch(enqueued.id, connection=client, serializer=JSONSerializer)
    assert isinstance(job, Job)
    read = ReplyguardJob.fetch(enqueued.id, connection=client, serializer=JSONSerializer)
    compressed: list[int] = []
    real = zlib.compress

    def counting(data: bytes, *args: Any) -> bytes:
        compressed.append(len(data))
        return real(data, *args)

    monkeypatch.setattr("rq.job.zlib.compress", counting)
    read.save(include_meta=False)
    assert client.hget(enqueued.key, "data") == stored
    assert max(compressed, default=0) < 16  # only RQ's empty placeholder, never the payload

    assert list(read.args) == [payload]
    read.args = (payload[:3],)  # a changed payload is compressed afresh, as RQ does
    read.save(include_meta=False)
    assert max(compressed) > 1000
    assert list(Job.fetch(enqueued.id, connection=client, serializer=JSONSerializer).args) == [payload[:3]]

    # through a worker: the job runs once, finishes, and its stored payload is still the one enqueued
    worker = make_worker(client, settings, simple=True, queues="batches")
    worker.work(burst=True, logging_level="WARNING")
    done = Job.fetch(enqueued.id, connection=client, serializer=JSONSerializer)
    assert done.get_status() == JobStatus.FINISHED and done.latest_result().return_value == 3
    assert list(done.args) == [payload[:3]]


def _sleep_jobs(queue: Any, seconds: list[float]) -> list[Job]:
    return [queue.enqueue("time.sleep", s, result_ttl=600) for s in seconds]


def test_one_heartbeat_thread_proves_every_running_job_alive(client, settings, monkeypatch) -> None:
    """Jobs longer than the monitoring interval are beaten while they run (the started registry's
    entry is extended), never after they end, by one thread for all of the worker's jobs."""
    queue = batch_queue(client, settings)
    jobs = _sleep_jobs(queue, [0.9, 0.05, 0.9])
    worker = make_worker(client, settings, simple=True, queues="batches")
    worker.job_monitoring_interval = 0.2  # the heartbeat thread's interval (it is made at the first job)
    beats: list[tuple[str, float]] = []
    beaten: list[str] = []  # RQ's heartbeat went through
    threads: set[int] = set()
    real = worker.maintain_heartbeats

    def beat(job: Job, execution: Any) -> None:
        beats.append((job.id, time.monotonic()))
        threads.add(threading.get_ident())
        assert job.get_status() == JobStatus.STARTED  # never a job that already ended
        worker.job_monitoring_interval = defaults.JOB_HEARTBEAT_SECONDS  # RQ's TTLs are whole seconds
        real(job, execution)
        beaten.append(job.id)

    monkeypatch.setattr(worker, "maintain_heartbeats", beat)
    before = {t.ident for t in threading.enumerate()}
    worker.work(burst=True, logging_level="WARNING")
    per_job = Counter(job_id for job_id, _ in beats)
    assert per_job[jobs[0].id] >= 3 and per_job[jobs[2].id] >= 3, per_job
    assert per_job[jobs[1].id] == 0
    assert Counter(beaten) == per_job
    assert len(threads) == 1
    assert not [t for t in threading.enumerate() if t.ident not in before and t.name == "replyguard-job-heartbeat"]
    fetched = Job.fetch_many([j.id for j in jobs], connection=client, serializer=JSONSerializer)
    assert [j.get_status(refresh=False) for j in fetched] == [JobStatus.FINISHED] * 3


def test_the_heartbeat_thread_beats_from_begin_to_end_only() -> None:
    seen: list[str] = []
    beat = JobHeartbeat(lambda job, execution: seen.append(execution), 0.05)
    try:
        beat.begin(None, "a")  # type: ignore[arg-type]
        time.sleep(0.3)
        beat.end()
        count = len(seen)
        time.sleep(0.2)
        assert count >= 3 and len(seen) == count  # nothing after end()
        beat.begin(None, "b")  # type: ignore[arg-type]
        time.sleep(0.03)
        beat.end()  # shorter than the interval: never beaten
        beat.begin(None, "c")  # type: ignore[arg-type]
        time.sleep(0.2)
    finally:
        beat.stop()
    assert "b" not in seen and seen.count("c") >= 2
    assert not beat._thread.is_alive()


@pytest.mark.parametrize("interval", [defaults.JOB_HEARTBEAT_SECONDS])
def test_the_monitoring_interval_is_the_configured_one(client, settings, interval) -> None:
    assert make_worker(client, settings, simple=True).job_monitoring_interval == interval


def test_a_job_starts_as_rqs_own_start_records_it(client, settings) -> None:
    """``ReplyguardSimpleWorker.prepare_execution`` (one transaction, no separate job heartbeat, the
    intermediate list's key made from the queue's name) leaves what RQ's two transactions leave: the
    job's fields, its TTL, the started registry, the execution record, the intermediate list."""
    from rq.worker import BaseWorker

    from worker.queues import _intermediate_key, llm_queue

    for made in (batch_queue(client, settings), llm_queue(client, settings)):
        assert _intermediate_key(made.name) == made.intermediate_queue_key
    queue = batch_queue(client, settings)
    states = []
    for ours in (True, False):
        enqueued = queue.enqueue("builtins.len", [1, 2], result_ttl=600)
        worker = make_worker(client, settings, simple=True, queues="batches")
        found = worker.dequeue_job_and_maintain_ttl(None)
        assert found is not None
        job, _ = found
        assert job.id == enqueued.id and client.lrange(queue.intermediate_queue_key, 0, -1) == [job.id.encode()]
        if ours:
            execution = worker.prepare_execution(job)
            worker.prepare_job_execution(job)  # what perform_job calls next: written already
        else:  # RQ's own: the execution record, then the job's start (with its own heartbeat)
            execution = BaseWorker.prepare_execution(worker, job)
            BaseWorker.prepare_job_execution(worker, job, True)
        stored = {k.decode(): v for k, v in client.hgetall(job.key).items()}
        started = job.started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
        assert (
            stored["last_heartbeat"] == stored["started_at"] == started
            and stored["worker_name"] == worker.name.encode()
        )
        for name in ("created_at", "enqueued_at", "last_heartbeat", "started_at", "worker_name"):
            stored.pop(name)
        states.append(
            (
                stored,
                client.ttl(job.key),
                client.llen(queue.intermediate_queue_key),
                job.id in queue.started_job_registry.get_job_ids(),
                client.exists(execution.key),
                client.hget(worker.key, "state"),
            )
        )
    ours_state, rqs_state = states
    assert ours_state[0].keys() == rqs_state[0].keys()
    assert [ours_state[0][k] for k in ("status", "data", "origin")] == [
        rqs_state[0][k] for k in ("status", "data", "origin")
    ]
    assert ours_state[1:] == rqs_state[1:] == (-1, 0, True, 1, b"busy")
