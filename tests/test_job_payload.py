"""Ingest's batch jobs carry exactly what they carried when each event was dumped to a dict and
RQ's JSONSerializer encoded the list (``enqueue_batch``): ``enqueue_events`` writes the payload with
pydantic-core's serializer instead, and compresses it at ``JOB_PAYLOAD_ZLIB_LEVEL``. Same function,
same arguments (each event's canonical form, value for value and type for type), same job options."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings as hsettings, strategies as st
from rq.exceptions import DeserializationError
from rq.job import Job
from rq.serializers import JSONSerializer

from tests.conftest import make_event
from worker import defaults
from worker.demo import load_sample
from worker.models import InboundEvent, canonical_json, parse_event, trusted_event
from worker.queues import ReplyguardJob, batch_queue, enqueue_batch, enqueue_events, payload_loads
from worker.settings import Settings

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 and 1.0, True and 1 told apart)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or (a != a and b != b)


def _events() -> list[InboundEvent]:
    raw = [e for e in load_sample() if e.get("text") or e.get("unreadable")]
    raw += [
        make_event(id="e-1", text='Où est ma commande ? 配送はいつですか — merci ! 😀 \u2028 "quoted" \\ back'),
        make_event(id="e-2", kind="comment", post_id="p-1", text="", unreadable="sticker"),
        make_event(
            id="e-3",
            author={"id": "ü-1", "name": "Zoë \u202eO'Brien", "locale": "fr-FR", "tags": ["vip", "crm-1"]},
            text="\u202ahello\u202c",
            created_at="2026-11-24T13:30:00.5+05:30",
            metadata={
                "source": {"campaign": "winter", "ids": [1, 2.5, None, True, -0.0, 1e16, 1.5e-7, 10**39]},
                "tuple": (1, "two"),
                "empty": {},
                "ünïcode": "値 😀",
            },
        ),
        make_event(id="e-4", created_at="2026-11-24T13:30:00Z"),
        make_event(id="e-5", created_at="2026-11-24T13:30:00.123456-08:00"),
    ]
    if SHARED.is_dir():
        for path in sorted(SHARED.glob("*.jsonl")):
            lines = path.read_text(encoding="utf-8").splitlines()[:300]
            texts = [json.loads(line)["text"] for line in lines if line.strip()]
            raw += [make_event(id=f"{path.stem}-{i}", text=t) for i, t in enumerate(texts) if t]
    events = []
    for e in raw:
        try:
            events.append(parse_event(e))
        except Exception:  # a few dataset texts hold controls that ingest rejects
            continue
    return events


def test_canonical_json_is_the_canonical_form() -> None:
    for event in _events():
        encoded = canonical_json(event)
        assert encoded.isascii()
        assert _same(json.loads(encoded), event.model_dump(mode="json"))
        assert trusted_event(json.loads(encoded)) is not None  # the worker takes it without validating again


def _stored(client: redis.Redis, job_id: str) -> dict[bytes, bytes]:
    fields = client.hgetall(Job.key_for(job_id))
    for name in (b"created_at", b"enqueued_at", b"last_heartbeat"):
        fields.pop(name, None)
    return fields


def test_enqueue_events_is_enqueue_batch(client: redis.Redis, settings: Settings) -> None:
    queue = batch_queue(client, settings)
    events = _events()
    for start in range(0, len(events), 256):
        batch = events[start : start + 256]
        old = enqueue_batch(queue, [e.model_dump(mode="json") for e in batch], job_id=f"old-{start}")
        new = enqueue_events(queue, batch, f"new-{start}")
        stored_old, stored_new = _stored(client, old.id), _stored(client, new.id)
        data_old, data_new = zlib.decompress(stored_old.pop(b"data")), zlib.decompress(stored_new.pop(b"data"))
        assert stored_old == stored_new  # every other field: function, options, status, description...
        func_old, instance_old, args_old, kwargs_old = JSONSerializer.loads(data_old)
        func_new, instance_new, args_new, kwargs_new = JSONSerializer.loads(data_new)
        assert (func_new, instance_new, kwargs_new) == (func_old, instance_old, kwargs_old)
        assert _same(args_new[0], args_old[0])
        assert type(args_new[1]) is float and abs(args_new[1] - args_old[1]) < 60
        assert data_new.isascii()
        # RQ reads the job back as any other: the same arguments
        fetched = Job.fetch(new.id, connection=client, serializer=queue.serializer)
        assert _same(fetched.args[0], args_old[0])
    assert client.lrange(queue.key, 0, -1) == [
        j.encode() for s in range(0, len(events), 256) for j in (f"old-{s}", f"new-{s}")
    ]


def test_payload_level(client: redis.Redis, settings: Settings) -> None:
    """New payloads are written at JOB_PAYLOAD_ZLIB_LEVEL; a job read and saved again keeps its bytes."""
    queue = batch_queue(client, settings)
    events = _events()[:50]
    job = enqueue_events(queue, events, "level")
    packed = client.hget(Job.key_for("level"), "data")
    assert packed == zlib.compress(job.data, defaults.JOB_PAYLOAD_ZLIB_LEVEL)
    fetched = queue.fetch_job("level")
    fetched.save()
    assert client.hget(Job.key_for("level"), "data") == packed


def _loads_both(data: bytes) -> tuple[Any, Any]:
    """(json.loads's value or its exception's type, payload_loads's)."""
    out = []
    for loads in (JSONSerializer.loads, payload_loads):
        try:
            out.append(loads(data))
        except Exception as exc:  # noqa: BLE001 - the same failure either way
            out.append(type(exc))
    return out[0], out[1]


def test_payload_loads_reads_ingests_payloads_as_json_loads_does(client: redis.Redis, settings: Settings) -> None:
    queue = batch_queue(client, settings)
    events = _events()
    for start in range(0, len(events), 256):
        batch = events[start : start + 256]
        for job in (
            enqueue_events(queue, batch, f"read-{start}"),
            enqueue_batch(queue, [e.model_dump(mode="json") for e in batch]),
        ):
            expected, got = _loads_both(job.data)
            assert isinstance(expected, list) and _same(got, expected)
            # a worker's job reads its arguments through payload_loads: the same as RQ's Job
            fetched = ReplyguardJob.fetch(job.id, connection=client, serializer=queue.serializer)
            plain = Job.fetch(job.id, connection=client, serializer=queue.serializer)
            assert fetched.func_name == plain.func_name == "worker.jobs.process_batch"
            assert _same(list(fetched.args), list(plain.args)) and fetched.kwargs == plain.kwargs == {}


EDGES = [
    "0.1",
    "-0.0",
    "-0",
    "5e-324",
    "2.4e-324",
    "1e-400",
    "1e400",
    "-1e400",
    "1.7976931348623157e308",
    "1.7976931348623158e308",
    "2.2250738585072011e-308",
    "0.1000000000000000055511151231257827021181583404541015625",
    "1E5",
    "1e23",
    "8.41e21",
    "9007199254740993",
    "9007199254740993.0",
    "12345678901234567890123456789",
    "-12345678901234567890123456789",
    "NaN",
    "Infinity",
    "-Infinity",
    "true",
    "null",
    '{"":0}',
    '{"a":1,"a":2}',
    '{"b":1,"a":2,"b":3}',
    '"\\ud83d\\ude00"',
    '"\\u0000\\t\\/"',
    '"é値😀"',
    '"\\u00e9"',
    " [1] ",
    # refused by pydantic-core, read (or refused) by json.loads as before
    '"\\ud800"',
    '["\\udc00x", 1]',
    "[" * 300 + "]" * 300,
    "[" * 5000 + "]" * 5000,
    "1" * 4300,
    "1" * 4301,  # past int's digit limit: ValueError either way
    "[1,2,]",
    "01",
    "1.",
    ".5",
    '"\x01"',
    "[1] x",
    "",
    "\ufeff[1]",
    "[\x80]",
]


@pytest.mark.parametrize("text", EDGES)
def test_payload_loads_on_edges(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    expected, got = _loads_both(data)
    assert _same(got, expected), (got, expected)


def test_payload_loads_on_bytes_that_are_not_utf8() -> None:
    expected, got = _loads_both(b'["\xff\xfe"]')
    assert got is expected is UnicodeDecodeError


_any_text = st.text(st.characters(exclude_categories=()))  # lone surrogates too
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _any_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_any_text, children, max_size=5),
    max_leaves=30,
)


@hsettings(max_examples=400, deadline=None)
@given(value=_json_values, ascii_only=st.booleans())
def test_payload_loads_is_json_loads(value: Any, ascii_only: bool) -> None:
    data = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    expected, got = _loads_both(data)
    assert _same(got, expected), (got, expected)


def test_an_unreadable_payload_fails_as_in_rq(client: redis.Redis, settings: Settings) -> None:
    queue = batch_queue(client, settings)
    job = queue.enqueue("worker.jobs.process_batch", [{"id": "x"}], None)
    client.hset(job.key, "data", zlib.compress(b'["worker.jobs.process_batch", null, [[{"id": "x"}], null], {}'))
    for cls in (Job, ReplyguardJob):
        fetched = cls.fetch(job.id, connection=client, serializer=queue.serializer)
        with pytest.raises(DeserializationError):
            _ = fetched.args
