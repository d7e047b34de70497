"""Replay: what a changed policy would have decided differently on past traffic.

Every stored decision carries its event, its scores and the conversation context
it was decided in, so :func:`replay` re-runs the pure rule engine with another
policy over them and compares with the outcome *before* any LLM task (replay
calls no LLM) (optionally re-classifying with the new policy's models). With
reviewers' corrections (``replyguard review resolve``), it also counts the
mistakes each policy makes on the corrected messages: wrong automatic answers,
real customers hidden, and spam or abuse let through.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from worker.brands import Brand
from worker.decide import Context, decide
from worker.models import Action, Correction, Decision, parse_event
from worker.store import Store


def _key(decision: Decision) -> str:
    return "+".join(sorted(a.value for a in decision.actions))


def _plain(decision: Decision) -> tuple[str, str, str | None]:
    """(actions, rule, reply) of a stored decision *before* any LLM task changed it.

    Replay re-decides without calling an LLM, so it must compare like with like.
    """
    before = decision.llm.before if decision.llm is not None else None
    if before:
        return "+".join(sorted(before["actions"])), before["rule"], before.get("reply")
    return _key(decision), decision.rule, decision.reply


def mistakes(decision: Decision, correction: Correction) -> list[str]:
    """What ``decision`` got wrong according to ``correction``."""
    out = []
    acts = set(decision.actions)
    if Action.AUTO_REPLY in acts and correction.intent is not None and decision.intent is not None:
        answered = decision.intent.label
        if decision.rule.startswith("intent.") and answered != correction.intent:
            out.append("wrong_answer")
    clean = correction.spam is False and correction.abuse in (None, "neither")
    if Action.HIDE in acts and clean:
        out.append("customer_hidden")
    if correction.spam and Action.HIDE not in acts:
        out.append("spam_missed")
    if correction.abuse == "hate" and Action.HIDE not in acts:
        out.append("hate_missed")
    return out


@dataclass
class ReplayReport:
    brand: str
    policy_before: set[str] = field(default_factory=set)
    policy_after: str = ""
    total: int = 0
    changed: int = 0
    transitions: Counter = field(default_factory=Counter)
    rules_before: Counter = field(default_factory=Counter)
    rules_after: Counter = field(default_factory=Counter)
    corrected: int = 0
    mistakes_before: Counter = field(default_factory=Counter)
    mistakes_after: Counter = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "brand": self.brand,
            "policy_versions_before": sorted(self.policy_before),
            "policy_version_after": self.policy_after,
            "decisions": self.total,
            "changed": self.changed,
            "transitions": {f"{a} -> {b}": n for (a, b), n in self.transitions.most_common()},
            "rules_before": dict(self.rules_before.most_common()),
            "rules_after": dict(self.rules_after.most_common()),
            "corrected": self.corrected,
            "mistakes_before": dict(self.mistakes_before),
            "mistakes_after": dict(self.mistakes_after),
            "examples": self.examples,
        }

    def lines(self) -> list[str]:
        out = [f"Replayed {self.total} decisions of {self.brand} with policy {self.policy_after} "
               f"(decided with {', '.join(sorted(self.policy_before)) or '-'}).",
               f"{self.changed} would be decided differently ({100 * self.changed / max(1, self.total):.1f} %)."]
        for (a, b), n in self.transitions.most_common(10):
            out.append(f"  {n:6d}  {a} -> {b}")
        if self.corrected:
            out.append(f"On {self.corrected} messages a reviewer corrected:")
            for kind in sorted(set(self.mistakes_before) | set(self.mistakes_after)):
                out.append(f"  {kind:16} {self.mistakes_before[kind]:5d} -> {self.mistakes_after[kind]:5d}")
        for ex in self.examples[:10]:
            out.append(f"  e.g. {ex['message_id']}: {ex['before']} ({ex['rule_before']}) -> {ex['after']} "
                       f"({ex['rule_after']}): {ex['text'][:70]!r}")
        return out


def replay(store: Store, brand: Brand, *, limit: int | None = None, reclassify: bool = False,
           max_examples: int = 50) -> ReplayReport:
    decisions = store.all_decisions(brand.name, limit=limit)
    corrections = store.corrections(brand.name)
    report = ReplayReport(brand=brand.name, policy_after=brand.policy_version)
    new_scores: list[dict[str, dict[str, float]]] | None = None
    if reclassify and decisions:
        texts = [d.event.get("text", "") for d in decisions]
        from worker.pipeline import classify

        uses = {task: [(i, getattr(brand, task)) for i in range(len(texts))] for task in ("spam", "abuse", "intent")}
        new_scores = classify(uses, texts)
    for i, old in enumerate(decisions):
        event = parse_event(old.event, source=f"stored decision {old.message_id}")
        scores = new_scores[i] if new_scores is not None else old.scores
        new = decide(event, scores, Context.of(old), brand, truncated=old.truncated).decision
        before, old_rule, old_reply = _plain(old)
        after = _key(new)
        report.total += 1
        report.policy_before.add(old.policy_version)
        report.rules_before[old_rule] += 1
        report.rules_after[new.rule] += 1
        if before != after or old_reply != new.reply or old_rule != new.rule:
            report.changed += 1
            report.transitions[(before, after)] += 1
            if len(report.examples) < max_examples:
                report.examples.append({"message_id": old.message_id, "text": event.text, "before": before,
                                        "after": after, "rule_before": old_rule, "rule_after": new.rule})
        correction = corrections.get(old.message_id)
        if correction is not None:
            report.corrected += 1
            report.mistakes_before.update(mistakes(old, correction))
            report.mistakes_after.update(mistakes(new, correction))
    return report
