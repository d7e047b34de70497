"""Replay: what a changed policy would have decided differently on past traffic.

Every stored decision carries its event, its scores and the conversation context
it was decided in, so :func:`replay` re-decides them with another policy through
the worker's own path (:meth:`worker.pipeline.Pipeline.decide`, each in its stored
context) and compares with the outcome *before* any LLM task (replay
calls no LLM) (optionally re-classifying with the new policy's models). With
reviewers' corrections (``replyguard review resolve``), it also counts the
mistakes each policy makes on the corrected messages: wrong automatic answers,
real customers hidden, and spam or abuse let through.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datetime import datetime, timezone

from worker.brands import Brand
from worker.models import Action, Correction, Decision, parse_event
from worker.pipeline import Pipeline
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
        out = [
            f"Replayed {self.total} decisions of {self.brand} with policy {self.policy_after} "
            f"(decided with {', '.join(sorted(self.policy_before)) or '-'}).",
            f"{self.changed} would be decided differently ({100 * self.changed / max(1, self.total):.1f} %).",
        ]
        for (a, b), n in self.transitions.most_common(10):
            out.append(f"  {n:6d}  {a} -> {b}")
        if self.corrected:
            out.append(f"On {self.corrected} messages a reviewer corrected:")
            for kind in sorted(set(self.mistakes_before) | set(self.mistakes_after)):
                out.append(f"  {kind:16} {self.mistakes_before[kind]:5d} -> {self.mistakes_after[kind]:5d}")
        for ex in self.examples[:10]:
            out.append(
                f"  e.g. {ex['message_id']}: {ex['before']} ({ex['rule_before']}) -> {ex['after']} "
                f"({ex['rule_after']}): {ex['text'][:70]!r}"
            )
        return out


def replay(
    store: Store, brand: Brand, *, limit: int | None = None, reclassify: bool = False, max_examples: int = 50
) -> ReplayReport:
    decisions = store.all_decisions(brand.name, limit=limit)
    corrections = store.corrections(brand.name)
    report = ReplayReport(brand=brand.name, policy_after=brand.policy_version)
    pipeline = Pipeline({brand.name: brand})
    events = [parse_event(d.event, source=f"stored decision {d.message_id}") for d in decisions]
    scores = pipeline.classify(events) if reclassify else [d.scores for d in decisions]
    outcomes, _ = pipeline.decide(
        events, scores, [d.context for d in decisions], now=datetime.now(timezone.utc), carry_context=False
    )
    for old, event, outcome in zip(decisions, events, outcomes, strict=True):
        new = outcome.decision
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
                report.examples.append(
                    {
                        "message_id": old.message_id,
                        "text": event.text,
                        "before": before,
                        "after": after,
                        "rule_before": old_rule,
                        "rule_after": new.rule,
                    }
                )
        correction = corrections.get(old.message_id)
        if correction is not None:
            report.corrected += 1
            report.mistakes_before.update(mistakes(old, correction))
            report.mistakes_after.update(mistakes(new, correction))
    return report


def write_replay_html(report: ReplayReport, out: Path) -> Path:
    """One self-contained page with the replay's figures (``eval --replay --report DIR``)."""
    import html

    e = html.escape
    d = report.as_dict()

    def table(title: str, rows: dict[str, Any], head: tuple[str, ...] = ("", "messages")) -> str:
        cells = "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in rows.items())
        return f"<h2>{e(title)}</h2><table><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr>{cells}</table>"

    mistakes = {
        k: f"{d['mistakes_before'].get(k, 0)} → {d['mistakes_after'].get(k, 0)}"
        for k in sorted(set(d["mistakes_before"]) | set(d["mistakes_after"]))
    }
    examples = "".join(
        f"<tr><td>{e(x['message_id'])}</td><td>{e(str(x['before']))} ({e(str(x['rule_before']))})</td>"
        f"<td>{e(str(x['after']))} ({e(str(x['rule_after']))})</td><td>{e(x['text'][:200])}</td></tr>"
        for x in d["examples"][:50]
    )
    page = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>replyguard replay</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}</style>"
        f"<h1>Replay of {e(d['brand'])}</h1>"
        f"<p>{d['decisions']} decisions re-decided with policy {e(d['policy_version_after'])} (decided with "
        f"{e(', '.join(d['policy_versions_before']) or '-')}); {d['changed']} would change.</p>"
        + table("What changes", d["transitions"], ("before → after", "messages"))
        + table(f"Mistakes on {d['corrected']} reviewer-corrected messages", mistakes, ("kind", "before → after"))
        + table("Rules before", d["rules_before"], ("rule", "messages"))
        + table("Rules after", d["rules_after"], ("rule", "messages"))
        + f"<h2>Examples</h2><table><tr><th>message</th><th>before</th><th>after</th><th>text</th></tr>{examples}</table>"
        "</html>\n"
    )
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
