"""How the worker talks to Redis on the hot path: each persist chunk is one EVALSHA (no SCRIPT EXISTS
round trip), the script is loaded again after NOSCRIPT (SCRIPT FLUSH, a restarted Redis), the
conversation's open SLA timers come back with the persist reply, and a decision the script refuses
leaves nothing behind. Counted on a private redis-server with MONITOR."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
from redis._parsers import _RESP3Parser

from tests.conftest import make_event
from tests.faults import RedisServer
from worker import defaults
from worker.models import parse_event
from worker.pipeline import Pipeline
from worker.sla.tracker import SlaTracker
from worker.store import Store


@contextmanager
def monitored(url: str) -> Iterator[list[dict]]:
    """The commands the server at ``url`` runs inside the ``with`` block, as MONITOR reports them
    (from our clients and from inside scripts, ``client_type`` "lua")."""
    seen: list[dict] = []
    ready = threading.Event()
    client = redis.Redis.from_url(url)
    client.ping()  # connected before MONITOR starts: its handshake is not among the commands

    def watch() -> None:
        with redis.Redis.from_url(url).monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                if command["command"].startswith("ECHO end-of-test"):
                    return
                seen.append(command)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    if not ready.wait(5):
        raise RuntimeError(f"MONITOR on {url} did not start")
    client.echo("start")
    try:
        yield seen
    finally:
        client.echo("end-of-test")
        watcher.join(10)


def _decided(store: Store, pipeline: Pipeline, raws: list[dict]) -> list[tuple]:
    """(decision, event, opt-out op, away sent) of ``raws``, decided on a fresh context read."""
    events = [parse_event(r) for r in raws]
    _, contexts = store.contexts(events)
    outcomes, errors = pipeline.decide(events, pipeline.classify(events), contexts, now=datetime.now(timezone.utc))
    assert not errors
    return [(o.decision, e, o.optout_op, o.away_sent) for o, e in zip(outcomes, events, strict=True)]


def test_persist_loads_the_script_again_after_a_flush_and_a_restart(brands, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url)
        # what is tested is the script cache across a restart, not the once-a-second fsync's window: the
        # kill below came within a second of the writes under load and lost them (seen at load ~6)
        client.config_set("appendfsync", "always")
        store, pipeline = Store(client, "rg"), Pipeline(brands)
        first = _decided(store, pipeline, [make_event(id=f"f{i}", conversation_id=f"c-f{i}") for i in range(40)])
        assert store.persist(first) == [1] * 40  # the script was never loaded: NOSCRIPT, loaded, run
        client.script_flush()
        second = _decided(store, pipeline, [make_event(id=f"s{i}", conversation_id=f"c-s{i}") for i in range(3)])
        assert store.persist(second) == [1, 1, 1]
        assert store.persist(first) == [0] * 40  # already decided: nothing written twice
        server.kill()
        server.start()  # the append-only file brings the data back, not the script cache
        client = redis.Redis.from_url(server.url)
        store = Store(client, "rg")
        assert not client.script_exists(store._apply_many.sha)[0]
        assert store.persist(second) == [0, 0, 0]
        third = _decided(store, pipeline, [make_event(id="t0", conversation_id="c-t0")])
        assert store.persist(third) == [1]
        assert store.stats("demo-shop")["decisions"] == 44  # each decision counted once
    finally:
        server.stop()


def test_a_batch_is_persisted_with_one_evalsha_per_chunk_and_nothing_else(brands, tmp_path: Path) -> None:
    """MONITOR on a private server: the batch's persist sends only its chunks' EVALSHA (no SCRIPT EXISTS,
    no SCRIPT LOAD once loaded), and the SLA step after it reads no open-timer set of its own."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url)
        store, pipeline = Store(client, "rg"), Pipeline(brands)
        tracker = SlaTracker(store, {b: brand.policy for b, brand in brands.items()})
        text = "I want to speak to a human, this is urgent"
        warm = pipeline.process([make_event(id="warm", conversation_id="c-warm", text=text)], store, sla=tracker)
        assert warm.sla_started == 1  # every script the batch calls is loaded now
        n = defaults.PERSIST_CHUNK + 5
        raws = [make_event(id=f"m{i}", conversation_id=f"c-m{i}", text=text) for i in range(n)]
        with monitored(server.url) as seen:
            report = pipeline.process(raws, store, sla=tracker)
        assert len(report.decided) == n and report.sla_started > 0
        ours = [c["command"].split()[0].upper() for c in seen if c.get("client_type") != "lua"]
        evalshas = [c for c in seen if c.get("client_type") != "lua" and c["command"].startswith("EVALSHA")]
        persisted = [c for c in evalshas if c["command"].split()[1] == store._apply_many.sha]
        assert len(persisted) == -(-n // defaults.PERSIST_CHUNK)  # one call a chunk
        assert "SCRIPT" not in ours and "SMEMBERS" not in ours, [
            c["command"][:80] for c in seen if c.get("client_type") != "lua"
        ]
        assert [c for c in seen if c.get("client_type") == "lua" and c["command"].startswith("SMEMBERS")]
    finally:
        server.stop()


def test_open_timers_come_back_with_the_persist_reply(client, brands) -> None:
    """A later message of a conversation with an open SLA timer: the persist reply names the timer (as
    SMEMBERS of the open set would), and nothing for a conversation without one."""
    store, pipeline = Store(client), Pipeline(brands)
    tracker = SlaTracker(store, {b: brand.policy for b, brand in brands.items()})
    created = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    vip = make_event(
        id="o-1",
        conversation_id="c-open",
        created_at=created.isoformat(),
        author={"id": "u-o", "tags": ["vip"]},
        text="Hi, my order KM-555777 hasn't arrived yet",
    )
    assert pipeline.process([vip], store, sla=tracker).sla_started == 1
    assert client.smembers(store.keys.sla_open("demo-shop", "c-open")) == {b"o-1"}
    later = make_event(id="o-2", conversation_id="c-open", author={"id": "u-o", "tags": ["vip"]}, text="any news?")
    alone = make_event(id="o-3", conversation_id="c-alone", author={"id": "u-x"}, text="thanks")
    found: dict[tuple[str, str], list[str]] = {}
    assert store.persist(_decided(store, pipeline, [later, alone]), open_timers=found) == [1, 1]
    assert found == {("demo-shop", "o-2"): ["o-1"]}
    again: dict[tuple[str, str], list[str]] = {}
    assert store.persist(_decided(store, pipeline, [later]), open_timers=again) == [0]
    assert again == {}  # not written: nothing read


def test_a_refused_decision_leaves_nothing_behind(client, brands) -> None:
    """The first decision's key is written first (SET NX) and taken back when the context changed (-1) or
    an earlier message is not decided yet (-2): no key, no index, no outbox entry, no counter."""
    store, pipeline = Store(client), Pipeline(brands)
    stale = _decided(store, pipeline, [make_event(id="r-1", conversation_id="c-r")])  # first contact
    pipeline.process([make_event(id="r-0", conversation_id="c-r")], store)  # the conversation is no longer new
    before = {key: client.type(key) for key in client.keys("*")}
    stats, outbox = store.stats("demo-shop"), client.xlen(store.keys.outbox("demo-shop"))
    assert store.persist(stale) == [-1]
    gap = _decided(store, pipeline, [make_event(id="r-5", conversation_id="c-gap")])
    assert store.persist(gap, [2], "rg-test-queue") == [-2]  # message 1 of c-gap is not decided
    assert {key: client.type(key) for key in client.keys("*")} == before
    assert store.stats("demo-shop") == stats
    assert client.xlen(store.keys.outbox("demo-shop")) == outbox
    assert client.zcard(store.keys.decisions("demo-shop")) == 1  # r-0 only
    assert not client.exists(store.keys.decision("demo-shop", "r-1"), store.keys.decision("demo-shop", "r-5"))


def test_the_sweeps_after_a_batch_read_everything_in_one_round_trip(brands, tmp_path: Path) -> None:
    """worker.jobs.after_batch: finish_overdue's and fire_due's reads and the check that the earliest
    step's sweep job is scheduled are one EVALSHA (MONITOR), read the same as the separate commands, and a
    lost sweep job is still scheduled again."""
    from rq.job import Job

    from worker import jobs
    from worker.settings import Settings

    server = RedisServer(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url)
        store, pipeline = Store(client, settings.key_prefix), Pipeline(brands)
        sla = jobs.sla_tracker(client, pipeline, settings)
        text, created = "I want to speak to a human, this is urgent", datetime.now(timezone.utc).isoformat()
        raws = [make_event(id=f"w{i}", conversation_id=f"c-w{i}", text=text, created_at=created) for i in range(3)]
        report = pipeline.process(raws, store, sla=sla)
        assert report.sla_started == 3
        assert jobs.after_batch(store, sla) == ([], [])  # loads the script
        now = datetime.now(timezone.utc)
        for later in (now, now + timedelta(days=3)):  # nothing due; everything due
            read = sla.read_after_batch(later, 100)
            assert read.overdue == client.zrangebyscore(store.keys.llm_pending, "-inf", int(later.timestamp() * 1000))
            assert read.due == client.zrangebyscore(store.keys.sla_due, "-inf", int(later.timestamp() * 1000))
            assert read.earliest == client.zrange(store.keys.sla_due, 0, 0, withscores=True)
            at = datetime.fromtimestamp(max(read.earliest[0][1], later.timestamp() * 1000) / 1000, tz=timezone.utc)
            assert read.checked == (sla._sweep_job(at)[0], sla._scheduled(at))
        assert len(sla.read_after_batch(now + timedelta(days=3), 100).due) == 3

        with monitored(server.url) as seen:
            assert jobs.after_batch(store, sla) == ([], [])
        ours = [c["command"].split()[0].upper() for c in seen if c.get("client_type") != "lua"]
        assert ours == ["ECHO", "EVALSHA"], ours

        earliest = client.zrange(store.keys.sla_due, 0, 0, withscores=True)
        at = datetime.fromtimestamp(max(earliest[0][1], now.timestamp() * 1000) / 1000, tz=timezone.utc)
        second, job_id = sla._sweep_job(at)
        client.delete(Job.key_for(job_id))  # the sweep job was lost
        assert not sla._scheduled(at)
        jobs.after_batch(store, sla)
        assert sla._scheduled(at)  # scheduled again
    finally:
        server.stop()


def test_persist_commands_are_written_as_redis_py_writes_them() -> None:
    """resp.resp_command packs what redis-py's own pack_command packs, with hiredis (what redis-py
    uses when it is installed) and with redis-py's pure-Python packer: str (non-ASCII too), bytes
    (above redis-py's 6,000-byte cut too), int and float; anything else is refused."""
    from redis.connection import Connection, PythonRespSerializer

    from worker.resp import resp_command as _resp_command

    python_packer = PythonRespSerializer(6000, Connection().encoder.encode)
    args = ("EVALSHA", "a" * 40, 3, "rg:d:demo-shop:返品", b"\x00\r\n" * 3000, "x" * 7000, -2, 0.25, 1e16, "")
    assert _resp_command(args) == b"".join(Connection().pack_command(*args))
    assert _resp_command(args) == b"".join(python_packer.pack(*args))
    # each side of the looked-up length lines (under 1,024 bytes), and a str subclass (an enum's value)
    from worker.models import Action

    sizes = ("b" * 1023, "c" * 1024, b"d" * 1023, b"e" * 1024, "é" * 512, Action.ESCALATE, 7, 2**70, -0.0)
    assert _resp_command(sizes) == b"".join(Connection().pack_command(*sizes))
    assert _resp_command(sizes) == b"".join(python_packer.pack(*sizes))
    with pytest.raises(TypeError, match="not NoneType"):
        _resp_command(("EVALSHA", None))
    with pytest.raises(TypeError, match="not bool"):
        _resp_command(("EVALSHA", True))


def test_commands_of_strings_only_are_written_as_redis_py_writes_them() -> None:
    """A command of exact str arguments under 1,024 bytes each (ingest's numbering) is packed by
    resp._resp_strings: the same bytes as redis-py's, on each side of the 1,024-byte cut (in UTF-8
    bytes, not characters), with non-ASCII and empty strings, and a str subclass or a surrogate as
    before."""
    from redis.connection import Connection

    from worker.models import Action
    from worker.resp import _resp_strings, resp_command as _resp_command

    commands = [
        ("EVALSHA", "a" * 40, "2", "rg:decision:demo-shop:m-1", "rg:order:demo-shop:c-1", "number", "2592000", "m-1"),
        ("x",),
        ("EVALSHA", "", "é", "返品", "😀" * 255, "b" * 1023),
        ("é" * 511, "b" * 1023),  # 1,022 and 1,023 bytes
        ("é" * 512,),  # 1,024 bytes: the general path
        ("c" * 1024, "d"),
        ("e", Action.ESCALATE),  # a str subclass: the general path
    ]
    for args in commands:
        assert _resp_command(args) == b"".join(Connection().pack_command(*args)), args
    assert _resp_strings(commands[0]) == _resp_command(commands[0])
    with pytest.raises(UnicodeEncodeError):
        _resp_command(("EVALSHA", "\ud800"))


def test_numbering_runs_one_evalsha_and_writes_counter_and_number_in_one_hset(tmp_path: Path) -> None:
    """Ingest's numbering (Store.number, lua/order.lua 'number'): one EVALSHA a batch, loaded again
    after SCRIPT FLUSH; a new message's number and the conversation's counter in one HSET; a repeat
    gets its number again, a decided message None; the order hash holds what it held before."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url)
        store = Store(client, "rg")
        events = [parse_event(make_event(id=f"n{i}", conversation_id=f"c-n{i % 3}")) for i in range(7)]
        assert store.number(events) == [1, 1, 1, 2, 2, 2, 3]  # the script was never loaded: NOSCRIPT, loaded
        client.script_flush()
        later = [parse_event(make_event(id="n7", conversation_id="c-n0")), events[2]]
        with monitored(server.url) as seen:
            assert store.number(later) == [4, 1]
        ours = [c["command"].split()[0].upper() for c in seen if c.get("client_type") != "lua"]
        assert ours.count("EVALSHA") == 2 and ours.count("SCRIPT") == 1  # NOSCRIPT, loaded, run again
        lua = [c["command"] for c in seen if c.get("client_type") == "lua"]
        assert [c.split()[0].upper() for c in lua if not c.upper().startswith(("EXISTS", "HMGET"))] == ["HSET"]
        assert client.hgetall(store.keys.order("demo-shop", "c-n0")) == {
            b"next": b"4",
            b"m:n0": b"1",
            b"m:n3": b"2",
            b"m:n6": b"3",
            b"m:n7": b"4",
        }
        assert 0 < client.ttl(store.keys.order("demo-shop", "c-n0")) <= defaults.CONVERSATION_TTL_SECONDS
        client.set(store.keys.decision("demo-shop", "n1"), "{}")
        assert store.number([events[1], events[4]]) == [None, 2]
    finally:
        server.stop()


def test_a_worker_process_keeps_a_jobs_parts_across_a_flush_and_a_restart(brands, tmp_path: Path) -> None:
    """worker.jobs.job_parts: a batch job's Store, SLA tracker and queue are made once per process for
    a connection (again for another connection or changed policies), and with them every batch still
    writes its decisions and starts its SLA timers after SCRIPT FLUSH and after Redis restarted with an
    empty script cache (each script loaded again on NOSCRIPT)."""
    import dataclasses

    from worker import jobs
    from worker.policy import LoadedPolicy
    from worker.settings import Settings

    server = RedisServer(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url)
        client.config_set("appendfsync", "always")  # the kill below must not lose the writes just made
        settings = Settings(redis_url=server.url, home=tmp_path / "home")
        pipeline = Pipeline(brands)
        parts = jobs.job_parts(client, pipeline, settings)
        assert jobs.job_parts(client, pipeline, settings) is parts
        assert jobs.job_parts(client, Pipeline(dict(brands)), settings) is parts  # the same policies
        other = redis.Redis.from_url(server.url)
        assert jobs.job_parts(other, pipeline, settings).store.client is other
        reloaded = {
            name: dataclasses.replace(
                brand, loaded=LoadedPolicy(brand.policy.model_copy(), brand.loaded.path, b"reloaded")
            )
            for name, brand in brands.items()
        }
        fresh = jobs.job_parts(client, Pipeline(reloaded), settings)
        assert fresh is not parts and fresh.sla.policies["demo-shop"] is reloaded["demo-shop"].policy

        created = datetime.now(timezone.utc).replace(microsecond=0).isoformat()

        def batch(tag: str) -> None:
            events = [
                make_event(
                    id=f"{tag}-vip",
                    conversation_id=f"c-{tag}-vip",
                    created_at=created,
                    author={"id": f"u-{tag}", "tags": ["vip"]},
                    text="Hi, my order KM-555123 hasn't arrived yet",
                ),
                make_event(id=f"{tag}-plain", conversation_id=f"c-{tag}-plain", created_at=created),
            ]
            used = jobs.job_parts(client, pipeline, settings)
            report = pipeline.process(events, used.store, sla=used.sla)
            assert jobs.after_batch(used.store, used.sla) == ([], [])
            assert report.decided == [f"{tag}-vip", f"{tag}-plain"] and report.sla_started == 1, report

        parts = jobs.job_parts(client, pipeline, settings)
        batch("a")
        client.script_flush()
        batch("b")
        server.kill()
        server.start()  # the append-only file brings the data back, not the script cache
        assert not client.script_exists(parts.store._apply_many.sha)[0]
        batch("c")
        assert jobs.job_parts(client, pipeline, settings) is parts  # the same parts throughout
        assert parts.store.stats("demo-shop")["decisions"] == 6
        assert client.zcard(parts.store.keys.sla_timers("demo-shop")) == 3
    finally:
        server.stop()


def test_replies_and_errors_are_the_same_with_hiredis_and_redis_pys_own_parser(client, redis_url) -> None:
    """hiredis (a dependency) parses replies in C for redis-py; what our code reads is the same as
    redis-py's own RESP3 parser gives: values and their types, script replies, error types and
    messages (NOSCRIPT too), a pipeline's replies with an error among them."""
    from redis.connection import ConnectionPool
    from redis.utils import HIREDIS_AVAILABLE

    from worker.store import Evalsha

    assert HIREDIS_AVAILABLE and type(client.connection_pool.get_connection()._parser).__name__ == "_HiredisParser"
    python = redis.Redis(connection_pool=ConnectionPool.from_url(redis_url, parser_class=_RESP3Parser))
    client.sadd("s", "a", "b")
    client.hset("h", mapping={"x": 1, "é": "返品"})
    client.zadd("z", {"m": 1.5})
    client.xadd("st", {"f": "v"})
    script = Evalsha("return {1, 'a', {2, false}, redis.call('ZSCORE', KEYS[1], 'm')}")

    def seen(c: redis.Redis) -> list:
        out: list = [c.smembers("s"), c.hgetall("h"), c.zrange("z", 0, -1, withscores=True), c.xrange("st")]
        out.append(script.run(c, [(["z"], [])]))
        for call in (lambda: c.eval("return redis.error_reply('boom')", 0), lambda: c.evalsha("0" * 40, 0)):
            with pytest.raises(redis.exceptions.ResponseError) as caught:
                call()
            out.append((type(caught.value), str(caught.value)))
        pipe = c.pipeline()
        pipe.get("nope").incr("s").set("k", "v")
        out.append([(type(r), str(r)) for r in pipe.execute(raise_on_error=False)])
        return out

    mine = seen(client)
    assert mine == seen(python)
    assert [type(v) for v in mine[4][0]] == [int, bytes, list, bytes]
    assert mine[6][0] is redis.exceptions.NoScriptError
