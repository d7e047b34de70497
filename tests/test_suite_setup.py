"""The test suite's own set-up: each pytest-xdist worker gets its own Redis database."""

from __future__ import annotations

import os

import pytest
import redis

from tests import conftest
from tests.conftest import worker_redis_url


def test_each_xdist_worker_gets_the_next_database_on_the_same_server():
    assert worker_redis_url("redis://127.0.0.1:6379/1", "gw0", 2) == "redis://127.0.0.1:6379/1"
    assert worker_redis_url("redis://127.0.0.1:6379/1", "gw1", 2) == "redis://127.0.0.1:6379/2"
    assert worker_redis_url("redis://127.0.0.1:6379", "gw1", 2) == "redis://127.0.0.1:6379/1"
    assert (
        worker_redis_url("rediss://:pw@127.0.0.1:1/3?socket_timeout=5", "gw2", 3)
        == "rediss://:pw@127.0.0.1:1/5?socket_timeout=5"
    )
    assert worker_redis_url("unix:///nowhere/r.sock?db=2", "gw1", 2) == "unix:///nowhere/r.sock?db=3"
    assert worker_redis_url("unix:///nowhere/r.sock", "gw1", 2) == "unix:///nowhere/r.sock?db=1"


def test_workers_past_the_last_database_stop_the_run_with_what_to_do():
    with pytest.raises(pytest.UsageError, match=r"databases 15-16, but the server has 16 .*database 14 or lower"):
        worker_redis_url("unix:///nowhere/r.sock?db=15", "gw0", 2)  # no server there: Redis's default of 16


def test_this_worker_uses_its_own_database(redis_url):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        pytest.skip("not running under pytest-xdist")
    if not conftest.BASE_REDIS_URL:
        assert redis_url.startswith("unix://") and worker in redis_url  # an embedded server of its own
        return
    assert os.environ["REDIS_URL"] == redis_url  # subprocesses and Settings() see the worker's database
    base = redis.ConnectionPool.from_url(conftest.BASE_REDIS_URL).connection_kwargs.get("db") or 0
    db = redis.ConnectionPool.from_url(redis_url).connection_kwargs.get("db") or 0
    assert db == base + int(worker.removeprefix("gw"))
