"""Personal data (issue 11 part 6): a planted person goes through the whole pipeline, then
``replyguard forget``; every Redis value (decoded: strings, hashes, lists, sets, zsets, streams,
RQ's zlib-compressed job data) and every archive file is scanned for them. Logs of the whole run
never hold their text, name, e-mail or phone."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
import yaml

from tests.conftest import make_event
from worker.accounts import Accounts
from worker.audit import AuditLog
from worker.brands import load_brands
from worker.inbound import inbox
from worker.inbound.meta import Receipt
from worker.inbound.receipts import record_receipts
from worker.privacy.archive import sweep
from worker.privacy.forget import forget_person
from worker.queues import batch_queue, enqueue_batch
from worker.review_actions import ReviewActions
from worker.settings import REPO_ROOT, Settings
from worker.store import Store

CLI = [sys.executable, "-m", "worker.cli"]
AUTHOR = "u-planted-7731"
NAME = "Hanako Tanabe"
EMAIL = "hanako.tanabe@example.org"
PHONE = "+81 90 5123 4471"
#: what must be gone: the id, both name parts, the e-mail, and the phone however it was normalised
NEEDLES = [AUTHOR, "Hanako", "Tanabe", EMAIL, "5123 4471", "51234471"]
OTHER = {"id": "u-other-2200", "name": "Kenji Mori", "email": "kenji.mori@example.net"}


def policies(root: Path, **retention) -> Path:
    data = yaml.safe_load((REPO_ROOT / "policies" / "demo-shop.yaml").read_text(encoding="utf-8"))
    data["retention"] = {"active_days": 90, "archive": True, **retention}
    directory = root / "policies"
    directory.mkdir(exist_ok=True)
    (directory / "demo-shop.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return directory


def person(i: int, text: str, **changes) -> dict:
    return make_event(
        id=f"hp-{i}", conversation_id="c-hanako", author={"id": AUTHOR, "name": NAME}, text=text, **changes
    )


def other(i: int, text: str) -> dict:
    return make_event(
        id=f"ko-{i}", conversation_id="c-kenji", author={"id": OTHER["id"], "name": OTHER["name"]}, text=text
    )


def run(args: list[str], env: dict[str, str], logs: list[str], check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([*CLI, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    logs.append(done.stderr)
    if check:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


def every_value(client: redis.Redis) -> dict[str, str]:
    """Every key of the database, its name and value decoded (zlib-decompressed where compressed)."""

    def text(raw: bytes) -> str:
        try:
            raw = zlib.decompress(raw)
        except zlib.error:
            pass
        return raw.decode("utf-8", errors="replace")

    out = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            parts = [client.get(key) or b""]
        elif kind == "hash":
            parts = [x for kv in client.hgetall(key).items() for x in kv]
        elif kind == "list":
            parts = client.lrange(key, 0, -1)
        elif kind == "set":
            parts = list(client.smembers(key))
        elif kind == "zset":
            parts = client.zrange(key, 0, -1)
        elif kind == "stream":
            parts = [x for _, fields in client.xrange(key) for kv in fields.items() for x in kv]
        else:
            raise AssertionError(f"{key!r} has type {kind}")
        out[key.decode()] = " ".join([key.decode(), *(text(p) for p in parts)])
    return out


def archive_text(directory: Path) -> str:
    return "\n".join(gzip.open(p, "rt", encoding="utf-8").read() for p in sorted(directory.rglob("*.jsonl.gz")))


def found(needles: list[str], haystack: dict[str, str]) -> list[tuple[str, str]]:
    return [(n, k) for k, v in haystack.items() for n in needles if n.lower() in v.lower()]


@pytest.fixture()
def env(tmp_path, redis_url):
    settings = Settings(
        redis_url=redis_url, home=tmp_path / "home", policies_dir=policies(tmp_path), archive_dir=tmp_path / "archive"
    )
    environ = {
        **os.environ,
        "REDIS_URL": redis_url,
        "REPLYGUARD_HOME": str(tmp_path / "home"),
        "REPLYGUARD_POLICIES_DIR": str(settings.policies_dir),
        "REPLYGUARD_ARCHIVE_DIR": str(settings.archive_dir),
        "REPLYGUARD_LOG_LEVEL": "DEBUG",
        "REPLYGUARD_DELIVERY_MODE": "dry_run",
    }
    return settings, environ


def test_forget_removes_a_person_everywhere_and_logs_never_held_them(client, env, tmp_path) -> None:
    settings, environ = env
    logs: list[str] = []
    store = Store(client, settings.key_prefix)

    # 1. an older batch, decided by a real RQ worker process, then archived by the retention sweep
    old = [
        person(1, f"hi, where is my order KM-204815? mail me at {EMAIL}"),
        other(1, f"where is my order KM-204816? I'm {OTHER['email']}"),
    ]
    (tmp_path / "old.jsonl").write_text("".join(json.dumps(e) + "\n" for e in old))
    run(["ingest", str(tmp_path / "old.jsonl")], environ, logs)
    run(["worker", "--burst"], environ, logs)
    retention = {b: brand.policy.retention for b, brand in load_brands(settings).items()}
    counts = sweep(
        client,
        retention,
        prefix=settings.key_prefix,
        archive_dir=settings.archive_path,
        now=datetime.now(timezone.utc) + timedelta(days=91),
    )
    assert counts["archived_decisions"] == 2 and counts["deleted_decisions"] == 2
    assert EMAIL in archive_text(settings.archive_path) and OTHER["email"] in archive_text(settings.archive_path)

    # 2. live traffic: an answered question, an escalation with their phone, a rejected event of theirs
    live = [
        person(2, "where is my order KM-204817? it's been a week"),
        person(3, f"I want to talk to a real person, call me on {PHONE} or {EMAIL}, I'm {NAME}"),
        other(2, "I'd like to speak to a real person please, not a bot"),
        other(3, "where is my order KM-204818?"),
    ]
    (tmp_path / "live.jsonl").write_text("".join(json.dumps(e) + "\n" for e in live))
    run(["ingest", str(tmp_path / "live.jsonl")], environ, logs)
    bad = person(9, f"call {PHONE}", kind="bogus")  # the worker rejects it (ingest would have refused it)
    enqueue_batch(batch_queue(client, settings), [bad])
    run(["worker", "--burst"], environ, logs)
    assert store.decision("demo-shop", "hp-3").escalation is not None
    assert json.loads(client.lindex(store.keys.rejected, 0))["event"]["author"]["id"] == AUTHOR
    # a batch still queued (no worker ran it): RQ keeps its events zlib-compressed in the job hash
    enqueue_batch(batch_queue(client, settings), [person(4, f"are you there? {EMAIL}"), other(4, "hello?")])

    # 3. review: a person replies, corrects the labels with a note, tags the author
    accounts = Accounts(client, settings.key_prefix)
    user = accounts.add("mia", "correct horse battery", "moderator", ["demo-shop"])
    brands = load_brands(settings)
    actions = ReviewActions(store, brands, AuditLog(client, settings.key_prefix))
    actions.claim(user, "demo-shop", "hp-3")
    actions.correct_labels(user, "demo-shop", "hp-3", intent="human_agent", note=f"{NAME} wants a call on {PHONE}")
    actions.send_text(user, "demo-shop", "hp-3", f"Hi {NAME.split()[0]}, we will call you today.", resolve=False)
    actions.tag_author(user, "demo-shop", "hp-3", "callback")
    actions.claim(user, "demo-shop", "ko-2")
    actions.send_text(user, "demo-shop", "ko-2", f"Hi {OTHER['name'].split()[0]}, a person is here.", resolve=False)

    # 4. delivery (dry run) by a real deliverer process, receipts from the platform, an inbox entry not yet read
    run(["deliver", "--burst"], environ, logs)
    assert store.decision("demo-shop", "hp-2").deliveries
    record_receipts(
        client,
        store.keys,
        [
            Receipt(
                brand="demo-shop",
                platform="instagram",
                account_id="ig-1",
                status="delivered",
                at_ms=1,
                platform_message_id="pm-hanako",
                recipient_id=AUTHOR,
                decision="demo-shop/hp-2",
            ),
            Receipt(
                brand="demo-shop",
                platform="instagram",
                account_id="ig-1",
                status="read",
                at_ms=2,
                recipient_id=AUTHOR,
                watermark_ms=2,
            ),
        ],
    )
    inbox.append(client, store.keys, "events", json.dumps([person(5, f"ping {EMAIL}")]).encode())
    before = every_value(client)
    assert found([EMAIL, AUTHOR, "Tanabe"], before)  # planted: the scan would see them
    assert any(k.startswith("rq:job:") for _, k in found([EMAIL], before))  # ... in RQ's compressed payloads too

    # 5. forget, through the command line
    done = run(["forget", "--brand", "demo-shop", "--author", AUTHOR, "--json", "--by", "dpo"], environ, logs)
    report = json.loads(done.stdout)
    assert report["total"] > 0 and report["counts"]["decisions"] == 2 and report["counts"]["rejected_entries"] >= 1
    assert report["counts"]["archive_lines"] == 1 and report["counts"]["rq_job_events"] >= 1  # queued and finished jobs

    after = every_value(client)
    assert found(NEEDLES, after) == []
    assert found(NEEDLES, {"archive": archive_text(settings.archive_path)}) == []
    # ... and nobody else's data went with them
    assert store.decision("demo-shop", "ko-2") is not None and store.decision("demo-shop", "ko-3") is not None
    assert OTHER["email"] in archive_text(settings.archive_path)
    assert store.history("demo-shop", "c-kenji") and found([OTHER["name"]], after)
    queued = [k for _, k in found(["ko-4"], after) if k.startswith("rq:job:")]
    assert queued  # the other person's queued event is still in its job
    # the erasure is on record, without personal data
    entry = [e for e in AuditLog(client, settings.key_prefix).export("demo-shop") if e.action == "forget"]
    assert len(entry) == 1 and entry[0].user == "dpo" and entry[0].after["request_id"] == report["request_id"]

    # 6. the logs of the whole run (DEBUG) never held their text, name, e-mail or phone
    text = "\n".join(logs)
    assert "demo-shop" in text  # the logs are there ...
    assert found([EMAIL, "Hanako", "Tanabe", "5123 4471", OTHER["email"]], {"logs": text}) == []


def test_forget_refuses_bad_input_with_the_documented_codes(client, env) -> None:
    settings, environ = env
    logs: list[str] = []
    done = run(["forget", "--brand", "nope", "--author", AUTHOR, "--json"], environ, logs, check=False)
    assert done.returncode == 1 and "error" in json.loads(done.stdout) and "Traceback" not in done.stderr
    done = run(["forget", "--brand", "demo-shop", "--author", " "], environ, logs, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    broken = settings.policies_dir / "demo-shop.yaml"
    broken.write_text(broken.read_text().replace("active_days: 90", "active_days: -1"))
    done = run(["forget", "--brand", "demo-shop", "--author", AUTHOR], environ, logs, check=False)
    assert done.returncode == 2 and "retention" in done.stderr and "Traceback" not in done.stderr
    done = run(
        ["forget", "--brand", "demo-shop", "--author", AUTHOR],
        {**environ, "REDIS_URL": "redis://127.0.0.1:1/0", "REPLYGUARD_POLICIES_DIR": str(REPO_ROOT / "policies")},
        logs,
        check=False,
    )
    assert done.returncode == 3 and "Traceback" not in done.stderr


def test_forget_api_on_nothing_is_harmless(client, settings) -> None:
    report = forget_person(client, "demo-shop", "nobody", prefix=settings.key_prefix)
    assert report.as_dict()["total"] == 0
