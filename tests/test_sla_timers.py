"""SLA timers on a real Redis: started with escalations, breached once, re-routed, and fired by real RQ workers."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import make_event
from tests.faults import wait_for
from worker.ingest import ingest_events
from worker.pipeline import Pipeline
from worker.settings import REPO_ROOT, Settings
from worker.sla.tracker import SlaTracker
from worker.store import Store, review_member, review_score

CLI = [sys.executable, "-m", "worker.cli"]


def iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def tracker_of(client, brands) -> SlaTracker:
    return SlaTracker(Store(client), {b: brand.policy for b, brand in brands.items()})


def decide(client, brands, events) -> SlaTracker:
    tracker = tracker_of(client, brands)
    report = Pipeline(brands).process(events, Store(client), sla=tracker)
    assert not report.errors and not report.rejected
    return tracker


def test_unanswered_vip_is_rerouted_to_a_manager_once(client, brands) -> None:
    created = datetime.now(timezone.utc).replace(microsecond=0)
    vip = make_event(
        id="vip-1",
        conversation_id="c-vip",
        created_at=iso(created),
        author={"id": "u-vip", "tags": ["vip"]},
        text="Hi, my order KM-555123 hasn't arrived yet",
    )
    other = make_event(
        id="agent-1",
        conversation_id="c-a",
        created_at=iso(created),
        author={"id": "u-a"},
        text="I'd like to speak to a real person please, not a bot",
    )
    tracker = decide(client, brands, [vip, other])
    store = tracker.store
    views = tracker.views("demo-shop", ["vip-1", "agent-1"], now=created + timedelta(minutes=1))
    assert views["vip-1"]["policy"] == "vip" and views["agent-1"]["policy"] == "standard"
    first = views["vip-1"]["clocks"][0]
    assert first["target"] == "first_response" and first["state"] == "active"
    assert first["due_at"] == (created + timedelta(minutes=15)).isoformat()

    assert tracker.fire_due(created + timedelta(minutes=11)) == ["demo-shop/vip-1:warning:first_response"]
    assert tracker.views("demo-shop", ["vip-1"], now=created + timedelta(minutes=11))["vip-1"]["state"] == "warning"
    assert tracker.fire_due(created + timedelta(minutes=12)) == []

    fired = tracker.fire_due(created + timedelta(minutes=16))
    assert fired == ["demo-shop/vip-1:breach:first_response"]
    decision = store.decision("demo-shop", "vip-1")
    assert decision.escalation.role == "manager" and decision.escalation.priority == "urgent"
    assert "re-routed from vip_care to manager" in decision.escalation.reason
    score = client.zscore(store.keys.review, review_member("demo-shop", "vip-1"))
    assert score == review_score("urgent", created)
    assert store.review(brand="demo-shop", role="manager")[0].message_id == "vip-1"
    assert store.decision("demo-shop", "agent-1").escalation.role == "tier1"  # its 1 h business-time target is later

    assert tracker.fire_due(created + timedelta(minutes=17)) == []  # recorded once
    events = [
        (f[b"type"].decode(), f[b"notify"].decode(), json.loads(f[b"payload"]))
        for _, f in client.xrange(store.keys.sla_events("demo-shop"))
    ]
    breaches = [e for e in events if e[0] == "sla.breached"]
    assert len(breaches) == 1 and breaches[0][1] == "1"  # notify: for the outbound webhook
    assert breaches[0][2]["role"] == "manager" and breaches[0][2]["role_before"] == "vip_care"
    assert store.stats("demo-shop")["sla:breached:first_response"] == 1
    view = tracker.views("demo-shop", ["vip-1"], now=created + timedelta(minutes=17))["vip-1"]
    assert view["state"] == "breached" and view["breaches"][0]["role_after"] == "manager"


def test_answered_vip_is_not_rerouted_and_resolution_pauses(client, brands) -> None:
    created = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=10)
    vip = make_event(
        id="vip-2",
        conversation_id="c-vip2",
        created_at=iso(created),
        author={"id": "u-vip2", "tags": ["vip"]},
        text="Hi, my order KM-555124 hasn't arrived yet",
    )
    tracker = decide(client, brands, [vip])
    tracker.responded("demo-shop", "vip-2", created + timedelta(minutes=5), "agent-kim")
    assert tracker.fire_due(created + timedelta(hours=9)) == []  # resolution (8 h) paused while waiting
    assert tracker.store.decision("demo-shop", "vip-2").escalation.role == "vip_care"
    view = tracker.views("demo-shop", ["vip-2"], now=created + timedelta(hours=9))["vip-2"]
    assert {c["target"]: c["state"] for c in view["clocks"]} == {"first_response": "met", "resolution": "paused"}
    assert view["waiting_on_customer"]

    # the customer writes again in the same conversation: resolution resumes, next response is due in 30 m
    again = make_event(
        id="vip-3",
        conversation_id="c-vip2",
        created_at=iso(created + timedelta(hours=9)),
        author={"id": "u-vip2", "tags": ["vip"]},
        text="any news?",
    )
    Pipeline(brands).process([again], tracker.store, sla=tracker)
    view = tracker.views("demo-shop", ["vip-2"], now=created + timedelta(hours=9, minutes=1))["vip-2"]
    states = {c["target"]: c["state"] for c in view["clocks"]}
    assert states["resolution"] == "active" and states["next_response"] == "active"
    tracker.resolved("demo-shop", "vip-2", created + timedelta(hours=9, minutes=10), "agent-kim")
    assert client.zscore(tracker.keys.sla_due, "demo-shop/vip-2") is None
    assert tracker.views("demo-shop", ["vip-2"])["vip-2"]["state"] == "met"


def _race(redis_url: str, start_at: float, now_iso: str, out: multiprocessing.Queue) -> None:
    import redis as redis_lib

    from worker.brands import load_brands

    brands = load_brands(Settings(redis_url=redis_url))
    tracker = tracker_of(redis_lib.Redis.from_url(redis_url), brands)
    while time.time() < start_at:
        pass
    out.put(tracker.fire_due(datetime.fromisoformat(now_iso)))


def test_two_sweepers_racing_record_each_breach_once(client, brands, redis_url) -> None:
    created = datetime.now(timezone.utc).replace(microsecond=0)
    events = [
        make_event(
            id=f"vip-r{i}",
            conversation_id=f"c-r{i}",
            created_at=iso(created),
            author={"id": f"u-r{i}", "tags": ["vip"]},
            text="my order has not arrived",
        )
        for i in range(30)
    ]
    tracker = decide(client, brands, events)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 8
    procs = [
        ctx.Process(target=_race, args=(redis_url, start_at, iso(created + timedelta(minutes=20)), out))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    fired = sorted(x for r in results for x in r)
    # each timer's warning was skipped (already past due) and its breach recorded by exactly one sweeper
    assert fired == sorted(f"demo-shop/vip-r{i}:breach:first_response" for i in range(30))
    assert tracker.store.stats("demo-shop")["sla:breached:first_response"] == 30
    breached = [f for _, f in client.xrange(tracker.keys.sla_events("demo-shop")) if f[b"type"] == b"sla.breached"]
    assert len(breached) == 30
    for d in tracker.store.decisions([("demo-shop", f"vip-r{i}") for i in range(30)]):
        assert d.escalation.role == "manager" and d.escalation.reason.count("SLA vip") == 1


@pytest.fixture()
def short_sla_policies(tmp_path: Path) -> Path:
    """The demo policy with the VIP first-response target cut to 8 seconds."""
    doc = yaml.safe_load((REPO_ROOT / "policies" / "demo-shop.yaml").read_text(encoding="utf-8"))
    vip = next(p for p in doc["sla"]["policies"] if p["name"] == "vip")
    vip.update(first_response="8s", next_response="8s", warn_before="3s")
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "demo-shop.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return directory


def _worker(env: dict[str, str]) -> subprocess.Popen:
    # its own process group, so RQ's forked scheduler process is stopped with it (see _stop)
    return subprocess.Popen(
        [*CLI, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def _ready(client, proc: subprocess.Popen) -> None:
    """Wait until a worker has loaded its models and registered with RQ."""
    from rq import Worker

    def registered() -> bool:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "worker exited"
        return Worker.count(connection=client) > 0

    wait_for(registered, 120, "the worker to start")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the worker, then anything it forked that outlived it (a scheduler left holding RQ's lock
    in the test database would keep later tests' burst workers from scheduling)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _ingest_late_order_from_vip(client, settings: Settings, suffix: str, order: str, created: datetime) -> Any:
    """Ingest one VIP's "my order is late" (message vip-SUFFIX in conversation c-SUFFIX) and wait until a
    running worker has decided it; its decision."""
    event = make_event(
        id=f"vip-{suffix}",
        conversation_id=f"c-{suffix}",
        created_at=created.isoformat(),
        author={"id": f"u-{suffix}", "tags": ["vip"]},
        text=f"Hi, my order {order} is late",
    )
    ingest_events([event], client, settings, batch_wait=0.01)
    store = Store(client)
    return wait_for(lambda: store.decision("demo-shop", event["id"]), 90, "the VIP message to be decided")


def test_real_workers_reroute_an_unanswered_vip_by_themselves_across_a_restart(
    client, redis_url, short_sla_policies, tmp_path
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "REPLYGUARD_HOME": str(tmp_path / "home"),
        "REPLYGUARD_POLICIES_DIR": str(short_sla_policies),
    }
    settings = Settings(redis_url=redis_url, home=tmp_path / "home", policies_dir=short_sla_policies)
    store = Store(client)
    first = _worker(env)
    try:
        _ready(client, first)
        created = datetime.now(timezone.utc)
        decided = _ingest_late_order_from_vip(client, settings, "w", "KM-555125", created)
        assert decided.escalation.role == "vip_care"
    finally:
        _stop(first)  # no worker runs while the target passes
    if datetime.now(timezone.utc) < created + timedelta(seconds=8):
        assert store.decision("demo-shop", "vip-w").escalation.role == "vip_care"
        time.sleep(max(0.0, (created + timedelta(seconds=8) - datetime.now(timezone.utc)).total_seconds()))
    second = _worker(env)  # a new worker, no new messages: it records the breach by itself
    try:
        rerouted = wait_for(
            lambda: (d := store.decision("demo-shop", "vip-w")).escalation.role == "manager" and d,
            90,
            "the VIP escalation to be re-routed to a manager",
        )
        assert rerouted.escalation.priority == "urgent"
        breaches = [f for _, f in client.xrange(store.keys.sla_events("demo-shop")) if f[b"type"] == b"sla.breached"]
        assert len(breaches) == 1
    finally:
        _stop(second)
    listed = subprocess.run([*CLI, "review", "list", "--json"], env=env, capture_output=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    item = next(i for i in json.loads(listed.stdout)["items"] if i["message_id"] == "vip-w")
    assert item["role"] == "manager" and item["sla"]["state"] == "breached"
    assert {c["target"]: c["state"] for c in item["sla"]["clocks"]}["first_response"] == "breached"
    assert item["sla"]["clocks"][0]["due_at"]


def test_scheduled_step_fires_without_new_messages(client, redis_url, short_sla_policies, tmp_path) -> None:
    """One long-running worker: the breach comes from RQ's scheduler, not from a batch or a start-up sweep."""
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "REPLYGUARD_HOME": str(tmp_path / "home"),
        "REPLYGUARD_POLICIES_DIR": str(short_sla_policies),
    }
    settings = Settings(redis_url=redis_url, home=tmp_path / "home", policies_dir=short_sla_policies)
    store = Store(client)
    worker = _worker(env)
    try:
        _ready(client, worker)
        _ingest_late_order_from_vip(client, settings, "s", "KM-555126", datetime.now(timezone.utc))
        warned = wait_for(
            lambda: [f for _, f in client.xrange(store.keys.sla_events("demo-shop")) if f[b"type"] == b"sla.warning"],
            60,
            "the warning",
        )
        assert len(warned) == 1
        wait_for(lambda: store.decision("demo-shop", "vip-s").escalation.role == "manager", 60, "the re-route")
    finally:
        _stop(worker)


def test_started_events_carry_the_start_call_instant_and_each_timers_due_times(client, brands) -> None:
    """Every sla.started event of one start_many call says the call's instant (written once for the
    call) and its own timer's due times, in the body's field order."""
    created = datetime.now(timezone.utc).replace(microsecond=0)
    events = [
        make_event(
            id=f"s-{i}",
            conversation_id=f"c-s{i}",
            created_at=iso(created + timedelta(seconds=i)),
            author={"id": f"u-s{i}", "tags": ["vip"]},
            text="Where is my order KM-555125?",
        )
        for i in range(2)
    ]
    tracker = tracker_of(client, brands)
    store = tracker.store
    pipeline = Pipeline(brands)
    report = pipeline.process(events, store)  # decided without starting timers
    assert len(report.decided) == 2
    now = created + timedelta(seconds=5, microseconds=123456)
    decisions = [store.decision("demo-shop", f"s-{i}") for i in range(2)]
    started = tracker.start_many([(d, None) for d in decisions], now)
    assert all(t is not None for t in started)
    raw = [f[b"payload"].decode() for _, f in client.xrange(store.keys.sla_events("demo-shop"))]
    assert len(raw) == 2
    for timer, text in zip(started, raw, strict=True):
        due = {c: timer.clocks[c].due_at.isoformat() for c in ("first_response", "resolution") if c in timer.clocks}
        expected = {
            "type": "sla.started",
            "brand": "demo-shop",
            "message_id": timer.message_id,
            "conversation_id": timer.conversation_id,
            "policy": timer.policy,
            "role": timer.role,
            "priority": timer.priority,
            "at": now.isoformat(),
            "due": due,
        }
        assert text == json.dumps(expected, default=str)


def test_the_recovery_sweep_takes_due_steps_whose_scheduled_job_was_lost(
    client, redis_url, short_sla_policies, tmp_path
) -> None:
    """README ("SLA timers"): a step whose RQ job was lost (with a worker's scheduler) is taken by the recovery
    sweep that a worker runs every RECOVERY_SWEEP_SECONDS, with no new message. Every scheduled SLA job is taken
    out of RQ's scheduled registries as soon as it appears, so neither RQ's scheduler nor a batch records it."""
    import threading

    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "REPLYGUARD_HOME": str(tmp_path / "home"),
        "REPLYGUARD_POLICIES_DIR": str(short_sla_policies),
    }
    settings = Settings(redis_url=redis_url, home=tmp_path / "home", policies_dir=short_sla_policies)
    store = Store(client)
    lost: set[bytes] = set()
    stop = threading.Event()

    def lose_scheduled_jobs() -> None:
        while not stop.is_set():
            for key in client.keys("rq:scheduled:*"):
                for job_id in client.zrange(key, 0, -1):
                    if job_id.startswith(b"rg-sla-") and client.zrem(key, job_id):
                        lost.add(job_id)
            time.sleep(0.02)

    loser = threading.Thread(target=lose_scheduled_jobs, daemon=True)
    worker = _worker(env)
    try:
        _ready(client, worker)
        loser.start()
        _ingest_late_order_from_vip(client, settings, "r", "KM-555127", datetime.now(timezone.utc))
        rerouted = wait_for(
            lambda: (d := store.decision("demo-shop", "vip-r")).escalation.role == "manager" and d,
            60,
            "the recovery sweep to re-route the VIP escalation",
        )
        assert rerouted.escalation.priority == "urgent"
        assert lost  # there were scheduled steps to lose
        breaches = [f for _, f in client.xrange(store.keys.sla_events("demo-shop")) if f[b"type"] == b"sla.breached"]
        assert len(breaches) == 1
    finally:
        stop.set()
        _stop(worker)
        if loser.is_alive():
            loser.join(timeout=5)
