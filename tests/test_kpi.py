"""Inbox KPIs: figures on a constructed history (pure), the same read from Redis, and as Prometheus metrics."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta, timezone

from prometheus_client import CollectorRegistry, generate_latest

from tests.conftest import make_event
from worker import kpi
from worker.kpi import DecisionRow, ReplyRow
from worker.metrics import RedisStatsCollector
from worker.pipeline import Pipeline
from worker.sla.config import SlaPolicy
from worker.sla.hours import ALWAYS_OPEN
from worker.sla.timers import new_timer, record_resolution, record_response, record_step
from worker.sla.tracker import SlaTracker
from worker.store import Store

UTC = timezone.utc


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def timer(mid: str, started: datetime):
    rule = SlaPolicy(name="t", first_response="1h", resolution="8h")
    return new_timer(
        rule,
        clock="always",
        brand="b",
        message_id=mid,
        conversation_id=mid,
        role="tier1",
        priority="normal",
        started_at=started,
        calendar=ALWAYS_OPEN,
    )


def history():
    decisions = [DecisionRow(at(20, 9 + i), escalated=(i == 0)) for i in range(4)] + [
        DecisionRow(at(21, 9), True),
        DecisionRow(at(21, 12), True),
    ]
    a = record_response(timer("A", at(20, 10)), at(20, 10, 30), "ann", ALWAYS_OPEN)
    a = record_resolution(a, at(20, 11), "ann", ALWAYS_OPEN)
    b = record_step(timer("B", at(21, 9)), "breach", "first_response", at(21, 10))
    b = b.model_copy(
        update={
            "breaches": [
                {
                    "target": "first_response",
                    "at": at(21, 10),
                    "due_at": at(21, 10),
                    "role_before": "tier1",
                    "role_after": "manager",
                    "priority_before": "normal",
                    "priority_after": "urgent",
                }
            ]
        }
    )
    b = record_response(b, at(21, 10), "bob", ALWAYS_OPEN)
    c = timer("C", at(21, 12))
    replies = [
        ReplyRow(at(20, 10, 30), "ann"),
        ReplyRow(at(21, 10), "bob"),
        ReplyRow(at(21, 13), "bob"),
        ReplyRow(at(21, 14), "cat"),
        ReplyRow(at(19, 14), "old"),
    ]
    return decisions, [a, b, c], replies


def test_kpis_on_a_constructed_history() -> None:
    decisions, timers, replies = history()
    day20, day21 = kpi.daily(date(2026, 11, 20), date(2026, 11, 21), UTC, decisions, timers, replies, now=at(22, 6))
    assert (day20.messages, day20.auto_resolved, day20.automation_rate) == (4, 3, 0.75)
    assert (day20.escalations, day20.resolved, day20.resolution_rate) == (1, 1, 1.0)
    assert day20.avg_first_response_seconds == 1800 and day20.first_responses == 1
    assert (day20.agent_replies, day20.agents, day20.messages_per_agent) == (1, 1, 1.0)
    assert day20.backlog_open == 0 and day20.backlog_oldest_age_seconds is None
    assert (day20.sla_settled, day20.sla_met, day20.sla_compliance) == (1, 1, 1.0)

    assert (day21.messages, day21.automation_rate) == (2, 0.0)
    assert (day21.escalations, day21.resolved, day21.resolution_rate) == (2, 0, 0.0)
    assert day21.avg_first_response_seconds == 3600  # only B was answered
    assert (day21.agent_replies, day21.agents, day21.messages_per_agent) == (3, 2, 1.5)
    assert day21.replies_by_agent == {"bob": 2, "cat": 1}
    # open at the end of the 21st: B (15 h old) and C (12 h old)
    assert (day21.backlog_open, day21.backlog_mean_age_seconds, day21.backlog_oldest_age_seconds) == (2, 48600, 54000)
    assert (day21.sla_settled, day21.sla_met, day21.sla_compliance, day21.sla_breaches) == (1, 0, 0.0, 1)


def test_days_follow_the_brands_time_zone_and_csv_round_trips() -> None:
    from zoneinfo import ZoneInfo

    tokyo = ZoneInfo("Asia/Tokyo")
    rows = [DecisionRow(at(20, 16), False)]  # 01:00 on the 21st in Tokyo
    day20, day21 = kpi.daily(date(2026, 11, 20), date(2026, 11, 21), tokyo, rows, [], [], now=at(22, 0))
    assert day20.messages == 0 and day21.messages == 1
    parsed = list(csv.DictReader(io.StringIO(kpi.to_csv([day20, day21]))))
    assert list(parsed[0]) == list(kpi.COLUMNS)
    assert (
        parsed[1]["day"] == "2026-11-21"
        and parsed[1]["automation_rate"] == "1.0"
        and parsed[0]["automation_rate"] == ""
    )


def test_kpis_and_metrics_from_redis(client, brands) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    store = Store(client)
    tracker = SlaTracker(store, {b: x.policy for b, x in brands.items()})
    start = now - timedelta(minutes=30)
    events = [
        make_event(
            id="k-faq",
            conversation_id="k1",
            created_at=start.isoformat(),
            author={"id": "k1"},
            text="how long does shipping to Canada take?",
        ),
        make_event(
            id="k-vip",
            conversation_id="k2",
            created_at=start.isoformat(),
            author={"id": "k2", "tags": ["vip"]},
            text="my order has not arrived",
        ),
        make_event(
            id="k-agent",
            conversation_id="k3",
            created_at=start.isoformat(),
            author={"id": "k3"},
            text="I'd like to speak to a real person please, not a bot",
        ),
    ]
    Pipeline(brands).process(events, store, sla=tracker)
    tracker.fire_due(now)  # the VIP's 15 minutes are over: breached, re-routed
    tracker.responded("demo-shop", "k-agent", start + timedelta(minutes=10), "ann")
    tracker.resolved("demo-shop", "k-agent", start + timedelta(minutes=12), "ann")
    policy = brands["demo-shop"].policy
    rows = kpi.load(store, tracker, "demo-shop", policy, days=2, now=now)  # two days: the history may straddle midnight

    def total(name: str) -> int:
        return sum(getattr(r, name) for r in rows)

    assert total("messages") == 3 and total("auto_resolved") == 1
    assert total("escalations") == 2 and total("resolved") == 1
    assert [r.avg_first_response_seconds for r in rows if r.first_responses] == [600]
    assert [r.replies_by_agent for r in rows if r.replies_by_agent] == [{"ann": 1}]  # no audit trail: timers' replies
    assert total("sla_breaches") == 1 and total("sla_settled") == 2 and total("sla_met") == 1
    today = rows[-1]
    assert today.backlog_open == 1 and today.backlog_oldest_age_seconds >= 30 * 60
    assert 0.0 <= today.resolution_rate <= 1.0 if today.escalations else today.resolution_rate is None

    # the review app's audit trail, when present, is the source of people's replies
    client.xadd(
        f"{store.keys.prefix}:audit:demo-shop",
        {
            "entry": json.dumps(
                {
                    "action": "send_text",
                    "user": "kim",
                    "brand": "demo-shop",
                    "message_id": "k-vip",
                    "at": now.isoformat(),
                }
            )
        },
    )
    client.xadd(
        f"{store.keys.prefix}:audit:demo-shop",
        {
            "entry": json.dumps(
                {"action": "claim", "user": "kim", "brand": "demo-shop", "message_id": "k-vip", "at": now.isoformat()}
            )
        },
    )
    today = kpi.load(store, tracker, "demo-shop", policy, days=1, now=now)[-1]
    assert today.replies_by_agent == {"kim": 1}

    registry = CollectorRegistry()
    registry.register(RedisStatsCollector(store, ["demo-shop"], {"demo-shop": policy}))
    text = generate_latest(registry).decode()
    assert 'replyguard_review_queue_depth{brand="demo-shop",role="manager"} 1.0' in text
    assert 'replyguard_sla_breaches_total{brand="demo-shop",target="first_response"} 1.0' in text
    # today's share of messages decided without a person, in the brand's time zone: in the first half hour of a
    # Tokyo day every message of this test was created the day before, and a share of nothing is not exported
    automation = 'replyguard_kpi_automation_rate{brand="demo-shop"}'
    assert (automation in text) == bool(today.messages), (today, text)
    oldest = next(line for line in text.splitlines() if line.startswith("replyguard_review_oldest_age_seconds{"))
    assert float(oldest.split()[-1]) >= 30 * 60


def test_kpi_and_sla_sweep_commands(client, redis_url, tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "REDIS_URL": redis_url, "REPLYGUARD_HOME": str(tmp_path / "home")}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "worker.cli", *args], env=env, capture_output=True, timeout=120)

    out = cli("kpi", "--brand", "demo-shop", "--days", "3", "--csv")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert lines[0] == ",".join(kpi.COLUMNS) and len(lines) == 4
    unknown = cli("kpi", "--brand", "nope")
    assert unknown.returncode == 1 and "no policy for brand 'nope'" in unknown.stderr.decode()
    assert cli("kpi", "--brand", "demo-shop", "--days", "0").returncode == 2  # usage error, named by argparse
    swept = cli("sla", "sweep")
    assert swept.returncode == 0 and swept.stdout == b""  # nothing due in an empty database
