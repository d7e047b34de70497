"""Fuzzing the HTTP endpoints' bodies: ``POST /v1/events`` and ``POST /webhooks/meta`` of a real
``replyguard serve`` process (with a real worker consuming its inbox), fed byte-mutated real
events and webhook payloads and hypothesis-generated JSON. Whatever arrives, the answer is a
status the endpoint documents with a JSON error naming the problem, never a 500 or a traceback,
and the service and its inbox consumer keep serving the requests after it."""

from __future__ import annotations

import json
import random
import time

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings as hsettings

from tests.conftest import make_event
from tests.test_fuzz import JSON, TRAFFIC, mutate
from worker import defaults
from worker.store import Store

# POST /v1/events and /webhooks/meta come with the inbound service; until it is in this checkout
# there is nothing to fuzz here.
pytest.importorskip("worker.web.events", reason="the HTTP ingestion endpoints (worker/web/events.py) are not here yet")
s = pytest.importorskip("worker.inbound.samples")
from tests.serve_process import ServeProcess, WorkerProcess  # noqa: E402

SECRET = "fuzz-app-secret"
TOKEN = "fuzz-api-token"
ENV = {
    "META_APP_SECRET": SECRET,
    "META_VERIFY_TOKEN": "verify-me",
    "DEMO_SHOP_API_TOKEN": TOKEN,
    "DEMO_SHOP_SIGNING_SECRET": "fuzz-signing-secret",
}
AUTH = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}


@pytest.fixture(scope="module")
def module_redis(redis_url: str) -> redis.Redis:
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    return connection


@pytest.fixture(scope="module")
def service(module_redis, redis_url):
    with ServeProcess(redis_url, env=ENV) as serve, WorkerProcess(redis_url, env=ENV) as worker:
        with httpx.Client(base_url=serve.url, timeout=20) as http:
            yield serve, worker, http


def answer_is_documented(response: httpx.Response, allowed: set[int]) -> dict:
    assert response.status_code in allowed, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text
    body = response.json()
    if response.status_code >= 400:
        assert body.get("error"), body
    return body


def test_events_endpoint_answers_mutated_real_events(service) -> None:
    _, _, http = service
    rng = random.Random(5)
    seen = set()
    for i in range(250):
        event = json.loads(TRAFFIC[i % len(TRAFFIC)])
        event["id"] = f"hf-{i}"
        raw = mutate(json.dumps(event, ensure_ascii=False).encode(), rng)
        if rng.random() < 0.3:
            raw = b"[" + raw + b"," + json.dumps(make_event(id=f"hf-ok-{i}")).encode() + b"]"
        response = http.post("/v1/events", content=raw, headers=AUTH)
        body = answer_is_documented(response, {202, 403, 413, 422})
        seen.add(response.status_code)
        if "invalid" in body:
            assert all(p["field"] and p["reason"] for item in body["invalid"] for p in item["problems"])
    assert {202, 422} <= seen


@hsettings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(value=JSON)
def test_events_endpoint_answers_any_json(service, value) -> None:
    _, _, http = service
    raw = json.dumps(value, allow_nan=True).encode()
    answer_is_documented(http.post("/v1/events", content=raw, headers=AUTH), {202, 403, 413, 422})


def test_events_endpoint_limits(service) -> None:
    _, _, http = service
    deep = b'{"metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    body = answer_is_documented(http.post("/v1/events", content=deep, headers=AUTH), {413, 422})
    if body.get("invalid"):
        assert "deeper than" in json.dumps(body)
    big = json.dumps(make_event(id="hf-big", metadata={"n": 1})).replace('"n": 1', '"n": ' + "9" * 5000).encode()
    body = answer_is_documented(http.post("/v1/events", content=big, headers=AUTH), {422})
    assert body["invalid"][0]["problems"][0]["field"] == "metadata.n"
    c1 = json.dumps(make_event(id="hf-c1", text="hi\u0085there")).encode()
    body = answer_is_documented(http.post("/v1/events", content=c1, headers=AUTH), {422})
    assert "U+0085" in json.dumps(body)
    huge = b" " * (defaults.MAX_REQUEST_BYTES + 1)
    answer_is_documented(http.post("/v1/events", content=huge, headers=AUTH), {413})


def real_webhooks() -> list[bytes]:
    return [
        s.dumps(p)
        for p in (
            s.whatsapp([s.wa_text("wamid.fz1", "where is my order KM-204815?")]),
            s.messaging("page", s.PAGE_ID, [s.dm("mid.fz2", "hello, do you ship to Germany?")]),
            s.ig_comments([s.ig_comment("1789fz3", "love this!! where can I buy it?")]),
            s.page_feed([s.feed_comment("fz4_1", "great mug")]),
        )
    ]


def test_meta_webhook_takes_signed_garbage_and_keeps_deciding(service, module_redis) -> None:
    serve, worker, http = service
    rng = random.Random(8)
    bodies = real_webhooks()
    for i in range(200):
        raw = mutate(bodies[i % len(bodies)], rng)
        response = http.post(
            "/webhooks/meta",
            content=raw,
            headers={"content-type": "application/json", "x-hub-signature-256": s.signature(raw, SECRET)},
        )
        assert response.status_code in (200, 413), (response.status_code, response.text[:300])
        assert "Traceback" not in response.text
    unsigned = http.post("/webhooks/meta", content=bodies[0], headers={"content-type": "application/json"})
    assert unsigned.status_code == 401
    # the consumer survived the garbage: a good message after it is decided
    good = s.dumps(s.whatsapp([s.wa_text("wamid.fz-after", "where is my order KM-204999?")]))
    assert (
        http.post(
            "/webhooks/meta",
            content=good,
            headers={"content-type": "application/json", "x-hub-signature-256": s.signature(good, SECRET)},
        ).status_code
        == 200
    )
    store = Store(module_redis)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not any(
        d and d.event["text"].endswith("KM-204999?") for d in store.decisions([("demo-shop", "wamid.fz-after")])
    ):
        time.sleep(0.2)
    decided = store.decisions([("demo-shop", "wamid.fz-after")])[0]
    assert decided is not None, worker.log()[-3000:]
    assert http.get("/healthz").status_code == 200
    assert "Traceback" not in serve.log()
