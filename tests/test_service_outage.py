"""A Redis outage under the service, the deliverer and the poller (issue 11 part 3): a private
redis-server (append-only file) is killed and restarted under a running ``replyguard serve``,
``replyguard worker``, ``replyguard deliver`` and ``replyguard poll youtube``. During the outage
/readyz says not ready and a webhook gets a clear 503 (nothing could be stored, so the platform
retries); nothing exits. Afterwards a webhook accepted just before the outage, one retried after it
and a YouTube comment posted after it are each decided and delivered exactly once."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
import pytest
import redis

from tests.faults import RedisServer, wait_for
from tests.serve_process import ServeProcess, WorkerProcess
from worker.inbound import samples as s
from worker.standins import GraphStandIn, YouTubeStandIn
from worker.store import Store

SECRET = "outage-app-secret"
TOKEN = "outage-graph-token"
CHANNEL = "UCkomorebi0000000000000a"  # the demo brand's YouTube channel


def post(serve: ServeProcess, payload: dict) -> httpx.Response:
    body = s.dumps(payload)
    return httpx.post(
        serve.url + "/webhooks/meta",
        content=body,
        timeout=30,
        headers={"content-type": "application/json", "x-hub-signature-256": s.signature(body, SECRET)},
    )


def message(mid: str, text: str) -> dict:
    return s.whatsapp([s.wa_text(mid, text, sender="819012345678", ts=str(int(time.time())))], wa_id="819012345678")


def comment_thread(comment_id: str, text: str) -> dict:
    """A commentThread resource as the YouTube Data API lists it, published now."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    snippet = {
        "channelId": CHANNEL,
        "videoId": "vid-1",
        "authorDisplayName": "Ken",
        "textOriginal": text,
        "textDisplay": text,
        "authorChannelId": {"value": "UCken"},
        "moderationStatus": "published",
        "publishedAt": now,
        "updatedAt": now,
    }
    return {
        "kind": "youtube#commentThread",
        "id": f"t-{comment_id}",
        "snippet": {
            "channelId": CHANNEL,
            "videoId": "vid-1",
            "canReply": True,
            "isPublic": True,
            "totalReplyCount": 0,
            "topLevelComment": {"kind": "youtube#comment", "id": comment_id, "snippet": snippet},
        },
    }


@pytest.mark.slow
def test_service_and_deliverer_wait_out_a_redis_outage(tmp_path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url)
    with GraphStandIn(token=TOKEN) as graph, YouTubeStandIn(token=TOKEN) as youtube:
        youtube.threads[CHANNEL] = []
        env = {
            "META_APP_SECRET": SECRET,
            "META_VERIFY_TOKEN": "verify",
            "WHATSAPP_TOKEN": TOKEN,
            "META_PAGE_TOKEN": TOKEN,
            "YOUTUBE_TOKEN": TOKEN,
            "REPLYGUARD_META_API_BASE": graph.url,
            "REPLYGUARD_YOUTUBE_API_BASE": youtube.url + "/youtube/v3",
            "REPLYGUARD_DELIVERY_MODE": "live",
            "REPLYGUARD_HOME": str(tmp_path / "home"),
        }
        serve = ServeProcess(server.url, env=env)
        worker = WorkerProcess(server.url, env=env)
        deliver = WorkerProcess(server.url, env=env, command="deliver")
        poll = WorkerProcess(server.url, env=env, command="poll", args=["youtube", "--interval", "0.5"])
        processes = (serve, worker, deliver, poll)
        try:
            serve.start()
            worker.start()
            deliver.start()
            poll.start()
            wait_for(lambda: "outbox stream(s)" in deliver.log(), 120, "the deliverer reading")
            wait_for(lambda: client.scard("rq:workers"), 120, "the worker registered")
            wait_for(lambda: youtube.received("/youtube/v3/commentThreads", method="GET"), 120, "the poller polling")
            assert post(serve, message("wamid.before", "Hi, where is my order KM-204815?")).status_code == 200
            server.kill()  # the webhook is in the inbox (append-only file); not necessarily decided yet

            ready = httpx.get(serve.url + "/readyz", timeout=30)
            assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("unreachable")
            refused = post(serve, message("wamid.during", "do you ship to Canada?"))
            assert refused.status_code == 503 and refused.headers["retry-after"]
            assert refused.json() == {"error": "storage unavailable, try again later"}
            assert httpx.get(serve.url + "/healthz", timeout=30).status_code == 200  # the process is fine
            assert httpx.get(serve.url + "/metrics", timeout=30).status_code == 200
            time.sleep(3)  # long enough for every loop to hit the outage
            assert all(p.process.poll() is None for p in processes), [p.log()[-2000:] for p in processes]

            server.start()  # same port and directory: the append-only file brings the data back
            wait_for(lambda: httpx.get(serve.url + "/readyz", timeout=30).status_code == 200, 60, "ready again")
            assert post(serve, message("wamid.during", "do you ship to Canada?")).status_code == 200  # Meta's retry
            youtube.threads[CHANNEL].insert(0, comment_thread("yt-after", "what are your opening hours?"))

            path = f"/{s.WA_PHONE_ID}/messages"
            wait_for(lambda: len(graph.received(path)) >= 2, 120, "both replies delivered")
            time.sleep(2.0)  # room for a second, wrong send to show up
            replied_to = sorted(r.json["context"]["message_id"] for r in graph.received(path))
            assert replied_to == ["wamid.before", "wamid.during"]  # each exactly once
            inserted = wait_for(lambda: youtube.received("/youtube/v3/comments"), 120, "the YouTube reply")
            time.sleep(1.0)
            assert [
                r.json["snippet"]["parentId"]
                for r in youtube.received("/youtube/v3/comments")
                if r.path.endswith("/comments")
            ] == ["yt-after"], inserted

            store = Store(redis.Redis.from_url(server.url))
            assert store.stats("demo-shop")["decisions"] == 3
            for mid in ("wamid.before", "wamid.during", "yt-after"):
                [record] = store.decision("demo-shop", mid).deliveries
                assert (record.status, record.action) == ("sent", "reply")
            assert all(p.process.poll() is None for p in processes), [p.log()[-2000:] for p in processes]
            for process in (serve, deliver, poll):
                assert "Traceback" not in process.log(), process.log()[-4000:]
            assert "Redis unavailable" in deliver.log(), deliver.log()[-2000:]
            assert "reconnecting" in poll.log(), poll.log()[-2000:]
        finally:
            for process in reversed(processes):
                process.stop()
            for process in processes:
                process.log_path.unlink(missing_ok=True)
            server.stop()
            client.close()
