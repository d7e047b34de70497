"""``replyguard serve`` as a real process: health, readiness, metrics; the app factory."""

from __future__ import annotations

import httpx
import pytest
from starlette.testclient import TestClient

from tests.serve_process import ServeProcess
from worker.web import create_app


def test_serve_answers_health_readiness_and_metrics(serve) -> None:
    assert httpx.get(serve.url + "/healthz").text == "ok\n"
    ready = httpx.get(serve.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"] == "ok" and "demo-shop" not in ready.text  # counts, not names
    metrics = httpx.get(serve.url + "/metrics")
    assert metrics.status_code == 200
    assert 'replyguard_decisions_total{brand="demo-shop"}' in metrics.text
    assert 'replyguard_http_requests_total{method="GET",route="/readyz",status="200"}' in metrics.text
    assert httpx.get(serve.url + "/nowhere").status_code == 404


def test_readyz_is_503_when_redis_is_unreachable(settings, brands, client) -> None:
    import redis

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    with TestClient(create_app(settings, connection=dead, brands=brands)) as http:
        answer = http.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["redis"].startswith("unreachable")
        assert http.get("/healthz").status_code == 200


def test_a_broken_policy_stops_serve_with_exit_code_2(redis_url, tmp_path, client) -> None:
    (tmp_path / "demo-shop.yaml").write_text("schema_version: 1\nbrand: demo-shop\n")
    process = ServeProcess(redis_url, env={"REPLYGUARD_POLICIES_DIR": str(tmp_path)}, startup_timeout=20)
    with pytest.raises(RuntimeError, match="display_name"):
        process.start()
    assert process.process is not None and process.process.returncode == 2


def test_a_webhook_while_redis_is_gone_gets_503_so_meta_retries_it(settings, brands, client, monkeypatch) -> None:
    import redis

    from worker.inbound import samples as s

    monkeypatch.setenv("META_APP_SECRET", "app-secret")
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    body = s.dumps(s.whatsapp([s.wa_text("wamid.redis-gone", "hello")]))
    with TestClient(create_app(settings, connection=dead, brands=brands), raise_server_exceptions=False) as http:
        answer = http.post(
            "/webhooks/meta", content=body, headers={"x-hub-signature-256": s.signature(body, "app-secret")}
        )
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
        assert answer.json() == {"error": "storage unavailable, try again later"}  # no traceback, no detail
        unsigned = http.post("/webhooks/meta", content=body)
        assert unsigned.status_code == 401  # the signature is still checked first
