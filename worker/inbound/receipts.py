"""Delivery and read receipts from the platforms, recorded against the message we sent.

A receipt names the platform's id of *our* outbound message (WhatsApp ``statuses[].id``,
Messenger ``delivery.mids``); the decision that sent it records that id in its
``deliveries`` (``platform_message_id``), so :func:`receipts_for` finds a decision's
receipts, and the deliverer can read them too. Keys (listed in :mod:`worker.store`):

``{p}:receipt:{platform}:{platform_message_id}`` hash, ``status:<sent|delivered|read|failed>``
-> time (ms), ``brand``, ``recipient``, ``decision`` (``brand/message_id`` when the platform
echoed our callback data), ``error`` (failed). Expires after ``defaults.RECEIPT_TTL_SECONDS``.

``{p}:watermark:{platform}:{account}:{user}`` hash, ``delivered`` / ``read`` -> ms: Messenger
and Instagram may report "everything before this time was read" instead of message ids.

Receipts are never decided: they change no decision and send nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from worker import defaults
from worker.exceptions import StoreError
from worker.inbound.meta import Receipt
from worker.store import Keys


def record_receipts(connection: redis.Redis, keys: Keys, receipts: Iterable[Receipt]) -> int:
    receipts = list(receipts)
    if not receipts:
        return 0
    pipe = connection.pipeline(transaction=False)
    for r in receipts:
        if r.platform_message_id:
            key = keys.receipt(r.platform, r.platform_message_id)
            fields: dict[str | bytes, str | int] = {f"status:{r.status}": r.at_ms, "brand": r.brand}
            if r.recipient_id:
                fields["recipient"] = r.recipient_id
            if r.decision:
                fields["decision"] = r.decision
            if r.error:
                fields["error"] = r.error
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(key, defaults.RECEIPT_TTL_SECONDS)
        if r.watermark_ms and r.recipient_id:
            key = keys.watermark(r.platform, r.account_id, r.recipient_id)
            pipe.hset(key, r.status, r.watermark_ms)
            pipe.expire(key, defaults.RECEIPT_TTL_SECONDS)
    try:
        pipe.execute()
    except redis.RedisError as exc:
        raise StoreError(f"cannot record {len(receipts)} receipts: {exc}") from exc
    return len(receipts)


def receipts_for(
    connection: redis.Redis, keys: Keys, platform: str, platform_message_ids: Iterable[str]
) -> dict[str, dict[str, str]]:
    """platform message id -> its receipt fields (only ids that have any)."""
    ids = [i for i in platform_message_ids if i]
    if not ids:
        return {}
    pipe = connection.pipeline(transaction=False)
    for pmid in ids:
        pipe.hgetall(keys.receipt(platform, pmid))
    try:
        answers = pipe.execute()
    except redis.RedisError as exc:
        raise StoreError(f"cannot read receipts: {exc}") from exc
    return {
        pmid: {k.decode(): v.decode() for k, v in raw.items()} for pmid, raw in zip(ids, answers, strict=True) if raw
    }
