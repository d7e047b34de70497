"""Store's script calls overlap the worker's own work with Redis's: a persist writes each chunk's
EVALSHA as soon as it is made (Redis runs it while the next is made), and a batch's first context
read runs while the batch is classified. What is written and decided stays what it was."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import pytest
import redis

from tests.conftest import make_event
from worker import defaults
from worker.pipeline import Pipeline
from worker.store import Evalsha, Store

SET_AND_COUNT = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('INCR', KEYS[2])"


def _visible(client: redis.Redis, key: str, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.exists(key):
            return True
        time.sleep(0.005)
    return False


def test_each_call_is_written_as_soon_as_it_is_made(client: redis.Redis, redis_url: str) -> None:
    """The second call is made only once the first has run in Redis (seen from another connection):
    the calls are not held back until the last is made."""
    script = Evalsha(SET_AND_COUNT)
    other = redis.Redis.from_url(redis_url)
    seen = []

    def calls():
        for i in range(3):
            yield [f"stream:{i}", "stream:n"], [str(i)]
            seen.append(_visible(other, f"stream:{i}"))

    client.script_load(script.source)
    assert script.run(client, calls()) == [1, 2, 3]
    assert seen == [True, True, True]


def test_calls_that_got_noscript_run_again_in_their_order(client: redis.Redis) -> None:
    script = Evalsha("redis.call('RPUSH', KEYS[1], ARGV[1]) return redis.call('LLEN', KEYS[1])")
    client.script_load(script.source)
    client.script_flush()  # as after a restart: every call gets NOSCRIPT, writes nothing, and runs again
    assert script.run(client, ([["order:list"], [str(i)]] for i in range(5))) == [1, 2, 3, 4, 5]
    assert client.lrange("order:list", 0, -1) == [b"0", b"1", b"2", b"3", b"4"]


def test_meanwhile_runs_after_the_calls_are_written_and_before_the_replies_are_read(
    client: redis.Redis, redis_url: str
) -> None:
    script = Evalsha(SET_AND_COUNT)
    client.script_load(script.source)
    other = redis.Redis.from_url(redis_url)
    ran = []
    replies = script.run(client, [(["mw:a", "mw:n"], ["x"])], meanwhile=lambda: ran.append(_visible(other, "mw:a")))
    assert ran == [True] and replies == [1]


def test_an_error_while_making_a_call_or_meanwhile_propagates_and_the_connection_stays_usable(
    client: redis.Redis,
) -> None:
    script = Evalsha(SET_AND_COUNT)
    client.script_load(script.source)

    def broken():
        yield ["err:0", "err:n"], ["0"]
        raise ValueError("a call could not be made")

    with pytest.raises(ValueError, match="could not be made"):
        script.run(client, broken())
    assert client.get("err:0") == b"0"  # the call written before the error ran (and is idempotent)

    def fail() -> None:
        raise RuntimeError("meanwhile failed")

    with pytest.raises(RuntimeError, match="meanwhile failed"):
        script.run(client, [(["err:1", "err:n"], ["1"])], meanwhile=fail)
    # the pool's connections are in step: the next calls get their own replies
    assert script.run(client, [(["err:2", "err:n"], ["2"])]) == [3]
    assert client.ping()


def test_a_batch_is_classified_while_redis_reads_its_context(client: redis.Redis, brands, monkeypatch) -> None:
    """The first round's classification runs between the context call being written and its reply
    being read; the decisions are the same as without the overlap."""
    events: list[str] = []
    real_send = Evalsha._send

    def send(self: Evalsha, client: Any, calls: Any, meanwhile: Any = None) -> Any:
        events.append("send")
        made = real_send(self, client, calls, meanwhile)
        events.append("replies read")
        return made

    real_classify = Pipeline.classify

    def classify(self: Pipeline, batch: list[Any]) -> Any:
        events.append(f"classify {len(batch)}")
        return real_classify(self, batch)

    monkeypatch.setattr(Evalsha, "_send", send)
    monkeypatch.setattr(Pipeline, "classify", classify)
    store, pipeline = Store(client, "ov"), Pipeline(brands)
    n = defaults.PERSIST_CHUNK + 3
    raws = [make_event(id=f"m{i}", conversation_id=f"c{i}", text=f"do you ship to Osaka? order {i}") for i in range(n)]
    report = pipeline.process(raws, store)
    assert len(report.decided) == n
    assert events[:3] == ["send", f"classify {n}", "replies read"]  # the context read
    assert events.count(f"classify {n}") == 1 and "classify 0" in events  # nothing classified twice

    # the same decisions as a batch whose context is read first and classified after
    monkeypatch.undo()
    plain = Store(client, "plain")
    scores = pipeline.classify(pipeline._valid(raws, plain, "test", type(report)()))
    for raw, found in zip(raws, scores, strict=True):
        stored = store.decision("demo-shop", raw["id"])
        assert stored is not None and stored.scores == found
    assert pipeline.process(raws, store).duplicates == [r["id"] for r in raws]


def test_persisting_streams_its_chunks_with_the_same_results(client: redis.Redis, brands) -> None:
    """Chunks written as they are made give the same results, in order, as before: a chunk's decision
    sees what an earlier chunk's wrote (a conversation's first and second message, in the first and
    the last chunk)."""
    from worker.models import parse_event

    pipeline = Pipeline(brands)
    n = 2 * defaults.PERSIST_CHUNK + 1

    def persisted(prefix: str, first_seq: int, last_seq: int) -> list[int]:
        store = Store(client, prefix)
        raws = [make_event(id=f"m{i}", conversation_id="shared" if i in (0, n - 1) else f"c{i}") for i in range(n)]
        events = [parse_event(r) for r in raws]
        _, contexts = store.contexts(events)
        outcomes, _ = pipeline.decide(events, pipeline.classify(events), contexts, now=datetime.now(timezone.utc))
        items = [(o.decision, e, o.optout_op, o.away_sent) for o, e in zip(outcomes, events, strict=True)]
        seqs = [first_seq] + [None] * (n - 2) + [last_seq]
        return store.persist(items, seqs, "rq:queue:test")

    assert persisted("ch1", 1, 2) == [1] * n  # the second sees the first, written by an earlier call
    # the second first: it waits for the first (-2); the first was decided as if the second had been
    # written (one decide call carries a conversation's context), so it is decided again (-1)
    assert persisted("ch2", 2, 1) == [-2] + [1] * (n - 2) + [-1]
