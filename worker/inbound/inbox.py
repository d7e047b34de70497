"""The durable inbox: what ``replyguard serve`` has accepted but not yet enqueued for deciding.

A webhook or ``POST /v1/events`` request is answered only after its body is in the
Redis stream ``{p}:inbox`` (one XADD, well under a millisecond), so a crash of the
service after the answer loses nothing, and answering never waits for batching.
:class:`InboxConsumer` reads the stream with the
consumer group ``ingest``, turns each entry into events (``kind=events``: already
validated events; ``kind=meta``: a verified Meta webhook body, adapted by
:mod:`worker.inbound.meta`), hands them to the same batching
:class:`~worker.ingest.Ingestor` as ``replyguard ingest``, records receipts, and
only then XACKs and deletes the entries (raw bodies hold personal data: they do
not linger). Entries a dead consumer left pending are taken over with XAUTOCLAIM.

``replyguard serve`` runs the consumer in a child process (:class:`InboxProcess`): parsing
and validating events is CPU work, and in the web process it would hold the GIL while
requests wait to be acknowledged. The child loads only the policies (routing, no models
and no secrets), restarts if it dies, and exits when its parent does.

Reprocessing an entry is harmless: a (brand, message id) already decided is
skipped, and persisting a decision is idempotent, so a platform's retry, or an
entry read twice, still yields one decision and one reply.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:
    import redis.asyncio as aioredis

from worker import bounded_json, defaults
from worker.connection import Backoff
from worker.exceptions import InvalidEvent, StoreError
from worker.inbound import meta
from worker.inbound.receipts import record_receipts
from worker.ingest import Ingestor
from worker.settings import Settings
from worker.store import Keys, Store

log = logging.getLogger("replyguard.inbox")

GROUP = "ingest"


def _entry(kind: str, body: bytes, fields: dict[str, str]) -> Any:
    return {"kind": kind, "body": body, "received_ms": str(int(time.time() * 1000)), **fields}


def append(connection: redis.Redis, keys: Keys, kind: str, body: bytes, **fields: str) -> str:
    """Write one accepted request to the inbox; returns the entry id. Raises StoreError."""
    try:
        entry: Any = connection.xadd(keys.inbox, _entry(kind, body, fields))
    except redis.RedisError as exc:
        raise StoreError(f"cannot write to the inbox: {exc}") from exc
    return entry.decode() if isinstance(entry, bytes) else str(entry)


async def append_async(connection: "aioredis.Redis", keys: Keys, kind: str, body: bytes, **fields: str) -> str:
    """:func:`append` on an asyncio client (the web service's event loop: no thread hop). Raises StoreError."""
    try:
        entry: Any = await connection.xadd(keys.inbox, _entry(kind, body, fields))
    except redis.RedisError as exc:
        raise StoreError(f"cannot write to the inbox: {exc}") from exc
    return entry.decode() if isinstance(entry, bytes) else str(entry)


class InboxConsumer:
    """Background thread: inbox entries -> Ingestor (batched RQ jobs) and receipts."""

    def __init__(
        self,
        connection: redis.Redis,
        settings: Settings,
        routing: meta.Routing,
        secret_env_of: Callable[[str, str], str | None],
    ):
        """``secret_env_of(brand, platform)`` names the app-secret variable of that brand's channel."""
        self.connection = connection
        self.settings = settings
        self.routing = routing
        self.secret_env_of = secret_env_of
        self.store = Store(connection, settings.key_prefix)
        self.keys = self.store.keys
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_claim = 0.0
        self.counts: dict[str, int] = {}

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="replyguard-inbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop -----------------------------------------------------------------------

    def run_until(self, stop: Callable[[], bool]) -> None:
        """Consume in the calling thread until ``stop()`` is true."""
        self._stop_check = stop
        self._run()

    def _ensure_group(self) -> None:
        try:
            self.connection.xgroup_create(self.keys.inbox, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _stopping(self) -> bool:
        check = getattr(self, "_stop_check", None)
        return self._stop.is_set() or bool(check and check())

    def _run(self) -> None:
        """Poll until stopped. Redis going away is waited out with backoff (entries in hand stay
        pending and are claimed again: reprocessing is harmless); nothing ends the loop but a stop."""
        group_ready = False
        backoff = Backoff()
        while not self._stopping():
            try:
                if not group_ready:
                    self._ensure_group()
                    group_ready = True
                self.poll(block_ms=defaults.INBOX_BLOCK_MS)
                if backoff.attempts:
                    log.warning("inbox: Redis is back; consuming again")
                    backoff.reset()
                continue
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    group_ready = False  # the stream was deleted (FLUSHDB); recreate
                    continue
                log.error("inbox: Redis refused a command: %s", exc)
            except (redis.RedisError, StoreError) as exc:
                group_ready = False
                delay = backoff.next_delay()
                log.warning("inbox: Redis unavailable (%s); retrying in %.1f s", exc, delay)
                self._wait(delay)
                continue
            except Exception:  # noqa: BLE001 - the thread must survive anything one entry does
                log.exception("inbox: unexpected error; retrying")
            self._wait(1.0)

    def _wait(self, seconds: float) -> None:
        """Sleep ``seconds``, waking early when stopped."""
        deadline = time.monotonic() + seconds
        while not self._stopping() and time.monotonic() < deadline:
            self._stop.wait(min(0.25, deadline - time.monotonic()))

    def poll(self, block_ms: int = 0) -> int:
        """Process what is waiting (stale entries of dead consumers first). Returns entries processed."""
        entries: list[tuple[bytes, dict[bytes, bytes]]] = []
        now = time.monotonic()
        if now - self._last_claim > defaults.INBOX_CLAIM_IDLE_MS / 2000:
            self._last_claim = now
            claimed: Any = self.connection.xautoclaim(
                self.keys.inbox,
                GROUP,
                self.name,
                min_idle_time=defaults.INBOX_CLAIM_IDLE_MS,
                start_id="0-0",
                count=defaults.INBOX_READ_COUNT,
            )
            entries.extend(e for e in claimed[1] if e[1])
        if not entries:
            answer: Any = self.connection.xreadgroup(
                GROUP, self.name, {self.keys.inbox: ">"}, count=defaults.INBOX_READ_COUNT, block=block_ms or None
            )
            for _stream, items in answer or []:
                entries.extend(items)
        if entries:
            self._process(entries)
        return len(entries)

    def _process(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        ingestor = Ingestor(self.connection, self.settings)
        receipts: list[meta.Receipt] = []
        try:
            for entry_id, fields in entries:
                source = f"inbox {entry_id.decode()}"
                for event, where in self._events(fields, source, receipts):
                    try:
                        ingestor.submit(event, where)
                    except InvalidEvent as exc:
                        self._count("invalid")
                        self.store.reject(event, str(exc), where)
            ingestor.close()
        except BaseException:
            ingestor.__exit__(StoreError, None, None)
            raise
        record_receipts(self.connection, self.keys, receipts)
        self._count("entries", len(entries))
        self._count("events", len(ingestor.report.accepted))
        self._count("repeated", len(ingestor.report.skipped))
        self._count("receipts", len(receipts))
        ids = [e[0] for e in entries]
        pipe = self.connection.pipeline(transaction=True)
        pipe.xack(self.keys.inbox, GROUP, *ids)
        pipe.xdel(self.keys.inbox, *ids)
        for name, n in self.counts.items():
            if n:
                pipe.hincrby(self.keys.inbox_stats, name, n)
        pipe.execute()
        self.counts.clear()

    def _count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def _events(self, fields: dict[bytes, bytes], source: str, receipts: list[meta.Receipt]) -> list[tuple[Any, str]]:
        kind = fields.get(b"kind", b"").decode()
        body = fields.get(b"body", b"")
        if kind == "events":
            return [(event, f"{source} event {i}") for i, event in enumerate(json.loads(body))]
        if kind == "meta":
            return self._meta(body, fields, source, receipts)
        self.store.reject(None, f"unknown inbox entry kind {kind!r}", source)
        return []

    def _meta(
        self, body: bytes, fields: dict[bytes, bytes], source: str, receipts: list[meta.Receipt]
    ) -> list[tuple[Any, str]]:
        """A verified Meta body: parse (bounded), adapt, keep only what the signing app may speak for."""
        secret_env = fields.get(b"secret_env", b"").decode()
        received = datetime.fromtimestamp(int(fields.get(b"received_ms", b"0")) / 1000, tz=timezone.utc)
        try:
            text = body.decode("utf-8")
            problem = bounded_json.depth_problem(text, defaults.MAX_WEBHOOK_JSON_DEPTH)
            if problem is not None:
                raise ValueError(str(problem))
            payload = bounded_json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            self._count("malformed")
            self.store.reject(None, f"Meta webhook body is not valid JSON: {exc}", source)
            return []
        adapted = meta.adapt(payload, self.routing, received)
        for reason, detail in adapted.dropped:
            self._count(f"dropped:{reason}")
            log.debug("inbox %s: dropped (%s) %s", source, reason, detail)
        events = []
        for i, event in enumerate(adapted.events):
            if self.secret_env_of(event["brand"], event["platform"]) != secret_env:
                self._count("dropped:wrong_app")
                self.store.reject(
                    None,
                    f"signed by the app of {secret_env}, which brand {event['brand']!r} "
                    f"does not use for {event['platform']}",
                    source,
                )
                continue
            events.append((event, f"{source} meta event {i}"))
        receipts.extend(r for r in adapted.receipts if self.secret_env_of(r.brand, r.platform) == secret_env)
        return events


# -- the consumer as a child process of ``replyguard serve`` ---------------------------------------


def _consume(settings_json: str, stop: Any, parent_pid: int) -> None:
    """Child process entry point: load the policies, connect, consume until told to stop."""
    from worker.connection import connect
    from worker.inbound.channels import inbound_auth
    from worker.policy import load_policies

    from worker.privacy import redact

    redact.install()  # a spawned child: the CLI's log redaction is not inherited
    settings = Settings.model_validate_json(settings_json)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    auth = inbound_auth(load_policies(settings.policies_dir), read_secrets=False)  # routing; no secrets here
    stopping = lambda: stop.is_set() or os.getppid() != parent_pid  # noqa: E731
    backoff = Backoff()
    while not stopping():  # (re)started while Redis is away: wait for it rather than exit and be restarted
        try:
            connection = connect(settings)
            break
        except StoreError as exc:
            delay = backoff.next_delay()
            log.warning("inbox: %s; retrying in %.1f s", exc, delay)
            stop.wait(delay)
    else:
        return
    consumer = InboxConsumer(connection, settings, auth.routing, auth.meta.secret_env_of)
    consumer.run_until(stopping)


class InboxProcess:
    """Runs :class:`InboxConsumer` in a child process; restarts it if it dies (at most once a second)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._process: Any = None
        self._watch: threading.Thread | None = None
        self._stopping = threading.Event()

    def _spawn(self) -> None:
        self._process = self._context.Process(
            target=_consume,
            name="replyguard-inbox",
            daemon=True,
            args=(self.settings.model_dump_json(), self._stop, os.getpid()),
        )
        self._process.start()

    def start(self) -> None:
        self._stop.clear()
        self._stopping.clear()
        self._spawn()
        self._watch = threading.Thread(target=self._supervise, name="replyguard-inbox-watch", daemon=True)
        self._watch.start()

    def _supervise(self) -> None:
        while not self._stopping.wait(1.0):
            if self._process is not None and not self._process.is_alive():
                log.error("inbox consumer process exited (code %s); restarting it", self._process.exitcode)
                self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        self._stop.set()
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=5)

    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()


class InboxCollector:
    """Prometheus: ``replyguard_inbox_backlog`` (entries accepted, not yet enqueued) and
    ``replyguard_inbox_total{what}`` (entries, events, repeated, receipts, invalid, malformed,
    ``dropped:<reason>``: echoes, the brand's own comments, unknown accounts, ...)."""

    def __init__(self, connection: redis.Redis, keys: Keys):
        self.connection = connection
        self.keys = keys

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        pipe = self.connection.pipeline(transaction=False)
        pipe.xlen(self.keys.inbox)
        pipe.hgetall(self.keys.inbox_stats)
        backlog, stats = pipe.execute()
        gauge = GaugeMetricFamily("replyguard_inbox_backlog", "Accepted requests not yet enqueued for deciding")
        gauge.add_metric([], backlog)
        counter = CounterMetricFamily(
            "replyguard_inbox", "What the inbox consumer did with accepted requests", labels=["what"]
        )
        for name, value in sorted(stats.items()):
            counter.add_metric([name.decode()], int(value))
        yield from (gauge, counter)
