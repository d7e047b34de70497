"""Fault injection for the reliability tests and bench/reliability.py: real ``replyguard worker``
processes, their RQ work-horses, a private redis-server that can be killed and restarted, and a
scan of every value in a Redis database (decoded, including RQ's zlib-compressed job payloads).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server on 127.0.0.1:<free port> with an append-only file, for killing."""

    def __init__(self, directory: Path, *, port: int | None = None, binary: str | None = None):
        """``binary``: the redis-server to run (default: the one on PATH, else the embedded one)."""
        self.binary = binary
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    #: how long start() waits for the server to answer
    start_seconds = 15.0

    def launcher(self) -> list[str]:
        """What the server's command line is run under (nothing: the binary itself)."""
        return []

    def start(self) -> "RedisServer":
        from worker.connection import redis_server_binary

        binary = self.binary or shutil.which("redis-server") or redis_server_binary()
        self.proc = subprocess.Popen(
            [
                *self.launcher(),
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + self.start_seconds
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start (see {self.directory}/redis.log)")

    def kill(self) -> None:
        """SIGKILL: the process dies without a chance to save (the AOF already has what it wrote)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


class Workers:
    """``replyguard worker`` processes, each in its own session (so a kill hits its whole group)."""

    def __init__(self, redis_url: str, logdir: Path, env: dict[str, str] | None = None, root: Path = ROOT):
        """``root``: the checkout whose code the workers run (another commit's worktree, for a before/after)."""
        self.root = Path(root)
        self.redis_url = redis_url
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, count: int = 1, *args: str) -> list[subprocess.Popen[bytes]]:
        started = []
        for _ in range(count):
            n = len(self.procs)
            log = open(self.logdir / f"worker-{n}.log", "wb")  # noqa: SIM115 - closed with the process
            proc = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", "worker", *args],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.procs.append(proc)
            started.append(proc)
        return started

    def wait_registered(
        self, client: redis.Redis, count: int, timeout: float = 120, *, registered: int | None = None
    ) -> None:
        """Until ``count`` processes started here are alive and ``registered`` (default: ``count``)
        RQ workers are registered (``--processes N`` registers N per process)."""
        from rq import Worker

        deadline = time.monotonic() + timeout
        registered = count if registered is None else registered
        while time.monotonic() < deadline:
            alive = [p for p in self.procs if p.poll() is None]
            if len(Worker.all(connection=client)) >= registered and len(alive) >= count:
                return
            dead = [p for p in self.procs if p.poll() is not None]
            if dead and len(alive) < count:
                raise RuntimeError(f"a worker exited early: {self.logs()[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"{count} workers did not register in {timeout}s: {self.logs()[-3000:]}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the live workers and the work-horses they have reaped."""
        total = 0
        for proc in self.alive():
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        return total / os.sysconf("SC_CLK_TCK")

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """kill -9 the worker and everything in its process group (its scheduler), and its horse."""
        horse = horse_of(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        if horse:
            with_ignored(os.killpg, horse, signal.SIGKILL)
        proc.wait(10)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logdir.glob("worker-*.log")))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with_ignored(os.killpg, proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with_ignored(os.killpg, proc.pid, signal.SIGKILL)
                proc.wait(5)
        for proc in self.procs:  # horses left behind by a killed worker
            with_ignored(os.killpg, proc.pid, signal.SIGKILL)


def with_ignored(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except (ProcessLookupError, PermissionError):
        pass


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def horse_of(pid: int) -> int | None:
    """The RQ work-horse of worker ``pid``: the child that leads its own process group."""
    for child in children(pid):
        try:
            if os.getpgid(child) == child:
                return child
        except ProcessLookupError:
            continue
    return None


# -- reading everything in a Redis database -------------------------------------------


def _decoded(raw: bytes) -> str:
    """A value as text: zlib-decompressed when it is compressed (RQ's job payloads), else UTF-8."""
    try:
        raw = zlib.decompress(raw)
    except zlib.error:
        pass
    return raw.decode("utf-8", errors="replace")


def every_value(client: redis.Redis) -> Iterator[tuple[str, str]]:
    """(key, decoded text) for every key name, member, field and value of every type."""
    for key in client.scan_iter(count=1000):
        name = key.decode("utf-8", errors="replace")
        kind = client.type(key).decode()
        yield name, name
        if kind == "string":
            yield name, _decoded(client.get(key) or b"")
        elif kind == "hash":
            for field, value in client.hgetall(key).items():
                yield name, _decoded(field)
                yield name, _decoded(value)
        elif kind == "list":
            for value in client.lrange(key, 0, -1):
                yield name, _decoded(value)
        elif kind == "set":
            for value in client.smembers(key):
                yield name, _decoded(value)
        elif kind == "zset":
            for value, _ in client.zrange(key, 0, -1, withscores=True):
                yield name, _decoded(value)
        elif kind == "stream":
            for _, fields in client.xrange(key):
                for field, value in fields.items():
                    yield name, _decoded(field)
                    yield name, _decoded(value)
        else:
            raise AssertionError(f"{name}: unexpected type {kind}")


def find_in_redis(client: redis.Redis, needles: list[str]) -> list[tuple[str, str]]:
    """(key, needle) for every needle found anywhere in the database (case-insensitive).

    JSON escapes (``\\u30a2``) are decoded before matching, so Japanese text written with
    ``ensure_ascii`` is found too.
    """
    found = []
    lowered = [n.lower() for n in needles]
    for key, text in every_value(client):
        variants = [text.lower()]
        if "\\u" in text:
            try:
                variants.append(json.loads(json.dumps(text).replace("\\\\u", "\\u")).lower())
            except ValueError:
                pass
        for needle in lowered:
            if any(needle in v for v in variants):
                found.append((key, needle))
    return found


# -- traffic ------------------------------------------------------------------------------

TEXTS = [
    "where is my order KM-{n:06d}?",
    "Hi, when will my order KM-{n:06d} arrive?",
    "注文番号KM-{n:06d}の荷物はいつ届きますか？",
    "how long does shipping take to Osaka?",
    "can I return the shoes I bought last week?",
    "返品はできますか？",
]


def traffic(
    count: int, *, conversations: int | None = None, prefix: str = "m", brand: str = "demo-shop"
) -> list[dict[str, Any]]:
    """``count`` valid demo-shop DMs; with ``conversations``, spread round-robin over that many
    conversations (one author each), in order of ``created_at`` within each conversation."""
    events = []
    for i in range(count):
        conv = i % conversations if conversations else i
        minute = i // (conversations or count)
        events.append(
            {
                "id": f"{prefix}-{i}",
                "brand": brand,
                "platform": "instagram",
                "kind": "dm",
                "conversation_id": f"c-{prefix}-{conv}",
                "post_id": None,
                "author": {"id": f"u-{prefix}-{conv}", "name": "Aiko Tanaka", "locale": "en-US", "tags": []},
                "text": TEXTS[i % len(TEXTS)].format(n=100000 + i),
                "created_at": f"2026-11-24T10:{minute // 60 % 60:02d}:{minute % 60:02d}+09:00",
                "metadata": {},
            }
        )
    return events


def outbox_replies(client: redis.Redis, key: str) -> list[str]:
    """Message ids of the reply entries in an outbox stream."""
    out = []
    for _, fields in client.xrange(key):
        payload = json.loads(fields[b"payload"])
        if payload.get("type") == "reply":
            out.append(payload["message_id"])
    return out


def wait_for(predicate: Any, timeout: float, what: str, *, every: float = 0.1) -> Any:
    """Poll ``predicate()`` until it returns something truthy (returned) or ``timeout`` seconds pass
    (AssertionError naming ``what``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


# -- conversations made to race (per-conversation order) ----------------------------------

ORDER_BRAND = "demo-shop"


def _event(message_id: str, conversation: str, author: str, text: str, second: int) -> dict[str, Any]:
    return {
        "id": message_id,
        "brand": ORDER_BRAND,
        "platform": "instagram",
        "kind": "dm",
        "conversation_id": conversation,
        "post_id": None,
        "author": {"id": author, "name": "Aiko Tanaka", "locale": "en-US", "tags": []},
        "text": text,
        "created_at": f"2026-11-24T10:00:{second:02d}+09:00",
        "metadata": {},
    }


def racing_pairs(
    hellos: int, stops: int, *, split: int = 0
) -> tuple[list[dict[str, Any]], list[tuple[str, str]], list[tuple[str, str]]]:
    """(events, hello pairs, stop pairs): pair = (first id, second id). With ``split`` = a batch size,
    the first messages of ``split`` pairs come before their second messages, so each pair spans
    two adjacent batches; otherwise a pair's messages are adjacent."""
    firsts, seconds, hello, stop = [], [], [], []
    for i in range(hellos):
        a = _event(f"h{i}-a", f"c-h{i}", f"u-h{i}", f"where is my order KM-{200000 + i}?", 0)
        b = _event(f"h{i}-b", f"c-h{i}", f"u-h{i}", "how long does shipping take to Osaka?", 1)
        firsts.append(a)
        seconds.append(b)
        hello.append((a["id"], b["id"]))
    for i in range(stops):
        a = _event(f"s{i}-a", f"c-s{i}", f"u-s{i}", "STOP", 0)
        b = _event(f"s{i}-b", f"c-s{i}", f"u-s{i}", f"where is my order KM-{300000 + i}?", 1)
        firsts.append(a)
        seconds.append(b)
        stop.append((a["id"], b["id"]))
    events: list[dict[str, Any]] = []
    if split:
        for start in range(0, len(firsts), split):
            events += firsts[start : start + split] + seconds[start : start + split]
    else:
        for a, b in zip(firsts, seconds, strict=True):
            events += [a, b]
    return events, hello, stop


def check_order(
    client: Any, store: Any, events: list[dict[str, Any]], hello: list[tuple[str, str]], stop: list[tuple[str, str]]
) -> dict[str, list[str]]:
    """Every way the run broke per-conversation order or exactly-once (empty lists: none)."""
    greetings: dict[str, list[str]] = {}
    for _, fields in client.xrange(store.keys.outbox(ORDER_BRAND)):
        payload = json.loads(fields[b"payload"])
        if payload.get("type") == "reply" and any(t.startswith("welcome") for t in payload.get("templates", [])):
            greetings.setdefault(payload["conversation_id"], []).append(payload["message_id"])
    replies = outbox_replies(client, store.keys.outbox(ORDER_BRAND))
    keys = [(ORDER_BRAND, e["id"]) for e in events]
    decisions = dict(zip((m for _, m in keys), store.decisions(keys), strict=True))
    problems: dict[str, list[str]] = {
        "undecided": [m for m, d in decisions.items() if d is None],
        "greeted_twice": [c for c, ids in greetings.items() if len(ids) > 1],
        "greeted_not_first": [],
        "answered_after_stop": [],
        "out_of_order": [],
        "replied_twice": sorted({m for m in replies if replies.count(m) > 1}),
    }
    stats = store.stats(ORDER_BRAND)
    if stats.get("decisions") != len(events):
        problems["decided_twice"] = [f"{stats.get('decisions')} decisions for {len(events)} messages"]
    for first, second in hello + stop:
        a, b = decisions[first], decisions[second]
        if a is None or b is None:
            continue
        if not b.decided_at >= a.decided_at or b.context.first_contact:
            problems["out_of_order"].append(second)
        history = [h["message_id"] for h in store.history(ORDER_BRAND, a.conversation_id) if h["role"] == "customer"]
        if history != [first, second]:
            problems["out_of_order"].append(f"{a.conversation_id}: {history}")
    for first, _ in hello:
        conversation = f"c-{first.split('-')[0]}"
        if greetings.get(conversation, [first]) != [first] and conversation not in problems["greeted_twice"]:
            problems["greeted_not_first"].append(conversation)
    for _, second in stop:
        b = decisions[second]
        if b is not None and (b.reply or not b.context.opted_out):
            problems["answered_after_stop"].append(second)
    return problems


def taken_up_again(client: redis.Redis, job_id: str, killed: tuple[str | None, int | None]) -> bool:
    """True once the batch of a killed worker is taken up again: retried (RQ counts it: the recovery
    sweep re-queued a started batch), back on its queue (the sweep re-queued a batch taken but never
    started) or started or finished by another worker (the killed one never writes again)."""
    from rq.job import Job, JobStatus
    from rq.serializers import JSONSerializer

    job = Job.fetch(job_id, connection=client, serializer=JSONSerializer)
    worker_name, retries_left = killed
    if job.retries_left != retries_left:
        return True
    status = job.get_status()
    if status in (JobStatus.STARTED, JobStatus.FINISHED):
        return job.worker_name != worker_name
    return status == JobStatus.QUEUED and client.lpos(f"rq:queue:{job.origin}", job_id) is not None
