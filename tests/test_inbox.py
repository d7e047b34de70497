"""The durable inbox consumer, driven directly on a real Redis (the HTTP path is in test_webhooks_meta)."""

from __future__ import annotations

import json

from worker.inbound import inbox, samples as s
from worker.inbound.meta import Routing
from worker.queues import batch_queue


def consumer(client, settings, secret_env: str = "APP_A_SECRET") -> inbox.InboxConsumer:
    routing = Routing.from_channels({"demo-shop": {"whatsapp": [s.WA_PHONE_ID]}})
    worker = inbox.InboxConsumer(client, settings, routing, lambda brand, platform: secret_env)
    worker._ensure_group()
    return worker


def test_a_payload_signed_by_another_brands_app_is_not_routed(client, settings) -> None:
    reader = consumer(client, settings)
    body = s.dumps(s.whatsapp([s.wa_text("wamid.wrong-app", "hello")]))
    inbox.append(client, reader.keys, "meta", body, secret_env="APP_B_SECRET")
    assert reader.poll() == 1
    assert "signed by the app of APP_B_SECRET" in json.loads(client.lindex(reader.keys.rejected, 0))["reason"]
    assert batch_queue(client, settings).count == 0
    assert client.xlen(reader.keys.inbox) == 0  # acknowledged and deleted: raw bodies do not linger

    inbox.append(client, reader.keys, "meta", body, secret_env="APP_A_SECRET")
    assert reader.poll() == 1
    (job,) = batch_queue(client, settings).jobs
    assert [m["id"] for m in job.args[0]] == ["wamid.wrong-app"]


def test_entries_left_by_a_dead_consumer_are_taken_over(client, settings, monkeypatch) -> None:
    dead = consumer(client, settings)
    dead.name = "dead-host:1"
    inbox.append(client, dead.keys, "events", json.dumps([{"id": "x"}]).encode())
    # the dead consumer read the entry, then died before acknowledging it
    client.xreadgroup(inbox.GROUP, dead.name, {dead.keys.inbox: ">"}, count=10)
    monkeypatch.setattr(inbox.defaults, "INBOX_CLAIM_IDLE_MS", 0)
    alive = consumer(client, settings)
    assert alive.poll() == 1
    assert "author: Field required" in json.loads(client.lindex(alive.keys.rejected, 0))["reason"]
    assert client.xpending(alive.keys.inbox, inbox.GROUP)["pending"] == 0
