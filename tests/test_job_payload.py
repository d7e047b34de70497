"""Ingest's batch jobs carry exactly what they carried when each event was dumped to a dict and
RQ's JSONSerializer encoded the list (``enqueue_batch``): ``enqueue_events`` writes the payload with
pydantic-core's serializer instead, and compresses it at ``JOB_PAYLOAD_ZLIB_LEVEL``. Same function,
same arguments (each event's canonical form, value for value and type for type), same job options."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from tests.conftest import make_event
from worker import defaults
from worker.demo import load_sample
from worker.models import InboundEvent, canonical_json, parse_event, trusted_event
from worker.queues import batch_queue, enqueue_batch, enqueue_events
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
