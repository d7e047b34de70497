"""Retention (issue 11 part 6): the policy's ``retention`` is validated, decisions carry a TTL, the
sweep archives and then deletes what is past active_days, archive files past archive_days go; the LLM
API key is never in any Redis value (decoded) or log line; the log redaction itself."""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from tests.conftest import make_event
from tests.test_forget import every_value, found
from tests.test_llm import KEY_ENV, ORDER, SECRET, Scripted, llm_env, server, work  # noqa: F401 - fixtures
from worker.brands import load_brands
from worker.exceptions import PolicyError
from worker.ingest import ingest_events
from worker.jobs import install
from worker.models import Correction
from worker.pipeline import Pipeline
from worker.policy import load_policy
from worker.privacy import redact
from worker.privacy.archive import read_archive, sweep
from worker.queues import make_worker
from worker.settings import REPO_ROOT, Settings
from worker.store import Store

DAY = 86_400


def brand_dir(tmp_path, retention):
    data = yaml.safe_load((REPO_ROOT / "policies" / "demo-shop.yaml").read_text(encoding="utf-8"))
    data["retention"] = retention
    directory = tmp_path / "policies"
    directory.mkdir(exist_ok=True)
    (directory / "demo-shop.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return directory


@pytest.mark.parametrize(
    "retention, problem",
    [
        ({"active_days": 0}, "greater than 0"),
        ({"active_days": "ninety"}, "valid number"),
        ({"active_days": 0.000001}, "shorter than 1 second"),
        ({"archive_days": 30}, "archive is off"),
        ({"archive": True, "archive_days": -1}, "greater than 0"),
        ({"keep": "forever"}, "unknown field"),
    ],
)
def test_a_broken_retention_stops_start_up_loudly(tmp_path, retention, problem) -> None:
    with pytest.raises(PolicyError, match="retention") as err:
        load_policy(brand_dir(tmp_path, retention) / "demo-shop.yaml")
    assert problem in str(err.value)


def decide(client, settings, events):
    install(Pipeline(load_brands(settings)), settings)
    ingest_events(events, client, settings, batch_wait=0.01)
    make_worker(client, settings, simple=True).work(burst=True)


def test_decisions_expire_with_the_brand_window(client, redis_url, tmp_path) -> None:
    settings = Settings(
        redis_url=redis_url, home=tmp_path / "home", policies_dir=brand_dir(tmp_path, {"active_days": 3 / DAY})
    )
    decide(client, settings, [make_event(id="t1", conversation_id="c-t1")])
    store = Store(client, settings.key_prefix)
    key, person = store.keys.decision("demo-shop", "t1"), store.keys.person("demo-shop", "u-1")
    assert 0 < client.ttl(key) <= 3 and 0 < client.ttl(store.keys.history("demo-shop", "c-t1")) <= 3
    assert client.smembers(person) == {b"m:t1", b"c:c-t1"} and client.ttl(person) > client.ttl(key)
    time.sleep(3.5)  # Redis expires it: a few seconds, as the policy says
    assert store.decision("demo-shop", "t1") is None
    assert not client.exists(store.keys.history("demo-shop", "c-t1"))


def test_sweep_archives_then_deletes_and_old_archives_go(client, redis_url, tmp_path) -> None:
    settings = Settings(
        redis_url=redis_url,
        home=tmp_path / "home",
        archive_dir=tmp_path / "archive",
        policies_dir=brand_dir(tmp_path, {"active_days": 1, "archive": True, "archive_days": 2}),
    )
    decide(
        client,
        settings,
        [
            make_event(id="a1", conversation_id="c-a1"),
            make_event(id="a2", conversation_id="c-a2", author={"id": "u-2"}),
        ],
    )
    store = Store(client, settings.key_prefix)
    assert DAY < client.ttl(store.keys.decision("demo-shop", "a1")) <= DAY + 2 * DAY  # a grace period to archive
    store.resolve(
        Correction(
            brand="demo-shop", message_id="a1", spam=True, by="t", at=store.decision("demo-shop", "a1").decided_at
        )
    )
    client.xadd(
        store.keys.audit("demo-shop"),
        {
            "entry": json.dumps(
                {"action": "note", "user": "t", "role": "moderator", "brand": "demo-shop", "message_id": "a1"}
            )
        },
    )
    retention = {b: brand.policy.retention for b, brand in load_brands(settings).items()}
    now = datetime.now(timezone.utc)

    def run(at):
        return sweep(client, retention, prefix=settings.key_prefix, archive_dir=settings.archive_path, now=at)

    assert run(now + timedelta(hours=12)).get("deleted_decisions", 0) == 0  # inside the window: nothing goes
    counts = run(now + timedelta(days=1, hours=1))
    assert counts["archived_decisions"] == 2 and counts["deleted_decisions"] == 2
    assert counts["archived_corrections"] == 1 and counts["archived_audit_entries"] == 1
    assert counts["deleted_audit_entries"] == 1 and counts["deleted_corrections"] == 1
    assert store.decision("demo-shop", "a1") is None and client.zcard(store.keys.decisions("demo-shop")) == 0
    assert client.xlen(store.keys.audit("demo-shop")) == 0 and not store.corrections("demo-shop")
    files = sorted((settings.archive_path / "demo-shop").glob("*.jsonl.gz"))
    rows = [row for f in files for row in read_archive(f)]
    assert {(r["kind"], r["message_id"]) for r in rows} == {
        ("decision", "a1"),
        ("decision", "a2"),
        ("correction", "a1"),
        ("audit", "a1"),
    }
    assert {r["author_id"] for r in rows} == {"u-1", "u-2"}
    with gzip.open(files[0], "rt") as f:  # gzip JSONL
        assert json.loads(f.readline())["brand"] == "demo-shop"
    assert run(now + timedelta(days=2, hours=12))["deleted_archive_files"] == 0  # written a day ago: kept
    assert run(now + timedelta(days=4))["deleted_archive_files"] == len(files)
    assert not list((settings.archive_path / "demo-shop").glob("*.jsonl.gz"))


def test_the_api_key_is_in_no_redis_value_and_no_log_line(client, llm_env, server, caplog) -> None:  # noqa: F811
    caplog.set_level(logging.DEBUG)
    settings, _ = llm_env()
    server.script.append(Scripted(reply=lambda d: "Sorry for the wait! " + d["approved_reply"]))
    ingest_events([ORDER], client, settings, batch_wait=0.01)
    work(client, settings)
    d = Store(client, settings.key_prefix).decision("demo-shop", "o1")
    assert d.llm.outcome == "used"  # drafted by the (stand-in) LLM, with the key
    assert any(SECRET in str(r["headers"]) for r in server.requests)
    assert found([SECRET], every_value(client)) == [] and SECRET not in caplog.text


def test_log_lines_are_redacted_in_a_cli_process(tmp_path) -> None:
    """A process set up like the command line (redact.install) logs a job's arguments, an f-string and a
    traceback holding a customer's text, name, e-mail and phone: none of it reaches stderr."""
    script = (
        "import logging; from worker.privacy import redact; redact.install(); logging.basicConfig(level='DEBUG')\n"
        "log = logging.getLogger('rq.worker')\n"
        "event = {'id': 'm1', 'author': {'id': 'u-9', 'name': 'Hanako Tanabe'}, 'text': 'call me'}\n"
        "log.info('default: worker.jobs.process_batch(%r)', [event])\n"
        'log.info(\'got %s\', \'{"text": "my mail is hanako@example.org", "name": "Hanako Tanabe"}\')\n'
        "log.warning('customer wrote: reach me at hanako@example.org or +81 90 5123 4471')\n"
        "try:\n    raise ValueError('bad text: 090-5123-4471 hanako@example.org')\n"
        "except ValueError:\n    log.exception('deciding %s failed', 'm1')\n"
        "log.info('decided 64 events in 0.52 s, job 1f0e9c2a, order KM-204815')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert found(["Hanako", "Tanabe", "hanako@example.org", "5123", "call me"], {"log": done.stderr}) == []
    assert "[redacted]" in done.stderr and "decided 64 events in 0.52 s, job 1f0e9c2a, order KM-204815" in done.stderr
    assert "ValueError" in done.stderr and "u-9" in done.stderr  # what is not personal stays readable


def test_redact_keeps_ordinary_numbers() -> None:
    assert (
        redact.redact("batch 20000 took 12.5 s; KM-204815; 2026-11-27")
        == "batch 20000 took 12.5 s; KM-204815; 2026-11-27"
    )
    assert redact.redact('{"text": "hi \\"x\\"", "id": "m1"}') == '{"text": "[redacted]", "id": "m1"}'


def test_sweep_every_keeps_sweeping_until_sigterm(client, redis_url, tmp_path) -> None:
    """`replyguard retention sweep --every` as a real process: each round sweeps what has left the
    window since the last one (two decisions made a few seconds apart both leave the index), one JSON
    line a round, and SIGTERM ends it with exit 0."""
    import os
    import signal

    settings = Settings(
        redis_url=redis_url, home=tmp_path / "home", policies_dir=brand_dir(tmp_path, {"active_days": 2 / DAY})
    )
    store = Store(client, settings.key_prefix)
    index = store.keys.decisions("demo-shop")
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "REPLYGUARD_HOME": str(settings.home),
        "REPLYGUARD_POLICIES_DIR": str(settings.policies_dir),
    }
    decide(client, settings, [make_event(id="s1", conversation_id="c-s1")])
    assert client.zcard(index) == 1
    sweeper = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "retention", "sweep", "--every", "0.5", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def gone_within(seconds: float) -> bool:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if client.zcard(index) == 0:
                    return True
                time.sleep(0.1)
            return False

        assert gone_within(10), "the first decision stayed in the index past its 2-second window"
        decide(client, settings, [make_event(id="s2", conversation_id="c-s2")])  # after the sweeper started
        assert client.zcard(index) == 1
        assert gone_within(10), "a later round did not sweep the second decision"
        assert sweeper.poll() is None  # still running
    finally:
        sweeper.send_signal(signal.SIGTERM)
        out, err = sweeper.communicate(timeout=10)
    assert sweeper.returncode == 0, err
    rounds = [json.loads(line) for line in out.splitlines()]
    assert len(rounds) >= 2 and all(r["brands"] == ["demo-shop"] for r in rounds)
    assert sum(r["counts"].get("dropped_index_entries", 0) for r in rounds) == 2  # the keys expired by TTL
    assert "Traceback" not in err


def test_sweep_every_rejects_a_non_positive_interval(redis_url, tmp_path) -> None:
    import os

    env = {**os.environ, "REDIS_URL": redis_url, "REPLYGUARD_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "retention", "sweep", "--every", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "--every must be a positive number of seconds" in done.stderr
    assert "Traceback" not in done.stderr
