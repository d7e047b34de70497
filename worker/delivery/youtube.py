"""YouTube Data API v3: the comment poller and the reply / moderation calls.

YouTube has no webhooks for comments, so ``replyguard poll youtube`` reads
``commentThreads.list(part=snippet, allThreadsRelatedToChannelId=…, order=time)`` per configured
channel (``channels.youtube.account_ids``), newest first, back to a cursor stored in Redis (the
newest ``publishedAt`` seen and the ids seen at that instant), and ingests new top-level comments
as events. Replies (``comments.insert``) and moderation (``comments.setModerationStatus``:
``heldForReview``, or ``rejected`` with ``banAuthor`` for the rules the policy names) go through
the delivery workers like every other platform. Every call's quota units are counted per brand
and day (``{p}:youtube:quota:{date}``) and in the brand's stats (``youtube:quota_units``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from worker import defaults
from worker.delivery.http import call, generic_error, json_body, retry_after
from worker.exceptions import DeliveryError, PermanentDeliveryError, TransientDeliveryError

log = logging.getLogger(__name__)


def classify(response: httpx.Response) -> DeliveryError:
    error = json_body(response).get("error")
    if not isinstance(error, dict):
        return generic_error(response)
    reasons = {e.get("reason") for e in error.get("errors") or [] if isinstance(e, dict)}
    status = response.status_code
    detail = f"YouTube {status} {','.join(sorted(r for r in reasons if r))}: {str(error.get('message', ''))[:200]}"
    if status == 429 or reasons & {"rateLimitExceeded", "userRateLimitExceeded"} or status >= 500:
        return TransientDeliveryError(
            "rate_limited" if status < 500 else "server_error", detail, status=status, retry_after=retry_after(response)
        )
    if status == 401 or reasons & {"authError", "invalidCredentials"}:
        return PermanentDeliveryError("token_expired", detail, status=status)
    if reasons & {"quotaExceeded", "dailyLimitExceeded"}:
        return PermanentDeliveryError("quota_exceeded", detail, status=status)
    if reasons & {"commentNotFound", "parentCommentNotFound", "notFound"} or status == 404:
        return PermanentDeliveryError("invalid_recipient", detail, status=status)
    return PermanentDeliveryError("rejected", detail, status=status)


def count_quota(client: Any, keys: Any, brand: str, method: str) -> int:
    """Add ``method``'s quota units to today's count and the brand's stats; return the units."""
    units = defaults.YOUTUBE_QUOTA_COSTS[method]
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(keys.youtube_quota(day), brand, units)
    pipe.expire(keys.youtube_quota(day), 3 * 24 * 3600)
    pipe.hincrby(keys.stats(brand), "youtube:quota_units", units)
    pipe.hincrby(keys.stats(brand), f"youtube:calls:{method}", 1)
    pipe.execute()
    return units


class YouTubeClient:
    def __init__(self, base_url: str, token: str, http: httpx.Client):
        self.base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self.http = http

    def comment_threads(self, channel_id: str, page_token: str | None = None) -> dict[str, Any]:
        params = {
            "part": "snippet",
            "allThreadsRelatedToChannelId": channel_id,
            "order": "time",
            "maxResults": "100",
            "textFormat": "plainText",
        }
        if page_token:
            params["pageToken"] = page_token
        return json_body(
            call(
                self.http, "GET", f"{self.base}/commentThreads", classify=classify, headers=self._headers, params=params
            )
        )

    def reply(self, parent_id: str, text: str) -> str:
        data = json_body(
            call(
                self.http,
                "POST",
                f"{self.base}/comments",
                classify=classify,
                headers=self._headers,
                params={"part": "snippet"},
                json={"snippet": {"parentId": parent_id, "textOriginal": text}},
            )
        )
        return str(data.get("id") or "")

    def set_moderation_status(self, comment_id: str, status: str, ban_author: bool = False) -> str:
        params = {"id": comment_id, "moderationStatus": status}
        if ban_author and status == "rejected":
            params["banAuthor"] = "true"
        call(
            self.http,
            "POST",
            f"{self.base}/comments/setModerationStatus",
            classify=classify,
            headers=self._headers,
            params=params,
        )
        return ""


def _published(item: dict[str, Any]) -> datetime:
    raw = item["snippet"]["topLevelComment"]["snippet"]["publishedAt"]
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def thread_event(brand: str, channel_id: str, item: dict[str, Any]) -> dict[str, Any]:
    """A commentThread resource → a replyguard event (validated by the ingestor)."""
    snippet = item.get("snippet") or {}
    top = snippet.get("topLevelComment") or {}
    comment = top.get("snippet") or {}
    author = (comment.get("authorChannelId") or {}).get("value") or "unknown"
    return {
        "id": str(top.get("id")),
        "brand": brand,
        "platform": "youtube",
        "kind": "comment",
        "conversation_id": str(item.get("id")),
        "post_id": str(snippet.get("videoId") or snippet.get("channelId") or channel_id),
        "author": {"id": author, "name": comment.get("authorDisplayName") or None},
        "text": comment.get("textOriginal") or comment.get("textDisplay") or "",
        "created_at": comment.get("publishedAt"),
        "metadata": {
            "youtube": {
                "channel_id": channel_id,
                "can_reply": snippet.get("canReply"),
                "moderation_status": comment.get("moderationStatus"),
            }
        },
    }


@dataclass
class PollResult:
    channel: str
    new: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    quota_units: int = 0


class YouTubePoller:
    """Reads each configured channel's new comment threads since its cursor."""

    def __init__(
        self,
        client: Any,
        keys: Any,
        youtube: YouTubeClient,
        *,
        first_window: timedelta = timedelta(hours=24),
        max_pages: int = defaults.YOUTUBE_MAX_PAGES,
    ):
        self.client = client
        self.keys = keys
        self.youtube = youtube
        self.first_window = first_window
        self.max_pages = max_pages

    def poll(self, brand: str, channel_id: str) -> PollResult:
        """New top-level comments (as events) on ``channel_id``; advances the cursor only after
        the caller has ingested them (:meth:`commit`)."""
        result = PollResult(channel_id)
        cursor = self.client.hgetall(self.keys.youtube_cursor(brand, channel_id))
        since = (
            datetime.fromisoformat(cursor[b"published"].decode())
            if cursor
            else datetime.now(timezone.utc) - self.first_window
        )
        seen = set(json.loads(cursor[b"ids"])) if cursor else set()
        token = None
        done = False
        while not done and result.pages < self.max_pages:
            page = self.youtube.comment_threads(channel_id, token)
            result.pages += 1
            result.quota_units += count_quota(self.client, self.keys, brand, "commentThreads.list")
            for item in page.get("items") or []:
                try:
                    published = _published(item)
                    top_id = item["snippet"]["topLevelComment"]["id"]
                except (KeyError, TypeError, ValueError):
                    log.warning("youtube: skipped a malformed comment thread on channel %s", channel_id)
                    continue
                if published < since or (published == since and top_id in seen):
                    done = True
                    break
                event = thread_event(brand, channel_id, item)
                if event["author"]["id"] == channel_id:
                    continue  # the brand's own comment
                result.new.append(event)
            token = page.get("nextPageToken")
            if not token:
                break
        return result

    def commit(self, brand: str, channel_id: str, result: PollResult) -> None:
        """Move the cursor past ``result.new`` (call after they were ingested)."""
        if not result.new:
            return
        newest = max(datetime.fromisoformat(e["created_at"].replace("Z", "+00:00")) for e in result.new)
        key = self.keys.youtube_cursor(brand, channel_id)
        old = self.client.hgetall(key)
        ids = {e["id"] for e in result.new if datetime.fromisoformat(e["created_at"].replace("Z", "+00:00")) == newest}
        if old and datetime.fromisoformat(old[b"published"].decode()) == newest:
            ids |= set(json.loads(old[b"ids"]))
        self.client.hset(key, mapping={"published": newest.isoformat(), "ids": json.dumps(sorted(ids))})
