"""Per-conversation order with real worker processes on a real Redis (issue 11, part 2).

Traffic made to race: "hello" pairs (two questions of a new conversation, back to back) and
"STOP, then a question" pairs, ingested with batch size 1 (each message its own job) or split
across adjacent batches, decided by 2-3 ``replyguard worker`` processes. Whatever the batching
and however many workers, a conversation's messages are decided in order, one at a time: one
first-contact greeting per conversation, on its first message; no automated answer after a
STOP; every message decided exactly once (one decision, at most one reply), also when a worker
is killed with kill -9 mid-run.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from rq.job import Job

from tests.conftest import make_event
from tests.faults import Workers, check_order, horse_of, outbox_replies, racing_pairs
from tests.test_llm import ORDER, llm_env, server  # noqa: F401 - fixtures
from tests.test_worker_e2e import run_worker
from worker import defaults, drafting
from worker.ingest import ingest_events
from worker.models import Action
from worker.pipeline import Pipeline
from worker.queues import batch_queue, enqueue_batch
from worker.settings import Settings
from worker.store import Store

BRAND = "demo-shop"


def run(
    client: Any,
    redis_url: str,
    tmp_path: Any,
    *,
    workers: int,
    batch_size: int,
    hellos: int,
    stops: int,
    split: int = 0,
    kill: bool = False,
) -> dict[str, list[str]]:
    settings = Settings(redis_url=redis_url, home=tmp_path / "home")
    procs = Workers(redis_url, tmp_path / "logs")
    try:
        procs.start(workers)
        procs.wait_registered(client, workers)
        events, hello, stop = racing_pairs(hellos, stops, split=split)
        report = ingest_events(events, client, settings, batch_size=batch_size, batch_wait=0.0)
        assert len(report.accepted) == len(events)
        store = Store(client, settings.key_prefix)
        if kill:  # kill -9 a worker (and its horse) while it decides, once some messages are decided
            while client.zcard(store.keys.decisions(BRAND)) < len(events) // 4:
                time.sleep(0.01)
            victim = next((p for p in procs.alive() if horse_of(p.pid)), procs.alive()[0])
            procs.kill_worker(victim)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not all(store.decided(report.accepted)):
            time.sleep(0.2)
        # nothing is decided late, twice or replied twice after the last message: let any straggler run
        time.sleep(1.0)
        return check_order(client, store, events, hello, stop)
    finally:
        procs.stop()


def clean(problems: dict[str, list[str]]) -> bool:
    return not any(problems.values())


@pytest.mark.slow
def test_batch_size_one_two_workers_decide_each_conversation_in_order(client, redis_url, tmp_path) -> None:
    problems = run(client, redis_url, tmp_path, workers=2, batch_size=1, hellos=60, stops=60)
    assert clean(problems), {k: v[:10] for k, v in problems.items() if v}


@pytest.mark.slow
def test_pairs_split_across_adjacent_batches_are_decided_in_order(client, redis_url, tmp_path) -> None:
    problems = run(client, redis_url, tmp_path, workers=2, batch_size=4, hellos=64, stops=64, split=4)
    assert clean(problems), {k: v[:10] for k, v in problems.items() if v}


@pytest.mark.slow
def test_order_and_exactly_once_hold_when_a_worker_is_killed(client, redis_url, tmp_path) -> None:
    problems = run(client, redis_url, tmp_path, workers=3, batch_size=1, hellos=60, stops=60, kill=True)
    assert clean(problems), {k: v[:10] for k, v in problems.items() if v}


def test_a_repeat_of_a_message_id_keeps_its_place(client, settings) -> None:
    store = Store(client, settings.key_prefix)
    a, b = (_parsed(make_event(id=i, conversation_id="c-r")) for i in ("r1", "r2"))
    assert store.assign_order([a, b]) == [1, 2]
    assert store.assign_order([b, a]) == [2, 1]  # a platform retry gets the number it got before


def _parsed(raw: dict[str, Any]) -> Any:
    from worker.models import parse_event

    return parse_event(raw)


def test_a_message_whose_predecessor_never_comes_is_parked_then_released(client, settings, brands) -> None:
    store = Store(client, settings.key_prefix)
    queue = batch_queue(client, settings)
    lost = make_event(id="p1", conversation_id="c-p", author={"id": "u-p"}, text="where is my order KM-204815?")
    late = make_event(id="p2", conversation_id="c-p", author={"id": "u-p"}, text="STOP")
    store.assign_order([_parsed(lost), _parsed(late)])  # both accepted; only the second reaches a worker
    enqueue_batch(queue, [late])
    run_worker(client, settings, brands, simple=True)
    assert store.decision(BRAND, "p2") is None and client.zcard(store.keys.order_parked) == 1
    (member,) = client.zrange(store.keys.order_parked, 0, -1)
    order_key, _, seq = member.decode().rpartition("#")
    job_key = Job.key_for(client.hget(order_key, f"p:{seq}").decode())
    assert 0 < client.ttl(job_key) <= defaults.PARKED_JOB_TTL_SECONDS  # an orphaned record would not stay forever
    assert store.release_overdue(queue.key) == 0  # not overdue yet
    assert store.release_overdue(queue.key, now=time.time() + defaults.ORDER_PARK_TIMEOUT_SECONDS + 1) == 1
    run_worker(client, settings, brands, simple=True)
    assert store.decision(BRAND, "p2").rule == "opt_out.keyword"
    enqueue_batch(queue, [lost])  # turns up after all: decided as a late message, on the current state
    run_worker(client, settings, brands, simple=True)
    decision = store.decision(BRAND, "p1")
    assert decision is not None and decision.context.opted_out and not decision.reply
    assert client.zcard(store.keys.order_parked) == 0 and store.stats(BRAND)["decisions"] == 2


def test_a_predecessor_decided_meanwhile_wakes_its_parked_successor(client, settings, brands) -> None:
    store = Store(client, settings.key_prefix)
    queue = batch_queue(client, settings)
    first = make_event(id="w1", conversation_id="c-w", author={"id": "u-w"}, text="where is my order KM-204815?")
    second = make_event(id="w2", conversation_id="c-w", author={"id": "u-w"}, text="how long does shipping take?")
    store.assign_order([_parsed(first), _parsed(second)])
    enqueue_batch(queue, [second])
    run_worker(client, settings, brands, simple=True)
    assert store.decision(BRAND, "w2") is None  # parked
    enqueue_batch(queue, [first])
    run_worker(client, settings, brands, simple=True)  # deciding w1 queues w2, and the same burst decides it
    one, two = store.decision(BRAND, "w1"), store.decision(BRAND, "w2")
    assert one.context.first_contact and not two.context.first_contact and two.decided_at >= one.decided_at
    assert client.zcard(store.keys.order_parked) == 0 and len(queue) == 0


def test_a_reply_waiting_for_an_llm_task_is_not_sent_after_a_stop(client, llm_env) -> None:  # noqa: F811
    settings, brands = llm_env()
    store = Store(client, settings.key_prefix)
    pipeline = Pipeline(brands)
    pipeline.process([ORDER], store, schedule_llm=lambda pending: None)
    assert store.decision(BRAND, "o1").pending
    stop = {**ORDER, "id": "o1-stop", "text": "STOP", "created_at": "2026-11-24T10:05:00+09:00"}
    assert pipeline.process([stop], store).decided == ["o1-stop"]
    final = store.finalize(BRAND, "o1", drafting.at_deadline, brands[BRAND].policy)
    assert final is not None and Action.AUTO_REPLY not in final.actions and final.reply is None
    assert final.rule == "opt_out.suppressed" and Action.ESCALATE in final.actions
    assert outbox_replies(client, store.keys.outbox(BRAND)) == []


def test_an_opt_out_between_reading_and_writing_a_finalisation_is_seen(client, llm_env) -> None:  # noqa: F811
    settings, brands = llm_env()
    store = Store(client, settings.key_prefix)
    Pipeline(brands).process([ORDER], store, schedule_llm=lambda pending: None)
    calls = []

    def final(pending):
        calls.append(1)
        if len(calls) == 1:  # the author opts out (another worker decides a STOP) while this one finalises
            client.sadd(store.keys.optout(BRAND), ORDER["author"]["id"])
        return drafting.at_deadline(pending)

    done = store.finalize(BRAND, "o1", final)
    assert len(calls) == 2 and done is not None and done.reply is None
    assert outbox_replies(client, store.keys.outbox(BRAND)) == []
