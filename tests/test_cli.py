"""The command line, run as users run it: separate processes, a real worker, a real Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq import Worker

from tests.conftest import make_event
from worker.connection import EmbeddedRedis

CLI = [sys.executable, "-m", "worker.cli"]


def cli(
    *args: str, env: dict[str, str], stdin: bytes | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env, input=stdin, capture_output=True, timeout=timeout)


@pytest.fixture()
def env(redis_url: str, client, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": redis_url, "REPLYGUARD_HOME": str(tmp_path / "home")}


@pytest.fixture()
def running_worker(env, client):
    proc = subprocess.Popen([*CLI, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not Worker.all(connection=client) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # registered: `ingest --wait` sees a worker consuming the queue
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_ingest_wait_show_and_review(env, running_worker, tmp_path: Path) -> None:
    lines = [
        json.dumps(make_event(id="e1", conversation_id="k1", text="how long does shipping to Canada take?")),
        "{not json",
        json.dumps(
            make_event(
                id="e2",
                conversation_id="k2",
                author={"id": "u2", "name": "Ren"},
                text="担当者と話したいです",
                created_at="2026-11-28T22:00:00+09:00",
            )
        ),
        "",
        json.dumps(make_event(id="e3", platform="fax")),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("ingest", str(path), "--wait", "--json", env=env)
    assert result.returncode == 1, result.stderr  # two lines were rejected
    stderr = result.stderr.decode()
    assert f"{path}:2" in stderr and "not valid JSON" in stderr
    assert f"{path}:5" in stderr and "platform" in stderr
    summary = json.loads(result.stdout)  # --json: only JSON on stdout
    assert summary["decided"] == 2 and summary["missing"] == 0

    shown = cli("show", "e1", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    decision = json.loads(shown.stdout)
    assert {
        "message_id",
        "brand",
        "actions",
        "rule",
        "scores",
        "intent",
        "template",
        "reply",
        "policy_version",
        "model_versions",
    } <= set(decision)
    assert decision["actions"] == ["auto_reply"] and decision["template"]["id"] == "shipping_time.en"
    assert isinstance(decision["template"]["version"], int) and decision["reply"]
    assert set(decision["scores"]) == {"spam", "abuse", "intent"}

    human = cli("show", "e1", "--brand", "demo-shop", env=env).stdout.decode()
    assert "rule      intent.auto_reply" in human and "shipping_time.en@1" in human

    review = cli("review", "list", env=env)
    assert review.returncode == 0
    out = review.stdout.decode()
    assert "e2" in out and "high" in out and "e1" not in out
    review_json = json.loads(cli("review", "list", "--json", env=env).stdout)["items"]
    assert [r["message_id"] for r in review_json] == ["e2"] and review_json[0]["role"] == "tier1"

    again = cli("ingest", str(path), env=env)
    assert b"enqueued 0 events" in again.stdout and b"2 already decided" in again.stdout

    stats = json.loads(cli("stats", "--json", env=env).stdout)
    assert stats["demo-shop"]["decisions"] == 2


def test_ingest_from_stdin(env, running_worker) -> None:
    data = (json.dumps(make_event(id="s1")) + "\n").encode()
    result = cli("ingest", "-", "--wait", env=env, stdin=data)
    assert result.returncode == 0, result.stderr
    assert b"decided 1" in result.stdout


def test_oversized_and_invalid_utf8_lines_are_rejected_by_line(env, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps(make_event(id="ok")).encode()
    path.write_bytes(good.replace(b"where", b"wh\xe9re") + b"\n" + b"{" + b" " * (300 * 1024) + b"}\n" + good + b"\n")
    result = cli("ingest", str(path), env=env)
    stderr = result.stderr.decode()
    assert result.returncode == 1
    assert f"{path}:1" in stderr and "not valid UTF-8" in stderr
    assert f"{path}:2" in stderr and "the limit is" in stderr
    assert b"enqueued 1 events" in result.stdout


def test_show_unknown_message(env) -> None:
    result = cli("show", "nope", env=env)
    assert result.returncode == 1 and b"no decision for message 'nope'" in result.stderr


def test_redis_unreachable_is_a_clear_error(env, tmp_path: Path) -> None:
    bad_env = {**env, "REDIS_URL": "redis://:s3cret@127.0.0.1:1/0"}
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(make_event()) + "\n")
    result = cli("ingest", str(path), env=bad_env)
    assert result.returncode == 3
    stderr = result.stderr.decode()
    assert "cannot reach Redis (redis://***@127.0.0.1:1/0)" in stderr
    assert "s3cret" not in stderr  # secrets never reach logs


def test_redis_going_away_mid_ingest_loses_nothing(tmp_path: Path) -> None:
    from worker.exceptions import StoreError
    from worker.ingest import Ingestor
    from worker.settings import Settings

    server = EmbeddedRedis(tmp_path / "r", persist=False).start()
    try:
        local = Settings(redis_url=server.url, home=tmp_path / "home")
        client = server.client()
        ingestor = Ingestor(client, local, batch_size=2, batch_wait=60)
        ingestor.submit(make_event(id="a"))
        ingestor.submit(make_event(id="b"))  # full batch: enqueued
        ingestor.submit(make_event(id="c"))
        server.stop()
        with pytest.raises(StoreError, match="cannot enqueue a batch"):
            ingestor.close()
        assert ingestor.report.accepted == [("demo-shop", "a"), ("demo-shop", "b")]
        assert ingestor.report.not_enqueued == [("demo-shop", "c")]
    finally:
        server.stop()


def test_redis_going_away_while_submitting_reports_what_was_not_enqueued(tmp_path: Path) -> None:
    from worker.exceptions import StoreError
    from worker.ingest import Ingestor, ingest_events
    from worker.settings import Settings

    server = EmbeddedRedis(tmp_path / "r", persist=False).start()
    try:
        local = Settings(redis_url=server.url, home=tmp_path / "home")
        ingestor = Ingestor(server.client(), local, batch_size=2, batch_wait=60, redis_wait=1.0)
        ingestor.submit(make_event(id="a"))
        server.stop()
        with pytest.raises(StoreError) as info:
            ingestor.submit(make_event(id="b"))  # fills the batch: the flush fails inside submit()
        report = info.value.report
        assert report.accepted == [] and report.not_enqueued == [("demo-shop", "a"), ("demo-shop", "b")]
        ingestor._timer.join(timeout=5)
        assert not ingestor._timer.is_alive()  # the batcher thread stops
        with pytest.raises(StoreError) as info:
            ingest_events(
                [make_event(id=f"x{i}") for i in range(5)], server.client(), local, batch_size=2, redis_wait=1.0
            )
        assert info.value.report.last_source is not None
    finally:
        server.stop()


def test_train_command_writes_a_verified_artifact(env, tmp_path: Path) -> None:
    rows = [
        ("where is my parcel", "track"),
        ("荷物はどこですか", "track"),
        ("has my order shipped yet", "track"),
        ("配送状況を教えて", "track"),
        ("i want a refund", "refund"),
        ("返金してください", "refund"),
        ("money back please", "refund"),
        ("返金の手続き", "refund"),
        ("what's the weather", "oos"),
        ("今日の天気は", "oos"),
        ("tell me a joke", "oos"),
        ("おすすめの映画は", "oos"),
    ] * 3
    data = tmp_path / "tiny.csv"
    data.write_text("text,label\n" + "\n".join(f'"{t}",{l}' for t, l in rows) + "\n", encoding="utf-8")
    out = tmp_path / "model"
    result = cli(
        "train",
        "intent",
        "--data",
        str(data),
        "--out",
        str(out),
        "--oos-label",
        "oos",
        "--name",
        "tiny-intent",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "intent" and manifest["labels"] == ["oos", "refund", "track"]
    assert manifest["training"][0]["sha256"] and manifest["libraries"]["scikit-learn"]
    assert "accuracy" in manifest["metrics"] and manifest["out_of_scope_label"] == "oos"
    from classifiers.persistence import load_artifact

    model = load_artifact(out, expected_task="intent")
    proba = model.predict_proba(["返金してほしい", "where is my parcel now"])
    assert [model.labels[i] for i in proba.argmax(axis=1)] == ["refund", "track"]


def test_validate_command(env) -> None:
    result = cli("validate", env=env)
    assert result.returncode == 0 and b"ok  demo-shop" in result.stdout
