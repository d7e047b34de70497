"""A small OpenAI-compatible HTTP server on loopback: a stand-in, not a language model.

Tests drive the real ``openai`` client over real HTTP against it, scripting the
answers they need (good and bad rewrites, 429 with Retry-After, 5xx, slow
answers, malformed or schema-violating JSON). ``replyguard demo --llm standin``
uses its default behaviour, which is rule-based and clearly labelled: it adds a
personal opening line to the approved reply, answers structured-output requests
by keyword matching, and naively "obeys" messages that ask for discounts or
links, so the demo shows guardrails refusing such drafts.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/moderations``, ``GET /v1/models``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable
from typing import Any

MODEL = "replyguard-standin"


@dataclass
class Scripted:
    """One scripted answer: an HTTP status, a JSON body or raw text, headers, and a delay."""

    status: int = 200
    content: str | None = None  # chat completion message content
    reply: Callable[[dict[str, Any]], str] | None = None  # content computed from the request's DATA
    body: Any = None  # a whole JSON body instead of a completion
    raw: str | None = None  # raw (possibly malformed) response text
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str | None = None  # only for requests to this path


class StandInLLM:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0):
        self.script: deque[Scripted] = deque()
        self.requests: list[dict[str, Any]] = []
        self.up = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}))
                else:
                    self._send(404, json.dumps({"error": {"message": "not found"}}))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append({"path": self.path, "headers": dict(self.headers), "json": payload})
                if not server.up:
                    # "Connection: close" (which also ends this connection here): a client told so never
                    # sends its next request on this connection; without it, a client that reused the
                    # connection before this thread closed it got a disconnect (connection_error), not 503
                    self._send(503, json.dumps({"error": {"message": "down"}}), {"Connection": "close"})
                    return
                scripted = server._next(self.path)
                if scripted is not None:
                    if scripted.delay:
                        time.sleep(scripted.delay)
                    if scripted.raw is not None:
                        self._send(scripted.status, scripted.raw, scripted.headers)
                        return
                    if scripted.body is not None or scripted.status != 200:
                        body = scripted.body if scripted.body is not None else {"error": {"message": "scripted"}}
                        self._send(scripted.status, json.dumps(body), scripted.headers)
                        return
                    content = scripted.reply(_data(payload)) if scripted.reply else (scripted.content or "")
                    self._send(200, json.dumps(_completion(payload, content)), scripted.headers)
                    return
                if self.path.rstrip("/").endswith("/moderations"):
                    self._send(200, json.dumps(_moderation(payload)))
                elif self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(200, json.dumps(_completion(payload, default_answer(payload))))
                else:
                    self._send(404, json.dumps({"error": {"message": "not found"}}))

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    def _next(self, path: str) -> Scripted | None:
        for i, item in enumerate(self.script):
            if item.path is None or path.rstrip("/").endswith(item.path):
                del self.script[i]
                return item
        return None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host if isinstance(host, str) else host.decode()}:{port}/v1"

    def start(self) -> "StandInLLM":
        # a short poll: shutdown() waits for the serving loop to look (the default 0.5 s made every stop slow)
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="standin-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "StandInLLM":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _completion(request: dict[str, Any], content: str) -> dict[str, Any]:
    prompt_chars = sum(len(str(m.get("content", ""))) for m in request.get("messages", []))
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model") or MODEL,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {
            "prompt_tokens": prompt_chars // 4 + 1,
            "completion_tokens": len(content) // 4 + 1,
            "total_tokens": prompt_chars // 4 + len(content) // 4 + 2,
        },
    }


def _data(request: dict[str, Any]) -> dict[str, Any]:
    for message in request.get("messages", []):
        content = str(message.get("content", ""))
        if message.get("role") == "user" and "{" in content:
            try:
                return json.loads(content[content.index("{") :])
            except ValueError:
                return {}
    return {}


_GREEDY = re.compile(r"(?i)discount|coupon|code|ignore (all|your|previous)|割引|クーポン")


def default_answer(request: dict[str, Any]) -> str:
    """The stand-in's rule-based behaviour (see the module docstring)."""
    data = _data(request)
    if request.get("response_format", {}).get("type") == "json_schema":
        message = str(data.get("message", "")).lower()
        best, best_hits = "out_of_scope", 0
        for candidate in data.get("candidates", []):
            words = re.findall(r"[a-z]{4,}", str(candidate.get("description", "")).lower() + " " + candidate["intent"])
            hits = sum(w in message for w in words)
            if hits > best_hits:
                best, best_hits = candidate["intent"], hits
        return json.dumps(
            {"intent": best, "confidence": 0.9 if best_hits else 0.6, "reason": "keyword match (stand-in)"}
        )
    reply = str(data.get("approved_reply", ""))
    name = str(data.get("customer_name") or "").split(" ")[0]
    message = str(data.get("customer_message", ""))
    if _GREEDY.search(message):  # a naive model that follows the customer's instructions
        return "Of course! Here is your code SAVE90 for 90% off: https://deals.example/save90 " + reply
    if data.get("language") == "ja":
        return "ご連絡ありがとうございます。" + reply
    if reply.startswith("Hi") and "\n\n" in reply:
        greeting, rest = reply.split("\n\n", 1)
        return f"{greeting} Happy to help with that!\n\n{rest}"
    return f"Hi {name}, happy to help! {reply}" if name else f"Happy to help! {reply}"


def _moderation(request: dict[str, Any]) -> dict[str, Any]:
    text = str(request.get("input", "")).lower()
    hateful = any(w in text for w in ("subhuman", "vermin", "go back to your", "filth"))
    scores = {"hate": 0.91 if hateful else 0.02, "harassment": 0.8 if hateful else 0.03, "violence": 0.01}
    return {
        "id": "modr-standin",
        "model": "standin-moderation",
        "results": [
            {"flagged": hateful, "categories": {k: v >= 0.5 for k, v in scores.items()}, "category_scores": scores}
        ],
    }
