"""Prometheus metrics, read from the counters replyguard keeps in Redis.

RQ runs each job in a forked process and workers may run on many hosts, so
in-process counters would be lost or split. Instead every decision and every LLM
call updates the brand's stats hash in Redis (atomically, with the decision), and
this collector turns those hashes into Prometheus metrics at scrape time:

``replyguard_decisions_total{brand}``
``replyguard_actions_total{brand,action}``
``replyguard_rules_total{brand,rule}``
``replyguard_llm_results_total{brand,task,outcome}``
``replyguard_llm_fallbacks_total{brand,reason}``
``replyguard_llm_tokens_total{brand,direction}``
``replyguard_llm_latency_seconds{brand}`` (histogram)
``replyguard_review_queue_size``
``replyguard_review_queue_depth{brand,role}``, ``replyguard_review_oldest_age_seconds{brand}``
``replyguard_sla_breaches_total{brand,target}``, ``replyguard_sla_warnings_total{brand,target}``
``replyguard_kpi_*{brand}``: today's figures of the KPI dashboard (see :mod:`worker.kpi`):
automation_rate, first_response_seconds, resolution_rate, messages_per_agent,
backlog_open, backlog_oldest_age_seconds, sla_compliance

Serve them with ``replyguard metrics --port 9108``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from worker import kpi
from worker.kpi import queue_depths
from worker.llm import LATENCY_BUCKETS
from worker.sla.config import TARGETS
from worker.sla.tracker import SlaTracker
from worker.store import Store


#: Today's KPI figures exported as gauges: metric suffix -> (DayKpi field, help).
KPI_GAUGES = {
    "automation_rate": ("automation_rate", "Share of today's messages decided without a person"),
    "first_response_seconds": ("avg_first_response_seconds", "Mean first-response time of today's escalations"),
    "resolution_rate": ("resolution_rate", "Share of today's escalations resolved"),
    "messages_per_agent": ("messages_per_agent", "Replies per agent who replied today"),
    "backlog_open": ("backlog_open", "Escalations open now"),
    "backlog_oldest_age_seconds": ("backlog_oldest_age_seconds", "Age of the oldest open escalation with a timer"),
    "sla_compliance": ("sla_compliance", "Share of today's settled escalations that missed no SLA target"),
}


class RedisStatsCollector(Collector):
    def __init__(self, store: Store, brands: Iterable[str], policies: Mapping[str, Any] | None = None):
        self.store = store
        self.brands = list(brands)
        self.policies = policies or {}

    def collect(self):
        decisions = CounterMetricFamily("replyguard_decisions", "Messages decided", labels=["brand"])
        actions = CounterMetricFamily("replyguard_actions", "Actions taken", labels=["brand", "action"])
        rules = CounterMetricFamily(
            "replyguard_rules", "Decisions by the rule that named them", labels=["brand", "rule"]
        )
        results = CounterMetricFamily(
            "replyguard_llm_results", "LLM tasks by outcome", labels=["brand", "task", "outcome"]
        )
        fallbacks = CounterMetricFamily(
            "replyguard_llm_fallbacks", "Why an LLM result was not used", labels=["brand", "reason"]
        )
        tokens = CounterMetricFamily("replyguard_llm_tokens", "LLM tokens", labels=["brand", "direction"])
        latency = HistogramMetricFamily(
            "replyguard_llm_latency_seconds", "LLM call latency (all attempts)", labels=["brand"]
        )
        for brand in self.brands:
            stats = self.store.stats(brand)
            decisions.add_metric([brand], stats.get("decisions", 0))
            for key, value in stats.items():
                kind, _, rest = key.partition(":")
                if kind == "action":
                    actions.add_metric([brand, rest], value)
                elif kind == "rule":
                    rules.add_metric([brand, rest], value)
                elif kind == "llm":
                    head, _, tail = rest.partition(":")
                    if head in ("personalise", "cascade", "moderation") and tail != "pending":
                        results.add_metric([brand, head, tail], value)
                    elif head == "reason":
                        fallbacks.add_metric([brand, tail], value)
            tokens.add_metric([brand, "in"], stats.get("llm:tokens_in", 0))
            tokens.add_metric([brand, "out"], stats.get("llm:tokens_out", 0))
            buckets = [(str(b), stats.get(f"llm:latency_le:{b}", 0)) for b in LATENCY_BUCKETS]
            calls = stats.get("llm:calls", 0)
            buckets.append(("+Inf", calls))
            latency.add_metric([brand], buckets=buckets, sum_value=stats.get("llm:latency_ms_sum", 0) / 1000)
        review = GaugeMetricFamily("replyguard_review_queue_size", "Escalations waiting for a person")
        review.add_metric([], self.store.client.zcard(self.store.keys.review))
        yield from (decisions, actions, rules, results, fallbacks, tokens, latency, review)
        yield from self._queue_and_sla()

    def _queue_and_sla(self):
        depth, oldest = queue_depths(self.store)
        by_role = GaugeMetricFamily(
            "replyguard_review_queue_depth", "Escalations waiting, by brand and role", labels=["brand", "role"]
        )
        for (brand, role), count in sorted(depth.items()):
            by_role.add_metric([brand, role], count)
        age = GaugeMetricFamily(
            "replyguard_review_oldest_age_seconds", "Age of the oldest waiting escalation", labels=["brand"]
        )
        breaches = CounterMetricFamily("replyguard_sla_breaches", "SLA targets missed", labels=["brand", "target"])
        warnings = CounterMetricFamily("replyguard_sla_warnings", "SLA warnings", labels=["brand", "target"])
        kpis = {
            name: GaugeMetricFamily(f"replyguard_kpi_{name}", help_, labels=["brand"])
            for name, (_, help_) in KPI_GAUGES.items()
        }
        tracker = SlaTracker(self.store, self.policies)
        for brand in self.brands:
            age.add_metric([brand], oldest.get(brand, 0.0))
            stats = self.store.stats(brand)
            for target in TARGETS:
                breaches.add_metric([brand, target], stats.get(f"sla:breached:{target}", 0))
                warnings.add_metric([brand, target], stats.get(f"sla:warning:{target}", 0))
            today = kpi.load(self.store, tracker, brand, self.policies.get(brand), days=1)[-1]
            for name, (attr, _) in KPI_GAUGES.items():
                value = getattr(today, attr)
                if value is not None:
                    kpis[name].add_metric([brand], value)
        yield from (by_role, age, breaches, warnings, *kpis.values())
