"""End to end on real RQ workers and a real Redis: ingest → job → classify → decide → persist."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from tests.conftest import make_event
from worker import defaults
from worker.brands import Brand
from worker.ingest import Ingestor, ingest_events, wait_for
from worker.jobs import install
from worker.pipeline import Pipeline
from worker.queues import ReplyguardQueue, batch_queue, enqueue_batch, make_worker, scheduler_name
from worker.settings import Settings
from worker.store import Store

SAMPLE = [
    make_event(id="faq-en", conversation_id="c-en", text="Hi, where is my order KM-204815? It's been 4 days"),
    make_event(
        id="faq-ja",
        conversation_id="c-ja",
        author={"id": "u-ja", "name": "佐藤 陽翔", "locale": "ja-JP"},
        text="注文番号KM-318220の荷物はいつ届きますか？",
    ),
    make_event(
        id="spam",
        kind="comment",
        platform="youtube",
        conversation_id="c-yt",
        author={"id": "u-spam"},
        text="CONGRATULATIONS you WON a FREE iPhone!!! claim now at http://prize-claims.example/win 💰💰",
    ),
    make_event(
        id="vip",
        conversation_id="c-vip",
        author={"id": "u-vip", "tags": ["vip"]},
        text="Hi, my order KM-555123 hasn't arrived yet",
    ),
    make_event(
        id="agent",
        conversation_id="c-agent",
        author={"id": "u-agent"},
        text="I'd like to speak to a real person please, not a bot",
    ),
]


def run_worker(client: redis.Redis, settings: Settings, brands: dict[str, Brand], *, simple: bool = False):
    install(Pipeline(brands), settings)
    worker = make_worker(client, settings, simple=simple)
    worker.work(burst=True)
    return worker


def test_batch_decided_by_a_forking_rq_worker(client, settings, brands) -> None:
    report = ingest_events(SAMPLE, client, settings, batch_wait=0.01)
    assert len(report.accepted) == len(SAMPLE) and not report.invalid
    run_worker(client, settings, brands)

    queue = batch_queue(client, settings)
    finished = FinishedJobRegistry(queue=queue)
    assert set(report.jobs) <= set(finished.get_job_ids())
    assert FailedJobRegistry(queue=queue).count == 0
    # a finished batch's record (its payload holds the customers' texts) goes after minutes, not a day
    for job_id in report.jobs:
        assert 0 < client.ttl(Job.key_for(job_id)) <= defaults.JOB_RESULT_TTL_SECONDS <= 3600

    store = Store(client, settings.key_prefix)
    got = {d.message_id: d for d in store.decisions([("demo-shop", e["id"]) for e in SAMPLE])}
    assert got["faq-en"].rule == "intent.auto_reply" and got["faq-en"].template.id == "order_status.en"
    assert "KM-204815" in got["faq-en"].reply
    assert got["faq-ja"].template.id == "order_status.ja" and "KM-318220" in got["faq-ja"].reply
    assert [a.value for a in got["spam"].actions] == ["hide"]
    assert got["vip"].rule == "vip" and got["vip"].reply is None
    assert got["agent"].escalation.role == "tier1"
    assert got["faq-en"].job_id in report.jobs and got["faq-en"].timings["classify_ms"] >= 0

    # side effects: outbox for connectors, conversation history, stats
    outbox = [json.loads(fields[b"payload"]) for _, fields in client.xrange(store.keys.outbox("demo-shop"))]
    assert {(p["type"], p["message_id"]) for p in outbox if p["type"] != "decision"} == {
        ("hide", "spam"),
        ("reply", "faq-en"),
        ("reply", "faq-ja"),
        ("reply", "agent"),  # first contact: a welcome line acknowledges the escalation
    }
    assert sorted(p["message_id"] for p in outbox if p["type"] == "decision") == sorted(got)
    reply = next(p for p in outbox if p["message_id"] == "faq-en" and p["type"] == "reply")
    assert reply["text"] == got["faq-en"].reply and reply["templates"] == ["welcome.en@1", "order_status.en@3"]
    history = [json.loads(h) for h in client.lrange(store.keys.history("demo-shop", "c-en"), 0, -1)]
    assert [h["role"] for h in history] == ["customer", "brand"]
    assert store.stats("demo-shop")["decisions"] == len(SAMPLE)


def test_two_workers_deciding_the_same_batch_at_once_write_one_decision(client, settings, brands, redis_url) -> None:
    """Two real forking RQ workers, started together on two copies of one batch."""
    import multiprocessing

    queue = batch_queue(client, settings)
    for _ in range(2):
        enqueue_batch(queue, SAMPLE)
    install(Pipeline(brands), settings)
    start = multiprocessing.get_context("fork").Barrier(2)

    def run() -> None:
        import redis as redis_module

        own = redis_module.Redis.from_url(redis_url)
        start.wait()
        make_worker(own, settings).work(burst=True, max_jobs=1)

    procs = [multiprocessing.get_context("fork").Process(target=run) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    finished = FinishedJobRegistry(queue=queue)
    assert finished.count == 2 and FailedJobRegistry(queue=queue).count == 0
    store = Store(client, settings.key_prefix)
    results = [
        j.return_value()
        for j in queue.job_class.fetch_many(finished.get_job_ids(), connection=client, serializer=queue.serializer)
    ]
    decided = sorted(m for r in results for m in r["decided"])
    assert decided == sorted(e["id"] for e in SAMPLE)  # each message decided by exactly one of them
    outbox = [json.loads(f[b"payload"]) for _, f in client.xrange(store.keys.outbox("demo-shop"))]
    replies = [p["message_id"] for p in outbox if p["type"] == "reply"]
    assert len(replies) == len(set(replies)) and store.stats("demo-shop")["decisions"] == len(SAMPLE)


def test_ingesting_twice_gives_one_decision_and_one_reply(client, settings, brands) -> None:
    events = SAMPLE[:2]
    first = ingest_events(events, client, settings, batch_wait=0.01)
    queue = batch_queue(client, settings)
    # the same batch enqueued again before any worker ran, and again afterwards
    enqueue_batch(queue, events)
    run_worker(client, settings, brands, simple=True)
    second = ingest_events(events, client, settings, batch_wait=0.01)
    assert len(first.accepted) == 2 and second.accepted == [] and len(second.skipped) == 2
    enqueue_batch(queue, events)  # bypassing ingestion's check
    run_worker(client, settings, brands, simple=True)

    store = Store(client, settings.key_prefix)
    outbox = [json.loads(f[b"payload"]) for _, f in client.xrange(store.keys.outbox("demo-shop"))]
    assert sorted(p["message_id"] for p in outbox if p["type"] == "reply") == ["faq-en", "faq-ja"]
    assert store.stats("demo-shop")["decisions"] == 2
    assert client.zcard(store.keys.decisions("demo-shop")) == 2
    assert FailedJobRegistry(queue=queue).count == 0


def test_a_bad_message_does_not_sink_its_batch(client, settings, brands) -> None:
    queue = batch_queue(client, settings)
    good = make_event(id="good", conversation_id="c-good")
    job = enqueue_batch(queue, [{"id": "broken"}, make_event(id="x", brand="nobody"), good])
    run_worker(client, settings, brands, simple=True)
    job.refresh()
    assert job.is_finished
    result = job.return_value()
    assert result["decided"] == ["good"] and len(result["rejected"]) == 2
    store = Store(client, settings.key_prefix)
    assert store.decision("demo-shop", "good") is not None
    rejected = store.rejected()
    reasons = " ".join(r["reason"] for r in rejected)
    assert "brand: Field required" in reasons and "no policy for brand 'nobody'" in reasons
    assert any(r["event"] == {"id": "broken"} for r in rejected)  # kept for inspection, not lost


def test_review_queue_is_ordered_by_priority_then_age(client, settings, brands) -> None:
    # recent messages: no SLA target has passed yet, so no breach has raised a priority
    now = datetime.now(timezone.utc)

    def ago(minutes: int) -> str:
        return (now - timedelta(minutes=minutes)).isoformat()

    events = [
        make_event(
            id="normal-new", conversation_id="c1", author={"id": "a1"}, text="asdfgh qwerty zxcvb", created_at=ago(3)
        ),
        make_event(
            id="high",
            conversation_id="c2",
            author={"id": "a2"},
            text="I want to talk to a human now",
            created_at=ago(2),
        ),
        make_event(
            id="normal-old", conversation_id="c3", author={"id": "a3"}, text="asdfgh qwerty zxcvb", created_at=ago(7)
        ),
        make_event(id="vip-old", conversation_id="c4", author={"id": "a4", "tags": ["vip"]}, created_at=ago(8)),
    ]
    ingest_events(events, client, settings, batch_wait=0.01)
    run_worker(client, settings, brands, simple=True)
    items = Store(client, settings.key_prefix).review(now=time.time())
    assert [i.message_id for i in items] == ["vip-old", "high", "normal-old", "normal-new"]
    assert [i.priority for i in items] == ["high", "high", "normal", "normal"]


def test_later_messages_in_a_batch_see_earlier_ones(client, settings, brands) -> None:
    events = [
        make_event(id="stop", conversation_id="c-stop", author={"id": "u-stop"}, text="STOP"),
        make_event(
            id="after",
            conversation_id="c-stop",
            author={"id": "u-stop"},
            text="where is my order KM-300112?",
            created_at="2026-11-24T10:01:00+09:00",
        ),
    ]
    ingest_events(events, client, settings, batch_size=10, batch_wait=0.01)
    run_worker(client, settings, brands, simple=True)
    store = Store(client, settings.key_prefix)
    after = store.decision("demo-shop", "after")
    assert after.rule == "opt_out.suppressed" and after.reply is None
    assert client.sismember(store.keys.optout("demo-shop"), "u-stop")


def test_batches_never_wait_longer_than_the_bound(client, settings) -> None:
    queue = batch_queue(client, settings)
    ingestor = Ingestor(client, settings, batch_size=100, batch_wait=0.3)
    ingestor.submit(make_event(id="lonely"))
    assert queue.count == 0  # held for its batch ...
    deadline = time.monotonic() + 3
    while queue.count == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert queue.count == 1  # ... but not for long
    for i in range(5):
        ingestor.submit(make_event(id=f"full-{i}"))
    ingestor.close()
    assert len(ingestor.report.jobs) == 2


def test_full_batches_are_enqueued_immediately(client, settings) -> None:
    queue = batch_queue(client, settings)
    ingestor = Ingestor(client, settings, batch_size=3, batch_wait=60)
    for i in range(3):
        ingestor.submit(make_event(id=f"b-{i}"))
    assert queue.count == 1 and len(queue.jobs[0].args[0]) == 3
    ingestor.close()


def test_wait_for_reports_every_decision(client, settings, brands) -> None:
    report = ingest_events(SAMPLE, client, settings, batch_wait=0.01)
    run_worker(client, settings, brands, simple=True)
    result = wait_for(report, client, settings, timeout=10)
    assert len(result.decisions) == len(SAMPLE) and not result.missing
    assert result.summary()["decided"] == len(SAMPLE)


@pytest.mark.parametrize("payload", [None, "not a list", {"id": 1}])
def test_malformed_job_payload_is_recorded(client, settings, brands, payload) -> None:
    queue = batch_queue(client, settings)
    job = queue.enqueue("worker.jobs.process_batch", payload, None)
    run_worker(client, settings, brands, simple=True)
    job.refresh()
    assert job.is_finished and job.return_value()["rejected"]
    assert Store(client, settings.key_prefix).rejected()


def test_a_batch_whose_forking_worker_died_before_its_horse_started_it_is_requeued_at_once(client, settings) -> None:
    """RQ's forking worker takes a batch off the queue (into the queue's intermediate list), records its
    execution (a heartbeat in the started registry) and forks the work-horse, which marks the batch
    started. Killed in between, it leaves a queued batch whose heartbeat stops; RQ's cleanup passes it
    over (not started). The recovery sweep that finds the heartbeat JOB_HEARTBEAT_GRACE_SECONDS late
    puts it back at once, like a started batch: it waited another JOB_HEARTBEAT_GRACE_SECONDS and a
    sweep (measured: re-run 28.8 s after the kill, README says 20 s)."""
    queue = batch_queue(client, settings)
    job = enqueue_batch(queue, [make_event(id="m-1")])
    dead = make_worker(client, settings)  # RQ's forking worker, as with --fork-per-job
    assert ReplyguardQueue.lpop([queue.key], None, connection=client) is not None  # taken off the queue
    dead.prepare_execution(job)  # its execution recorded; the work-horse never starts the job
    registry = queue.started_job_registry
    assert queue.get_job_ids() == [] and client.lrange(queue.intermediate_queue_key, 0, -1) == [job.id.encode()]
    beat = {member: score for member, score in client.zrange(registry.key, 0, -1, withscores=True)}
    assert len(beat) == 1
    client.zadd(registry.key, {member: time.time() - 1 for member in beat})  # the heartbeat is late now

    survivor = make_worker(client, settings)
    assert survivor.recover()["abandoned"] >= 1
    assert queue.get_job_ids() == [job.id] and client.llen(queue.intermediate_queue_key) == 0
    assert job.get_status() == "queued" and registry.get_job_ids() == []


def test_a_fresh_worker_takes_over_the_scheduler_locks_its_process_left(client, settings) -> None:
    """A worker whose loop ended for want of Redis is replaced by a fresh one in the same process
    (worker.connection.keep_serving); its scheduler stopped with it, but its locks outlive it by up to
    a minute when Redis kept its data. The fresh worker's scheduler has the process's scheduler name,
    so it takes those locks at once; a lock of another process's scheduler is left alone."""
    queue = batch_queue(client, settings)
    lock = f"rq:scheduler-lock:{queue.name}"
    due = [queue.enqueue_at(datetime.now(timezone.utc) - timedelta(seconds=1), "builtins.len", [k]) for k in range(2)]

    client.set(lock, "another-process-scheduler", ex=60)  # a live scheduler elsewhere: not ours to take
    make_worker(client, settings, queues="batches")._start_scheduler(burst=True)
    assert queue.get_job_ids() == [] and client.get(lock) == b"another-process-scheduler"

    client.set(lock, scheduler_name(), ex=60)  # left by this process's previous worker's scheduler
    make_worker(client, settings, queues="batches")._start_scheduler(burst=True)
    assert sorted(queue.get_job_ids()) == sorted(j.id for j in due)  # the scheduled jobs were moved to the queue
