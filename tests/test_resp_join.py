"""worker.resp.evalsha_command packs a script call's keys (all str) and arguments (all bytes) by one
join each: the same bytes as the argument-by-argument loop (``resp_command``) and as redis-py's own
packer, on the calls a batch job really makes (context read, persist chunks, SLA start, after-batch
sweep, ingest's numbering) and on edges: non-ASCII keys, values past the looked-up lengths, other and
mixed types, subclasses of str and bytes, empty lists, and generated ones."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from hypothesis import given, settings as hsettings, strategies as st
from redis.connection import Connection, PythonRespSerializer

import worker.jobs as jobs
import worker.store as store_module
from worker.demo import load_sample
from worker.models import Action, parse_event
from worker.pipeline import Ordering, Pipeline
from worker.queues import batch_queue
from worker.resp import evalsha_command, resp_command
from worker.store import Store

SHA = "0123456789abcdef0123456789abcdef01234567"


def _reference(sha: str, keys: list[Any], args: list[Any]) -> bytes:
    packed = resp_command(("EVALSHA", sha, len(keys), *keys, *args))
    assert packed == b"".join(Connection().pack_command("EVALSHA", sha, len(keys), *keys, *args))
    return packed


def test_the_calls_of_real_batches_are_packed_as_the_loop_packs_them(client, settings, brands, monkeypatch) -> None:
    """Batches of the demo traffic and of the benchmark's messages (with their SLA starts and the
    after-batch sweep): every script call packed by the joins is the loop's bytes, and the joins
    did pack them (keys all str, persist and SLA-start arguments all bytes, context arguments str)."""
    from bench.throughput import messages, texts

    made: list[tuple[str, list[Any], list[Any]]] = []

    def recording(sha: str, keys: list[Any], args: list[Any]) -> bytes:
        made.append((sha, list(keys), list(args)))
        return evalsha_command(sha, keys, args)

    monkeypatch.setattr(store_module, "evalsha_command", recording)
    pipeline = Pipeline(brands)
    store = Store(client, settings.key_prefix)
    queue = batch_queue(client, settings)
    sla = jobs.sla_tracker(client, pipeline, settings, queue=queue)
    order = Ordering(queue_key=queue.key, park=lambda event, seq: False)
    pool, _ = texts()
    batches = [load_sample(), messages(300, "rj", pool)]
    for n, batch in enumerate(batches):
        payloads = json.loads(json.dumps([parse_event(e).model_dump(mode="json") for e in batch]))
        store.number([parse_event(e) for e in payloads])
        report = pipeline.process(payloads, store, job_id=f"rj-{n}", enqueued_at=time.time(), sla=sla, order=order)
        assert not report.errors and report.decided
        jobs.after_batch(store, sla)
    scripts = {store._apply_many.sha, store._context_many.sha, store._number_many.sha, sla._start_script.sha}
    assert scripts <= {sha for sha, _, _ in made}
    for sha, keys, args in made:
        assert evalsha_command(sha, keys, args) == _reference(sha, keys, args)
        assert {type(k) for k in keys} <= {str}
        if sha in (store._apply_many.sha, sla._start_script.sha):
            assert {type(a) for a in args} == {bytes}, sha  # the persist and SLA-start arguments: one join
        if sha in (store._context_many.sha, store._number_many.sha):
            assert {type(a) for a in args} == {str}, sha


class Text(str):
    pass


class Raw(bytes):
    pass


EDGES: list[tuple[list[Any], list[Any]]] = [
    ([], []),
    (["k"], []),
    ([], [b"a"]),
    (["rg:decision:demo-shop:返品", "k"], [b"x"]),  # a non-ASCII key: the loop packs the keys
    (["k" * 1023, "k" * 1024, "k" * 5000], [b"v" * 4095, b"v" * 4096, b"v" * 100_000, b""]),
    (["k"], ["text", 7, -2, 0.25, 1e16, 2**70, b"raw"]),  # mixed arguments: the loop
    (["k"], ["é", "日本"]),  # non-ASCII arguments: the loop
    (["k"], ["1", "", "wp-a0", "x" * 1024, "y" * 5000]),  # ASCII str arguments: one join
    ([Text("sub"), "k"], [Raw(b"sub"), b"x"]),  # subclasses: the loop, the same bytes
    ([Action.ESCALATE], [Action.HIDE]),
    (["k\r\n", "\x00"], [b"\x00\r\n" * 3000, b"$3\r\n"]),
]


@pytest.mark.parametrize(("keys", "args"), EDGES)
def test_edges_are_packed_as_the_loop_packs_them(keys: list[Any], args: list[Any]) -> None:
    assert evalsha_command(SHA, keys, args) == _reference(SHA, keys, args)
    python_packer = PythonRespSerializer(6000, Connection().encoder.encode)
    assert evalsha_command(SHA, keys, args) == b"".join(python_packer.pack("EVALSHA", SHA, len(keys), *keys, *args))


@pytest.mark.parametrize("bad", [None, True, bytearray(b"x"), memoryview(b"abcd").cast("I"), [b"x"]])
def test_what_the_loop_refuses_is_refused(bad: Any) -> None:
    """bool, None, bytearray, a memoryview: refused among bytes and among keys, as the loop refuses them."""
    with pytest.raises(TypeError):
        evalsha_command(SHA, ["k"], [b"x", bad])
    with pytest.raises(TypeError):
        evalsha_command(SHA, ["k", bad], [b"x"])


values = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=1100),
    st.binary(max_size=5000),
    st.integers(),
    st.floats(allow_nan=False),
)


@hsettings(max_examples=300, deadline=None)
@given(
    keys=st.lists(st.one_of(st.text(max_size=30), st.text(alphabet="ab:-_", min_size=1000, max_size=1100)), max_size=8),
    args=st.one_of(st.lists(st.binary(max_size=5000), max_size=8), st.lists(values, max_size=8)),
)
def test_generated_calls_are_packed_as_the_loop_packs_them(keys: list[str], args: list[Any]) -> None:
    assert evalsha_command(SHA, keys, args) == resp_command(("EVALSHA", SHA, len(keys), *keys, *args))


def test_a_script_call_packed_by_the_joins_runs(client: redis.Redis) -> None:
    """Redis reads what the joins write: keys and arguments arrive as sent."""
    script = store_module.Evalsha("return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]}")
    client.script_load(script.source)
    big = b"\x00\r\n" * 2000
    (reply,) = script.run(client, [(["rj:a", "rj:" + "b" * 1500], [b"1", big, b""])])
    assert reply == [b"rj:a", b"rj:" + b"b" * 1500, b"1", big, b""]
