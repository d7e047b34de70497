"""What the review app reads: the queue with its filters and counts, one item in full, the
auto-actioned and rejected views.

The queue is the Redis review zset (escalations, ordered by priority then age)
joined with each decision, the item's human state (``{p}:item:…``: re-routed role
or priority, hidden, resolved) and its claim. Everything here only reads; the
actions are in :mod:`worker.review_actions`.

SLA state comes from an optional ``sla`` provider (``(brand, message_id) pairs
-> list of {"state": …, "timers": […]} or None``) so the SLA timers can plug in
without this module knowing them.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from worker import defaults
from worker.models import PLATFORMS, KINDS, Decision
from worker.store import Store, review_member

#: Score bands the queue can be filtered by: name -> [low, high).
SCORE_BANDS = {"lt50": (0.0, 0.5), "50-70": (0.5, 0.7), "70-90": (0.7, 0.9), "ge90": (0.9, 1.01)}
#: Age filters: name -> at least this many seconds waiting.
AGES = {"15m": 900, "1h": 3600, "4h": 4 * 3600, "24h": 24 * 3600}

SlaProvider = Callable[[list[tuple[str, str]]], list[dict[str, Any] | None]]


class FilterError(ValueError):
    """A queue filter has a value it cannot have (names the filter)."""


@dataclass(frozen=True)
class QueueFilters:
    brand: str | None = None
    platform: str | None = None
    kind: str | None = None
    role: str | None = None
    priority: str | None = None
    rule: str | None = None
    label: str | None = None
    band: str | None = None
    age: str | None = None
    sla: str | None = None
    claimed: str | None = None  # "me" | "none" | "others"

    NAMES = ("brand", "platform", "kind", "role", "priority", "rule", "label", "band", "age", "sla", "claimed")

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> "QueueFilters":
        values = {name: (params.get(name) or "").strip() or None for name in cls.NAMES}
        allowed = {
            "platform": PLATFORMS,
            "kind": KINDS,
            "priority": defaults.PRIORITIES,
            "band": tuple(SCORE_BANDS),
            "age": tuple(AGES),
            "claimed": ("me", "none", "others"),
        }
        for name, choices in allowed.items():
            if values[name] is not None and values[name] not in choices:
                raise FilterError(f"filter {name}: {values[name]!r} is not one of {', '.join(choices)}")
        for name in ("brand", "role", "rule", "label", "sla"):
            value = values[name]
            if value is not None and len(value) > 128:
                raise FilterError(f"filter {name}: longer than 128 characters")
        return cls(**values)

    def query(self, **changes: str | None) -> dict[str, str]:
        """The filters as query parameters (with ``changes``), empty ones left out."""
        data = {name: getattr(self, name) for name in self.NAMES}
        data.update(changes)
        return {k: v for k, v in data.items() if v}


@dataclass
class QueueItem:
    brand: str
    message_id: str
    priority: str
    role: str
    reason: str
    created_at: datetime
    waiting_seconds: float
    decision: Decision | None
    claimed_by: str | None
    labels: list[str]
    score: float | None
    sla: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return review_member(self.brand, self.message_id)

    @property
    def event(self) -> dict[str, Any]:
        return self.decision.event if self.decision else {}

    def as_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "brand": self.brand,
            "message_id": self.message_id,
            "priority": self.priority,
            "role": self.role,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "waiting_seconds": round(self.waiting_seconds, 1),
            "claimed_by": self.claimed_by,
            "labels": self.labels,
            "score": self.score,
            "rule": d.rule if d else None,
            "platform": d.platform if d else None,
            "kind": d.kind if d else None,
            "text": self.event.get("text"),
            "author": (self.event.get("author") or {}).get("name"),
            "sla": self.sla,
        }


@dataclass
class QueueView:
    items: list[QueueItem]
    total: int
    counts: dict[str, Counter] = field(default_factory=dict)


def labels_of(decision: Decision) -> list[str]:
    """The labels a decision found: every moderation label whose rule fired, then its intent."""
    labels = [hit.name.split(".", 1)[1] for hit in decision.rules if hit.name.startswith("moderation.")]
    if decision.intent:
        labels.append(decision.intent.label)
    return list(dict.fromkeys(labels))


def main_score(decision: Decision) -> float | None:
    if decision.score is not None:
        return decision.score
    return decision.intent.score if decision.intent else None


def _decode(mapping: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in mapping.items()}


class ReviewReader:
    """Read-only queries of the review app."""

    def __init__(self, store: Store, sla: SlaProvider | None = None):
        self.store = store
        self.client = store.client
        self.keys = store.keys
        self.sla = sla

    # -- the queue ----------------------------------------------------------------------

    def queue(
        self,
        brands: list[str],
        filters: QueueFilters,
        user: str,
        now: float | None = None,
        limit: int = defaults.QUEUE_PAGE_ITEMS,
    ) -> QueueView:
        """Open escalations of ``brands`` matching ``filters``, most urgent first, with counts per queue."""
        now = time.time() if now is None else now
        allowed = set(brands)
        raw = self.client.zrange(self.keys.review, 0, defaults.QUEUE_SCAN_LIMIT - 1, withscores=True)
        entries = []
        for member, score in raw:
            brand, _, mid = member.decode().partition("/")
            if brand in allowed:
                entries.append((brand, mid, score))
        items = self._items(entries, now)
        counts: dict[str, Counter] = {"role": Counter(), "priority": Counter(), "brand": Counter()}
        shown = []
        for item in items:
            if not self._matches(item, filters, user, skip="role"):
                continue
            counts["role"][item.role] += 1
            if filters.role and item.role != filters.role:
                continue
            counts["priority"][item.priority] += 1
            counts["brand"][item.brand] += 1
            shown.append(item)
        shown.sort(key=lambda i: (defaults.PRIORITIES.index(i.priority), i.created_at))
        return QueueView(items=shown[:limit], total=len(shown), counts=counts)

    def _items(self, entries: list[tuple[str, str, float]], now: float) -> list[QueueItem]:
        if not entries:
            return []
        pairs = [(b, m) for b, m, _ in entries]
        decisions = self.store.decisions(pairs)
        pipe = self.client.pipeline(transaction=False)
        for b, m in pairs:
            pipe.get(self.keys.claim(b, m))
            pipe.hgetall(self.keys.item(b, m))
        replies = pipe.execute()
        slas = self.sla(pairs) if self.sla else [None] * len(pairs)
        items = []
        for i, ((brand, mid, score), decision) in enumerate(zip(entries, decisions, strict=True)):
            claim, state = replies[2 * i], _decode(replies[2 * i + 1])
            rank = min(int(score // 1e13), len(defaults.PRIORITIES) - 1)
            created = datetime.fromtimestamp((score - rank * 1e13) / 1000, tz=timezone.utc)
            escalation = decision.escalation if decision else None
            items.append(
                QueueItem(
                    brand=brand,
                    message_id=mid,
                    priority=defaults.PRIORITIES[rank],
                    role=state.get("role") or (escalation.role if escalation else "?"),
                    reason=state.get("reason") or (escalation.reason if escalation else "(decision missing)"),
                    created_at=created,
                    waiting_seconds=max(0.0, now - created.timestamp()),
                    decision=decision,
                    claimed_by=claim.decode() if claim else None,
                    labels=labels_of(decision) if decision else [],
                    score=main_score(decision) if decision else None,
                    sla=slas[i],
                )
            )
        return items

    @staticmethod
    def _matches(item: QueueItem, f: QueueFilters, user: str, skip: str = "") -> bool:
        d = item.decision
        if f.brand and item.brand != f.brand:
            return False
        if f.priority and item.priority != f.priority:
            return False
        if f.role and skip != "role" and item.role != f.role:
            return False
        if f.platform and (d is None or d.platform != f.platform):
            return False
        if f.kind and (d is None or d.kind != f.kind):
            return False
        if f.rule and (d is None or (d.rule != f.rule and all(h.name != f.rule for h in d.rules))):
            return False
        if f.label and f.label not in item.labels:
            return False
        if f.band:
            low, high = SCORE_BANDS[f.band]
            if item.score is None or not low <= item.score < high:
                return False
        if f.age and item.waiting_seconds < AGES[f.age]:
            return False
        if f.sla and (item.sla or {}).get("state") != f.sla:
            return False
        if f.claimed == "me" and item.claimed_by != user:
            return False
        if f.claimed == "none" and item.claimed_by:
            return False
        if f.claimed == "others" and (not item.claimed_by or item.claimed_by == user):
            return False
        return True

    def choices(self, view: QueueView) -> dict[str, list[str]]:
        """Values the filter menus offer, from what is in the queue (plus the fixed lists)."""
        rules, labels = set(), set()
        for item in view.items:
            if item.decision:
                rules.add(item.decision.rule)
                rules.update(h.name for h in item.decision.rules)
            labels.update(item.labels)
        return {
            "platform": list(PLATFORMS),
            "kind": list(KINDS),
            "priority": list(defaults.PRIORITIES),
            "rule": sorted(rules),
            "label": sorted(labels),
            "band": list(SCORE_BANDS),
            "age": list(AGES),
            "role": sorted(view.counts.get("role", {})),
        }

    # -- one item -----------------------------------------------------------------------

    def state(self, brand: str, message_id: str) -> dict[str, str]:
        return _decode(self.client.hgetall(self.keys.item(brand, message_id)))

    def is_open(self, brand: str, message_id: str) -> bool:
        return self.client.zscore(self.keys.review, review_member(brand, message_id)) is not None

    def hidden(self, decision: Decision, state: dict[str, str]) -> bool:
        if "hidden" in state:
            return state["hidden"] == "1"
        return "hide" in [a.value for a in decision.actions]

    def item(
        self, brand: str, message_id: str, brand_config: Any = None, now: float | None = None
    ) -> dict[str, Any] | None:
        """Everything the item page shows, as plain data (also the JSON of GET /api/review/items/…)."""
        now = time.time() if now is None else now
        decision = self.store.decision(brand, message_id)
        if decision is None:
            return None
        event = decision.event
        author = event.get("author") or {}
        state = self.state(brand, message_id)
        score = self.client.zscore(self.keys.review, review_member(brand, message_id))
        claim = self.client.get(self.keys.claim(brand, message_id))
        added_tags = sorted(t.decode() for t in self.client.smembers(self.keys.author(brand, decision.author_id)))
        opted_out = bool(self.client.sismember(self.keys.optout(brand), decision.author_id))
        escalation = decision.escalation
        priority = None
        if score is not None:
            priority = defaults.PRIORITIES[min(int(score // 1e13), len(defaults.PRIORITIES) - 1)]
        elif escalation:
            priority = state.get("priority") or escalation.priority
        correction = self.client.get(self.keys.correction(brand, message_id))
        created = datetime.fromisoformat(event["created_at"])
        thread = self.store.history(brand, decision.conversation_id)
        last_customer = max([h["at"] for h in thread if h.get("role") == "customer"] or [created.timestamp() * 1000])
        window_hours = defaults.REPLY_WINDOW_HOURS.get((decision.platform, decision.kind))
        window = None
        if window_hours:
            closes = datetime.fromtimestamp(last_customer / 1000, tz=timezone.utc) + timedelta(hours=window_hours)
            window = {
                "hours": window_hours,
                "closes_at": closes.isoformat(),
                "seconds_left": round(closes.timestamp() - now),
            }
        return {
            "brand": brand,
            "message_id": message_id,
            "status": "open" if score is not None else state.get("status", "resolved" if escalation else "auto"),
            "escalated": escalation is not None,
            "priority": priority,
            "role": state.get("role") or (escalation.role if escalation else None),
            "reason": state.get("reason") or (escalation.reason if escalation else None),
            "claimed_by": claim.decode() if claim else None,
            "hidden": self.hidden(decision, state),
            "resolved_by": state.get("resolved_by"),
            "resolution": state.get("resolution"),
            "event": event,
            "thread": thread,
            "author": {
                "id": decision.author_id,
                "name": author.get("name"),
                "tags": list(author.get("tags") or []),
                "added_tags": added_tags,
                "blocked": "blocked" in added_tags,
                "opted_out": opted_out,
                "earlier": self.author_history(brand, decision.author_id, exclude=message_id),
            },
            "scores": self.scores(decision, brand_config),
            "decision": decision.model_dump(mode="json", exclude={"event"}),
            "labels": labels_of(decision),
            "correction": None if correction is None else json.loads(correction),
            "reply_window": window,
            "sla": (self.sla([(brand, message_id)])[0] if self.sla else None),
            "deliveries": [d for d in decision.model_dump(mode="json").get("deliveries", [])],
        }

    def scores(self, decision: Decision, brand_config: Any) -> list[dict[str, Any]]:
        """Every score with the threshold it is compared against (for this platform and kind)."""
        view = brand_config.policy.view(decision.platform, decision.kind) if brand_config else None
        rows = []
        for task, labels in decision.scores.items():
            for label, value in sorted(labels.items(), key=lambda kv: -kv[1]):
                threshold = None
                if view is not None:
                    if task == "intent":
                        threshold = view.intent_threshold(label)
                    else:
                        threshold = getattr(view.thresholds, task, {}).get(label)
                rows.append(
                    {
                        "task": task,
                        "label": label,
                        "score": value,
                        "threshold": threshold,
                        "over": threshold is not None and value >= threshold,
                    }
                )
        return rows

    def author_history(
        self,
        brand: str,
        author_id: str,
        exclude: str | None = None,
        scan: int = defaults.AUTHOR_HISTORY_SCAN,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        """The author's earlier decisions among the brand's latest ``scan`` decisions, newest first."""
        ids = [m for m in self.store.recent(brand, scan) if m != exclude]
        found = []
        for i in range(0, len(ids), 500):
            for d in self.store.decisions([(brand, m) for m in ids[i : i + 500]]):
                if d is not None and d.author_id == author_id:
                    found.append(
                        {
                            "message_id": d.message_id,
                            "actions": [a.value for a in d.actions],
                            "rule": d.rule,
                            "decided_at": d.decided_at.isoformat(),
                            "text": (d.event.get("text") or "")[:200],
                        }
                    )
                    if len(found) >= limit:
                        return found
        return found

    # -- other views --------------------------------------------------------------------

    def auto_actioned(self, brands: list[str], scan: int = defaults.AUTO_ACTIONED_SCAN) -> list[dict[str, Any]]:
        """Recent decisions that acted without a person (auto-replied or hid), newest first."""
        rows = []
        for brand in brands:
            ids = self.store.recent(brand, scan)
            decisions = self.store.decisions([(brand, m) for m in ids])
            pipe = self.client.pipeline(transaction=False)
            kept = [d for d in decisions if d is not None and {"auto_reply", "hide"} & {a.value for a in d.actions}]
            for d in kept:
                pipe.hgetall(self.keys.item(brand, d.message_id))
            for d, state in zip(kept, pipe.execute(), strict=True):
                state = _decode(state)
                rows.append(
                    {
                        "brand": brand,
                        "message_id": d.message_id,
                        "platform": d.platform,
                        "kind": d.kind,
                        "actions": [a.value for a in d.actions],
                        "rule": d.rule,
                        "reply": d.reply,
                        "text": d.event.get("text"),
                        "decided_at": d.decided_at.isoformat(),
                        "hidden": self.hidden(d, state),
                        "reopened": state.get("reopened_by"),
                        "escalated": d.escalation is not None,
                    }
                )
        rows.sort(key=lambda r: str(r["decided_at"]), reverse=True)
        return rows

    def rejected(self, brands: list[str], everything: bool, limit: int = 200) -> list[dict[str, Any]]:
        """Rejected events of ``brands`` (an event without a readable brand only when ``everything``)."""
        rows = []
        for entry in self.store.rejected(limit=limit * 5):
            event = entry.get("event")
            brand = event.get("brand") if isinstance(event, dict) else None
            if (isinstance(brand, str) and brand in brands) or everything:
                rows.append(
                    {
                        **entry,
                        "brand": brand if isinstance(brand, str) else None,
                        "at_iso": datetime.fromtimestamp(entry.get("at", 0), tz=timezone.utc).isoformat(),
                    }
                )
            if len(rows) >= limit:
                break
        return rows
