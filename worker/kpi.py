"""Inbox KPIs per brand and day, computed from what replyguard recorded.

Sources (nothing is counted twice and nothing is estimated):

* decisions (``{p}:decisions:{brand}``): message volume and the **automation rate**, the
  share decided without a person (no ``escalate`` action);
* SLA timers (``{p}:sla:timer:…``, one per escalation with an SLA policy): **average
  first-response time** (wall clock, from the customer's message to the first reply that
  counts), **resolution rate** (escalations of the day resolved since), **backlog age**
  (escalations open at the end of the day: how many, mean and oldest age) and **SLA
  compliance** (of the escalations whose outcome is known — resolved or breached — the
  share that missed no target);
* replies by people: the review app's audit trail (``reply_template`` / ``send_text``
  entries on ``{p}:audit:{brand}``) when present, else the replies recorded on the timers:
  **messages per agent** (replies of the day ÷ agents who replied that day).

Everything about a message counts on the day the customer sent it (its ``created_at``; an
escalation's clocks start then too), except people's replies, which count on the day they were
sent, and the backlog, measured at each day's end. Days are calendar days in the brand's
business-hours time zone (UTC without one).
:func:`daily` is pure; :func:`load` reads Redis for it.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import redis

from worker import defaults
from worker.exceptions import StoreError
from worker.models import Decision
from worker.sla.timers import SlaTimer

#: Audit actions that are a person's reply to the customer.
REPLY_ACTIONS = ("reply_template", "send_text")


@dataclass(frozen=True)
class DecisionRow:
    at: datetime
    escalated: bool


@dataclass(frozen=True)
class ReplyRow:
    at: datetime
    agent: str


@dataclass
class DayKpi:
    day: date
    messages: int = 0
    auto_resolved: int = 0
    automation_rate: float | None = None
    escalations: int = 0
    resolved: int = 0
    resolution_rate: float | None = None
    first_responses: int = 0
    avg_first_response_seconds: float | None = None
    agent_replies: int = 0
    agents: int = 0
    messages_per_agent: float | None = None
    backlog_open: int = 0
    backlog_mean_age_seconds: float | None = None
    backlog_oldest_age_seconds: float | None = None
    sla_settled: int = 0
    sla_met: int = 0
    sla_compliance: float | None = None
    sla_breaches: int = 0
    replies_by_agent: dict[str, int] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        out["day"] = self.day.isoformat()
        out["replies_by_agent"] = json.dumps(self.replies_by_agent, sort_keys=True)
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


COLUMNS = tuple(f.name for f in fields(DayKpi))


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def daily(
    first: date,
    last: date,
    zone: ZoneInfo | timezone,
    decisions: Iterable[DecisionRow],
    timers: Iterable[SlaTimer],
    replies: Iterable[ReplyRow],
    now: datetime,
) -> list[DayKpi]:
    """KPIs for each day from ``first`` to ``last`` (inclusive) in ``zone``. Pure."""
    days = {first + timedelta(days=i): DayKpi(first + timedelta(days=i)) for i in range((last - first).days + 1)}

    def day_of(at: datetime) -> date:
        return at.astimezone(zone).date()

    for d in decisions:
        k = days.get(day_of(d.at))
        if k is not None:
            k.messages += 1
            k.auto_resolved += 0 if d.escalated else 1
    first_response: dict[date, list[float]] = defaultdict(list)
    timers = list(timers)
    for t in timers:
        k = days.get(day_of(t.started_at))
        if k is None:
            continue
        k.escalations += 1
        if t.resolved_at is not None:
            k.resolved += 1
        if t.first_response_at is not None:
            first_response[k.day].append((t.first_response_at - t.started_at).total_seconds())
        k.sla_breaches += len(t.breaches)
        clocks = [c for c in t.clocks.values() if c.started_at is not None]
        if t.breaches or any(c.breached_at for c in clocks):
            k.sla_settled += 1
        elif t.resolved_at is not None:
            k.sla_settled += 1
            k.sla_met += 1
    by_agent: dict[date, Counter] = defaultdict(Counter)
    for r in replies:
        if day_of(r.at) in days:
            by_agent[day_of(r.at)][r.agent] += 1
    for day, k in days.items():
        k.automation_rate = _ratio(k.auto_resolved, k.messages)
        k.resolution_rate = _ratio(k.resolved, k.escalations)
        times = first_response.get(day, [])
        k.first_responses = len(times)
        k.avg_first_response_seconds = sum(times) / len(times) if times else None
        agents = by_agent.get(day, Counter())
        k.replies_by_agent = dict(agents)
        k.agent_replies, k.agents = sum(agents.values()), len(agents)
        k.messages_per_agent = k.agent_replies / k.agents if k.agents else None
        k.sla_compliance = _ratio(k.sla_met, k.sla_settled)
        end = min(datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone), now)
        ages = [
            (end - t.started_at).total_seconds()
            for t in timers
            if t.started_at <= end and (t.resolved_at is None or t.resolved_at > end)
        ]
        k.backlog_open = len(ages)
        k.backlog_mean_age_seconds = sum(ages) / len(ages) if ages else None
        k.backlog_oldest_age_seconds = max(ages) if ages else None
    return [days[d] for d in sorted(days)]


def to_csv(rows: list[DayKpi]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(r.row())
    return out.getvalue()


def zone_of(policy: Any) -> ZoneInfo | timezone:
    hours = getattr(policy, "business_hours", None)
    return ZoneInfo(hours.timezone) if hours is not None else timezone.utc


def load(
    store: Any, tracker: Any, brand: str, policy: Any, days: int = 14, now: datetime | None = None
) -> list[DayKpi]:
    """The last ``days`` days of ``brand`` (today included), read from Redis."""
    now = now or datetime.now(timezone.utc)
    zone = zone_of(policy)
    last = now.astimezone(zone).date()
    first = last - timedelta(days=days - 1)
    since = datetime.combine(first, time(0), tzinfo=zone)
    # timers that started earlier may still be open in the window (backlog)
    timers = tracker.timers(brand, since=since - timedelta(days=90))
    try:
        decided_since = since - timedelta(days=defaults.KPI_DECIDED_LAG_DAYS)
        ids = [
            m.decode()
            for m in store.client.zrangebyscore(
                store.keys.decisions(brand), int(decided_since.timestamp() * 1000), "+inf"
            )
        ]
        decisions: list[DecisionRow] = []
        for start in range(0, len(ids), 500):
            raws = store.client.mget([store.keys.decision(brand, m) for m in ids[start : start + 500]])
            for raw in raws:
                if raw:
                    d = Decision.from_json(raw)
                    created = (
                        datetime.fromisoformat(d.event["created_at"]) if d.event.get("created_at") else d.decided_at
                    )
                    decisions.append(DecisionRow(at=created, escalated="escalate" in d.actions))
        replies = _audit_replies(store, brand, since)
    except redis.RedisError as exc:
        raise StoreError(f"Redis failed while reading KPIs of {brand}: {exc}") from exc
    if replies is None:
        replies = [ReplyRow(at=r.at, agent=r.by) for t in timers for r in t.responses if not r.automated]
    return daily(first, last, zone, decisions, timers, replies, now)


def _audit_replies(store: Any, brand: str, since: datetime) -> list[ReplyRow] | None:
    """People's replies from the review app's audit trail, or None when it has none for the brand."""
    key = f"{store.keys.prefix}:audit:{brand}"
    if not store.client.exists(key):
        return None
    out = []
    start = f"{int(since.timestamp() * 1000)}-0"
    for _, entry in store.client.xrange(key, min=start):
        try:
            data = json.loads(entry[b"entry"])
        except (KeyError, ValueError):
            continue
        if data.get("action") in REPLY_ACTIONS and data.get("user"):
            out.append(ReplyRow(at=datetime.fromisoformat(data["at"]), agent=str(data["user"])))
    return out


def queue_depths(store: Any) -> tuple[Counter, dict[str, float]]:
    """(brand, role) -> escalations waiting, and brand -> age in seconds of the oldest one."""
    try:
        members = store.client.zrange(store.keys.review, 0, -1, withscores=True)
        pairs = [(m.decode().partition("/")[0], m.decode().partition("/")[2], s) for m, s in members]
        depth: Counter = Counter()
        oldest: dict[str, float] = {}
        now_ms = datetime.now(timezone.utc).timestamp() * 1000
        for start in range(0, len(pairs), 500):
            chunk = pairs[start : start + 500]
            decisions = store.decisions([(b, m) for b, m, _ in chunk])
            pipe = store.client.pipeline(transaction=False)
            for b, m, _ in chunk:
                pipe.hget(f"{store.keys.prefix}:item:{b}:{m}", "role")
            overrides = pipe.execute()
            for (b, _, score), d, role in zip(chunk, decisions, overrides, strict=True):
                role = role.decode() if role else (d.escalation.role if d and d.escalation else "unknown")
                depth[(b, role)] += 1
                created_ms = score - min(max(int(score // 1e13), 0), len(defaults.PRIORITIES) - 1) * 1e13
                oldest[b] = max(oldest.get(b, 0.0), max(0.0, (now_ms - created_ms) / 1000))
    except redis.RedisError as exc:
        raise StoreError(f"Redis failed while measuring the review queue: {exc}") from exc
    return depth, oldest
