"""The audit trail: every human action in the review app, append-only.

Each entry says who (user and role), when, what (the action), on which item,
the state before and after, and which outbox entries it wrote. Entries are
appended to the brand's stream ``{p}:audit:{brand}`` (never trimmed, never
edited; nothing in replyguard deletes from it) in the same transaction as the
action's effects, and indexed per item. The platform's answer to an outbound
action is recorded by the deliverer on the decision (``deliveries``); the item
page and ``replyguard audit export`` show it beside the entry that caused it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import redis

from worker import defaults
from worker.exceptions import StoreError
from worker.store import Keys


@dataclass
class AuditEntry:
    action: str
    user: str
    role: str
    brand: str
    message_id: str | None
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    outbox: list[str] = field(default_factory=list, metadata={"doc": "outbox payload types written"})
    note: str | None = None
    at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    action_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    id: str | None = None  # the stream id, once written

    def fields(self) -> dict[str, str]:
        data = {k: v for k, v in self.__dict__.items() if k != "id"}
        return {"entry": json.dumps(data, ensure_ascii=False, default=str)}

    @classmethod
    def from_stream(cls, entry_id: bytes | str, fields: dict[bytes, bytes]) -> "AuditEntry":
        data = json.loads(fields[b"entry"])
        entry = cls(**data)
        entry.id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        return entry

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class AuditLog:
    def __init__(self, client: redis.Redis, prefix: str = defaults.KEY_PREFIX):
        self.client: Any = client  # redis-py types replies as sync-or-async unions; ours are sync bytes
        self.keys = Keys(prefix)

    def append(self, pipe: Any, entry: AuditEntry) -> None:
        """Queue ``entry`` on ``pipe`` (inside the action's MULTI). The per-item index is written by Lua
        so it holds the id the stream assigned."""
        stream = self.keys.audit(entry.brand)
        if entry.message_id is None:
            pipe.xadd(stream, entry.fields())
            return
        pipe.eval(_APPEND, 2, stream, self.keys.item_audit(entry.brand, entry.message_id), entry.fields()["entry"])

    def for_item(self, brand: str, message_id: str) -> list[AuditEntry]:
        try:
            ids = [i.decode() for i in self.client.lrange(self.keys.item_audit(brand, message_id), 0, -1)]
            if not ids:
                return []
            pipe = self.client.pipeline(transaction=False)
            for entry_id in ids:
                pipe.xrange(self.keys.audit(brand), entry_id, entry_id)
            rows = pipe.execute()
        except redis.RedisError as exc:
            raise StoreError(f"Redis failed while reading the audit trail of {brand}/{message_id}: {exc}") from exc
        return [AuditEntry.from_stream(*found[0]) for found in rows if found]

    def export(self, brand: str, since: datetime | None = None, page: int = 500) -> Iterator[AuditEntry]:
        """Every entry of ``brand`` (at or after ``since``), oldest first."""
        start = f"{int(since.timestamp() * 1000)}-0" if since else "-"
        while True:
            try:
                rows = self.client.xrange(self.keys.audit(brand), start, "+", count=page)
            except redis.RedisError as exc:
                raise StoreError(f"Redis failed while exporting the audit trail of {brand}: {exc}") from exc
            for entry_id, fields in rows:
                yield AuditEntry.from_stream(entry_id, fields)
            if len(rows) < page:
                return
            last = rows[-1][0].decode()
            ms, seq = last.split("-")
            start = f"{ms}-{int(seq) + 1}"


# Append to the brand's stream and index the new id under the item, in one step.
_APPEND = """
local id = redis.call('XADD', KEYS[1], '*', 'entry', ARGV[1])
redis.call('RPUSH', KEYS[2], id)
return id
"""


def platform_answer(entry: AuditEntry, deliveries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The delivery record that answers ``entry``'s outbox action: the first of the same action at or after it."""
    if not entry.outbox:
        return None
    for record in deliveries:
        if record.get("action") in entry.outbox and str(record.get("at", "")) >= entry.at[:19]:
            return record
    return None
