"""The recording HTTP server every stand-in builds on."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    at: float


@dataclass
class Scripted:
    """A scripted answer for the next request matching ``path`` (a prefix; None = any)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str | None = None


class StandIn:
    """Subclasses implement :meth:`answer`. ``script`` answers take precedence, in order."""

    name = "stand-in"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, delay: float = 0.0):
        self.script: deque[Scripted] = deque()
        self.requests: list[Recorded] = []
        self.delay = delay
        self._lock = threading.Lock()
        self._ids = 0
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stall)

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = None
                request = Recorded(
                    self.command,
                    split.path,
                    {k: v[-1] for k, v in parse_qs(split.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    raw,
                    parsed,
                    time.time(),
                )
                scripted = standin._next(split.path)
                delay = scripted.delay if scripted else standin.delay
                if delay:
                    time.sleep(delay)
                with standin._lock:
                    standin.requests.append(request)
                if scripted is not None:
                    status, body, headers = scripted.status, scripted.body, scripted.headers
                else:
                    status, body = standin.answer(request)
                    headers = {}
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        # a short poll: shutdown() waits for the serving loop to look (the default 0.5 s made every stop slow)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def new_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}{self._ids:06d}"

    def _next(self, path: str) -> Scripted | None:
        with self._lock:
            for i, item in enumerate(self.script):
                if item.path is None or path.startswith(item.path):
                    del self.script[i]
                    return item
        return None

    def answer(self, request: Recorded) -> tuple[int, Any]:
        return 404, {"error": {"message": f"no route for {request.method} {request.path}"}}

    def received(self, path_prefix: str = "", method: str = "POST") -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def start(self) -> "StandIn":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "StandIn":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
