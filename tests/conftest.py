"""Shared fixtures. Redis is always real: REDIS_URL when set, else an embedded redis-server.

The test database is flushed before each test that uses Redis, so point
REDIS_URL at a scratch database (CI uses redis://127.0.0.1:6379/15).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from worker.brands import Brand, load_brands
from worker.connection import EmbeddedRedis
from worker.settings import REPO_ROOT, Settings

SHARED = Path(os.environ.get("REPLYGUARD_SHARED", REPO_ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False).start()
    yield server.url
    server.stop()


@pytest.fixture()
def client(redis_url: str) -> redis.Redis:
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    return connection


@pytest.fixture()
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(redis_url=redis_url, home=tmp_path / "home")


@pytest.fixture(scope="session")
def brands() -> dict[str, Brand]:
    return load_brands(Settings(redis_url="redis://unused"))


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "clinc150.jsonl").exists():
        pytest.skip(f"needs the shared datasets at {SHARED} (absent in a user's clone; CI has them)")
    return SHARED


BASE_EVENT: dict[str, Any] = {
    "id": "m-1",
    "brand": "demo-shop",
    "platform": "instagram",
    "kind": "dm",
    "conversation_id": "c-1",
    "author": {"id": "u-1", "name": "Aiko Tanaka", "locale": "en-US", "tags": []},
    "text": "where is my order KM-204815?",
    "created_at": "2026-11-24T10:00:00+09:00",  # Tuesday, inside business hours
    "metadata": {},
}


def make_event(**changes: Any) -> dict[str, Any]:
    """A valid demo-shop event with ``changes`` applied (``author`` is merged)."""
    event = copy.deepcopy(BASE_EVENT)
    author = changes.pop("author", None)
    event.update(changes)
    if author:
        event["author"].update(author)
    if event["kind"] == "comment" and "post_id" not in event:
        event["post_id"] = "post-1"
    return event


@pytest.fixture()
def serve(client: redis.Redis, redis_url: str) -> Iterator["ServeProcess"]:
    """``replyguard serve`` as a real process on a free loopback port, ready (``/readyz`` is 200).

    For other environment variables or arguments use ``tests.serve_process.ServeProcess`` directly.
    """
    from tests.serve_process import ServeProcess

    with ServeProcess(redis_url) as process:
        yield process
