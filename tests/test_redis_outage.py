"""Redis outages with real processes: a private redis-server (append-only file) is killed while
workers decide a backlog and ``ingest --wait`` waits, then restarted. Workers and ingest wait and
reconnect; every message is decided exactly once; the in-flight batches are retried."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import redis

from tests.faults import ROOT, RedisServer, Workers, outbox_replies, traffic
from worker.exceptions import StoreError
from worker.ingest import Ingestor
from worker.settings import Settings
from worker.store import Store


@pytest.fixture()
def server(tmp_path):
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.stop()


def test_workers_and_ingest_survive_a_redis_outage(server, tmp_path) -> None:
    client = redis.Redis.from_url(server.url)
    workers = Workers(server.url, tmp_path / "logs")
    try:
        workers.start(2)
        workers.wait_registered(client, 2)
        events = traffic(600)
        path = tmp_path / "events.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        ingest = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker.cli",
                "ingest",
                str(path),
                "--wait",
                "--batch-size",
                "8",
                "--timeout",
                "180",
            ],
            cwd=ROOT,
            env=workers.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        store = Store(client)
        deadline = time.monotonic() + 60
        while client.zcard(store.keys.decisions("demo-shop")) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        decided_before = client.zcard(store.keys.decisions("demo-shop"))
        assert 0 < decided_before < 600, "the outage must hit in the middle of the backlog"
        server.kill()
        time.sleep(5)
        server.start()  # same port, same directory: the append-only file brings the data back
        out, err = ingest.communicate(timeout=240)
        assert ingest.returncode == 0, (out.decode(), err.decode()[-3000:])
        assert b"Traceback" not in err and b"decided 600" in out, (out.decode(), err.decode()[-3000:])

        client = redis.Redis.from_url(server.url)
        store = Store(client)
        assert all(store.decided([("demo-shop", e["id"]) for e in events]))
        assert store.stats("demo-shop")["decisions"] == 600  # exactly once
        replies = outbox_replies(client, store.keys.outbox("demo-shop"))
        assert len(replies) == len(set(replies)) > 0
        assert len(workers.alive()) == 2, workers.logs()[-3000:]  # still serving ...
        logs = workers.logs()
        # The outage was seen: by replyguard's reconnect loop (a worker mid-job) or by RQ's own
        # dequeue retry (a worker idle on an empty queue, as fast workers often are at batch size 8).
        noticed = ("Redis unreachable", "reconnecting", "could not connect to Redis instance")
        assert any(text in logs for text in noticed), logs[-3000:]
        # in one line each: RQ's scheduler (a process of the first worker) ends without a traceback
        assert "Traceback" not in logs, logs[-6000:]
        # ... and still working: a message ingested now is decided
        more = traffic(3, prefix="after")
        from worker.ingest import ingest_events, wait_for

        settings = Settings(redis_url=server.url, home=tmp_path / "home")
        report = ingest_events(more, client, settings, batch_wait=0.01)
        assert not wait_for(report, client, settings, timeout=60).missing
    finally:
        workers.stop()


def test_the_scheduler_runs_again_within_seconds_of_redis_coming_back(server, tmp_path) -> None:
    """RQ's scheduler (a process of the first worker process) ends when Redis goes away. The worker
    starts it again at its first recovery sweep once Redis answers (or, when the outage made RQ's loop
    quit, the fresh RQ worker that replaces it starts its own), so a job scheduled for later
    (``enqueue_in``: only the scheduler moves it to the queue) runs on time; before, RQ's maintenance
    started the scheduler again within 10 minutes. Bound: the worker's wait between attempts to reach
    Redis (REDIS_BACKOFF_MAX_SECONDS), then a sweep (RECOVERY_SWEEP_SECONDS), the scheduler's 1-second
    poll, the job's own second, and 3 s for a loaded machine."""
    from rq.job import Job, JobStatus
    from rq.serializers import JSONSerializer

    from tests.faults import wait_for
    from worker import defaults
    from worker.queues import batch_queue

    client = redis.Redis.from_url(server.url)
    workers = Workers(server.url, tmp_path / "logs")
    try:
        workers.start(1)
        workers.wait_registered(client, 1)
        wait_for(lambda: client.exists("rq:scheduler-lock:replyguard"), 30, "the scheduler to take its lock")
        server.kill()
        wait_for(lambda: "Scheduler [PID" in workers.logs(), 30, "the scheduler to stop for want of Redis")
        time.sleep(2)
        server.start()
        back = time.monotonic()
        client = redis.Redis.from_url(server.url)
        queue = batch_queue(client, Settings(redis_url=server.url, home=tmp_path / "home"))
        job = queue.enqueue_in(timedelta(seconds=1), "builtins.len", [1, 2, 3])

        def finished() -> bool:
            return Job.fetch(job.id, connection=client, serializer=JSONSerializer).get_status() == JobStatus.FINISHED

        bound = defaults.REDIS_BACKOFF_MAX_SECONDS + defaults.RECOVERY_SWEEP_SECONDS + 1 + 1 + 3
        wait_for(finished, bound, f"the scheduled job to run within {bound} s of Redis coming back")
        print(f"the scheduled job ran {time.monotonic() - back:.1f} s after Redis came back")
        logs = workers.logs()
        assert "Traceback" not in logs, logs[-3000:]
        # Started again after it stopped, by one of two paths: the recovery sweep of a worker whose loop
        # survived the outage ("scheduler started again"), or the fresh RQ worker that replaces one whose
        # loop quit on a Redis error mid-command (RQ logs that start itself; seen in CI under load).
        after_stop = logs[logs.index("Scheduler [PID") :]
        started = "scheduler started again" in after_stop or re.search(r"Scheduler for .* started with PID", after_stop)
        assert started, after_stop[-3000:]
        assert len(workers.alive()) == 1
    finally:
        workers.stop()


def test_ingest_reports_exactly_what_was_and_was_not_enqueued(server, tmp_path) -> None:
    client = redis.Redis.from_url(server.url)
    settings = Settings(redis_url=server.url, home=tmp_path / "home")
    events = traffic(25)
    ingestor = Ingestor(client, settings, batch_size=10, batch_wait=60, redis_wait=1.0)
    for e in events[:20]:
        ingestor.submit(e)  # two full batches, enqueued
    server.kill()
    with pytest.raises(StoreError) as caught:
        for e in events[20:]:
            ingestor.submit(e)
        ingestor.close()
    report = caught.value.report  # type: ignore[attr-defined]
    assert report.accepted == [("demo-shop", e["id"]) for e in events[:20]]
    assert sorted(report.not_enqueued) == sorted(("demo-shop", e["id"]) for e in events[20:])
    assert report.uncertain == []
    server.start()
    from rq import Queue

    assert Queue("replyguard", connection=redis.Redis.from_url(server.url)).count == 2


def test_ingest_waits_for_redis_to_come_back(server, tmp_path) -> None:
    import threading

    client = redis.Redis.from_url(server.url)
    settings = Settings(redis_url=server.url, home=tmp_path / "home")
    events = traffic(10)
    ingestor = Ingestor(client, settings, batch_size=10, batch_wait=60, redis_wait=30.0)
    for e in events[:9]:
        ingestor.submit(e)
    server.kill()
    threading.Timer(2.0, server.start).start()
    ingestor.submit(events[9])  # fills the batch: waits for Redis, then enqueues it once
    report = ingestor.close()
    assert len(report.accepted) == 10 and report.redis_waits >= 1 and not report.not_enqueued
    from rq import Queue

    assert Queue("replyguard", connection=client).count == 1


def test_retention_sweep_every_waits_out_a_redis_outage(server, tmp_path) -> None:
    """`replyguard retention sweep --every` is a long-running process: Redis killed under it is waited
    out (no traceback, still running), and once Redis is back its rounds sweep again."""
    import os
    import signal

    def planted(client: redis.Redis) -> str:
        index = Store(client).keys.decisions("demo-shop")
        client.zadd(index, {"ancient": 0})  # decided in 1970: far outside demo-shop's 90 days
        return index

    def swept(client: redis.Redis, index: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if client.zcard(index) == 0:
                    return True
            except redis.ConnectionError:
                pass
            time.sleep(0.1)
        return False

    client = redis.Redis.from_url(server.url)
    env = {**os.environ, "REDIS_URL": server.url, "REPLYGUARD_HOME": str(tmp_path / "home")}
    sweeper = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "retention", "sweep", "--every", "0.3"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert swept(client, planted(client), 20)
        server.kill()
        time.sleep(3)
        assert sweeper.poll() is None, "the sweeper quit when Redis went away"
        server.start()
        client = redis.Redis.from_url(server.url)
        assert swept(client, planted(client), 60), "no round swept after Redis came back"
        assert sweeper.poll() is None
    finally:
        sweeper.send_signal(signal.SIGTERM)
        out, err = sweeper.communicate(timeout=20)
    assert sweeper.returncode == 0, err[-3000:]
    assert "reconnecting" in err and "Traceback" not in err, err[-3000:]
    assert out.count("retention sweep of demo-shop") >= 2


def test_a_sweep_losing_redis_is_logged_in_one_line() -> None:
    """RQ's loop logs an exception of its maintenance (the recovery sweep) with its traceback as it
    quits: Redis going away there arrives as our StoreError raised from redis's ConnectionError
    (seen: a sweep's StoreError traceback in a worker's log while Redis was down). The filter on RQ's
    loggers makes it one line; any other error keeps its traceback."""
    import logging

    from worker.queues import OneLineRedisErrors

    def record(exc: BaseException) -> logging.LogRecord:
        try:
            raise exc
        except BaseException:  # noqa: BLE001 - capture it as RQ's log call does
            info = sys.exc_info()
        return logging.LogRecord("rq.worker", logging.ERROR, __file__, 1, "Worker %s: quitting", ("w1",), info)

    try:
        try:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        except redis.ConnectionError as cause:
            raise StoreError("Redis failed while finalising a decision: Connection refused.") from cause
    except StoreError as exc:
        wrapped = exc
    quiet = record(wrapped)
    assert OneLineRedisErrors().filter(quiet) and quiet.exc_info is None
    assert quiet.getMessage() == f"Worker w1: quitting (Redis unreachable: {wrapped})"
    assert logging.Formatter().format(quiet).count("\n") == 0
    loud = record(ValueError("a bug"))
    assert OneLineRedisErrors().filter(loud) and loud.exc_info is not None
    assert "Traceback" in logging.Formatter().format(loud)
