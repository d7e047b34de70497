"""What the worker stores for a fixed set of events stays byte for byte what it was.

The hot path is cut for speed again and again (events rebuilt without validation, decisions built
and serialised without pydantic's own paths, persist arguments packed by hand); none of those cuts
may change a stored byte. This test decides a fixed event set (the demo traffic and edge cases:
opt-out and opt-in keywords, a VIP, comments with personal data, a message after hours, unreadable,
empty and over-long messages, a conversation's second message, metadata, non-ASCII text) through
``Pipeline.process`` with conversation order and SLA timers, at a fixed clock, then compares every
key it left in Redis (type, value, TTL to the hour) with ``tests/data/stored_bytes.json``, a digest a
key written by main before the cuts: decision JSON, outbox and SLA streams, history, counters,
review queue, indexes, timers.

Masked, as they are not the code's to fix: the decisions' ``timings`` (measured durations), stream
entry ids (Redis's clock), the model and policy versions (a retrained model or an edited policy
changes them; the test checks them apart against the loaded brand), and RQ's keys but their names and
types (RQ writes its own clock in them). Regenerate the file only for a
change meant to alter stored data: ``python tests/test_stored_bytes.py > tests/data/stored_bytes.json``
(with ``REDIS_URL`` set: that database is FLUSHED).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "data" / "stored_bytes.json"
NOW = datetime(2026, 11, 24, 13, 30, 0, 123456, tzinfo=timezone.utc)  # Tuesday 22:30 in Tokyo: after hours
_TIMINGS = re.compile(rb'"timings":\{[^{}]*\}')


def events() -> list[list[dict[str, Any]]]:
    """Two batches: the demo traffic and edge cases, then later messages of some of their conversations."""
    from tests.conftest import make_event
    from worker import defaults
    from worker.demo import load_sample

    first = [e for e in load_sample() if e.get("text") or e.get("unreadable")]
    for e in first:
        e.setdefault("metadata", {})
        e["metadata"].pop("expect", None)  # the demo's expectations, not part of what is tested here
    first += [
        make_event(id="e-stop", conversation_id="c-stop", author={"id": "u-stop"}, text="STOP"),
        make_event(id="e-vip", conversation_id="c-vip", author={"id": "u-vip", "tags": ["vip"]}, text="hello"),
        make_event(
            id="e-pii",
            kind="comment",
            post_id="p-9",
            conversation_id="c-pii",
            text="my email is aiko@example.com and phone +81 90 1234 5678, order KM-204815",
        ),
        make_event(
            id="e-late", conversation_id="c-late", text="I want to talk to a person", created_at=NOW.isoformat()
        ),
        make_event(id="e-unread", conversation_id="c-unread", text="", unreadable="sticker"),
        make_event(id="e-empty", conversation_id="c-empty", text="  "),
        make_event(
            id="e-long", conversation_id="c-long", text="where is my order? " * (defaults.CLASSIFY_MAX_CHARS // 10)
        ),
        make_event(
            id="e-meta",
            conversation_id="c-meta",
            author={"id": "u-meta", "name": 'Zoë "Z" O\'Brien', "locale": "fr-FR", "tags": ["crm-1"]},
            text="Où est ma commande ? 配送はいつですか — merci !",
            metadata={"source": {"campaign": "winter", "ids": [1, 2.5, None, True]}},
        ),
        make_event(id="e-spam", conversation_id="c-spam", text="FREE crypto giveaway!!! click bit.ly/xyz to claim now"),
    ]
    second = [
        make_event(id="e-aiko-2", conversation_id="c-aiko", author={"id": "u-aiko"}, text="thanks! and returns?"),
        make_event(id="e-stop-2", conversation_id="c-stop", author={"id": "u-stop"}, text="where is my order?"),
        make_event(id="e-start", conversation_id="c-stop-2", author={"id": "u-stop"}, text="START"),
        make_event(id="e-late-2", conversation_id="c-late", text="hello?", created_at=NOW.isoformat()),
    ]
    return [first, second]


def stored(client: redis.Redis, settings: Any, brands: dict[str, Any], monkeypatch: Any) -> dict[str, str]:
    """Decide ``events()`` as workers do (canonical job payloads, ingest's numbering first) at ``NOW``;
    every key left in Redis -> a digest of its type, masked value and TTL."""
    import worker.jobs as jobs
    import worker.pipeline as pipeline_module
    from worker.models import parse_event
    from worker.pipeline import Ordering, Pipeline
    from worker.queues import batch_queue
    from worker.store import Store

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return NOW if tz is None else NOW.astimezone(tz)

    monkeypatch.setattr(pipeline_module, "datetime", Clock)
    monkeypatch.setattr(jobs, "datetime", Clock)
    pipeline = Pipeline(brands)
    store = Store(client, settings.key_prefix)
    queue = batch_queue(client, settings)
    sla = jobs.sla_tracker(client, pipeline, settings, queue=queue)
    order = Ordering(queue_key=queue.key, park=lambda event, seq: False)
    for n, batch in enumerate(events()):
        payloads = json.loads(json.dumps([parse_event(e).model_dump(mode="json") for e in batch]))
        store.number([parse_event(e) for e in payloads])
        report = pipeline.process(payloads, store, job_id=f"job-{n}", sla=sla, order=order)
        assert not report.errors and not report.rejected and len(report.decided) == len(batch), report
        jobs.after_batch(store, sla)
    versions = {}
    for name, brand in brands.items():
        versions[json.dumps(brand.model_versions(), separators=(",", ":")).encode()] = b'"<models>"'
        versions[json.dumps(brand.policy_version).encode()] = b'"<policy>"'
    out = {}
    for key in sorted(client.scan_iter(count=1000)):
        kind = client.type(key).decode()
        if key.startswith(b"rq:"):  # RQ's jobs (the SLA steps scheduled): RQ's own clock in them; present is enough
            out[key.decode()] = kind
            continue
        if kind == "string":
            value: Any = [client.get(key)]
        elif kind == "hash":
            value = sorted(client.hgetall(key).items())
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = sorted(client.smembers(key))
        elif kind == "zset":
            value = [(m, repr(s)) for m, s in client.zrange(key, 0, -1, withscores=True)]
        else:  # stream: the entries' fields, not their ids (Redis's clock)
            value = [sorted(fields.items()) for _, fields in client.xrange(key)]
        ttl = client.ttl(key)
        text = repr(value).encode()
        text = _TIMINGS.sub(b'"timings":"<masked>"', text)
        for exact, placeholder in versions.items():
            text = text.replace(exact, placeholder)
        digest = hashlib.sha256(f"{kind} {round(ttl / 3600) if ttl > 0 else ttl} ".encode() + text).hexdigest()
        out[key.decode().removeprefix(settings.key_prefix)] = digest[:16]
    return out


def test_the_stored_bytes_of_a_fixed_event_set_are_unchanged(client, settings, brands, monkeypatch):
    found = stored(client, settings, brands, monkeypatch)
    expected = json.loads(GOLDEN.read_text())
    assert sorted(found) == sorted(expected)  # the same keys
    assert {k: v for k, v in found.items() if expected[k] != v} == {}
    # what the masks hide: every decision names the loaded brand's versions
    from worker.store import Store

    store = Store(client, settings.key_prefix)
    decisions = [d for d in store.all_decisions("demo-shop") if d is not None]
    assert len(decisions) == sum(map(len, events()))
    assert {d.policy_version for d in decisions} == {brands["demo-shop"].policy_version}
    assert all(d.model_versions == brands["demo-shop"].model_versions() for d in decisions)


if __name__ == "__main__":  # the golden file, from the checkout on PYTHONPATH (REDIS_URL's database is FLUSHED)
    import pytest

    sys.path.append(str(ROOT))
    from worker.brands import load_brands
    from worker.settings import Settings

    settings = Settings.from_env()
    connection = redis.Redis.from_url(settings.redis_url)
    connection.flushdb()
    with pytest.MonkeyPatch.context() as patch:
        found = stored(connection, settings, load_brands(settings), patch)
    connection.flushdb()
    print(json.dumps(found, indent=1, sort_keys=True))
