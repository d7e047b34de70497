"""RQ resolves replyguard's serializer without its runtime Protocol check (``queues.resolve_serializer``,
in each RQ module that resolves one): the same serializer, or the same error, as RQ's own for anything
given, and RQ's jobs, queues and registries made with JSONSerializer get it without the check."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from rq import serializers
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import DefaultSerializer, JSONSerializer

from worker import queues
from worker.queues import batch_queue, enqueue_events
from worker.settings import Settings
from tests.conftest import make_event
from worker.models import parse_event


class Custom:
    @staticmethod
    def dumps(obj: Any) -> bytes:
        return repr(obj).encode()

    @staticmethod
    def loads(data: bytes) -> Any:
        return data


class NoLoads:
    @staticmethod
    def dumps(obj: Any) -> bytes:
        return b""


def outcome(resolve: Any, given: Any) -> Any:
    try:
        return resolve(given)
    except Exception as exc:  # noqa: BLE001 - compared as type and message
        return type(exc), str(exc)


@pytest.mark.parametrize(
    "given", [None, "", "json", "pickle", JSONSerializer, DefaultSerializer, Custom, Custom(), NoLoads, "no.such.path"]
)
def test_the_same_serializer_or_error_as_rqs(given: Any) -> None:
    assert outcome(queues.resolve_serializer, given) == outcome(serializers.resolve_serializer, given)


def test_every_resolving_rq_module_uses_it() -> None:
    for module in queues.RESOLVING_MODULES:
        assert module.resolve_serializer is queues.resolve_serializer, module.__name__


def test_rq_objects_get_json_without_the_protocol_check(
    client: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = []
    meta = type(serializers.Serializer)
    original = meta.__instancecheck__

    def counted(cls: Any, instance: Any) -> bool:
        if cls is serializers.Serializer:
            checks.append(instance)
        return original(cls, instance)

    monkeypatch.setattr(meta, "__instancecheck__", counted)
    assert isinstance(JSONSerializer, serializers.Serializer) and checks  # the check is counted
    checks.clear()
    queue = batch_queue(client, settings)
    job = enqueue_events(queue, [parse_event(make_event(id="ser-1"))], "ser-job")
    fetched = Job.fetch(job.id, connection=client, serializer=JSONSerializer)
    registry = StartedJobRegistry(queue.name, connection=client, serializer=JSONSerializer)
    assert queue.serializer is job.serializer is fetched.serializer is registry.serializer is JSONSerializer
    assert checks == []
