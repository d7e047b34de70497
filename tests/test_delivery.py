"""Delivery workers against a loopback Graph API stand-in: exactly once, the 24-hour window,
retries honouring Retry-After, permanent errors escalated, dry run, and a deliverer killed with
kill -9 mid-send (nothing lost, nothing sent twice)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import make_event
from worker import defaults
from worker.delivery.deliverer import Deliverer
from worker.delivery.runner import load_delivery_config
from worker.pipeline import Pipeline
from worker.settings import REPO_ROOT
from worker.standins import GraphStandIn, Scripted
from worker.store import Store

TOKEN = "graph-test-token"
ENV = {"WHATSAPP_TOKEN": TOKEN, "META_PAGE_TOKEN": TOKEN, "YOUTUBE_TOKEN": TOKEN}
PHONE_ID = "106540352242922"  # demo-shop's WhatsApp phone number id


@pytest.fixture()
def graph():
    with GraphStandIn(token=TOKEN) as server:
        yield server


@pytest.fixture()
def live(settings, graph):
    return settings.model_copy(update={"meta_api_base": graph.url + "/v21.0", "delivery_mode": "live"})


def now_iso(hours_ago: float = 0.0) -> str:
    return (datetime.now(timezone.utc) - timedelta(hours=hours_ago)).isoformat()


def decide(client, brands, events) -> Store:
    store = Store(client)
    report = Pipeline(brands).process(events, store)
    assert sorted(report.decided) == sorted(e["id"] for e in events), report.as_dict()
    return store


def deliverer(client, settings, **kwargs) -> Deliverer:
    policies, books = load_delivery_config(settings)
    kwargs.setdefault("environ", ENV)
    return Deliverer(client, settings, policies, books, **kwargs)


def pending(client, store) -> int:
    return client.xpending(store.keys.outbox("demo-shop"), defaults.DELIVERY_GROUP)["pending"]


def wa(i: int, text: str = "where is my order KM-204815?", **kw):
    return make_event(
        id=f"wamid.in{i}",
        platform="whatsapp",
        kind="dm",
        conversation_id=f"wa-{i}",
        author={"id": f"8190000{i:04d}", "name": "Aiko Tanaka"},
        text=text,
        created_at=kw.pop("created_at", now_iso()),
        **kw,
    )


def test_whatsapp_reply_is_sent_once_even_when_the_entry_comes_again(client, brands, live, graph) -> None:
    store = decide(client, brands, [wa(1)])
    assert deliverer(client, live).run(burst=True) == 2  # the reply, and the decision for connectors
    sent = graph.received(f"/v21.0/{PHONE_ID}/messages")
    assert len(sent) == 1
    body = sent[0].json
    d = store.decision("demo-shop", "wamid.in1")
    assert body["to"] == "81900000001" and body["type"] == "text" and body["text"]["body"] == d.reply
    assert body["context"] == {"message_id": "wamid.in1"}
    assert sent[0].headers["authorization"] == f"Bearer {TOKEN}"
    [record] = d.deliveries
    assert (record.action, record.target, record.status, record.attempts) == ("reply", "whatsapp", "sent", 1)
    assert record.platform_message_id.startswith("wamid.SI")
    assert pending(client, store) == 0
    # the same entry delivered again (a platform of ours repeating it): the idempotency record says sent
    entry = next(f for _, f in client.xrange(store.keys.outbox("demo-shop")) if b'"reply"' in f[b"payload"])
    client.xadd(store.keys.outbox("demo-shop"), entry)
    deliverer(client, live).run(burst=True)
    assert len(graph.received(f"/v21.0/{PHONE_ID}/messages")) == 1
    assert len(store.decision("demo-shop", "wamid.in1").deliveries) == 1


def test_messenger_instagram_facebook_and_youtube_shapes(client, brands, live, graph) -> None:
    events = [
        make_event(
            id="mid.1",
            platform="messenger",
            kind="dm",
            conversation_id="psid-1",
            author={"id": "psid-1"},
            text="how long does shipping take to Germany?",
            created_at=now_iso(),
        ),
        make_event(
            id="ig-c-1",
            platform="instagram",
            kind="comment",
            conversation_id="media-1",
            post_id="media-1",
            text="what are your opening hours?",
            created_at=now_iso(),
        ),
        make_event(
            id="ig-c-2",
            platform="instagram",
            kind="comment",
            conversation_id="media-1",
            post_id="media-1",
            text="BUY CHEAP FOLLOWERS NOW http://spam.example",
            created_at=now_iso(),
        ),
        make_event(
            id="fb-c-1",
            platform="facebook",
            kind="comment",
            conversation_id="post-9",
            post_id="post-9",
            text="BUY CHEAP FOLLOWERS NOW http://spam.example",
            created_at=now_iso(),
        ),
    ]
    store = decide(client, brands, events)
    deliverer(client, live).run(burst=True)
    [dm] = graph.received("/v21.0/me/messages")
    assert dm.json == {
        "recipient": {"id": "psid-1"},
        "messaging_type": "RESPONSE",
        "message": {"text": store.decision("demo-shop", "mid.1").reply},
    }
    [reply] = graph.received("/v21.0/ig-c-1/replies")
    assert reply.json == {"message": store.decision("demo-shop", "ig-c-1").reply}
    [hide_ig] = graph.received("/v21.0/ig-c-2")
    [hide_fb] = graph.received("/v21.0/fb-c-1")
    assert hide_ig.query == {"hide": "true"} and hide_fb.query == {"is_hidden": "true"}
    for mid in ("mid.1", "ig-c-1", "ig-c-2", "fb-c-1"):
        assert [r.status for r in store.decision("demo-shop", mid).deliveries] == ["sent"]


def test_24_hour_window(client, brands, live, graph) -> None:
    events = [
        wa(1, created_at=now_iso(hours_ago=25)),  # order_status.en declares a WhatsApp template
        wa(2, text="how long does shipping take to Germany?", created_at=now_iso(hours_ago=25)),  # no template
        wa(3, text="how long does shipping take to Germany?", created_at=now_iso(hours_ago=23)),  # still open
        make_event(
            id="mid.late",
            platform="messenger",
            kind="dm",
            conversation_id="psid-9",
            author={"id": "psid-9"},
            text="how long does shipping take to Germany?",
            created_at=now_iso(hours_ago=30),
        ),
    ]
    store = decide(client, brands, events)
    deliverer(client, live).run(burst=True)
    sent = {r.json["to"]: r.json for r in graph.received(f"/v21.0/{PHONE_ID}/messages")}
    assert sent["81900000001"]["type"] == "template"
    assert sent["81900000001"]["template"] == {"name": "order_status_link", "language": {"code": "en"}}
    assert "81900000002" not in sent and sent["81900000003"]["type"] == "text"
    assert graph.received("/v21.0/me/messages") == []
    template = store.decision("demo-shop", "wamid.in1").deliveries[0]
    assert (template.action, template.status) == ("template", "sent")
    review = {(i.message_id, i.decision.rule) for i in store.review(brand="demo-shop")}
    for mid in ("wamid.in2", "mid.late"):
        d = store.decision("demo-shop", mid)
        assert [(r.status, r.error.split(":")[0]) for r in d.deliveries] == [("skipped", "window_closed")]
        assert "escalate" in d.actions and d.rule == "delivery.window_closed"
        assert "24-hour" in d.escalation.reason and (mid, "delivery.window_closed") in review
    assert "escalate" not in store.decision("demo-shop", "wamid.in1").actions


def test_429_then_success_honours_retry_after(client, brands, live, graph) -> None:
    graph.script.append(
        Scripted(
            status=429,
            headers={"Retry-After": "1"},
            body={"error": {"message": "(#130429) Rate limit hit", "code": 130429}},
        )
    )
    store = decide(client, brands, [wa(1)])
    deliverer(client, live).run(burst=True)
    calls = graph.received(f"/v21.0/{PHONE_ID}/messages")
    assert len(calls) == 2 and calls[1].at - calls[0].at >= 0.95
    [record] = store.decision("demo-shop", "wamid.in1").deliveries
    assert (record.status, record.attempts) == ("sent", 2)


def test_server_errors_are_retried_a_bounded_number_of_times(client, brands, live, graph) -> None:
    for _ in range(3):
        graph.script.append(
            Scripted(
                status=500,
                headers={"Retry-After": "0"},
                body={"error": {"message": "An unknown error occurred", "code": 1}},
            )
        )
    store = decide(client, brands, [wa(1)])
    deliverer(client, live, max_attempts=3).run(burst=True)
    assert len(graph.received(f"/v21.0/{PHONE_ID}/messages")) == 3
    d = store.decision("demo-shop", "wamid.in1")
    [record] = d.deliveries
    assert (record.status, record.attempts) == ("failed", 3) and record.error.startswith("server_error")
    assert d.rule == "delivery.server_error" and "escalate" in d.actions
    assert pending(client, store) == 0


def test_expired_token_is_recorded_escalated_and_never_retried(client, brands, live, graph) -> None:
    store = decide(client, brands, [wa(1)])
    deliverer(client, live, environ={**ENV, "WHATSAPP_TOKEN": "expired"}).run(burst=True)
    assert len(graph.received(f"/v21.0/{PHONE_ID}/messages")) == 1
    d = store.decision("demo-shop", "wamid.in1")
    [record] = d.deliveries
    assert (record.status, record.attempts) == ("failed", 1) and record.error.startswith("token_expired")
    assert d.rule == "delivery.token_expired" and d.escalation.priority == "high"
    assert "access token" in d.escalation.reason and "expired" not in (record.platform_message_id or "")
    assert [i.message_id for i in store.review(brand="demo-shop")] == ["wamid.in1"]
    assert client.exists(store.keys.sla_timer("demo-shop", "wamid.in1"))  # its response-time clock runs
    assert store.stats("demo-shop")["delivery:failed"] == 1


def test_missing_token_escalates_without_calling(client, brands, live, graph) -> None:
    store = decide(client, brands, [wa(1)])
    deliverer(client, live, environ={}).run(burst=True)
    assert graph.requests == []
    d = store.decision("demo-shop", "wamid.in1")
    assert d.deliveries[0].error.startswith("missing_token") and "WHATSAPP_TOKEN" in d.deliveries[0].error


def test_dry_run_records_and_logs_without_personal_text(client, brands, settings, graph, caplog) -> None:
    caplog.set_level(logging.INFO)
    store = decide(client, brands, [wa(1)])
    deliverer(client, settings.model_copy(update={"meta_api_base": graph.url})).run(burst=True)
    assert graph.requests == []
    d = store.decision("demo-shop", "wamid.in1")
    assert [(r.status, r.target) for r in d.deliveries] == [("dry_run", "whatsapp")]
    assert "dry_run: would reply on whatsapp" in caplog.text
    assert "KM-204815" not in caplog.text and "Aiko" not in caplog.text and "81900000001" not in caplog.text


def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_deliverer_killed_mid_send_loses_nothing_and_sends_nothing_twice(client, brands, settings, redis_url) -> None:
    n = 12
    store = decide(client, brands, [wa(i) for i in range(n)])
    with GraphStandIn(token=TOKEN, delay=0.3) as slow:  # every send takes 0.3 s: the kill lands mid-send
        env = {
            **os.environ,
            **ENV,
            "REDIS_URL": redis_url,
            "REPLYGUARD_DELIVERY_MODE": "live",
            "REPLYGUARD_META_API_BASE": slow.url + "/v21.0",
            "PYTHONPATH": str(REPO_ROOT),
        }
        command = [sys.executable, "-m", "worker.cli", "deliver"]
        first = subprocess.Popen(
            [*command, "--claim-idle-ms", "500"],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait(lambda: len(slow.requests) >= 3)
            time.sleep(0.15)  # the next send is in flight
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        before = len(slow.requests)
        assert 3 <= before < n
        second = subprocess.run(
            [*command, "--burst", "--claim-idle-ms", "500"],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 0, second.stderr
        time.sleep(0.5)  # a request the killed deliverer had in flight finishes at the stand-in
        recipients = [r.json["to"] for r in slow.received(f"/v21.0/{PHONE_ID}/messages")]
    assert len(recipients) == len(set(recipients)), "a reply was sent twice"
    statuses = {}
    for i in range(n):
        d = store.decision("demo-shop", f"wamid.in{i}")
        assert len(d.deliveries) == 1, f"wamid.in{i}: {d.deliveries}"
        statuses[f"8190000{i:04d}"] = d.deliveries[0].status
    assert set(statuses.values()) <= {"sent", "unknown"}  # nothing lost: every reply accounted for
    unknown = [to for to, s in statuses.items() if s == "unknown"]
    assert len(unknown) <= 1  # only the send the kill interrupted is in doubt ...
    assert {to for to, s in statuses.items() if s == "sent"} <= set(recipients)
    for to in unknown:  # ... and a person is told to check it
        d = store.decision("demo-shop", f"wamid.in{int(to[-4:])}")
        assert d.rule == "delivery.unknown" and "may or may not" in d.escalation.reason
    assert pending(client, store) == 0


def test_a_persons_actions_from_the_review_app_are_delivered_apart_from_the_automated_ones(
    client, brands, live, graph
) -> None:
    import json as _json

    from worker.models import InboundEvent
    from worker.store import outbox_payload

    late = make_event(
        id="mid.p1",
        platform="messenger",
        kind="dm",
        conversation_id="psid-7",
        author={"id": "psid-7"},
        text="how long does shipping take to Germany?",
        created_at=now_iso(hours_ago=30),
    )
    spam = make_event(
        id="ig-spam",
        platform="instagram",
        kind="comment",
        conversation_id="media-2",
        post_id="media-2",
        text="BUY CHEAP FOLLOWERS NOW http://spam.example",
        created_at=now_iso(),
    )
    store = decide(client, brands, [late, spam])
    deliverer(client, live).run(burst=True)
    assert graph.received("/v21.0/me/messages") == []  # the automated reply missed the 24-hour window
    stream = store.keys.outbox("demo-shop")
    event = InboundEvent.model_validate(late)
    client.xadd(
        stream,
        {
            "message_id": "mid.p1",
            "payload": _json.dumps(
                outbox_payload(
                    event,
                    "reply",
                    text="Sorry for the wait! Shipping to Germany takes 5-7 days.",
                    templates=[],
                    llm=False,
                    by="mika",
                    action_id="a-1",
                )
            ),
        },
    )
    client.xadd(
        stream,
        {
            "message_id": "ig-spam",
            "payload": _json.dumps(
                outbox_payload(InboundEvent.model_validate(spam), "unhide", by="mika", action_id="a-2")
            ),
        },
    )
    deliverer(client, live).run(burst=True)
    [sent] = graph.received("/v21.0/me/messages")
    assert sent.json["messaging_type"] == "MESSAGE_TAG" and sent.json["tag"] == "HUMAN_AGENT"
    assert sent.json["message"]["text"].startswith("Sorry for the wait")
    assert [r.query for r in graph.received("/v21.0/ig-spam")] == [{"hide": "true"}, {"hide": "false"}]
    assert [(r.action, r.status) for r in store.decision("demo-shop", "mid.p1").deliveries] == [
        ("reply", "skipped"),
        ("reply", "sent"),
    ]
