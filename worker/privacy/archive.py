"""Retention: archive, then delete, what is older than a brand's ``retention.active_days``.

``replyguard retention sweep`` (run it daily; :func:`sweep` is the API) does, per brand:

- corrections, decisions and audit entries older than ``active_days``: when the brand's
  ``retention.archive`` is on, written first to gzip JSONL files
  ``<archive dir>/<brand>/<kind>-<UTC time>-<random>.jsonl.gz`` (one JSON object a line:
  ``kind``, ``brand``, ``message_id``, ``author_id``, ``at`` and the stored ``record``),
  then deleted from Redis (decision keys also carry a TTL, so they go even without a sweep;
  with archiving on the TTL is longer by a grace period so the sweep sees them first);
- archive files older than ``archive_days`` (by the time in their name) are deleted.

A file is written completely (to a temporary name, then renamed) before anything it holds
is deleted from Redis, so a crash in between archives some records twice, never loses one.
:func:`drop_person` rewrites the files without one person's lines (``replyguard forget``).
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis

from worker import defaults
from worker.exceptions import StoreError
from worker.privacy.config import Retention
from worker.store import Keys, review_member

SUFFIX = ".jsonl.gz"
STAMP = "%Y%m%dT%H%M%SZ"


def _files(directory: Path, brand: str) -> list[Path]:
    folder = directory / brand
    return sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []


def written_at(path: Path) -> datetime:
    """When an archive file was written: the time in its name (its mtime if the name has none)."""
    try:
        return datetime.strptime(path.name.split("-")[1], STAMP).replace(tzinfo=timezone.utc)
    except (IndexError, ValueError):
        return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as out:
        for line in lines:
            out.write(line + "\n")
    os.replace(tmp, path)


def write_archive(directory: Path, brand: str, kind: str, rows: list[dict[str, Any]], now: datetime) -> Path | None:
    """One archive file of ``rows`` (already shaped as archive lines); None when there are none."""
    if not rows:
        return None
    folder = directory / brand
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}-{now.astimezone(timezone.utc).strftime(STAMP)}-{uuid.uuid4().hex[:8]}{SUFFIX}"
    _write_lines(path, (json.dumps(row, ensure_ascii=False, default=str) for row in rows))
    return path


def read_archive(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def expire_files(directory: Path, brand: str, archive_seconds: int, now: datetime) -> int:
    gone = 0
    for path in _files(directory, brand):
        if (now - written_at(path)).total_seconds() > archive_seconds:
            path.unlink(missing_ok=True)
            gone += 1
    return gone


def drop_person(directory: Path, brand: str, author_id: str, messages: set[str]) -> tuple[int, int]:
    """Rewrite ``brand``'s archive files without the lines of ``author_id`` (or naming one of ``messages``);
    a file left empty is deleted. Returns (lines dropped, files changed)."""
    quoted = json.dumps(author_id, ensure_ascii=False)
    dropped = files = 0
    for path in _files(directory, brand):
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            all_lines = [line.rstrip("\n") for line in lines if line.strip()]
        kept = []
        for line in all_lines:
            try:
                row = json.loads(line)
            except ValueError:
                row = {}
            if row.get("author_id") == author_id or row.get("message_id") in messages or quoted in line:
                dropped += 1
            else:
                kept.append(line)
        if len(kept) == len(all_lines):
            continue
        files += 1
        if kept:
            _write_lines(path, kept)
        else:
            path.unlink(missing_ok=True)
    return dropped, files


class Sweeper:
    def __init__(self, client: redis.Redis, prefix: str, archive_dir: Path, now: datetime):
        self.client: Any = client
        self.keys = Keys(prefix)
        self.archive_dir = archive_dir
        self.now = now
        self.counts: Counter[str] = Counter()

    def _older(self, zset: str, cutoff_ms: int) -> Iterator[list[str]]:
        while True:
            ids = [
                m.decode()
                for m in self.client.zrangebyscore(zset, "-inf", cutoff_ms, start=0, num=defaults.PRIVACY_SCAN_PAGE)
            ]
            if not ids:
                return
            yield ids

    def _authors(self, brand: str, ids: list[str]) -> dict[str, str]:
        raws = self.client.mget([self.keys.decision(brand, m) for m in ids]) if ids else []
        out = {}
        for mid, raw in zip(ids, raws, strict=True):
            if raw:
                author = json.loads(raw).get("event", {}).get("author", {})
                if isinstance(author, dict) and isinstance(author.get("id"), str):
                    out[mid] = author["id"]
        return out

    def corrections(self, brand: str, retention: Retention, cutoff_ms: int) -> None:
        k = self.keys
        for ids in self._older(k.corrections(brand), cutoff_ms):
            raws = self.client.mget([k.correction(brand, m) for m in ids])
            if retention.archive:
                authors = self._authors(brand, ids)
                rows = [
                    {
                        "kind": "correction",
                        "brand": brand,
                        "message_id": m,
                        "author_id": authors.get(m),
                        "record": json.loads(r),
                    }
                    for m, r in zip(ids, raws, strict=True)
                    if r
                ]
                self.counts["archived_corrections"] += len(rows)
                write_archive(self.archive_dir, brand, "corrections", rows, self.now)
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(*[k.correction(brand, m) for m in ids])
            pipe.zrem(k.corrections(brand), *ids)
            deleted, _ = pipe.execute()
            self.counts["deleted_corrections"] += deleted

    def decisions(self, brand: str, retention: Retention, cutoff_ms: int) -> None:
        k = self.keys
        for ids in self._older(k.decisions(brand), cutoff_ms):
            raws = self.client.mget([k.decision(brand, m) for m in ids])
            if retention.archive:
                rows = []
                for mid, raw in zip(ids, raws, strict=True):
                    if raw:
                        record = json.loads(raw)
                        author = record.get("event", {}).get("author", {})
                        rows.append(
                            {
                                "kind": "decision",
                                "brand": brand,
                                "message_id": mid,
                                "author_id": author.get("id") if isinstance(author, dict) else None,
                                "at": record.get("decided_at"),
                                "record": record,
                            }
                        )
                self.counts["archived_decisions"] += len(rows)
                write_archive(self.archive_dir, brand, "decisions", rows, self.now)
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(*[k.decision(brand, m) for m in ids])
            pipe.zrem(k.decisions(brand), *ids)
            pipe.zrem(k.review, *[review_member(brand, m) for m in ids])
            for mid in ids:
                pipe.srem(k.message(mid), brand)
            deleted, *_ = pipe.execute()
            self.counts["deleted_decisions"] += deleted
            self.counts["dropped_index_entries"] += len(ids)

    def audit(self, brand: str, retention: Retention, cutoff_ms: int) -> None:
        stream = self.keys.audit(brand)
        if retention.archive:
            rows, start = [], "-"
            while True:
                page = self.client.xrange(stream, start, f"({cutoff_ms}-0", count=defaults.PRIVACY_SCAN_PAGE)
                for entry_id, fields in page:
                    record = json.loads(fields.get(b"entry", b"{}"))
                    rows.append(
                        {
                            "kind": "audit",
                            "brand": brand,
                            "message_id": record.get("message_id"),
                            "id": entry_id.decode(),
                            "at": record.get("at"),
                            "record": record,
                        }
                    )
                if len(page) < defaults.PRIVACY_SCAN_PAGE:
                    break
                start = "(" + page[-1][0].decode()
            authors = self._authors(brand, sorted({r["message_id"] for r in rows if r["message_id"]}))
            for row in rows:
                row["author_id"] = authors.get(row["message_id"])
            self.counts["archived_audit_entries"] += len(rows)
            write_archive(self.archive_dir, brand, "audit", rows, self.now)
        self.counts["deleted_audit_entries"] += self.client.xtrim(stream, minid=f"{cutoff_ms}-0")

    def brand(self, brand: str, retention: Retention) -> None:
        cutoff_ms = int((self.now.timestamp() - retention.active_seconds) * 1000)
        self.corrections(brand, retention, cutoff_ms)  # first: they look up the author in the decision
        self.audit(brand, retention, cutoff_ms)
        self.decisions(brand, retention, cutoff_ms)
        self.counts["deleted_archive_files"] += expire_files(
            self.archive_dir, brand, retention.archive_seconds, self.now
        )


def sweep(
    client: redis.Redis,
    retention: Mapping[str, Retention],
    *,
    prefix: str = defaults.KEY_PREFIX,
    archive_dir: Path,
    now: datetime | None = None,
) -> dict[str, int]:
    """Archive (when on) and delete each brand's data older than its ``active_days``; delete archive files
    older than ``archive_days``. ``now`` is for tests. Returns counts. Raises StoreError."""
    sweeper = Sweeper(client, prefix, archive_dir, now or datetime.now(timezone.utc))
    try:
        for brand, brand_retention in sorted(retention.items()):
            sweeper.brand(brand, brand_retention)
    except redis.RedisError as exc:
        raise StoreError(f"Redis failed during the retention sweep: {exc}") from exc
    return dict(sorted(sweeper.counts.items()))
