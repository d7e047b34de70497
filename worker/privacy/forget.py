"""``replyguard forget``: delete every copy of one person's data, and say so in the audit trail.

A person is (brand, author id). Their messages and conversations are found in the person
index ``{p}:person:{brand}:{author_id}`` (written by lua/apply_decision.lua with each
decision, and when one of their events is rejected) and, for what the index cannot name
(the outbox, inbox and audit streams, the rejected and dead-letter lists, RQ's job payloads,
receipts), by reading those values: an entry is the person's when it carries their author id
or one of their message ids. Then, per message: the decision and its index entries, the
review queue entry, review item, claim, the item's audit index, correction, SLA timer,
delivery records and receipts, LLM-pending entry; per conversation: the person's history
entries (a conversation shared with others keeps theirs) and, once it is empty, its state;
the author's tags, opt-out and read watermarks; outbox, SLA-event and inbox stream entries;
rejected and dead-letter list entries; the person's events inside queued or finished RQ job
payloads (rewritten without them, zlib-compressed as RQ stores them) and any other RQ field
naming them; archive lines. Audit entries about their messages lose their free text
(before/after/note), keeping who did what and when. Finally one audit entry ``forget``
records the counts (no personal data).

Messages of the person that arrive while ``forget`` runs, or later, are new data.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from worker import defaults
from worker.audit import AuditEntry, AuditLog
from worker.exceptions import StoreError
from worker.models import Decision
from worker.privacy import archive as archive_files
from worker.store import Keys, review_member

#: the fields of an RQ job hash that may hold (compressed) payloads
RQ_TEXT_FIELDS = ("description", "exc_info", "result", "meta")


@dataclass
class ForgetReport:
    brand: str
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    counts: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "brand": self.brand,
            "request_id": self.request_id,
            "counts": dict(sorted(self.counts.items())),
            "total": sum(self.counts.values()),
        }


def decoded(raw: bytes | str) -> str:
    """A Redis value as text: zlib-decompressed when it is compressed (RQ's job data), UTF-8 with replacement."""
    if isinstance(raw, str):
        return raw
    try:
        raw = zlib.decompress(raw)
    except zlib.error:
        pass
    return raw.decode("utf-8", errors="replace")


def glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class Person:
    """What identifies one person's entries: their author id and the message ids found so far."""

    def __init__(self, brand: str, author_id: str):
        self.brand, self.author_id = brand, author_id
        self.messages: set[str] = set()
        self.conversations: set[str] = set()
        self._author_quoted = json.dumps(author_id, ensure_ascii=False)

    def owns_event(self, event: Any) -> bool:
        if not isinstance(event, dict) or event.get("brand") != self.brand:
            return False
        author = event.get("author")
        return (isinstance(author, dict) and author.get("id") == self.author_id) or event.get(
            "author_id"
        ) == self.author_id

    def learn(self, event: dict[str, Any]) -> None:
        if isinstance(event.get("id"), str):
            self.messages.add(event["id"])
        if isinstance(event.get("message_id"), str):
            self.messages.add(event["message_id"])
        if isinstance(event.get("conversation_id"), str):
            self.conversations.add(event["conversation_id"])

    def mentioned_in(self, text: str) -> bool:
        """Whether a JSON-ish text names the person's author id or one of their message ids (quoted)."""
        if self._author_quoted in text:
            return True
        return any(json.dumps(m, ensure_ascii=False) in text for m in self.messages)


class Forgetter:
    def __init__(self, client: redis.Redis, prefix: str, brand: str, author_id: str, archive_dir: Path | None = None):
        self.client: Any = client
        self.keys = Keys(prefix)
        self.person = Person(brand, author_id)
        self.archive_dir = archive_dir
        self.report = ForgetReport(brand)

    def count(self, what: str, n: int | bool = 1) -> None:
        if n:
            self.report.counts[what] += int(n)

    # -- finding -----------------------------------------------------------------------

    def read_index(self) -> None:
        for member in self.client.smembers(self.keys.person(self.person.brand, self.person.author_id)):
            kind, _, value = member.decode().partition(":")
            if kind == "m":
                self.person.messages.add(value)
            elif kind == "c":
                self.person.conversations.add(value)

    def _stream_entries(self, stream: str) -> Any:
        start = "-"
        while True:
            rows = self.client.xrange(stream, start, "+", count=defaults.PRIVACY_SCAN_PAGE)
            yield from rows
            if len(rows) < defaults.PRIVACY_SCAN_PAGE:
                return
            ms, seq = rows[-1][0].decode().split("-")
            start = f"{ms}-{int(seq) + 1}"

    def outbox(self) -> None:
        stream, doomed = self.keys.outbox(self.person.brand), []
        for entry_id, fields in self._stream_entries(stream):
            try:
                payload = json.loads(fields.get(b"payload", b"{}"))
            except ValueError:
                payload = {}
            mid = fields.get(b"message_id", b"").decode()
            if payload.get("author_id") == self.person.author_id or mid in self.person.messages:
                self.person.learn(payload)
                doomed.append(entry_id)
        if doomed:
            self.count("outbox_entries", self.client.xdel(stream, *doomed))

    def rejected(self) -> None:
        for key, what in (
            (self.keys.rejected, "rejected_entries"),
            (self.keys.deadletter(self.person.brand), "dead_letter_entries"),
        ):
            for raw in self.client.lrange(key, 0, -1):
                text = raw.decode("utf-8", errors="replace")
                try:
                    entry = json.loads(text)
                except ValueError:
                    entry = None
                event = entry.get("event") if isinstance(entry, dict) else None
                mine = self.person.owns_event(event) or self.person.owns_event(entry)
                if not mine and isinstance(entry, dict) and isinstance(entry.get("payload"), dict):
                    mine = self.person.owns_event(entry["payload"])
                if not mine and (entry is None or entry.get("brand") in (None, self.person.brand)):
                    mine = self.person.mentioned_in(text)
                if mine:
                    if isinstance(event, dict):
                        self.person.learn(event)
                    self.count(what, self.client.lrem(key, 0, raw))

    def rq_jobs(self) -> None:
        """Events of the person inside RQ job payloads are removed (the job keeps the others'); any other
        field of a job hash, and RQ result streams, that name them are cleared."""
        for key in self.client.scan_iter(match="rq:job:*", count=defaults.PRIVACY_SCAN_PAGE, _type="hash"):
            raw = self.client.hget(key, "data")
            if raw:
                self._rewrite_job_data(key, raw)
            for name in RQ_TEXT_FIELDS:
                value = self.client.hget(key, name)
                if value and self.person.mentioned_in(decoded(value)):
                    self.client.hset(key, name, zlib.compress(b"[forgotten]") if name == "exc_info" else "[forgotten]")
                    self.count("rq_job_fields")
        for key in self.client.scan_iter(match="rq:results:*", count=defaults.PRIVACY_SCAN_PAGE, _type="stream"):
            doomed = [
                entry_id
                for entry_id, fields in self._stream_entries(key.decode())
                if any(self.person.mentioned_in(decoded(v)) for v in fields.values())
            ]
            if doomed:
                self.count("rq_results", self.client.xdel(key, *doomed))

    def _rewrite_job_data(self, key: bytes, raw: bytes) -> None:
        text = decoded(raw)
        if self.person.author_id not in text and not self.person.mentioned_in(text):
            return
        try:
            func, instance, args, kwargs = json.loads(text)
        except (ValueError, TypeError):
            self.client.hset(key, "data", zlib.compress(json.dumps([None, None, [], {}]).encode()))
            self.count("rq_job_payloads")
            return
        changed = False
        new_args = []
        for arg in args:
            if isinstance(arg, list) and any(self.person.owns_event(e) for e in arg):
                for e in arg:
                    if self.person.owns_event(e):
                        self.person.learn(e)
                        self.count("rq_job_events")
                arg = [e for e in arg if not self.person.owns_event(e)]
                changed = True
            new_args.append(arg)
        if not changed and self.person.mentioned_in(text):  # a task about one of their messages (brand, id)
            changed = True
        if changed:
            data = json.dumps([func, instance, new_args, kwargs], ensure_ascii=False).encode()
            self.client.hset(key, "data", zlib.compress(data))
            self.count("rq_job_payloads")

    def inbox(self) -> None:
        doomed = [
            entry_id
            for entry_id, fields in self._stream_entries(self.keys.inbox)
            if self.person.mentioned_in(decoded(fields.get(b"body", b"")))
        ]
        if doomed:
            self.count("inbox_entries", self.client.xdel(self.keys.inbox, *doomed))

    # -- deleting ----------------------------------------------------------------------

    def messages(self) -> None:
        k, b = self.keys, self.person.brand
        for mid in sorted(self.person.messages):
            raw = self.client.get(k.decision(b, mid))
            decision = Decision.from_json(raw) if raw else None
            if decision is not None:
                self.person.conversations.add(decision.conversation_id)
                for record in decision.deliveries:
                    if record.platform_message_id:
                        platform = decision.event.get("platform", "")
                        self.count("receipts", self.client.delete(k.receipt(platform, record.platform_message_id)))
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(k.decision(b, mid))
            pipe.zrem(k.decisions(b), mid)
            pipe.srem(k.message(mid), b)
            pipe.zrem(k.review, review_member(b, mid))
            pipe.delete(k.item(b, mid), k.claim(b, mid), k.item_audit(b, mid))
            pipe.delete(k.correction(b, mid))
            pipe.zrem(k.corrections(b), mid)
            pipe.delete(k.sla_timer(b, mid))
            pipe.zrem(k.sla_timers(b), mid)
            pipe.zrem(k.sla_due, review_member(b, mid))
            pipe.zrem(k.llm_pending, review_member(b, mid))
            (decisions, index, _, review, items, corrections, _, timers, *_rest) = pipe.execute()
            self.count("decisions", decisions)
            self.count("decision_index_entries", index)
            self.count("review_queue_entries", review)
            self.count("review_items_claims_audit_indexes", items)
            self.count("corrections", corrections)
            self.count("sla_timers", timers)
            if not self.client.scard(k.message(mid)):
                self.client.delete(k.message(mid))
            deliveries = list(
                self.client.scan_iter(match=glob_escape(k.delivery(b, mid, "")) + "*", count=defaults.PRIVACY_SCAN_PAGE)
            )
            if deliveries:
                self.count("delivery_records", self.client.delete(*deliveries))
        events_key = k.sla_events(b)
        doomed = [
            i
            for i, f in self._stream_entries(events_key)
            if f.get(b"message_id", b"").decode() in self.person.messages
            or self.person.mentioned_in(decoded(f.get(b"payload", b"")))
        ]
        if doomed:
            self.count("sla_events", self.client.xdel(events_key, *doomed))

    def conversations(self) -> None:
        k, b = self.keys, self.person.brand
        for conv in sorted(self.person.conversations):
            hkey = k.history(b, conv)
            for raw in self.client.lrange(hkey, 0, -1):
                try:
                    entry = json.loads(raw)
                except ValueError:
                    entry = {}
                if entry.get("message_id") in self.person.messages or self.person.mentioned_in(decoded(raw)):
                    self.count("history_entries", self.client.lrem(hkey, 0, raw))
            if self.person.messages:
                self.client.srem(k.sla_open(b, conv), *self.person.messages)
                self.client.hdel(k.order(b, conv), *[f"m:{m}" for m in self.person.messages])
            if not self.client.exists(hkey):  # nobody else's messages left: the conversation state goes too
                self.count(
                    "conversations", self.client.delete(k.conversation(b, conv), k.sla_open(b, conv), k.order(b, conv))
                )
                parked = [
                    m
                    for m in self.client.zrange(k.order_parked, 0, -1)
                    if m.decode().startswith(k.order(b, conv) + "#")
                ]
                if parked:
                    self.client.zrem(k.order_parked, *parked)

    def author(self) -> None:
        k, b, a = self.keys, self.person.brand, self.person.author_id
        self.count("author_tags", self.client.delete(k.author(b, a)))
        self.count("opt_out", self.client.srem(k.optout(b), a))
        for key in self.client.scan_iter(
            match=f"{k.prefix}:watermark:*:*:{glob_escape(a)}", count=defaults.PRIVACY_SCAN_PAGE
        ):
            self.count("watermarks", self.client.delete(key))
        for key in self.client.scan_iter(match=f"{k.prefix}:receipt:*", count=defaults.PRIVACY_SCAN_PAGE):
            fields = self.client.hgetall(key)
            recipient = fields.get(b"recipient", b"").decode()
            decision = fields.get(b"decision", b"").decode()
            if recipient == a or decision in {review_member(b, m) for m in self.person.messages}:
                self.count("receipts", self.client.delete(key))

    def audit(self) -> None:
        """Audit entries about the person's messages (or naming them) keep who/what/when, lose their free text."""
        stream = self.keys.audit(self.person.brand)
        for entry_id, fields in list(self._stream_entries(stream)):
            text = decoded(fields.get(b"entry", b""))
            try:
                entry = AuditEntry.from_stream(entry_id, fields)
            except (ValueError, TypeError, KeyError):
                entry = None
            if (
                entry is not None
                and entry.message_id not in self.person.messages
                and not self.person.mentioned_in(text)
            ):
                continue
            if entry is None and not self.person.mentioned_in(text):
                continue
            self.client.xdel(stream, entry_id)
            if entry is not None:
                entry.before, entry.after, entry.note, entry.id = {}, {"forgotten": self.report.request_id}, None, None
                self.client.xadd(stream, entry.fields())
            self.count("audit_entries_redacted")

    def archives(self) -> None:
        if self.archive_dir is None:
            return
        lines, files = archive_files.drop_person(
            self.archive_dir, self.person.brand, self.person.author_id, self.person.messages
        )
        self.count("archive_lines", lines)
        self.count("archive_files_rewritten", files)

    def run(self, by: str) -> ForgetReport:
        self.read_index()
        # streams and lists first: they name messages the index may not (e.g. a rejected event)
        self.outbox()
        self.rejected()
        self.rq_jobs()
        self.inbox()
        self.audit()  # before the item indexes go: it matches by message id
        self.messages()
        self.conversations()
        self.author()
        self.archives()
        self.count("person_index", self.client.delete(self.keys.person(self.person.brand, self.person.author_id)))
        pipe = self.client.pipeline(transaction=True)
        AuditLog(self.client, self.keys.prefix).append(
            pipe,
            AuditEntry(
                action="forget",
                user=by,
                role="operator",
                brand=self.person.brand,
                message_id=None,
                after={"request_id": self.report.request_id, "counts": dict(sorted(self.report.counts.items()))},
            ),
        )
        pipe.execute()
        return self.report


def forget_person(
    client: redis.Redis,
    brand: str,
    author_id: str,
    *,
    prefix: str = defaults.KEY_PREFIX,
    archive_dir: Path | None = None,
    by: str = "operator",
) -> ForgetReport:
    """Delete every copy of (``brand``, ``author_id``)'s data in Redis and under ``archive_dir``; returns the
    counts (also recorded as an audit entry ``forget``, without personal data). Raises StoreError."""
    try:
        return Forgetter(client, prefix, brand, author_id, archive_dir).run(by)
    except redis.RedisError as exc:
        raise StoreError(f"Redis failed while forgetting a person: {exc}") from exc
