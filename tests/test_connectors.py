"""Outbound signed webhooks (filters, retries, dead letters), the YouTube poller and its delivery,
and the Chatwoot Agent Bot connector, against loopback stand-ins."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import make_event
from worker.cli import main
from worker.delivery import chatwoot, webhooks
from worker.delivery.deliverer import Deliverer
from worker.delivery.runner import load_delivery_config, poll_youtube
from worker.jobs import install
from worker.pipeline import Pipeline
from worker.queues import make_worker
from worker.settings import REPO_ROOT
from worker.standins import ChatwootStandIn, Scripted, WebhookReceiver, YouTubeStandIn
from worker.store import Store

TOKEN = "connector-test-token"
SECRET = "crm-shared-secret"
ENV = {"CRM_SECRET": SECRET, "CW_TOKEN": TOKEN, "CW_SECRET": "cw-secret", "YOUTUBE_TOKEN": TOKEN}
CHANNEL = "UCkomorebi0000000000000a"


def policy_dir(tmp_path: Path, extra: str) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "demo-shop.yaml").write_text((REPO_ROOT / "policies" / "demo-shop.yaml").read_text() + extra)
    return directory


def now_iso(minutes_ago: float = 0) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).isoformat()


def deliver(client, settings, **kwargs) -> Deliverer:
    policies, books = load_delivery_config(settings)
    d = Deliverer(client, settings, policies, books, environ=kwargs.pop("environ", ENV), **kwargs)
    d.run(burst=True)
    return d


# platform "other": replyguard sends nothing there itself (skipped), so only the connectors act
AGENT = make_event(
    id="m-agent",
    platform="other",
    conversation_id="c-agent",
    text="I'd like to speak to a real person please, not a bot",
    created_at=now_iso(),
)
FAQ = make_event(
    id="m-faq",
    platform="other",
    conversation_id="c-faq",
    text="how long does shipping take to Germany?",
    created_at=now_iso(),
)


@pytest.fixture()
def receiver():
    with WebhookReceiver(secret=SECRET) as server:
        yield server


def test_webhooks_are_signed_filtered_and_deduplicable(client, brands, settings, tmp_path, receiver) -> None:
    extra = f"""
connectors:
  webhooks:
    - {{name: tickets, url: "{receiver.url}/tickets", secret_env: CRM_SECRET, actions: [escalate]}}
    - {{name: everything, url: "{receiver.url}/all", secret_env: CRM_SECRET}}
"""
    live = settings.model_copy(update={"policies_dir": policy_dir(tmp_path, extra), "delivery_mode": "live"})
    store = Store(client)
    Pipeline(brands).process([AGENT, FAQ], store)
    deliver(client, live)
    tickets = receiver.received("/tickets")
    assert [r.json["decision"]["message_id"] for r in tickets] == ["m-agent"]
    assert sorted(r.json["decision"]["message_id"] for r in receiver.received("/all")) == ["m-agent", "m-faq"]
    hook = tickets[0]
    assert hook.headers["x-replyguard-delivery"] == "demo-shop/m-agent/webhook:tickets"
    assert webhooks.verify(
        SECRET, hook.headers["x-replyguard-timestamp"], hook.body, hook.headers["x-replyguard-signature"]
    )
    assert not webhooks.verify(
        "wrong", hook.headers["x-replyguard-timestamp"], hook.body, hook.headers["x-replyguard-signature"]
    )
    assert len(receiver.accepted) == 3  # every delivery verified by the receiver
    records = {r.action: r for r in store.decision("demo-shop", "m-agent").deliveries}
    assert records["webhook:tickets"].status == "sent" and records["webhook:everything"].status == "sent"


def test_failing_webhook_is_retried_then_dead_lettered_and_listed(
    client, brands, settings, tmp_path, receiver, monkeypatch, capsys
) -> None:
    directory = policy_dir(
        tmp_path,
        f"""
connectors:
  webhooks:
    - {{name: crm, url: "{receiver.url}/hook", secret_env: CRM_SECRET, rules: ["intent."]}}
""",
    )
    live = settings.model_copy(update={"policies_dir": directory, "delivery_mode": "live"})
    for _ in range(3):
        receiver.script.append(Scripted(status=503, headers={"Retry-After": "0"}))
    store = Store(client)
    Pipeline(brands).process([FAQ], store)
    deliver(client, live, max_attempts=3)
    assert len(receiver.received("/hook")) == 3
    [record] = [r for r in store.decision("demo-shop", "m-faq").deliveries if r.action == "webhook:crm"]
    assert (record.status, record.attempts) == ("failed", 3)
    assert "escalate" not in store.decision("demo-shop", "m-faq").actions  # a CRM outage is not the customer's
    [dead] = store.dead_letters("demo-shop")
    assert (dead["connector"], dead["message_id"], dead["attempts"]) == ("webhook:crm", "m-faq", 3)
    monkeypatch.setenv("REDIS_URL", live.redis_url)
    monkeypatch.setenv("REPLYGUARD_POLICIES_DIR", str(directory))
    assert main(["connectors", "dead-letters", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["demo-shop"][0]["message_id"] == "m-faq"
    # a wrong secret is refused by the receiver (401): permanent, dead-lettered after one attempt
    Pipeline(brands).process([{**FAQ, "id": "m-faq2", "conversation_id": "c-faq2"}], store)
    deliver(client, live, environ={**ENV, "CRM_SECRET": "not-the-secret"})
    assert store.dead_letters("demo-shop")[0]["attempts"] == 1
    assert store.dead_letters("demo-shop")[0]["error"].startswith("unauthorized")


def _thread(thread_id: str, comment_id: str, text: str, author: str, published: datetime) -> dict:
    return {
        "kind": "youtube#commentThread",
        "id": thread_id,
        "snippet": {
            "channelId": CHANNEL,
            "videoId": "vid-1",
            "canReply": True,
            "isPublic": True,
            "totalReplyCount": 0,
            "topLevelComment": {
                "kind": "youtube#comment",
                "id": comment_id,
                "snippet": {
                    "channelId": CHANNEL,
                    "videoId": "vid-1",
                    "authorDisplayName": "Ken",
                    "textOriginal": text,
                    "textDisplay": text,
                    "authorChannelId": {"value": author},
                    "moderationStatus": "published",
                    "publishedAt": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "updatedAt": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            },
        },
    }


def test_youtube_poller_ingests_new_comments_and_delivery_replies_and_moderates(
    client, brands, settings, tmp_path
) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    directory = policy_dir(tmp_path, "")
    text = (
        (REPO_ROOT / "policies" / "demo-shop.yaml")
        .read_text()
        .replace("ban_author_rules: [moderation.hate]", "ban_author_rules: [moderation.spam]")
    )
    (directory / "demo-shop.yaml").write_text(text)
    with YouTubeStandIn(token=TOKEN, page_size=2) as yt:
        yt.threads[CHANNEL] = [
            _thread("t3", "c3", "BUY CHEAP FOLLOWERS NOW http://spam.example", "UCspammer", now - timedelta(minutes=1)),
            _thread("t2", "c2", "Thanks for watching!", CHANNEL, now - timedelta(minutes=2)),  # the brand itself
            _thread("t1", "c1", "what are your opening hours?", "UCken", now - timedelta(minutes=3)),
            _thread("t0", "c0", "an old comment", "UCold", now - timedelta(days=3)),  # before the first window
        ]
        live = settings.model_copy(
            update={
                "policies_dir": directory,
                "delivery_mode": "live",
                "youtube_api_base": yt.url + "/youtube/v3",
                "batch_wait_ms": 10,
            }
        )
        counts = poll_youtube(client, live, once=True, interval=0, environ=ENV)
        assert counts == {"channels": 1, "new": 2, "quota_units": 2}  # two pages of two
        install(Pipeline(brands), live)
        make_worker(client, live, simple=True).work(burst=True)
        store = Store(client)
        assert store.decision("demo-shop", "c2") is None and store.decision("demo-shop", "c0") is None
        assert store.decision("demo-shop", "c1").event["post_id"] == "vid-1"
        deliver(client, live)
        [insert] = [r for r in yt.received("/youtube/v3/comments") if r.path.endswith("/comments")]
        assert insert.query == {"part": "snippet"}
        assert insert.json == {"snippet": {"parentId": "c1", "textOriginal": store.decision("demo-shop", "c1").reply}}
        [moderate] = yt.received("/youtube/v3/comments/setModerationStatus")
        assert moderate.query == {"id": "c3", "moderationStatus": "rejected", "banAuthor": "true"}
        assert [r.action for r in store.decision("demo-shop", "c3").deliveries] == ["hide:rejected+ban"]
        # a second poll finds nothing new (the cursor), and costs one more unit
        yt.threads[CHANNEL].insert(0, _thread("t4", "c4", "hello again", "UCken", now))
        assert poll_youtube(client, live, once=True, interval=0, environ=ENV)["new"] == 1
        assert store.stats("demo-shop")["youtube:quota_units"] == 2 + 50 + 50 + 1


def chatwoot_payload(message_id: int, text: str, conversation: int = 42) -> dict:
    return {
        "event": "message_created",
        "id": message_id,
        "content": text,
        "message_type": "incoming",
        "private": False,
        "created_at": int(time.time()),
        "content_type": "text",
        "sender": {"id": 7, "name": "Aiko Tanaka", "type": "contact"},
        "inbox": {"id": 3, "name": "Web"},
        "account": {"id": 1, "name": "Komorebi"},
        "conversation": {"id": conversation, "status": "pending", "channel": "Channel::WebWidget"},
    }


def test_chatwoot_signature_and_adapter() -> None:
    body = json.dumps(chatwoot_payload(5, "hi")).encode()
    ts = str(int(time.time()))
    good = "sha256=" + hmac.new(b"cw-secret", ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert chatwoot.verify_signature("cw-secret", ts, body, good, tolerance=300)
    assert not chatwoot.verify_signature("cw-secret", ts, body + b" ", good, tolerance=300)
    assert not chatwoot.verify_signature("cw-secret", str(int(ts) - 3600), body, good, tolerance=300)
    assert not chatwoot.verify_signature("cw-secret", ts, body, None, tolerance=300)
    event = chatwoot.event_from_payload("demo-shop", chatwoot_payload(5, "hi"), 1)
    assert (event["id"], event["conversation_id"], event["platform"]) == ("cw-1-5", "cw-1-42", "other")
    outgoing = {**chatwoot_payload(6, "our answer"), "message_type": "outgoing"}
    assert chatwoot.event_from_payload("demo-shop", outgoing, 1) is None
    assert chatwoot.event_from_payload("demo-shop", {**chatwoot_payload(7, "x"), "private": True}, 1) is None
    assert chatwoot.event_from_payload("demo-shop", {"event": "conversation_created"}, 1) is None


def test_chatwoot_reply_and_handoff(client, brands, settings, tmp_path) -> None:
    with ChatwootStandIn(token=TOKEN) as cw:
        directory = policy_dir(
            tmp_path,
            f"""
connectors:
  chatwoot: {{base_url: "{cw.url}", account_id: 1, api_token_env: CW_TOKEN, webhook_secret_env: CW_SECRET}}
""",
        )
        live = settings.model_copy(update={"policies_dir": directory, "delivery_mode": "live"})
        events = [
            chatwoot.event_from_payload("demo-shop", chatwoot_payload(5, "how long does shipping take to Germany?"), 1),
            chatwoot.event_from_payload(
                "demo-shop", chatwoot_payload(6, "I'd like to speak to a real person please, not a bot", 43), 1
            ),
        ]
        store = Store(client)
        Pipeline(brands).process(events, store)
        deliver(client, live)
        sent = cw.received("/api/v1/accounts/1/conversations/42/messages")
        assert [r.json for r in sent] == [
            {"content": store.decision("demo-shop", "cw-1-5").reply, "message_type": "outgoing", "private": False}
        ]
        assert all(r.headers["api_access_token"] == TOKEN for r in cw.requests)
        escalated = store.decision("demo-shop", "cw-1-6")
        notes = [r.json for r in cw.received("/api/v1/accounts/1/conversations/43/messages") if r.json["private"]]
        assert (
            len(notes) == 1
            and escalated.rule in notes[0]["content"]
            and escalated.escalation.reason in notes[0]["content"]
        )
        assert "intent " in notes[0]["content"]  # scores
        [opened] = cw.received("/api/v1/accounts/1/conversations/43/toggle_status")
        assert opened.json == {"status": "open"}
        assert {r.action for r in escalated.deliveries} >= {"chatwoot_note", "chatwoot_open"}


def _signed(body: bytes, secret: str = "cw-secret", timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sig = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Chatwoot-Timestamp": ts,
        "X-Chatwoot-Signature": sig,
        "X-Chatwoot-Delivery": "d-1",
    }


def test_chatwoot_webhook_through_serve_is_verified_stored_decided_and_answered_once(
    client, brands, settings, redis_url, tmp_path
) -> None:
    """Over real HTTP: ``replyguard serve`` as a process, the Chatwoot stand-in; webhooks go through the
    durable inbox (the same stream as Meta's), a retried one is decided once and answered once, and an
    escalation hands the conversation over (private note + toggle_status open)."""
    import httpx

    from tests.serve_process import ServeProcess
    from worker.queues import batch_queue

    with ChatwootStandIn(token=TOKEN) as cw:
        directory = policy_dir(
            tmp_path,
            f"""
connectors:
  chatwoot: {{base_url: "{cw.url}", account_id: 1, api_token_env: CW_TOKEN, webhook_secret_env: CW_SECRET}}
""",
        )
        live = settings.model_copy(update={"policies_dir": directory, "delivery_mode": "live"})
        install(Pipeline(brands), live)
        store = Store(client)
        queue = batch_queue(client, settings)
        faq = json.dumps(chatwoot_payload(11, "how long does shipping take to Germany?")).encode()
        agent = json.dumps(chatwoot_payload(12, "I'd like to speak to a real person please, not a bot", 43)).encode()

        def decide_and_deliver() -> None:
            make_worker(client, live, simple=True).work(burst=True)
            deliver(client, live)

        env = {"CW_SECRET": "cw-secret", "REPLYGUARD_POLICIES_DIR": str(directory)}
        with ServeProcess(redis_url, env=env) as serve:
            url = serve.url + "/webhooks/chatwoot/demo-shop"

            def post(body: bytes, headers: dict[str, str]) -> httpx.Response:
                return httpx.post(url, content=body, headers=headers, timeout=10)

            # unsigned, wrongly signed, stale: refused, nothing stored or enqueued
            assert post(faq, {"Content-Type": "application/json"}).status_code == 401
            assert post(faq, _signed(faq, "wrong")).status_code == 401
            assert post(faq, _signed(faq, timestamp=int(time.time()) - 3600)).status_code == 401
            assert client.xlen(store.keys.inbox) == 0
            time.sleep(0.2)
            assert queue.count == 0 and client.keys("rg:decision:*") == []
            # a signed one and Chatwoot retrying it at once, and a message asking for a person
            for body in (faq, faq, agent):
                answer = post(body, _signed(body))
                assert answer.status_code == 200, answer.text
            assert answer.json() == {"accepted": "cw-1-12"}
            outgoing = json.dumps({**chatwoot_payload(13, "our answer"), "message_type": "outgoing"}).encode()
            assert "ignored" in post(outgoing, _signed(outgoing)).json()
            assert (
                httpx.post(
                    serve.url + "/webhooks/chatwoot/no-such-brand", content=faq, headers=_signed(faq)
                ).status_code
                == 404
            )
            deadline = time.monotonic() + 20  # the inbox consumer (a child of serve) batches them for deciding
            while not (client.xlen(store.keys.inbox) == 0 and queue.count) and time.monotonic() < deadline:
                time.sleep(0.05)
            decide_and_deliver()
            # Chatwoot retrying once more after the decision and the reply
            assert post(faq, _signed(faq)).status_code == 200
            deadline = time.monotonic() + 20
            while client.xlen(store.keys.inbox) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.xlen(store.keys.inbox) == 0
            metrics = httpx.get(serve.url + "/metrics").text
            assert 'replyguard_chatwoot_webhooks_total{outcome="accepted"} 4.0' in metrics
            assert 'replyguard_chatwoot_webhooks_total{outcome="bad_signature"} 3.0' in metrics
        decide_and_deliver()
        assert store.stats("demo-shop")["decisions"] == 2  # the retries decided nothing again
        decision = store.decision("demo-shop", "cw-1-11")
        assert decision is not None and decision.reply
        sent = cw.received("/api/v1/accounts/1/conversations/42/messages")
        assert [(r.json["content"], r.json["private"]) for r in sent] == [(decision.reply, False)]  # exactly once
        escalated = store.decision("demo-shop", "cw-1-12")
        assert escalated is not None and escalated.escalation is not None
        messages = [r.json for r in cw.received("/api/v1/accounts/1/conversations/43/messages")]
        [note] = [m for m in messages if m["private"]]
        assert [m["content"] for m in messages if not m["private"]] == ([escalated.reply] if escalated.reply else [])
        assert escalated.rule in note["content"] and escalated.escalation.reason in note["content"]
        [opened] = cw.received("/api/v1/accounts/1/conversations/43/toggle_status")
        assert opened.json == {"status": "open"}


def test_sla_breach_marked_notify_reaches_the_webhook(client, brands, settings, tmp_path, receiver) -> None:
    from worker.sla.tracker import SlaTracker

    directory = policy_dir(
        tmp_path,
        f"""
connectors:
  webhooks:
    - {{name: tickets, url: "{receiver.url}/tickets", secret_env: CRM_SECRET, actions: [escalate]}}
""",
    )
    live = settings.model_copy(update={"policies_dir": directory, "delivery_mode": "live"})
    store = Store(client)
    policies, _ = load_delivery_config(live)
    tracker = SlaTracker(store, policies)
    old = {
        **AGENT,
        "id": "m-old",
        "conversation_id": "c-old",
        "created_at": (datetime.now(timezone.utc) - timedelta(days=3)).isoformat(),
    }
    Pipeline(brands).process([old], store, sla=tracker)
    tracker.fire_due()
    deliver(client, live)
    events = [r.headers["x-replyguard-event"] for r in receiver.received("/tickets")]
    assert events[0] == "decision" and "sla.breached" in events
    breach = next(r for r in receiver.received("/tickets") if r.headers["x-replyguard-event"] == "sla.breached")
    assert breach.json["sla"]["message_id"] == "m-old"
    assert webhooks.verify(
        SECRET, breach.headers["x-replyguard-timestamp"], breach.body, breach.headers["x-replyguard-signature"]
    )
    assert client.xpending(store.keys.sla_events("demo-shop"), "deliverers")["pending"] == 0


def test_youtube_poll_survives_an_expired_token(client, settings, tmp_path, caplog) -> None:
    with YouTubeStandIn(token=TOKEN) as yt:
        live = settings.model_copy(
            update={"policies_dir": policy_dir(tmp_path, ""), "youtube_api_base": yt.url + "/youtube/v3"}
        )
        counts = poll_youtube(client, live, once=True, interval=0, environ={**ENV, "YOUTUBE_TOKEN": "expired"})
    assert counts["new"] == 0 and "token_expired" in caplog.text and TOKEN not in caplog.text
