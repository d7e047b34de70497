"""A proposed policy from an evaluation: thresholds that meet the target, and what changes.

The proposal is the current policy with ``thresholds.<task>`` replaced, validated
against the policy schema and written to the report directory as
``policy.proposed.yaml``. The eval tool never writes to ``policies/``.
The comparison applies the current and the proposed thresholds to the same test
predictions and reports, in plain language, the auto-resolve rate, the error
rate among auto-resolved messages, and escalations per 1,000 messages.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from eval.thresholds import Scored, auto_mask, outcome
from worker.decide import intent_actions, threshold_actions
from worker.policy import ABUSE_LABELS, SPAM_LABELS, Policy, load_policy
from worker.yaml_source import read_yaml


def _ceil(value: float, digits: int = 4) -> float:
    """Round a threshold up, so rounding never lowers precision."""
    factor = 10**digits
    return min(1.0, math.ceil(value * factor - 1e-9) / factor)


#: Val rows a deliberate threshold must be judged on before the data may overrule it.
MIN_EVIDENCE = 20


@dataclass
class Proposal:
    """Thresholds for ``thresholds.<task>``, why each one is what it is, and what could not be mapped."""

    thresholds: dict[str, float]
    reasons: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    for_model: str | None = None
    policy_model: str | None = None
    #: What the proposal could not settle and people should know (written in the YAML header and the diff).
    notes: list[str] = field(default_factory=list)

    @property
    def model_mismatch(self) -> bool:
        return self.policy_model is not None and self.for_model != self.policy_model


def _at(val: Scored, label: str, threshold: float) -> tuple[int, float]:
    """Val rows predicted ``label`` at or above ``threshold``, and the share of them that are right."""
    rows = (val.pred == label) & (val.conf >= threshold)
    n = int(rows.sum())
    return n, float(val.correct[rows].mean()) if n else 1.0


def propose(
    task: str,
    report: dict[str, Any],
    policy: Policy,
    val: Scored,
    *,
    allowed: set[str] | None = None,
    policy_model: str | None = None,
) -> Proposal:
    """Thresholds to propose for ``thresholds.<task>`` of ``policy``.

    * Labels the policy cannot hold (spam/abuse know fixed labels; an intent threshold must name a
      label of the policy's model, ``allowed``) are listed in ``unmapped``, never written.
    * A threshold the policy sets on purpose (an intent label's own threshold) is kept unless val
      shows it below the target precision on at least MIN_EVIDENCE answers.
    * Spam/abuse thresholds follow val where val holds at least MIN_EVIDENCE rows of the label;
      otherwise, and for labels the data does not have, the policy's value stays. The intent default
      follows val where val holds at least MIN_EVIDENCE rows; otherwise the policy's default stays.
    """
    target = report["target_precision"]
    chosen = _ceil(report["threshold"])
    per_label = {k: _ceil(v) for k, v in report["per_label_thresholds"].items()}
    current, current_default = _current(policy, task)
    labels = set(report["labels"])
    out = Proposal(thresholds={}, for_model=report.get("model_ref"), policy_model=policy_model)
    if task == "intent":
        if allowed is None:
            allowed = labels
        if report.get("oos_label") and report.get("reject_threshold") is None:
            why = report.get("reject_threshold_not_chosen") or "not chosen"
            out.notes.append(
                f"No out-of-scope reject threshold could be chosen ({why}). The policy has no such setting: an "
                "out-of-scope message is kept from an automatic answer only by the intent thresholds "
                "(below its threshold a message goes to the policy's fallback). Label more out-of-scope messages to measure it."
            )
        n_val = len(val.conf)
        if n_val < MIN_EVIDENCE and "default" in getattr(policy.thresholds, task):
            # as for spam / abuse labels: a handful of val rows does not move the policy's own default
            out.thresholds["default"] = current_default
            out.reasons["default"] = (
                f"kept the policy's {current_default}: only {n_val} val rows, too few to move it (val chose {chosen})"
            )
        else:
            out.thresholds["default"] = chosen
            out.reasons["default"] = f"chosen on val for precision {target}" + (
                f" (was {current_default})" if current_default != chosen else ""
            )
        for label, t in sorted(per_label.items()):
            if label in allowed:
                out.thresholds[label] = t
                out.reasons[label] = f"own threshold chosen on val for precision {target} (≥ 30 val rows)"
        for label, value in sorted(current.items()):
            if label not in labels:
                out.thresholds[label] = value
                out.reasons[label] = "set in the policy; the data has no such label, kept"
                continue
            n, precision = _at(val, label, value)
            if n >= MIN_EVIDENCE and precision < target:
                if label not in out.thresholds:
                    out.reasons[label] = (
                        f"the policy's {value} gave precision {precision:.3f} on {n} val answers, "
                        f"below {target}: now follows default {chosen}"
                    )
                else:
                    out.reasons[label] = (
                        f"the policy's {value} gave precision {precision:.3f} on {n} val answers, "
                        f"below {target}: replaced"
                    )
                continue
            out.thresholds[label] = value
            why = (
                f"precision {precision:.3f} on {n} val answers meets {target}"
                if n >= MIN_EVIDENCE
                else f"only {n} val answers at it, too few to overrule it"
            )
            out.reasons[label] = f"set in the policy on purpose, kept: {why}"
        extra = sorted(set(per_label) - allowed)
        if extra:
            out.unmapped += [
                f"{label}: not a label of the policy's intent model {policy_model or ''}".rstrip() for label in extra
            ]
        unknown = sorted(labels - allowed - set(extra) - {report.get("oos_label")})
        if unknown:  # the data's own intents: the policy's model cannot answer them, so nothing is proposed for them
            model = f"the policy's intent model {policy_model}" if policy_model else "the policy's intent model"
            out.unmapped += [
                f"{label}: not a label of {model}, so no threshold is proposed for it (the policy sends such "
                "messages to its fallback); train and promote a model with it, and route it in the policy"
                for label in unknown
            ]
        return out
    known = {"spam": set(SPAM_LABELS), "abuse": set(ABUSE_LABELS)}[task]
    for label in report["action_labels"]:
        if label not in known:
            out.unmapped.append(
                f"{label}: thresholds.{task} only knows {sorted(known)}; rename the label in the "
                "data to one of those to have a threshold proposed for it"
            )
            continue
        t = per_label.get(label, chosen)
        support = int((val.y_true == label).sum())
        if support < MIN_EVIDENCE and label in current:
            out.thresholds[label] = current[label]
            out.reasons[label] = (
                f"kept the policy's {current[label]}: only {support} val rows of {label}, too few to move it"
            )
            continue
        out.thresholds[label] = t
        before = current.get(label)
        if before is None or before == t:
            out.reasons[label] = f"chosen on val for precision {target}"
        else:
            n, precision = _at(val, label, before)
            out.reasons[label] = (
                f"chosen on val for precision {target} (the policy's {before} gave precision "
                f"{precision:.3f} on {n} val answers)"
            )
    for label, value in sorted(current.items()):
        if label not in out.thresholds:
            out.thresholds[label] = value
            out.reasons[label] = "kept: the data does not have this label"
    return out


def proposed_thresholds(task: str, report: dict[str, Any]) -> dict[str, float]:
    """The val-chosen thresholds alone, without a policy to keep or map (see :func:`propose`)."""
    threshold = _ceil(report["threshold"])
    per_label = {k: _ceil(v) for k, v in report["per_label_thresholds"].items()}
    if task == "intent":
        return {"default": threshold, **dict(sorted(per_label.items()))}
    return {label: per_label.get(label, threshold) for label in report["action_labels"]}


def _current(policy: Policy, task: str) -> tuple[dict[str, float], float]:
    table = dict(getattr(policy.thresholds, task))
    default = table.pop("default", 1.0) if task == "intent" else 1.0
    return table, default


def escalations(
    task: str, policy: Policy, s: Scored, mask: np.ndarray, table: dict[str, float], default: float = 1.0
) -> np.ndarray:
    """Which rows a person sees under thresholds ``table`` (``default`` for intent labels without their own).

    Derived row by row from the rule engine's public functions, the path the worker takes:
    :func:`worker.decide.intent_actions` (the branch rule 7 of ``decide`` takes for the top intent at its
    score: below its threshold, out of scope or unrouted goes to the policy's fallback, which may escalate
    or ignore; a confident intent takes its route's action, which may be ``escalate``) and
    :func:`worker.decide.threshold_actions` for spam/abuse labels at or above their thresholds (``mask``).
    """
    if task == "intent":
        view = policy.base_view()
        return np.array(
            [
                "escalate" in intent_actions(view, label, float(score), table.get(label, default))
                for label, score in zip(s.pred, s.conf, strict=True)
            ],
            dtype=bool,
        )
    escalating = [label for label in s.labels if "escalate" in threshold_actions(policy, task, label)]
    return mask & np.isin(s.pred, escalating)


def compare(task: str, policy: Policy, test: Scored, proposed: dict[str, float], positive: set[str]) -> dict[str, Any]:
    current_table, current_default = _current(policy, task)
    new_table = dict(proposed)
    new_default = new_table.pop("default", 1.0) if task == "intent" else 1.0
    before_mask = auto_mask(test, positive, current_table, current_default)
    after_mask = auto_mask(test, positive, new_table, new_default)
    before, after = outcome(test, before_mask), outcome(test, after_mask)
    n = max(1, len(test.conf))
    esc_before = int(escalations(task, policy, test, before_mask, current_table, current_default).sum()) * 1000 / n
    esc_after = int(escalations(task, policy, test, after_mask, new_table, new_default).sum()) * 1000 / n
    verb = {"intent": "answered automatically", "spam": "hidden as spam", "abuse": "flagged as abuse"}[task]
    rows = [
        {"name": f"messages {verb}", "before": before["coverage"], "after": after["coverage"], "unit": "percent"},
        {
            "name": "errors among those",
            "before": 1 - before["precision"],
            "after": 1 - after["precision"],
            "unit": "percent",
        },
        {
            "name": "errors per 1,000 messages",
            "before": before["errors"] * 1000 / n,
            "after": after["errors"] * 1000 / n,
            "unit": "count",
        },
        {"name": "escalations per 1,000 messages", "before": esc_before, "after": esc_after, "unit": "count"},
    ]

    def pct(x: float) -> str:
        return f"{100 * x:.1f} %"

    text = [
        f"On these {len(test.conf):,} test messages, the current policy would have {verb} {pct(before['coverage'])} "
        f"of them, {pct(1 - before['precision'])} of those wrongly; the proposed thresholds would have {verb} "
        f"{pct(after['coverage'])}, {pct(1 - after['precision'])} wrongly.",
        f"Escalations to people: {esc_before:.0f} → {esc_after:.0f} per 1,000 messages.",
    ]
    unreachable = [label for label, t in proposed.items() if t >= 1.0]
    if unreachable:
        text.append(
            f"No threshold reached the target precision on validation data for {', '.join(unreachable)}: the proposal "
            "sets 1.0 there (never automatic). Lower the target or keep those for people."
        )
    return {"rows": rows, "text": text, "current": {**current_table, "default": current_default}, "proposed": proposed}


def write_proposal(
    policy_path: Path, task: str, proposal: Proposal | dict[str, float], out: Path, *, source: str, target: float
) -> Path:
    """Write ``out`` (policy.proposed.yaml): the policy at ``policy_path`` with new ``thresholds.<task>``.

    The file is edited as a round trip (ruamel.yaml): every comment, the key order and the flow or
    block style of the original stay as they were; only the values of ``thresholds.<task>`` change.
    The result is validated as a policy before it is moved into place.
    """
    from ruamel.yaml import YAML

    if not isinstance(proposal, Proposal):
        proposal = Proposal(thresholds=dict(proposal))
    read_yaml(policy_path)  # strict: duplicate keys are an error, not silently merged
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 100
    rt.indent(mapping=2, sequence=4, offset=2)
    doc = rt.load(policy_path.read_text(encoding="utf-8"))
    table = doc["thresholds"][task]
    for label in [k for k in table if k not in proposal.thresholds]:
        del table[label]
    for label, value in proposal.thresholds.items():
        table[label] = value
    shadowing = [o.get("name") for o in doc.get("overrides") or [] if task in (o.get("thresholds") or {})]
    header = [
        f"Proposed by `replyguard eval` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from {source},",
        f"target precision {target}. Only thresholds.{task} differs from {policy_path}.",
    ]
    if proposal.model_mismatch:
        header += [
            f"WARNING: these thresholds were chosen for {proposal.for_model or 'a model this eval trained and did not save'},",
            f"not for {proposal.policy_model}, the model this policy uses. They only hold once that model",
            f"is trained (replyguard train), promoted (replyguard models promote) and named in models.{task}.",
        ]
    if shadowing:
        header.append(f"Note: overrides {shadowing} still set their own {task} thresholds for their platforms/kinds.")
    for note in proposal.notes:
        header += [f"Note: {line}" if i == 0 else f"  {line}" for i, line in enumerate(textwrap.wrap(note, 96))]
    header.append("Review it, then copy it over the brand's policy yourself: replyguard never applies it.")
    stream = io.StringIO()
    rt.dump(doc, stream)
    text = "".join(f"# {line}\n" for line in header) + stream.getvalue()
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        load_policy(tmp, name_must_match=False)  # the proposal must be a valid policy
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    return out


def load_current(policy_path: Path) -> Policy:
    return load_policy(policy_path).policy
