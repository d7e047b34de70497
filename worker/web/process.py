"""Run ``replyguard serve`` (and ``replyguard worker``) as real processes on loopback: for the demo,
the benchmarks and the tests.

    with ServeProcess(redis_url, env={"META_APP_SECRET": "s3cret"}) as serve, WorkerProcess(redis_url):
        httpx.get(serve.url + "/readyz")

The process gets the current environment plus ``env``; its output goes to
``serve.log_path`` (shown when start-up fails). ``start()`` returns once
``/readyz`` answers 200.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from worker.settings import REPO_ROOT


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CliProcess:
    """A long-running ``replyguard <command>`` as a real process, stopped with SIGTERM (then SIGKILL
    after ``stop_timeout``); its output goes to ``log_path``."""

    def __init__(
        self,
        redis_url: str,
        *,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        command: str = "worker",
        stop_timeout: float = 20.0,
    ):
        self.redis_url = redis_url
        self.env = dict(env or {})
        self.args = list(args or [])
        self.command = command
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix=f"replyguard-{command}-", suffix=".log")[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _launch(self, extra: list[str]) -> subprocess.Popen[bytes]:
        env = {**os.environ, "REDIS_URL": self.redis_url, "PYTHONUNBUFFERED": "1", **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", self.command, *extra, *self.args],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self.process

    def start(self) -> "CliProcess":
        self._launch([])
        return self

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode

    def __enter__(self) -> "CliProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)


class ServeProcess(CliProcess):
    """``replyguard serve`` on a free loopback port; ``start()`` returns once ``/readyz`` answers 200."""

    def __init__(
        self,
        redis_url: str,
        *,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        startup_timeout: float = 60.0,
    ):
        super().__init__(redis_url, env=env, args=args, command="serve", stop_timeout=15.0)
        self.startup_timeout = startup_timeout
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ServeProcess":
        for _attempt in range(3):  # a free port can be taken between probing and binding
            self.port = free_port()
            self._launch(["--host", "127.0.0.1", "--port", str(self.port)])
            if self._wait_ready():
                return self
            if "address already in use" not in self.log().lower():
                break
        self.stop()
        raise RuntimeError(f"replyguard serve did not become ready; its log:\n{self.log()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return False

    def __enter__(self) -> "ServeProcess":
        return self.start()


class WorkerProcess(CliProcess):
    """``replyguard worker`` (or another long-running subcommand, ``command``) as a real process,
    stopped with SIGTERM (RQ's warm shutdown)."""

    def start(self) -> "WorkerProcess":
        self._launch([])
        return self

    def __enter__(self) -> "WorkerProcess":
        return self.start()
