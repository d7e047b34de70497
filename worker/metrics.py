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

Serve them with ``replyguard metrics --port 9108``.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from worker.llm import LATENCY_BUCKETS
from worker.store import Store


class RedisStatsCollector(Collector):
    def __init__(self, store: Store, brands: Iterable[str]):
        self.store = store
        self.brands = list(brands)

    def collect(self):
        decisions = CounterMetricFamily("replyguard_decisions", "Messages decided", labels=["brand"])
        actions = CounterMetricFamily("replyguard_actions", "Actions taken", labels=["brand", "action"])
        rules = CounterMetricFamily("replyguard_rules", "Decisions by the rule that named them", labels=["brand", "rule"])
        results = CounterMetricFamily("replyguard_llm_results", "LLM tasks by outcome", labels=["brand", "task", "outcome"])
        fallbacks = CounterMetricFamily("replyguard_llm_fallbacks", "Why an LLM result was not used",
                                        labels=["brand", "reason"])
        tokens = CounterMetricFamily("replyguard_llm_tokens", "LLM tokens", labels=["brand", "direction"])
        latency = HistogramMetricFamily("replyguard_llm_latency_seconds", "LLM call latency (all attempts)",
                                        labels=["brand"])
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
